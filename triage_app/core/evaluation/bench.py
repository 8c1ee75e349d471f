"""Benchmarks that print numbers: ``triage bench pipeline``.

The pipeline benchmark measures, in one run on the same generated 1080p H.264 input, the
throughput of decode alone, of inference alone (every tile of a frame through every
member) and of the whole scoring pipeline, with the provider used, whether a CUDA graph ran,
each stage's working share and the peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from triage_app import REPO_ROOT, data_dir
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.ingest.sources import VideoSource
from triage_app.core.learning.head import rescore_head
from triage_app.core.model.errors import TriageError
from triage_app.core.model.records import Sampling
from triage_app.core.model.settings import load_settings
from triage_app.core.scoring.batching import FrameTiles, TileBatcher
from triage_app.core.scoring.members.emulated import EmulatedDevice
from triage_app.core.scoring.members.ensemble import HeadModel
from triage_app.core.scoring.pipeline import build_ensemble, score_project
from triage_app.core.scoring.tiling import frame_tiles
from triage_app.core.store import Workspace

ORTHO_CANDIDATES = [
    REPO_ROOT.parent / "shared" / "data" / "aerial" / "deepforest" / "5b90f92da0d7280005fab355_4310.tif",
    data_dir("resources") / "demo" / "flight.mp4",
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_h264_flight(out: Path, seconds: float, width: int = 1920, height: int = 1080, fps: int = 30,
                     bitrate: str = "30M", gop_s: float | None = 1.0) -> Path:
    """A simulated flight encoded like real drone footage (H.264, tens of Mb/s, noise, B-frames),
    with a keyframe every ``gop_s`` seconds (None: libx264's own choice, up to 250 frames)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise TriageError(f"{out.name}: cannot be made: ffmpeg is not installed, and it encodes the H.264 test footage "
                          "(on Debian or Ubuntu: apt-get install ffmpeg); or give footage of your own with --input")
    src = next((p for p in ORTHO_CANDIDATES if p.exists()), None)
    if src is None:
        raise TriageError(f"{out.name}: cannot be made: none of the background pictures of the simulated flight is "
                          f"there ({', '.join(str(p) for p in ORTHO_CANDIDATES)})")
    if src.suffix == ".mp4":
        vf = f"scale={width}:{height},noise=alls=6:allf=t,format=yuv420p"
        cmd = [ffmpeg, "-y", "-loglevel", "error", "-stream_loop", "-1", "-i", str(src), "-vf", vf]
    else:
        # Pan a window across the 2048 px tile; stay inside the mapped area.
        vf = (f"scale=3000:3000,crop={width}:{height}:'400+300*(1+sin(t/4))':'500+600*(1+sin(t/7))',"
              "noise=alls=6:allf=t,format=yuv420p")
        cmd = [ffmpeg, "-y", "-loglevel", "error", "-loop", "1", "-i", str(src), "-vf", vf]
    cmd += ["-t", str(seconds), "-r", str(fps), "-c:v", "libx264", "-preset", "veryfast", "-b:v", bitrate]
    if gop_s:
        g = max(1, round(gop_s * fps))
        cmd += ["-g", str(g), "-keyint_min", str(g), "-sc_threshold", "0"]
    subprocess.run([*cmd, str(out)], check=True)
    return out


def bench_pipeline(video: Path, sample_fps: float | None, device: str = "auto", batch: int = 32,
                   members: list[str] | None = None, pipeline_only: bool = False, infer_frames: int = 60,
                   precision: str = "auto", emulate_device: float | None = None) -> dict[str, Any]:
    """Decode alone, inference alone and the whole pipeline on one input, in this process.

    Decode alone reads every sampled frame and keeps none; inference alone runs the tiles of
    up to ``infer_frames`` frames (cut beforehand) through every member, in the full batches
    the pipeline runs (``TileBatcher``); the pipeline scores every sampled frame and reports
    each stage's working share. With ``pipeline_only`` only the pipeline runs, so that the peak RSS
    is the pipeline's own. With ``emulate_device`` (tiles per second) every member's device work
    is a timed wait that holds no core (:mod:`triage_app.core.scoring.members.emulated`): the stages'
    overlap as on a GPU, measured on a machine without one."""
    sampling = Sampling(fps=sample_fps) if sample_fps else Sampling()
    with tempfile.TemporaryDirectory(prefix="triage-bench-") as tmp:
        root = Path(tmp) / "project"
        overrides = {"scoring": {"device": device, "batch": batch, "precision": precision, **({"members": members} if members else {})}}
        settings = load_settings(None, overrides=overrides)
        settings.quality.gate_scoring = False  # every frame goes through every stage
        with Workspace(root, settings=settings) as ws:
            ingest_source(ws, video, sampling=sampling)
            ens = build_ensemble(ws)
            if not ens.backbones:
                raise TriageError("no member available to benchmark: " + "; ".join(ens.unavailable.values()))
            if emulate_device:
                for b in ens.backbones:
                    b.session = EmulatedDevice(b.session, emulate_device, batch)  # type: ignore[assignment]  # stands in for it

            result: dict[str, Any] = {"input": str(video), "members": ens.names, "provider": ens.provider}
            if pipeline_only:
                t0 = time.perf_counter()
                summary = score_project(ws, ensemble=ens)
                pipe_s = time.perf_counter() - t0
                result.update(frames=summary.frames_scored, pipeline_fps=round(summary.frames_scored / pipe_s, 2),
                              peak_rss_mb=round(peak_rss_mb(), 1), sample_fps=sample_fps)
                return result

            # 1. decode alone (nothing kept but a few frames for the inference measurement)
            t0 = time.perf_counter()
            n = 0
            images: list[np.ndarray] = []
            reader = VideoSource(video)
            video_fps = reader.fps
            video_s = reader.frame_count / video_fps if video_fps and reader.frame_count else None
            for f in reader.frames(sampling):
                if f.image is not None:
                    n += 1
                    if len(images) < infer_frames:
                        images.append(f.image)
            decode_s = time.perf_counter() - t0
            decoded = reader.frames_decoded
            # the same frames from a decoding of every frame, for the ratio
            t0 = time.perf_counter()
            every = VideoSource(video, planned=False)
            n_every = sum(1 for f in every.frames(sampling) if f.image is not None)
            decode_every_s = time.perf_counter() - t0

            # 2. inference alone: every tile of every frame through every member, in the full
            #    batches the pipeline runs (tiles cut beforehand)
            n_infer = len(images)
            infer_s, cut_s, tiles_per_frame = inference_alone(ens, images, settings.tiling, batch)
            del images

            # 3. the whole pipeline (decode, tiles, inference, store writes), same ensemble
            t0 = time.perf_counter()
            summary = score_project(ws, ensemble=ens)
            pipe_s = time.perf_counter() - t0
    decode_fps, infer_fps, pipe_fps = n / decode_s, n_infer / infer_s, summary.frames_scored / pipe_s
    return {
        "input": str(video),
        "frames": n,
        "tiles_per_frame": tiles_per_frame,
        "members": ens.names,
        "decode_fps": round(decode_fps, 2),
        "decoded_per_scored": round(decoded / n, 2) if n else None,
        "decode_every_frame_fps": round(n_every / decode_every_s, 2) if decode_every_s > 0 else None,
        "pipeline_decoded_per_scored": round(summary.frames_decoded / summary.frames_scored, 2) if summary.frames_scored else None,
        "inference_fps": round(infer_fps, 2),
        "pipeline_fps": round(pipe_fps, 2),
        "stream_fps": round(summary.frames_scored / summary.stream_seconds, 2) if summary.stream_seconds else None,
        "first_frame_s": round(summary.first_result_s, 3) if summary.first_result_s is not None else None,
        "tiling_fps": round(n_infer / cut_s, 2) if cut_s > 0 else None,
        "ratio": round(pipe_fps / min(decode_fps, infer_fps), 3),
        "overhead": round((1 / pipe_fps) / (1 / decode_fps + 1 / infer_fps), 3),
        "cuda_graph": any(b.session.graph is not None for b in ens.backbones),
        "stage_busy": summary.stage_busy,
        "batch_fill": round(summary.batch_fill, 3),
        "provider": ens.provider,
        "precision": ens.backbones[0].meta.get("precision", "fp32"),
        "batch": batch,
        "realtime_x": round(video_s / pipe_s, 2) if video_s else None,  # seconds of video per second of wall time
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "sample_fps": sample_fps,
        "cpu_count": os.cpu_count(),
    }


def inference_alone(ens: Any, images: list[np.ndarray], tiling: Any, batch: int) -> tuple[float, float, int]:
    """(seconds of inference, seconds cutting tiles, tiles a frame) for ``images``: every tile
    through every member in the full batches the pipeline runs, the tiles cut beforehand."""
    sizes = sorted({b.input_size for b in ens.backbones})
    t_cut = time.perf_counter()
    stacks = [FrameTiles(k, *frame_tiles(img, sizes, tiling.overlap, tiling.downscale, tiling.whole_frame))
              for k, img in enumerate(images)]
    cut_s = time.perf_counter() - t_cut
    batcher = TileBatcher(ens.backbones, batch)
    t0 = time.perf_counter()
    for item in stacks:
        batcher.add(item)
    batcher.finish()
    return time.perf_counter() - t0, cut_s, len(stacks[0].tiles) if stacks else 0


def bench_memory(workdir: Path, sample_fps: float, device: str) -> dict[str, Any]:
    """Peak RSS of the pipeline on a 1-minute and a 10-minute input, each in its own process."""
    out: dict[str, Any] = {}
    for minutes in (1, 10):
        video = workdir / f"flight-{minutes}min.mp4"
        if not video.exists():
            make_h264_flight(video, minutes * 60, bitrate="8M")
        res = subprocess.run(
            [sys.executable, "-m", "triage_app.cli", "bench", "pipeline", "--json", "--input", str(video),
             "--sample-fps", str(sample_fps), "--device", device, "--pipeline-only"],
            capture_output=True, text=True, check=True,
        )
        out[f"{minutes}min"] = json.loads(res.stdout.strip().splitlines()[-1])
    a, b = out["1min"]["peak_rss_mb"], out["10min"]["peak_rss_mb"]
    out["rss_ratio_10min_vs_1min"] = round(b / a, 3)
    return out


def bench_rescore(frames: int = 100_000, dim: int = 1280, seed: int = 0) -> dict[str, Any]:
    """Re-score ``frames`` cached frames with a head: read the pooled features, score,
    write every score, as ``triage retrain`` does after training."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="triage-rescore-") as tmp:
        with Workspace(Path(tmp) / "p") as ws:
            sid, _ = ws.frames.add_source("video", "/bench.mp4", "bench.mp4", {})
            for start in range(0, frames, 20_000):
                ws.frames.add_frames([{"source_id": sid, "idx": i, "timestamp_s": i / 30.0, "telemetry_matched": 0}
                                    for i in range(start, min(frames, start + 20_000))])
            ids = np.array([r["id"] for r in ws.frames.frame_rows()], dtype=np.int64)
            vid = ws.scores.model_version("imagenet", "imagenet", "bench")
            meta = ws.embeddings.open_set("imagenet:pooled", vid, 2 * dim, "imagenet-pooled-bench")
            writer = ws.embeddings.writer(meta)
            for start in range(0, frames, 10_000):
                chunk = ids[start : start + 10_000]
                writer.append(chunk, np.full(len(chunk), -1), rng.random((len(chunk), 2 * dim), dtype=np.float32))
            rows = writer.flush()
            writer.close()
            ws.embeddings.set_rows_committed(int(meta["id"]), rows)
            head = HeadModel(1, "imagenet", rng.normal(0, 0.01, 2 * dim).astype(np.float32), 0.0,
                             np.full(2 * dim, 0.5, np.float32), np.full(2 * dim, 0.29, np.float32))
            t0 = time.perf_counter()
            fids, feats, _ = ws.embeddings.pooled("imagenet")
            n = rescore_head(ws, head, fids, feats)  # read the cache, score, store every frame
            t1 = time.perf_counter()
            head.score(feats)  # scoring alone, for the split
            t2 = time.perf_counter()
    return {
        "frames": n,
        "seconds": round(t1 - t0, 3),
        "score_seconds": round(t2 - t1, 3),
        "store_and_read_seconds": round((t1 - t0) - (t2 - t1), 3),
        "feature_dim": 2 * dim,
    }
