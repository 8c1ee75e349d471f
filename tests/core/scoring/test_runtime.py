"""The ONNX Runtime sessions the members run in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from triage_app.core.model.cards import load_cards
from triage_app.core.scoring.members.onnx_build import export_member
from triage_app.core.scoring.members.runtime import OnnxSession


def test_a_cpu_session_leaves_the_cores_to_decoding_between_calls(model_cache: Path) -> None:
    """Its threads sleep instead of spinning between operators and calls: on a two-core machine
    spinning took the cores the decoder needed (the pipeline ran 13-20 % slower with it)."""
    session = OnnxSession(export_member(load_cards()["imagenet"], model_cache).path, 224, "cpu")
    assert session.provider == "CPUExecutionProvider"
    opts = session.session.get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    tiles = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    outs = session.run(tiles)
    # The same numbers as a session whose threads spin: only the waiting changed.
    spinning = ort.SessionOptions()
    spinning.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spinning.add_session_config_entry("session.intra_op.allow_spinning", "1")
    plain = ort.InferenceSession(str(session.path), spinning, providers=["CPUExecutionProvider"])
    expected = plain.run(None, {plain.get_inputs()[0].name: tiles})
    assert len(outs) == len(expected) and all(np.array_equal(a, b) for a, b in zip(outs, expected, strict=True))
