"""GPU checks, run where a CUDA device is present: `pytest -m gpu` (left out by default)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from triage_app.core.model.cards import load_cards
from triage_app.core.scoring.members.ensemble import resolve_precision
from triage_app.core.scoring.members.onnx_build import export_member
from triage_app.core.scoring.members.runtime import OnnxSession, cuda_device_present

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not cuda_device_present(), reason="no CUDA device on this machine")
def test_cuda_session_runs_and_agrees_with_cpu(model_cache: Path) -> None:
    exported = export_member(load_cards()["imagenet"], model_cache)
    gpu = OnnxSession(exported.path, 224, "cuda", batch=16, cache_dir=model_cache)
    assert gpu.provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider"), gpu.provider
    cpu = OnnxSession(exported.path, 224, "cpu")
    tiles = np.random.default_rng(0).integers(0, 256, (20, 224, 224, 3), dtype=np.uint8)  # pads to 32
    (p_gpu, e_gpu, _), (p_cpu, e_cpu, _) = gpu.run(tiles), cpu.run(tiles)
    assert p_gpu.shape == p_cpu.shape == (20, 1000)
    assert np.abs(p_gpu - p_cpu).max() < 2e-2  # TensorRT may run fp16
    assert e_gpu.shape == e_cpu.shape == (20, 1280)


@pytest.mark.skipif(not cuda_device_present(), reason="no CUDA device on this machine")
def test_fp16_model_on_gpu_agrees_with_fp32_on_cpu(model_cache: Path) -> None:
    """The precision the GPU uses by default (``scoring.precision = auto``) keeps the scores."""
    card = load_cards()["imagenet"]
    assert resolve_precision("auto", "cuda") == "fp16" and resolve_precision("auto", "cpu") == "fp32"
    half = OnnxSession(export_member(card, model_cache, "fp16").path, 224, "cuda", batch=16, cache_dir=model_cache)
    assert half.provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider"), half.provider
    full = OnnxSession(export_member(card, model_cache).path, 224, "cpu")
    rng = np.random.default_rng(1)
    tiles = cv2.GaussianBlur(rng.integers(0, 256, (24, 224, 224, 3), dtype=np.uint8).reshape(-1, 224, 3), (0, 0), 2)
    tiles = tiles.reshape(24, 224, 224, 3)
    (p16, e16, _), (p32, e32, _) = half.run(tiles), full.run(tiles)
    assert p16.dtype == np.float32 and p16.shape == p32.shape == (24, 1000)
    assert np.abs(p16 - p32).max() < 2e-2
    assert (p16.argmax(1) == p32.argmax(1)).mean() >= 0.9
    cos = (e16 * e32).sum(1) / (np.linalg.norm(e16, axis=1) * np.linalg.norm(e32, axis=1))
    assert cos.min() > 0.99


@pytest.mark.skipif(not cuda_device_present(), reason="no CUDA device on this machine")
def test_cuda_graph_session_agrees_with_the_cpu(model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CUDA provider the member runs as a captured graph (kept only if faithful), and
    batch after batch, padded last batch included, it gives what the CPU gives."""
    monkeypatch.setenv("TRIAGE_TENSORRT", "0")  # the graph is the CUDA provider's
    card = load_cards()["imagenet"]
    path = export_member(card, model_cache).path
    gpu = OnnxSession(path, 224, "cuda", batch=16, cache_dir=model_cache)
    assert gpu.provider == "CUDAExecutionProvider"
    assert gpu.graph is not None, "the CUDA graph was not kept (see the log for why)"
    cpu = OnnxSession(path, 224, "cpu")
    rng = np.random.default_rng(2)
    for n in (16, 16, 5):
        tiles = cv2.GaussianBlur(rng.integers(0, 256, (n * 224, 224, 3), dtype=np.uint8), (0, 0), 2).reshape(n, 224, 224, 3)
        (pg, eg, _), (pc, ec, _) = gpu.run(tiles), cpu.run(tiles)
        assert pg.shape == pc.shape == (n, 1000) and np.abs(pg - pc).max() < 1e-3
        assert np.abs(eg - ec).max() < 1e-2


def _torch_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


@pytest.mark.skipif(not _torch_cuda(), reason="PyTorch sees no CUDA device here")
def test_finetuning_runs_on_the_gpu_and_deploys(tmp_path: Path, ortho: np.ndarray, shared_data: Path) -> None:
    from tests.core.learning.test_finetune import _forest_vs_harbour
    from triage_app.core.learning.finetune import finetune_comparison
    from triage_app.core.store import Workspace

    root, settings = _forest_vs_harbour(tmp_path, ortho, shared_data)
    settings.scoring.device = "auto"
    with Workspace(root) as p:
        r = finetune_comparison(p, blocks=2, epochs=4, folds=3,
                                deploy="always")
    assert r.device == "cuda" and r.cv_auc_finetuned >= 0.9 and r.rescored == r.frames
