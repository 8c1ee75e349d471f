"""``triage bench pipeline --archive N``: a day's archive rather than one flight.

N generated 1080p H.264 flights in one project, scored with one source decoded after
another and, in the same run, with several decoded at once (``scoring.sources_at_once``),
beside decode alone (every flight, its sampled frames) and inference alone (the tiles of a
sample of the frames, in the pipeline's full batches), so the pipeline's ratio to its slowest
stage is known. ``realtime_x`` is seconds of video scored per second of wall time."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from triage_app.core.evaluation.bench import inference_alone, make_h264_flight, peak_rss_mb
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.ingest.parallel import default_workers
from triage_app.core.ingest.sources import VideoSource
from triage_app.core.model.records import Sampling
from triage_app.core.model.settings import load_settings
from triage_app.core.scoring.pipeline import build_ensemble, score_project
from triage_app.core.store import Workspace


def archive_flights(workdir: Path, flights: int, seconds: float, gop_s: float | None = 1.0) -> list[Path]:
    """``flights`` generated flights of ``seconds`` each (made once, kept in ``workdir``)."""
    out = []
    for k in range(flights):
        path = Path(workdir) / f"archive-{seconds:g}s-{k}.mp4"
        if not path.exists():
            make_h264_flight(path, seconds, gop_s=gop_s)
        out.append(path)
    return out


def _decode_alone(flights: list[Path], sampling: Sampling, keep: int) -> tuple[int, int, float, list[np.ndarray]]:
    """(frames sampled, pictures decoded, seconds, the first ``keep`` frames) over every flight."""
    t0 = time.perf_counter()
    n = decoded = 0
    images: list[np.ndarray] = []
    for path in flights:
        video = VideoSource(path)
        for f in video.frames(sampling):
            if f.image is not None:
                n += 1
                if len(images) < keep:
                    images.append(f.image)
        decoded += video.frames_decoded
    return n, decoded, time.perf_counter() - t0, images


def bench_archive(flights: list[Path], sample_fps: float | None, device: str = "auto", batch: int = 32,
                  precision: str = "auto", at_once: int | None = None, infer_frames: int = 60) -> dict[str, Any]:
    sampling = Sampling(fps=sample_fps) if sample_fps else Sampling()
    at_once = at_once or max(2, default_workers(0, share=4, most=4))
    video_s = 0.0
    for path in flights:
        v = VideoSource(path)
        video_s += (v.frame_count or 0) / (v.fps or 30.0)
        v.close()
    n, decoded, decode_s, images = _decode_alone(flights, sampling, infer_frames)
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="triage-archive-") as tmp:
        for label, k in (("one_after_another", 1), ("at_once", at_once)):
            overrides = {"scoring": {"device": device, "batch": batch, "precision": precision, "sources_at_once": k}}
            settings = load_settings(None, overrides=overrides)
            settings.quality.gate_scoring = False  # every frame goes through every stage
            with Workspace(Path(tmp) / label, settings=settings) as ws:
                for path in flights:
                    ingest_source(ws, path, sampling=sampling)
                ens = build_ensemble(ws)
                if not ens.backbones:
                    raise RuntimeError("no member available to benchmark: " + "; ".join(ens.unavailable.values()))
                if label == "one_after_another":  # inference alone, once, on the same members
                    infer_s, _cut_s, tiles_per_frame = inference_alone(ens, images, settings.tiling, batch)
                    infer_fps = len(images) / infer_s
                t0 = time.perf_counter()
                summary = score_project(ws, ensemble=ens)
                wall = time.perf_counter() - t0
                runs[label] = {
                    "sources_at_once": k,
                    "frames": summary.frames_scored,
                    "pipeline_fps": round(summary.frames_scored / wall, 2),
                    "realtime_x": round(video_s / wall, 2),
                    "decoded_per_scored": round(summary.frames_decoded / summary.frames_scored, 2) if summary.frames_scored else None,
                    "stage_busy": summary.stage_busy,
                    "seconds": round(wall, 1),
                    "provider": ens.provider,
                    "precision": ens.backbones[0].meta.get("precision", "fp32"),
                }
    decode_fps = n / decode_s
    slowest = min(decode_fps, infer_fps)
    for r in runs.values():
        r["ratio_to_slowest_stage"] = round(r["pipeline_fps"] / slowest, 3)
    return {
        "flights": len(flights),
        "video_seconds": round(video_s, 1),
        "sample_fps": sample_fps,
        "frames_sampled": n,
        "tiles_per_frame": tiles_per_frame,
        "decode_alone_fps": round(decode_fps, 2),
        "decode_alone_decoded_per_scored": round(decoded / n, 2) if n else None,
        "inference_alone_fps": round(infer_fps, 2),
        **runs,
        "at_once_vs_one_after_another": round(runs["at_once"]["pipeline_fps"] / runs["one_after_another"]["pipeline_fps"], 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cpu_count": os.cpu_count(),
    }
