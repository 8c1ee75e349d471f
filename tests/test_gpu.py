"""GPU checks, run where a CUDA device is present: `pytest -m gpu` (left out by default)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from triage_app.core.members.cards import load_cards
from triage_app.core.members.export import export_member
from triage_app.core.members.runtime import OnnxSession, cuda_device_present

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not cuda_device_present(), reason="no CUDA device on this machine")
def test_cuda_session_runs_and_agrees_with_cpu(model_cache: Path) -> None:
    exported = export_member(load_cards()["imagenet"], model_cache)
    gpu = OnnxSession(exported.path, 224, "cuda", batch=16, cache_dir=model_cache)
    assert gpu.provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider"), gpu.provider
    cpu = OnnxSession(exported.path, 224, "cpu")
    tiles = np.random.default_rng(0).integers(0, 256, (20, 224, 224, 3), dtype=np.uint8)  # pads to 32
    (p_gpu, e_gpu), (p_cpu, e_cpu) = gpu.run(tiles), cpu.run(tiles)
    assert p_gpu.shape == p_cpu.shape == (20, 1000)
    assert np.abs(p_gpu - p_cpu).max() < 2e-2  # TensorRT may run fp16
    assert e_gpu.shape == e_cpu.shape == (20, 1280)
