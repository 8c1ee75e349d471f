"""``triage bench pipeline --cluster ADDRESS``: the same footage scored in this process and on
a Ray cluster, in one run, with the ratio and a check that both wrote the same scores."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from triage_app.core.ingest.footage import ingest_source
from triage_app.core.model.records import Sampling
from triage_app.core.model.settings import load_settings
from triage_app.core.scoring.cluster import score_on_cluster
from triage_app.core.scoring.members.ensemble import resolve_precision
from triage_app.core.scoring.pipeline import build_ensemble, score_project
from triage_app.core.store import Workspace


def _scores(ws: Workspace) -> dict[int, tuple[float, ...]]:
    """Each frame's scores, by its index in the footage."""
    ids, _names, mat, _extra = ws.scores.score_table()
    return {int(ws.frames.frame(int(i))["idx"]): tuple(float(v) for v in row) for i, row in zip(ids.tolist(), np.asarray(mat), strict=True)}


def bench_cluster(video: Path, sample_fps: float | None, address: str, workers: int | None = None, device: str = "auto",
                  batch: int = 32, members: list[str] | None = None, precision: str = "auto") -> dict[str, Any]:
    """Score ``video`` locally, then on the cluster at ``address`` (two fresh projects with the
    same settings). The cluster's time counts from the call (connecting, starting the workers,
    loading the members on them) and, beside it, from its first unit handed out to the last
    committed (``cluster_stream_fps``)."""
    sampling = Sampling(fps=sample_fps) if sample_fps else Sampling()
    # The precision both ways: ``auto`` would score the local project in 8 bits where this CPU
    # can, the cluster's CPU workers a new project in fp32.
    precision = resolve_precision(precision, device)
    overrides = {"scoring": {"device": device, "batch": batch, "precision": precision, **({"members": members} if members else {})}}
    out: dict[str, Any] = {"input": str(video), "cluster": address}
    with tempfile.TemporaryDirectory(prefix="triage-bench-cluster-") as tmp:
        projects = []
        for name in ("local", "cluster"):
            settings = load_settings(None, overrides=overrides)
            settings.quality.gate_scoring = False  # every frame through every stage, both ways
            ws = Workspace(Path(tmp) / name, settings=settings)
            ingest_source(ws, video, sampling=sampling)
            projects.append(ws)
        local_ws, cluster_ws = projects
        try:
            build_ensemble(local_ws, members)  # each member exported once, outside the timing
            t0 = time.perf_counter()
            local = score_project(local_ws, members)
            local_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            remote = score_on_cluster(cluster_ws, address, workers=workers, member_names=members)
            cluster_s = time.perf_counter() - t0
            same = _scores(local_ws) == _scores(cluster_ws)
            out.update(
                members=local.members, frames=local.frames_scored, local_provider=local.provider, local_fps=round(local.frames_scored / local_s, 2),
                cluster_frames=remote.frames_scored, cluster_provider=remote.provider, workers=remote.cluster.get("workers"),
                nodes=remote.cluster.get("nodes"), units=remote.cluster.get("units"),
                cluster_fps=round(remote.frames_scored / cluster_s, 2),
                cluster_stream_fps=round(remote.frames_scored / remote.stream_seconds, 2) if remote.stream_seconds else None,
                cluster_startup_s=round(cluster_s - remote.stream_seconds, 2), ratio=round(local_s / cluster_s, 3),
                # frames per second this process can commit (scores and embeddings): the most any
                # number of workers can reach through it
                writer_fps=round(remote.frames_scored / remote.cluster["commit_s"], 1) if remote.cluster.get("commit_s") else None,
                same_scores=same, errors=local.errors + remote.errors,
            )
        finally:
            local_ws.close()
            cluster_ws.close()
    return out
