"""ONNX Runtime sessions: one factory for every member.

Providers are asked for in the order TensorRT, CUDA, CPU (as the device setting allows),
and the provider really in use is read back from the session and logged: onnxruntime-gpu
installs and imports on a machine without CUDA and then silently runs on the CPU. On a GPU
the session uses heuristic cuDNN algorithm search, IO binding, fixed batch shapes (the last
batch is padded) and a warm-up run at start; on the CUDA provider the model is captured as a
CUDA graph (one launch per batch instead of one per kernel) when it gives the same outputs.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from triage_app.core.model.errors import ModelError

log = logging.getLogger(__name__)

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
ort.set_default_logger_severity(3)  # our own log says which provider runs


def cuda_device_present() -> bool:
    """Whether an NVIDIA driver and device are visible (asking ORT for CUDA without one
    only produces a failed provider and a warning)."""
    import ctypes.util

    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/version").exists() or (
        os.name == "nt" and ctypes.util.find_library("nvcuda") is not None
    )


def gpu_will_run(device: str) -> bool:
    """Whether sessions made for this device setting will ask for a GPU provider."""
    return device in ("cuda", "auto") and (device == "cuda" or cuda_device_present()) and bool(
        {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()))


_dlls_loaded = False
_trt: bool | None = None


def tensorrt_loadable() -> bool:
    """Whether TensorRT's libraries can be loaded: onnxruntime-gpu lists its TensorRT provider
    everywhere, and asking for it without TensorRT costs a failed attempt and the CUDA
    provider's options."""
    global _trt
    if _trt is None:
        import ctypes
        import importlib.util

        _trt = importlib.util.find_spec("tensorrt_libs") is not None
        for name in ("libnvinfer.so.10", "libnvinfer.so", "nvinfer_10.dll"):
            if _trt:
                break
            try:
                ctypes.CDLL(name)
                _trt = True
            except OSError:
                continue
        if not _trt:
            log.info("TensorRT libraries not found: the CUDA provider is used on the GPU")
    return _trt


def _preload_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries that pip installed (nvidia-* wheels, as PyTorch
    brings them), so that the CUDA provider finds them without LD_LIBRARY_PATH."""
    global _dlls_loaded
    if _dlls_loaded or not hasattr(ort, "preload_dlls"):
        return
    _dlls_loaded = True
    try:
        ort.preload_dlls()
    except Exception as exc:  # noqa: BLE001 - the provider then reports what it misses
        log.info("CUDA libraries from pip could not be preloaded: %s", exc)


def wanted_providers(device: str, cache_dir: Path | None = None, fp16: bool = False) -> list[tuple[str, dict[str, str]]]:
    """The providers to ask for, most preferred first."""
    available = set(ort.get_available_providers())
    chosen: list[tuple[str, dict[str, str]]] = []
    if device == "cuda" or (device == "auto" and cuda_device_present()):
        _preload_cuda_libraries()
        if ("TensorrtExecutionProvider" in available and os.environ.get("TRIAGE_TENSORRT", "1") != "0"
                and tensorrt_loadable()):
            opts = {"trt_fp16_enable": "True" if fp16 else "False"}
            if cache_dir is not None:
                opts |= {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(Path(cache_dir) / "trt")}
            chosen.append(("TensorrtExecutionProvider", opts))
        if "CUDAExecutionProvider" in available:
            chosen.append(("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC", "do_copy_in_default_stream": "True"}))
    chosen.append(("CPUExecutionProvider", {}))
    return chosen


@dataclass
class SessionInfo:
    provider: str
    input_name: str
    output_names: list[str]


CPU_MAX_BATCH = 8  # tiles per call on the CPU provider, whatever the (GPU) batch setting

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8}


class BoundRunner:
    """Runs one fixed batch shape through buffers allocated once and bound once.

    Input and outputs live at fixed addresses on ``device``; each call copies the tiles into
    the input buffer and the outputs out of theirs. That is what a CUDA graph needs (it
    replays the kernels captured on the first run, on the same addresses), and it also spares
    the per-call allocations on any device."""

    def __init__(self, session: ort.InferenceSession, batch: int, device: str = "cuda") -> None:
        inp = session.get_inputs()[0]
        self.session, self.batch, self.input_name = session, batch, inp.name
        self._lock = threading.Lock()
        shape = [batch if not isinstance(d, int) else d for d in inp.shape]
        self._input = ort.OrtValue.ortvalue_from_shape_and_type(shape, _NUMPY_TYPES[inp.type], device, 0)
        self.binding = session.io_binding()
        self.binding.bind_ortvalue_input(inp.name, self._input)
        self._outputs = []
        for o in session.get_outputs():
            dims = [batch if i == 0 and not isinstance(d, int) else d for i, d in enumerate(o.shape)]
            if any(not isinstance(d, int) for d in dims) or o.type not in _NUMPY_TYPES:
                raise ValueError(f"output {o.name} has shape {o.shape} ({o.type}): no fixed buffer can hold it")
            value = ort.OrtValue.ortvalue_from_shape_and_type(dims, _NUMPY_TYPES[o.type], device, 0)
            self.binding.bind_ortvalue_output(o.name, value)
            self._outputs.append(value)

    def run(self, chunk: np.ndarray) -> list[np.ndarray]:
        if len(chunk) != self.batch:
            raise ValueError(f"a bound runner takes batches of exactly {self.batch}, not {len(chunk)}")
        with self._lock:  # one set of buffers: one call at a time
            self._input.update_inplace(np.ascontiguousarray(chunk))
            self.session.run_with_iobinding(self.binding)
            # Copies: the buffers are overwritten by the next call.
            return [np.array(v.numpy(), copy=True) for v in self._outputs]


def replays_faithfully(graph_run: Callable[[np.ndarray], list[np.ndarray]],
                       plain_run: Callable[[np.ndarray], list[np.ndarray]], batch: int, size: int) -> bool:
    """Whether a captured graph gives what the plain session gives, input after input: after
    the runs in which ONNX Runtime captures the graph, two different batches, then the first
    again (a replay that read stale buffers fails this)."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    b = np.ascontiguousarray(a[:, ::-1])  # the same pictures upside down: other outputs
    for _ in range(2):  # the capture happens on one of the first runs; what matters is the replay
        graph_run(b)
    first_a, first_b, again_a = graph_run(a), graph_run(b), graph_run(a)
    ref_a, ref_b = plain_run(a), plain_run(b)
    close = all(np.allclose(np.asarray(x, np.float32), np.asarray(y, np.float32), atol=2e-2)
                for got, ref in ((first_a, ref_a), (first_b, ref_b), (again_a, ref_a)) for x, y in zip(got, ref, strict=False))
    differs = not np.allclose(np.asarray(first_a[-1], np.float32), np.asarray(first_b[-1], np.float32), atol=1e-3)
    return close and differs


class OnnxSession:
    """A loaded model: checks its input against the card, runs batches of uint8 tiles."""

    def __init__(self, path: Path, input_size: int, device: str = "auto", batch: int = 32,
                 cache_dir: Path | None = None, threads: int | None = None, cuda_graph: bool = True) -> None:
        self.path = Path(path)
        self.batch = batch
        self.graph: BoundRunner | None = None  # the CUDA graph runner, when the model could be captured
        if not self.path.is_file():
            raise ModelError(self.path, "model file does not exist")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        providers = wanted_providers(device, cache_dir, fp16=True)  # TensorRT builds fp16 engines
        # ONNX Runtime's threads otherwise spin between operators and between calls, taking the
        # cores the decode and tiling stages need: on the GPU they only wait; on two cores the
        # scoring pipeline ran 13-20 % faster without it and inference alone no slower
        # (BENCHMARKS.md, "ONNX Runtime's threads without spinning").
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=opts, providers=[p for p, _ in providers], provider_options=[o for _, o in providers]
            )
        except Exception as exc:  # noqa: BLE001 - ORT raises several types for a bad file
            raise ModelError(self.path, f"not a usable ONNX model ({exc.__class__.__name__}: {str(exc)[:200]})") from exc
        used = self.session.get_providers()
        self.provider = used[0] if used else "CPUExecutionProvider"
        if device == "cuda" and self.provider not in _GPU_PROVIDERS:
            log.warning("%s: CUDA was asked for but ONNX Runtime runs it on %s", self.path.name, self.provider)
        log.info("%s: running on %s", self.path.name, self.provider)
        self.on_gpu = self.provider in _GPU_PROVIDERS
        if not self.on_gpu:
            # On the CPU a call's speed per tile is the same from 4 tiles up, while its working
            # memory grows with the batch (about 12 MB a tile for EfficientNet-Lite0).
            self.batch = min(batch, CPU_MAX_BATCH)
        self.fixed_batch = self.on_gpu  # one input shape: no re-planning, no new cuDNN search per size
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(self.path, f"expects {len(inputs)} inputs, the pipeline feeds one (images)")
        shape = inputs[0].shape
        expected = [input_size, input_size, 3]
        dims = [d if isinstance(d, int) else None for d in shape[1:]]
        if len(shape) != 4 or any(d is not None and d != e for d, e in zip(dims, expected, strict=False)):
            raise ModelError(self.path, f"input shape {shape} disagrees with the card (N, {input_size}, {input_size}, 3)")
        if inputs[0].type != "tensor(uint8)":
            raise ModelError(self.path, f"input type {inputs[0].type}, expected uint8 tiles")
        self.input_name = inputs[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_size = input_size
        self._warm_up()
        if cuda_graph and self.provider == "CUDAExecutionProvider":
            self._capture(opts, providers)

    def _capture(self, opts: ort.SessionOptions, providers: list[tuple[str, dict[str, str]]]) -> None:
        """Replace the plain CUDA session with one whose kernels are captured once as a CUDA
        graph and replayed as one launch per batch (the host then spends next to nothing per
        call). Kept only if it gives the plain session's outputs; otherwise the plain session
        stays, and the log says why."""
        cuda = [(p, dict(o, enable_cuda_graph="1")) for p, o in providers if p == "CUDAExecutionProvider"]
        try:
            session = ort.InferenceSession(str(self.path), sess_options=opts, providers=[p for p, _ in cuda],
                                           provider_options=[o for _, o in cuda])
            runner = BoundRunner(session, self.batch, "cuda")
            ok = replays_faithfully(runner.run, self._run_bound, self.batch, self.input_size)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the plain session in place
            log.info("%s: no CUDA graph (%s: %s); the plain CUDA session runs", self.path.name, exc.__class__.__name__,
                     str(exc)[:200])
            return
        if not ok:
            log.warning("%s: the CUDA graph's outputs disagree with the plain session's; the plain session runs", self.path.name)
            return
        self.session, self.graph = session, runner
        log.info("%s: running as a CUDA graph, batches of %d", self.path.name, self.batch)

    def _warm_up(self) -> None:
        n = self.batch if self.fixed_batch else 1
        self.session.run(self.output_names, {self.input_name: np.zeros((n, self.input_size, self.input_size, 3), np.uint8)})

    def run(self, tiles: np.ndarray) -> list[np.ndarray]:
        """Outputs for a stack of uint8 tiles (N, S, S, 3), in chunks of the batch size."""
        outs: list[list[np.ndarray]] = [[] for _ in self.output_names]
        for start in range(0, len(tiles), self.batch):
            chunk = tiles[start : start + self.batch]
            n = len(chunk)
            if self.fixed_batch and n < self.batch:  # fixed shapes: pad the last batch
                pad = np.zeros((self.batch - n, *chunk.shape[1:]), chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            if self.graph is not None:
                results = self.graph.run(chunk)
            elif self.on_gpu:
                results = self._run_bound(chunk)
            else:
                results = self.session.run(self.output_names, {self.input_name: chunk})
            for i, r in enumerate(results):
                outs[i].append(np.asarray(r[:n], dtype=np.float32))
        return [np.concatenate(o) if o else np.zeros((0,), np.float32) for o in outs]

    def _run_bound(self, chunk: np.ndarray) -> list[np.ndarray]:
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, np.ascontiguousarray(chunk))
        for name in self.output_names:
            binding.bind_output(name, "cuda")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()
