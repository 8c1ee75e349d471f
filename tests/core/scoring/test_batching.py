"""Tiles of successive frames share full batches; every frame gets exactly its own outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from triage_app.core.model.cards import load_cards
from triage_app.core.scoring.batching import FrameTiles, TileBatcher
from triage_app.core.scoring.members.ensemble import TileOutput, build_members
from triage_app.core.scoring.tiling import Tile, frame_tiles, tile_grid


class _Recorder:
    """A member whose score for a tile is its mean pixel value: easy to check by hand."""

    def __init__(self, name: str, size: int) -> None:
        self.name, self.input_size, self.calls = name, size, []

    def run(self, tiles: np.ndarray) -> TileOutput:
        self.calls.append(len(tiles))
        flat = tiles.reshape(len(tiles), -1).astype(np.float32)
        return TileOutput(flat.mean(axis=1), np.stack([flat.min(axis=1), flat.max(axis=1)], axis=1))


def _frames(counts: list[int], size: int, seed: int = 0) -> list[FrameTiles]:
    rng = np.random.default_rng(seed)
    return [FrameTiles(k, [Tile(i, 0, 0, 1, 1) for i in range(n)], {size: rng.integers(0, 256, (n, size, size, 3), np.uint8)})
            for k, n in enumerate(counts)]


@pytest.mark.parametrize("batch", [1, 7, 32, 128])
def test_frames_share_full_batches_and_keep_their_own_outputs(batch: int) -> None:
    counts = [19, 19, 3, 40, 19, 1, 19]
    frames = _frames(counts, 8)
    member = _Recorder("m", 8)
    batcher = TileBatcher([member], batch)
    out = []
    for f in frames:
        out += batcher.add(f)
    out += batcher.finish()
    total = sum(counts)
    # Every call but the last is a full batch: no padding while frames keep coming.
    assert len(member.calls) == -(-total // batch)
    assert all(c == batch for c in member.calls[:-1]) and sum(member.calls) == total
    assert batcher.fill == pytest.approx(total / (len(member.calls) * batch))
    # Frames come out once, in order, each with its own tiles' outputs.
    assert [o.key for o in out] == list(range(len(counts)))
    for f, o in zip(frames, out, strict=True):
        px = f.pixels[8].reshape(len(f.tiles), -1).astype(np.float32)
        assert np.allclose(o.scores["m"], px.mean(axis=1))
        assert np.array_equal(o.embeddings["m"], np.stack([px.min(axis=1), px.max(axis=1)], axis=1))


def test_a_frame_leaves_as_soon_as_its_last_tile_is_scored() -> None:
    batcher = TileBatcher([_Recorder("m", 4)], 10)
    frames = _frames([6, 6, 8, 3], 4)
    assert batcher.add(frames[0]) == []  # 6 of 10 slots: waits for more tiles
    assert [o.key for o in batcher.add(frames[1])] == [0]  # batch full: frame 0 complete, 2 tiles of frame 1 wait
    assert [o.key for o in batcher.add(frames[2])] == [1, 2]
    assert batcher.add(frames[3]) == []
    assert [o.key for o in batcher.finish()] == [3]


def test_real_member_scores_the_same_batched_across_frames(model_cache: Path, ortho: np.ndarray) -> None:
    """EfficientNet-Lite0 with fixed batch shapes, as on a GPU: five 1080p frames (19 tiles each)
    take 3 calls of 32 instead of 5 padded ones, and give each frame the scores it gets alone."""
    ens = build_members(["imagenet"], load_cards(), model_cache, "cpu", batch=32)
    member = ens.backbones[0]
    member.session.fixed_batch, member.session.batch = True, 32  # a GPU session's fixed shape
    seen: list[int] = []
    raw_run = member.session.session.run
    member.session.session.run = lambda names, feed: seen.append(len(next(iter(feed.values())))) or raw_run(names, feed)
    frames = []
    for k in range(5):
        img = np.ascontiguousarray(ortho[100 * k : 100 * k + 1080, 120 * k : 120 * k + 1920])
        tiles, pixels = frame_tiles(img, [224], 0.2, 0.5, True)
        frames.append(FrameTiles(k, tiles, pixels))
    assert len(frames[0].tiles) == 19
    batcher = TileBatcher([member], 32)
    out = [o for f in frames for o in batcher.add(f)] + batcher.finish()
    assert seen == [32, 32, 32] and batcher.calls == 3  # 95 tiles, the last batch padded
    for f, o in zip(frames, out, strict=True):
        alone = member.run(f.pixels[224])
        assert np.abs(o.scores["imagenet"] - alone.scores).max() < 1e-5
        assert np.abs(o.embeddings["imagenet"] - alone.embedding).max() < 1e-4


def test_members_of_different_input_sizes_score_the_same_boxes() -> None:
    img = np.random.default_rng(3).integers(0, 256, (1080, 1920, 3), np.uint8)
    tiles, pixels = frame_tiles(img, [160, 224], 0.2, 0.5, True)
    assert tiles == tile_grid(1920, 1080, 224, 0.2, 0.5, True)
    assert pixels[224].shape == (len(tiles), 224, 224, 3) and pixels[160].shape == (len(tiles), 160, 160, 3)
    small, big = _Recorder("small", 160), _Recorder("big", 224)
    batcher = TileBatcher([small, big], 8)
    out = batcher.add(FrameTiles(0, tiles, pixels)) + batcher.finish()
    assert out[0].scores["small"].shape == out[0].scores["big"].shape == (len(tiles),)
    # The same place in the frame, seen at two sizes, has about the same mean brightness.
    assert np.abs(out[0].scores["small"] - out[0].scores["big"]).max() < 2.0
