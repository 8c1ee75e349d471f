"""The review pictures scoring keeps: one per scored frame, the frame itself at screen size,
made again where missing, never a reason for scoring or review to fail."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import scored_project
from triage_app.core.ingest.pictures import PICTURES_DIR, PictureWriter, ReviewPictures, make_pictures
from triage_app.core.ingest.reader import FrameReader
from triage_app.core.model.settings import load_settings
from triage_app.core.store import Workspace


def _open(root: Path, px: int) -> Workspace:
    return Workspace(root, settings=load_settings(root, overrides={"review": {"picture_px": px}}))


def test_scoring_keeps_each_frames_picture_at_screen_size(tmp_path: Path, ortho: np.ndarray) -> None:
    root = scored_project(tmp_path, ortho, frames=12, members=("imagenet",), overrides={"review": {"picture_px": 240}})
    with _open(root, 240) as ws:
        pictures = ReviewPictures(ws.root, 240)
        reader = FrameReader(ws.root)
        frames = ws.frames.frame_rows()
        assert len(frames) == 6 and ws.scores.scored_count() == 6
        for f in frames:
            assert pictures.has(f)
            kept = pictures.get(f)
            assert kept is not None and kept.shape == (135, 240, 3)  # 480x270 on a 240-pixel long side
            exact = reader.read(ws.frames.source(f["source_id"]), f)
            reduced = cv2.resize(exact, (240, 135), interpolation=cv2.INTER_AREA)
            # The same picture (JPEG's loss aside), not a neighbour's: frames of the pan differ far more.
            assert np.abs(kept.astype(int) - reduced.astype(int)).mean() < 4
        others = [np.abs(pictures.get(a).astype(int) - pictures.get(b).astype(int)).mean() for a, b in pairwise(frames)]
        assert min(others) > 8
        reader.close()


def test_no_pictures_kept_when_turned_off(tmp_path: Path, ortho: np.ndarray) -> None:
    root = scored_project(tmp_path, ortho, frames=6, members=("imagenet",), overrides={"review": {"picture_px": 0}})
    assert not (root / PICTURES_DIR).exists()
    with _open(root, 0) as ws:
        assert make_pictures(ws) == 0 and not (root / PICTURES_DIR).exists()


def test_missing_pictures_are_made_again_and_broken_ones_never_shown(tmp_path: Path, ortho: np.ndarray) -> None:
    root = scored_project(tmp_path, ortho, frames=12, members=("imagenet",), overrides={"review": {"picture_px": 0}})
    with _open(root, 320) as ws:
        frames = ws.frames.frame_rows()
        # Scored without pictures (an earlier version, a cluster): made from the footage in one pass.
        assert make_pictures(ws) == len(frames)
        assert make_pictures(ws) == 0  # made once
        pictures = ReviewPictures(ws.root, 320)
        lost, broken = frames[1], frames[2]
        pictures.path(lost).unlink()
        pictures.path(broken).write_bytes(b"not a jpeg")
        assert pictures.get(broken) is None  # review decodes that frame instead
        assert make_pictures(ws, [lost["id"]]) == 1 and pictures.get(lost) is not None
        # A picture of another shape than its frame is not taken for it.
        cv2.imwrite(str(pictures.path(frames[3])), np.zeros((100, 100, 3), np.uint8))
        assert pictures.get(frames[3]) is None
        # Decided frames are not offered again: the default leaves them out.
        ws.decisions.record([dict(frame_id=frames[4]["id"], label="reject", reviewer="ana", seconds_spent=1, policy="p",
                                  member_scores="{}")])
        pictures.path(frames[4]).unlink()
        assert make_pictures(ws) == 0 and not pictures.has(frames[4])


def test_a_picture_that_cannot_be_written_is_passed_over(tmp_path: Path) -> None:
    blocked = tmp_path / "p"
    blocked.mkdir()
    (blocked / PICTURES_DIR).write_text("a file where the folder should be")
    pictures = ReviewPictures(blocked, 64)
    frame = dict(id=1, source_id=1, width=80, height=60)
    assert pictures.put(frame, np.zeros((60, 80, 3), np.uint8)) is False
    assert pictures.get(frame) is None


def test_turned_off_reads_nothing(tmp_path: Path) -> None:
    pictures = ReviewPictures(tmp_path, 0)
    frame = dict(id=1, source_id=1, width=80, height=60)
    assert not pictures.enabled and pictures.put(frame, np.zeros((60, 80, 3), np.uint8)) is False
    assert pictures.get(frame) is None


def test_scoring_never_waits_on_a_slow_picture_writer(tmp_path: Path, monkeypatch) -> None:
    import threading
    import time

    pictures = ReviewPictures(tmp_path, 64)
    gate = threading.Event()
    real_put = pictures.put

    def slow_put(frame, image):  # a disk that stalls until told
        gate.wait(10)
        return real_put(frame, image)

    monkeypatch.setattr(pictures, "put", slow_put)
    writer = PictureWriter(pictures, backlog=2)
    frames = [dict(id=i, source_id=1, width=80, height=60) for i in range(10)]
    t0 = time.perf_counter()
    for f in frames:
        writer.offer(f, np.full((60, 80, 3), f["id"] * 20, np.uint8))
    assert time.perf_counter() - t0 < 1.0  # offering never blocked on the stalled disk
    gate.set()
    writer.close()
    assert writer.passed_over >= 7 and writer.kept + writer.passed_over == 10
    kept = [f for f in frames if pictures.has(f)]
    assert len(kept) == writer.kept and kept[0]["id"] == 0  # the first offered is kept, the rest as room allowed
    assert int(pictures.get(kept[-1]).mean()) == pytest.approx(kept[-1]["id"] * 20, abs=2)  # each its own picture
