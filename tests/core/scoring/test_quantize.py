"""8-bit members for the CPU: quantized from the float export, calibrated on real aerial tiles,
their biases corrected, checked against the float model, cached; a member that cannot be
quantized faithfully runs in float instead, with a warning. Chosen by ``auto`` on a CPU with
8-bit dot products where the member's card allows, never switching a project already scored."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.stats import spearmanr

from tests.conftest import scored_project
from triage_app.core.model.cards import imagenet_classes, load_cards
from triage_app.core.scoring.members import quantize
from triage_app.core.scoring.members.ensemble import build_members, member_precision


def _ortho_tiles(ortho: np.ndarray, size: int = 224, n: int = 24) -> np.ndarray:
    """Tiles of the shared orthophoto (not the calibration footage), at two scales."""
    h, w = ortho.shape[:2]
    out = []
    for i in range(n):
        side = 300 if i % 2 else 600
        y, x = (i * 397) % (h - side), (i * 613) % (w - side)
        out.append(cv2.resize(ortho[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def test_an_8bit_member_scores_like_the_float_one(model_cache: Path, ortho: np.ndarray) -> None:
    cards = load_cards()
    fp32 = build_members(["imagenet"], cards, model_cache, "cpu", precision="fp32").backbones[0]
    int8 = build_members(["imagenet"], cards, model_cache, "cpu", precision="int8").backbones[0]
    if quantize.x86_without_int8_dot():
        assert int8.meta["precision"] == "fp32" and int8.onnx_path == fp32.onnx_path
        pytest.skip("this CPU has no VNNI: ONNX Runtime's 8-bit kernels saturate here, so the member rightly runs in "
                    "fp32 (checked); how closely an 8-bit member agrees is checked on a CPU with VNNI or AMX")
    assert int8.meta["precision"] == "int8" and int8.meta["agreement"] >= quantize.AGREEMENT
    assert int8.meta["bias_corrected"] > 40  # every 8-bit convolution of EfficientNet-Lite0's 49 but the float three
    assert int8.onnx_path != fp32.onnx_path and int8.onnx_path.stat().st_size < 0.5 * fp32.onnx_path.stat().st_size
    tiles = _ortho_tiles(ortho)
    (p32, e32, k32), (p8, e8, k8) = fp32.session.run(tiles), int8.session.run(tiles)
    cos = (e32 * e8).sum(1) / (np.linalg.norm(e32, axis=1) * np.linalg.norm(e8, axis=1))
    # With the biases corrected 0.998 and 0.995 here; without, 0.992 and 0.977 (all of it but the
    # stem in 8 bits, uncorrected: 0.97 and 0.85; per-tensor weights 0.79 and 0.43).
    assert cos.mean() > 0.995 and cos.min() > 0.985
    # Each tile's strongest cell, which the ranking's max over tiles reads, agrees as well.
    cos_peak = (k32 * k8).sum(1) / (np.linalg.norm(k32, axis=1) * np.linalg.norm(k8, axis=1))
    assert cos_peak.mean() > 0.98 and cos_peak.min() > 0.9
    # What review reads: a target's score (its classes' summed probabilities) ranks the tiles alike.
    names = imagenet_classes()
    vehicles = [names.index(c) for c in ("minivan", "pickup truck", "jeep", "taxicab", "sports car", "convertible")]
    assert spearmanr(p32[:, vehicles].sum(1), p8[:, vehicles].sum(1)).statistic > 0.95
    # Made once: a second build reads the cached 8-bit model.
    again = build_members(["imagenet"], cards, model_cache, "cpu", precision="int8").backbones[0]
    assert again.onnx_path == int8.onnx_path


def test_a_member_that_quantizes_badly_runs_in_float(model_cache: Path, monkeypatch, caplog, tmp_path: Path) -> None:
    monkeypatch.setattr(quantize, "x86_without_int8_dot", lambda: False)  # quantized here whatever the CPU
    monkeypatch.setattr(quantize, "AGREEMENT", 1.01)  # no 8-bit model can agree this well
    monkeypatch.setattr(quantize, "QUANT_VERSION", "test-strict")  # not the cached one
    with caplog.at_level(logging.WARNING):
        member = build_members(["imagenet"], load_cards(), model_cache, "cpu", precision="int8").backbones[0]
    assert member.meta["precision"] == "fp32"
    assert any("agrees with it at" in r.getMessage() and "runs in fp32" in r.getMessage() for r in caplog.records)


def test_a_cpu_without_8bit_dot_products_runs_the_member_in_float(model_cache: Path, monkeypatch, caplog,
                                                                 tmp_path: Path) -> None:
    """On an x86 CPU without VNNI or AMX the 8-bit kernels saturate and gain nothing: the
    member runs in float and the log says why; the CPU's flags decide it."""
    plain_avx2 = tmp_path / "cpuinfo-avx2"
    plain_avx2.write_text("processor : 0\nflags : fpu sse sse2 avx avx2 fma\n")
    with_vnni = tmp_path / "cpuinfo-vnni"
    with_vnni.write_text("processor : 0\nflags : fpu sse sse2 avx avx2 fma avx512f avx512_vnni\n")
    monkeypatch.setattr(quantize.platform, "machine", lambda: "x86_64")
    assert quantize.x86_without_int8_dot(plain_avx2) and not quantize.x86_without_int8_dot(with_vnni)
    monkeypatch.setattr(quantize.platform, "machine", lambda: "aarch64")
    assert not quantize.x86_without_int8_dot(plain_avx2)  # ARM's dot products are another matter
    monkeypatch.setattr(quantize, "x86_without_int8_dot", lambda: True)
    with caplog.at_level(logging.WARNING):
        member = build_members(["imagenet"], load_cards(), model_cache, "cpu", precision="int8").backbones[0]
    assert member.meta["precision"] == "fp32"
    assert any("no 8-bit dot-product instructions" in r.getMessage() and "runs in fp32" in r.getMessage()
               for r in caplog.records)


def test_auto_takes_8_bits_on_a_cpu_with_dot_products_where_the_card_allows(model_cache: Path, monkeypatch) -> None:
    cards = load_cards()
    assert cards["imagenet"].cpu_int8  # the shipped member's 8-bit model was checked on labelled footage
    monkeypatch.setattr(quantize, "x86_without_int8_dot", lambda: False)
    monkeypatch.setattr(quantize, "cpu_has_int8_dot", lambda: True)
    member = build_members(["imagenet"], cards, model_cache, "cpu").backbones[0]
    assert member.meta["precision"] == "int8"
    # A card that does not say so (a user's own model, not checked) stays in float.
    unchecked = {"imagenet": cards["imagenet"].model_copy(update={"cpu_int8": False})}
    assert build_members(["imagenet"], unchecked, model_cache, "cpu").backbones[0].meta["precision"] == "fp32"
    # And so does every member on a CPU without 8-bit dot products.
    monkeypatch.setattr(quantize, "cpu_has_int8_dot", lambda: False)
    assert build_members(["imagenet"], cards, model_cache, "cpu").backbones[0].meta["precision"] == "fp32"
    # On a Ray cluster's CPU workers (their CPUs unseen) a new project is scored in float, one
    # scored in 8 bits goes on in 8 bits.
    card = cards["imagenet"]
    monkeypatch.setattr(quantize, "cpu_has_int8_dot", lambda: True)
    assert member_precision("auto", "cpu", card, int8_auto=False) == "fp32"
    assert member_precision("auto", "cpu", card, [f"abc{quantize.INT8_MARK}5-1234"], int8_auto=False) == "int8"
    # Named, a precision is taken as named.
    monkeypatch.setattr(quantize, "cpu_has_int8_dot", lambda: True)
    assert build_members(["imagenet"], cards, model_cache, "cpu", precision="fp32").backbones[0].meta["precision"] == "fp32"


def test_a_project_scored_in_float_is_not_scored_again_in_8_bits(tmp_path: Path, ortho: np.ndarray, monkeypatch,
                                                                   capsys) -> None:
    """A project keeps the precision its frames were scored in: on a machine (or a release) that
    would choose 8 bits, ``auto`` goes on in float and nothing is scored twice; a new project
    there is scored in 8 bits, and ``triage score`` says so."""
    from triage_app.cli import main
    from triage_app.core.scoring.pipeline import build_ensemble, pending_work
    from triage_app.core.store import Workspace

    monkeypatch.setattr(quantize, "x86_without_int8_dot", lambda: False)
    monkeypatch.setattr(quantize, "cpu_has_int8_dot", lambda: False)
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = scored_project(tmp_path / "old", ortho, frames=8, members=("imagenet",))
    monkeypatch.setattr(quantize, "cpu_has_int8_dot", lambda: True)
    with Workspace(old) as ws:
        ens = build_ensemble(ws)
        assert ens.precisions == {"imagenet": "fp32"}
        assert pending_work(ws, ens)[1] == []  # every frame already holds this member's score
    new = scored_project(tmp_path / "new", ortho, frames=8, members=("imagenet",))
    with Workspace(new) as ws:
        ens = build_ensemble(ws)
        assert ens.precisions == {"imagenet": "int8"} and pending_work(ws, ens)[1] == []
        assert all(quantize.INT8_MARK in k for k in ws.scores.scored_version_keys("imagenet"))
    capsys.readouterr()
    assert main(["score", str(new)]) == 0
    assert "with imagenet (int8) on CPUExecutionProvider" in capsys.readouterr().out


def test_which_cpus_have_8bit_dot_products(monkeypatch, tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    cases = [("x86_64", "flags : fpu sse2 avx avx2 fma", False), ("x86_64", "flags : avx2 avx512f avx512_vnni", True),
             ("x86_64", "flags : avx2 avx_vnni", True), ("x86_64", "flags : avx512f amx_tile amx_int8", True),
             ("aarch64", "Features : fp asimd crc32", False), ("aarch64", "Features : fp asimd asimddp", True),
             ("riscv64", "isa : rv64imafdc", False)]
    for machine, flags, has in cases:
        info.write_text(f"processor : 0\n{flags}\n")
        monkeypatch.setattr(quantize.platform, "machine", lambda m=machine: m)
        assert quantize.cpu_has_int8_dot(info) is has, (machine, flags)
    monkeypatch.setattr(quantize.platform, "machine", lambda: "arm64")  # macOS: no /proc/cpuinfo
    assert quantize.cpu_has_int8_dot(tmp_path / "absent")
    monkeypatch.setattr(quantize.platform, "machine", lambda: "x86_64")
    assert not quantize.cpu_has_int8_dot(tmp_path / "absent")


def test_a_damaged_8bit_model_and_float_export_are_both_made_again(model_cache: Path, monkeypatch, tmp_path: Path,
                                                                    caplog) -> None:
    """Disk trouble that damaged both the 8-bit model and the float export it was quantized from:
    the member is exported and quantized again, not left out."""
    import shutil

    monkeypatch.setattr(quantize, "x86_without_int8_dot", lambda: False)
    cards = load_cards()
    build_members(["imagenet"], cards, model_cache, "cpu", precision="int8")  # both in the session's cache
    cache = tmp_path / "cache"
    shutil.copytree(model_cache / "onnx", cache / "onnx")
    damaged = sorted(cache.glob("onnx/imagenet-*.onnx"))
    assert any(quantize.INT8_MARK in p.name for p in damaged) and any(quantize.INT8_MARK not in p.name for p in damaged)
    for p in damaged:
        p.write_bytes(b"not a model")
    with caplog.at_level(logging.WARNING):
        ens = build_members(["imagenet"], cards, cache, "cpu", precision="int8")
    assert not ens.unavailable and ens.precisions == {"imagenet": "int8"}
    assert any("exporting it again" in r.getMessage() for r in caplog.records)
