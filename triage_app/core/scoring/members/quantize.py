"""8-bit members for the CPU: a member's exported float model quantized statically (ONNX
Runtime's QDQ format: int8 weights per output channel, uint8 activations), its activation
ranges calibrated on real aerial tiles (the shipped demo flight, cut at several scales, in
colour, in grey as a thermal camera gives, and darkened as at dusk). Convolutions and matrix
products run in 8 bits (VNNI / AMX on recent x86 CPUs, dot-product instructions on ARM);
the in-graph preprocessing and the softmax stay in float.

Each quantized model is checked against its float model on the calibration tiles before it
is kept: the target probabilities must agree closely (see ``AGREEMENT``) or the member stays
in float, with a warning."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from triage_app import data_dir
from triage_app.core.model.errors import ModelError
from triage_app.core.scoring.members.onnx_build import ExportedModel

log = logging.getLogger(__name__)

#: Bumped when the calibration or the quantization settings change (a new cache entry).
QUANT_VERSION = "4"
CALIBRATION_TILES = 48
#: The quantized model is kept when its embeddings' mean cosine similarity to the float
#: model's, on tiles it was not calibrated on, is at least this.
AGREEMENT = 0.95
#: Quantized with their activations (a convolution and the ReLU6 after it fuse into one 8-bit
#: kernel; residual additions stay in 8 bits). The first convolutions (the stem, which reads the
#: image, and the first block after it) and the last matrix product (the classifier) stay in
#: float: they cost little and lose most.
FLOAT_CONVS = 3
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm", "Clip", "Relu", "Add"]


def calibration_tiles(size: int, n: int = CALIBRATION_TILES, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8 BGR tiles from the shipped demo flight: random crops of 1/4 to
    the whole frame, a third turned grey and a sixth darkened, so that the activation ranges
    cover colour, thermal-like and dim footage alike."""
    import cv2

    video = data_dir("resources") / "demo" / "flight.mp4"
    cap = cv2.VideoCapture(str(video))
    frames = []
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    for k in np.linspace(0, total - 1, 12).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(k))
        ok, frame = cap.read()
        if ok:
            frames.append(frame)
    cap.release()
    if not frames:
        raise ModelError(video, "the demo flight could not be read for calibrating 8-bit members")
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        f = frames[i % len(frames)]
        h, w = f.shape[:2]
        side = int(rng.uniform(0.25, 1.0) * min(h, w))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        tile = cv2.resize(f[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)
        if i % 3 == 1:
            tile = cv2.cvtColor(cv2.cvtColor(tile, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        elif i % 6 == 2:
            tile = (tile.astype(np.float32) * rng.uniform(0.2, 0.5)).astype(np.uint8)
        out[i] = tile
    return out


class _Reader:
    """Feeds the calibration tiles to ONNX Runtime's calibrator in small batches."""

    def __init__(self, tiles: np.ndarray, batch: int = 8) -> None:
        self.batches = [tiles[i : i + batch] for i in range(0, len(tiles), batch)]

    def get_next(self) -> dict[str, np.ndarray] | None:
        return {"images": self.batches.pop(0)} if self.batches else None

    def rewind(self) -> None:  # noqa: D401 - the calibrator's interface
        pass


def _agreement(fp32: Path, int8: Path, tiles: np.ndarray, output: str) -> float:
    """Mean cosine similarity, tile by tile, of an output of the two models."""
    import onnxruntime as ort

    a = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run([output], {"images": tiles})[0]
    b = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"]).run([output], {"images": tiles})[0]
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return float(np.mean(cos))


def _edges(model_path: Path) -> list[str]:
    """The nodes kept in float: the first ``FLOAT_CONVS`` convolutions and the last matrix
    product. (On EfficientNet-Lite0 the stem and the first block's depthwise and pointwise
    convolutions: the embeddings' mean cosine to the float model's on real thermal and colour
    tiles rose from 0.960 to 0.986 at the same speed; the next block's too, 0.994 but 2.5
    times slower.)"""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    products = [n.name for n in graph.node if n.op_type in ("Gemm", "MatMul")]
    return convs[:FLOAT_CONVS] + products[-1:]


def x86_without_int8_dot(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this is an x86 CPU without 8-bit dot-product instructions (VNNI, AMX). ONNX
    Runtime's kernels for 8-bit activations times 8-bit weights add pairs of products in 16
    bits there, which saturate: the 8-bit model loses agreement with its float one (mean
    cosine of the embeddings 0.97 against 0.99) and runs no faster than float (measured on an
    AVX2 EPYC: 0.125 s for 8 tiles against 0.116-0.125 s in fp32). Where the CPU's flags cannot
    be read, it is taken to have them."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = cpuinfo.read_text().split()
    except OSError:
        return False
    return not any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def quantize_member(exported: ExportedModel, cache_dir: Path) -> ExportedModel:
    """The 8-bit model of an exported float member, made on first use and cached beside it.
    Raises ``ModelError`` when it cannot be made, would saturate on this CPU, or disagrees with
    the float model."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if x86_without_int8_dot():
        raise ModelError(exported.path, "is not run in 8 bits on this CPU: it has no 8-bit dot-product instructions "
                                        "(VNNI or AMX), so ONNX Runtime's 8-bit kernels saturate and run no faster than float")
    meta = dict(exported.meta)
    key = f"{meta['key']}-int8v{QUANT_VERSION}"
    path = exported.path.with_name(f"{meta['member']}-{key}.onnx")
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file():
        try:
            return ExportedModel(path, json.loads(meta_path.read_text()))
        except json.JSONDecodeError:
            log.warning("%s: damaged cache entry, quantizing again", meta_path)
    t0 = time.perf_counter()
    tiles = calibration_tiles(int(meta["input_size"]))
    with tempfile.TemporaryDirectory(dir=path.parent, prefix="quant-") as tmp:
        pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        try:
            # ONNX Runtime's calibrator prints its progress: into the log, not into a command's output.
            with contextlib.redirect_stdout(io.StringIO()) as said:
                quant_pre_process(str(exported.path), str(pre), skip_symbolic_shape=True)
                quantize_static(str(pre), str(out), _Reader(tiles), quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                op_types_to_quantize=QUANTIZED_OPS, nodes_to_exclude=_edges(pre),
                                calibrate_method=CalibrationMethod.Percentile)
            log.debug("%s", said.getvalue())
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's tools raise many kinds
            raise ModelError(exported.path, f"could not be quantized to 8 bits ({exc.__class__.__name__}: "
                                            f"{str(exc)[:200]})") from exc
        output = "embedding" if "embedding" in meta["outputs"] else str(meta["outputs"][0])
        agree = _agreement(exported.path, out, calibration_tiles(int(meta["input_size"]), 32, seed=1), output)
        if not agree >= AGREEMENT:
            raise ModelError(exported.path, f"its 8-bit model agrees with it at {agree:.3f} (mean cosine of "
                                            f"'{output}' on held-out tiles), under {AGREEMENT}")
        os.replace(out, path)
    meta.update(precision="int8", key=key, float_key=exported.meta["key"], agreement=round(agree, 4),
                calibration=f"{len(tiles)} tiles of the demo flight (colour, grey, dim)",
                quantized_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    meta_path.write_text(json.dumps(meta))
    log.info("quantized %s to 8 bits in %.1f s (agreement %.3f)", meta["member"], time.perf_counter() - t0, agree)
    return ExportedModel(path, meta)

