"""``triage bench team``: N analysts (N processes) review one project at once with scripted
decisions, as fast as they can; prints decisions per second, the lease waits (the time to
get the next frame: the lease taken, frames others hold skipped), and the two numbers that
must be 0: double assignments (a frame on two analysts' screens at once, or decided by two
of them) and lost decisions (acknowledged to an analyst, absent from the store).

The project is made by the bench (synthetic frames and scores, no footage) in the store it
is given: an empty PostgreSQL database (or one an earlier bench made), or a new folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from triage_app import REPO_ROOT
from triage_app.core.model.errors import StoreError
from triage_app.core.store import Workspace
from triage_app.core.store.db import is_store_url
from triage_app.core.store.team import clear_review

BENCH_KEY = "bench"


def prepare(store: str, frames: int, shared: Path | None) -> None:
    """The bench's project in ``store``: ``frames`` frames with one member's scores."""
    with Workspace(store, shared=shared) as ws:
        if ws.meta.get(BENCH_KEY) is None:
            if ws.frames.frame_count():
                raise StoreError(f"{ws.location}: holds a project the bench did not make; give an empty database")
            (ws.root / "settings.toml").write_text('[review]\nsecond_review_share = 0.0\n')
            sid, _ = ws.frames.add_source("video", "bench://team", "bench", {"every": 1})
            for start in range(0, frames, 5000):
                ws.frames.add_frames([{"source_id": sid, "idx": i, "timestamp_s": i / 3.0}
                                      for i in range(start, min(frames, start + 5000))])
            ids = [f["id"] for f in ws.frames.frame_rows()]
            rng = np.random.default_rng(0)
            ws.scores.replace_member_scores("imagenet", ws.scores.model_version("imagenet", "onnx", "bench"), ids,
                                            rng.random(len(ids)).tolist())
            ws.meta.set(BENCH_KEY, "team")
        clear_review(ws.db)


def _analyst(store: str, k: int, seconds: float) -> None:
    """One scripted analyst (a child process): opens its queue, says READY, waits for GO on
    its standard input, then decides what it is shown until time is up, printing each
    acknowledged decision and each wait for the next frame."""
    from triage_app.core.review.session import ReviewSession

    with Workspace(store) as ws:
        ws.settings.review.second_review_share = 0.0
        ws.settings.review.retrain_every = 0
        session = ReviewSession(ws, reviewer=f"bench{k}")
        print("READY", flush=True)
        sys.stdin.readline()
        start_at = time.time()
        claim = session._claim
        waits: list[float] = []

        def timed() -> None:
            t = time.perf_counter()
            claim()
            waits.append(time.perf_counter() - t)

        session._claim = timed  # type: ignore[method-assign]
        end = start_at + seconds
        rng = np.random.default_rng(k)
        while time.time() < end and session.current is not None:
            c = session.current
            shown = time.time()
            ids = session.decide("accept" if rng.random() < 0.1 else "reject")
            print(json.dumps({"ack": ids, "frame": c.frame_id, "shown": shown, "done": time.time()}), flush=True)
        session.close()
        print(json.dumps({"waits": waits, "others_took": session.others_took}), flush=True)


def run(store: str, analysts: int, seconds: float) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    kids = [subprocess.Popen([sys.executable, "-m", "triage_app.core.evaluation.bench_team", store, str(k),
                              repr(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            for k in range(analysts)]
    for p in kids:  # every analyst's queue open (and its first frame leased) before the clock starts
        assert p.stdout is not None
        line = p.stdout.readline()
        if line.strip() != "READY":
            raise StoreError(f"{store}: a bench analyst could not start ({line.strip() or 'it ended'})")
    start_at = time.time()
    for p in kids:
        assert p.stdin is not None
        p.stdin.write("GO\n")
        p.stdin.flush()
    acks: list[dict[str, Any]] = []
    waits: list[float] = []
    skipped = 0
    failed = 0
    for k, p in enumerate(kids):
        assert p.stdout is not None
        out = p.stdout.read()
        p.wait(timeout=seconds + 120)
        failed += p.returncode != 0
        for line in out.splitlines():
            row = json.loads(line)
            if "ack" in row:
                acks.append(dict(row, analyst=k))
            else:
                waits += row["waits"]
                skipped += row["others_took"]
    with Workspace(store) as ws:
        stored = {i: f for i, (f, _r, undone) in ws.decisions.recorded().items() if not undone}
    acked = {i: a["frame"] for a in acks for i in a["ack"]}
    lost = sum(1 for i, f in acked.items() if stored.get(i) != f)
    by_frame: dict[int, list[dict[str, Any]]] = {}
    for a in acks:
        by_frame.setdefault(a["frame"], []).append(a)
    counts: dict[int, int] = {}
    for f in stored.values():
        counts[f] = counts.get(f, 0) + 1
    double = len({f for f, rows in by_frame.items() if len({r["analyst"] for r in rows}) > 1}
                 | {f for f, n in counts.items() if n > 1})
    span = (max(a["done"] for a in acks) - start_at) if acks else seconds
    w = np.array(waits) * 1000 if waits else np.zeros(1)
    return dict(analysts=analysts, decisions=len(acked), decisions_per_s=round(len(acked) / max(span, 1e-9), 1),
                lease_wait_p50_ms=round(float(np.percentile(w, 50)), 2),
                lease_wait_p95_ms=round(float(np.percentile(w, 95)), 2),
                lease_wait_max_ms=round(float(w.max()), 2), skipped_held_by_others=skipped,
                double_assignments=double, lost_decisions=lost,
                failed_analysts=failed)


def bench_team(store: str, analysts: list[int], seconds: float = 15.0, frames: int = 3000,
               shared: Path | None = None) -> dict[str, Any]:
    """Each count of analysts in turn on the same project (its review records cleared between)."""
    prepare(store, frames, shared)
    rows = []
    for n in analysts:
        rows.append(run(store, n, seconds))
        prepare(store, frames, shared)
    where = "postgresql" if is_store_url(store) else "sqlite"
    return dict(store=where, frames=frames, seconds=seconds, cpus=os.cpu_count(), runs=rows)


if __name__ == "__main__":
    _analyst(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
