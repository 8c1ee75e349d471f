"""8-bit members for the CPU: a member's exported float model quantized statically (ONNX
Runtime's QDQ format: int8 weights per output channel, uint8 activations), its activation
ranges calibrated on real aerial tiles (the shipped demo flight, cut at several scales, in
colour, in grey as a thermal camera gives, and darkened as at dusk). Convolutions and matrix
products run in 8 bits (VNNI / AMX on recent x86 CPUs, dot-product instructions on ARM);
the in-graph preprocessing and the softmax stay in float.

Rounding to 8 bits shifts each convolution's outputs on average, not only at random, and the
shifts add up through the network. After quantizing, each 8-bit convolution's bias is corrected,
one convolution after another in the order they run, by the mean difference of its outputs,
channel by channel, from the float model's on the calibration tiles (empirical bias correction,
Nagel et al., "Data-Free Quantization Through Weight Equalization and Bias Correction", 2019):
no cost when scoring.

Each quantized model is checked against its float model on tiles it was not calibrated on
before it is kept: the embeddings must agree closely (see ``AGREEMENT``) or the member stays in
float, with a warning."""

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
from typing import TYPE_CHECKING

import numpy as np

from triage_app import data_dir
from triage_app.core.model.errors import ModelError
from triage_app.core.scoring.members.onnx_build import ExportedModel

if TYPE_CHECKING:
    import onnx
    import onnxruntime as ort

log = logging.getLogger(__name__)

#: Bumped when the calibration or the quantization settings change (a new cache entry).
QUANT_VERSION = "5"
CALIBRATION_TILES = 48
#: In the version key of every 8-bit model (and so of the scores made with one).
INT8_MARK = "-int8v"
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


def _cpu_session(model: str | bytes) -> ort.InferenceSession:
    """A CPU session on a model file or a serialized model, its threads sleeping between calls."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def _agreement(fp32: Path, int8: Path, tiles: np.ndarray, output: str) -> float:
    """Mean cosine similarity, tile by tile, of an output of the two models."""
    a = _cpu_session(str(fp32)).run([output], {"images": tiles})[0]
    b = _cpu_session(str(int8)).run([output], {"images": tiles})[0]
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return float(np.mean(cos))


def _channel_means(model: onnx.ModelProto, names: list[str], tiles: np.ndarray, batch: int = 8) -> list[np.ndarray]:
    """Each named tensor's mean over tiles and positions, per channel (axis 1), computed
    batch by batch (the first layers' outputs of a whole calibration set would take
    gigabytes)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {o.name for o in copy.graph.output}
    copy.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in present)
    session = _cpu_session(copy.SerializeToString())
    sums: list[np.ndarray] = [np.zeros(0)] * len(names)
    counts = [0] * len(names)
    for i in range(0, len(tiles), batch):
        for k, out in enumerate(session.run(names, {"images": tiles[i : i + batch]})):
            part = out.astype(np.float64).sum(axis=(0, *range(2, out.ndim)))
            sums[k] = part if i == 0 else sums[k] + part
            counts[k] += out.size // out.shape[1]
    return [s / c for s, c in zip(sums, counts, strict=True)]


def _correct_biases(fp32: Path, int8: Path, tiles: np.ndarray) -> int:
    """Correct, in place, the biases of ``int8``'s 8-bit convolutions so that each one's
    outputs have, channel by channel, the float model's means on ``tiles``, one convolution
    after another (each correction changes what the next ones see). Returns how many were
    corrected. A correction is added to the bias as stored (32-bit integers in units of the
    input's scale times the weight's), clipped to that type's range."""
    import onnx
    from onnx import numpy_helper

    fm, qm = onnx.load(str(fp32)), onnx.load(str(int8))
    graph = qm.graph
    init = {i.name: i for i in graph.initializer}
    made_by = {o: n for n in graph.node for o in n.output}
    used_by: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            used_by.setdefault(i, []).append(n)
    float_tensors = {o for n in fm.graph.node for o in n.output}
    convs = []  # (float output, its 8-bit output dequantized, bias initializer, bias scale)
    for n in graph.node:
        if n.op_type != "Conv" or len(n.input) < 3 or n.output[0] not in float_tensors:
            continue
        bias = made_by.get(n.input[2])
        if bias is None or bias.op_type != "DequantizeLinear" or bias.input[0] not in init:
            continue
        q = [c for c in used_by.get(n.output[0], []) if c.op_type == "QuantizeLinear"]
        dq = [c for c in used_by.get(q[0].output[0], []) if c.op_type == "DequantizeLinear"] if q else []
        if dq:
            convs.append((n.output[0], dq[0].output[0], bias.input[0], bias.input[1]))
    if not convs:
        return 0
    target = _channel_means(fm, [c[0] for c in convs], tiles)
    lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    for (_, dq_name, bias_name, scale_name), want in zip(convs, target, strict=True):
        have = _channel_means(qm, [dq_name], tiles)[0]
        scale = numpy_helper.to_array(init[scale_name]).astype(np.float64)
        step = np.where(scale > 0, (want - have) / np.where(scale > 0, scale, 1.0), 0.0)
        bias = numpy_helper.to_array(init[bias_name]).astype(np.float64)
        init[bias_name].CopyFrom(numpy_helper.from_array(np.clip(np.round(bias + step), lo, hi).astype(np.int32), bias_name))
    onnx.save(qm, str(int8))
    return len(convs)


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


_X86, _ARM = ("x86_64", "amd64"), ("arm64", "aarch64")
_X86_INT8_DOT = {"avx512_vnni", "avx_vnni", "amx_int8"}


def _cpu_flags(cpuinfo: Path) -> set[str] | None:
    """The words of ``/proc/cpuinfo`` (its flags among them); ``None`` where it cannot be read."""
    try:
        return set(cpuinfo.read_text().split())
    except OSError:
        return None


def x86_without_int8_dot(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this is an x86 CPU without 8-bit dot-product instructions (VNNI, AMX). ONNX
    Runtime's kernels for 8-bit activations times 8-bit weights add pairs of products in 16
    bits there, which saturate: the 8-bit model loses agreement with its float one (mean
    cosine of the embeddings 0.97 against 0.99) and runs no faster than float (measured on an
    AVX2 EPYC: 0.125 s for 8 tiles against 0.116-0.125 s in fp32). Where the CPU's flags cannot
    be read, it is taken to have them (an 8-bit model named explicitly is made)."""
    flags = _cpu_flags(cpuinfo)
    return platform.machine().lower() in _X86 and flags is not None and not flags & _X86_INT8_DOT


def cpu_has_int8_dot(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU has 8-bit dot-product instructions that ONNX Runtime's 8-bit kernels use
    (precision ``auto`` takes 8 bits only then): VNNI or AMX on x86, the dot-product extension on
    64-bit ARM (``asimddp``). Where the flags cannot be read (another system than Linux) an ARM
    CPU is taken to have it (every Apple and recent server ARM does) and an x86 one not."""
    machine, flags = platform.machine().lower(), _cpu_flags(cpuinfo)
    if flags is None:
        return machine in _ARM
    if machine in _X86:
        return bool(flags & _X86_INT8_DOT)
    return machine in _ARM and "asimddp" in flags


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
    key = f"{meta['key']}{INT8_MARK}{QUANT_VERSION}"
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
            corrected = _correct_biases(pre, out, tiles)
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
                calibration=f"{len(tiles)} tiles of the demo flight (colour, grey, dim)", bias_corrected=corrected,
                quantized_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    meta_path.write_text(json.dumps(meta))
    log.info("quantized %s to 8 bits in %.1f s (%d biases corrected, agreement %.3f)", meta["member"],
             time.perf_counter() - t0, corrected, agree)
    return ExportedModel(path, meta)

