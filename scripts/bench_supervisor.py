"""How long the supervisor waits on a large project: a simulated flight of N scored frames
(2 % positive), 3,000 candidates decided, then the audit refresh, the headline report, the
whole supervisor view (twice: the second finds drift cached), a policy preview, the
analysts' queue and the finds list.

    python scripts/bench_supervisor.py [--frames 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from triage_app.core.outputs.finds import finds
from triage_app.core.outputs.reports import report, supervisor_data
from triage_app.core.review.audit import propose_policy, refresh_audit
from triage_app.core.review.session import ReviewSession
from triage_app.core.store import Workspace


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.frames
    rng = np.random.default_rng(0)
    truth = rng.random(n) < 0.02
    scores = np.clip(np.where(truth, rng.normal(0.6, 0.15, n), rng.normal(0.15, 0.1, n)), 0, 1)
    timings: dict[str, object] = {"frames": n}
    with tempfile.TemporaryDirectory(prefix="triage-supervisor-") as tmp, Workspace(Path(tmp) / "p") as p:
        sid, _ = p.frames.add_source("video", "/flight.mp4", "flight.mp4", {})
        p.frames.add_frames([{"source_id": sid, "idx": i, "timestamp_s": i / 10.0, "telemetry_matched": 0} for i in range(n)])
        store = p.scores
        v = store.model_version("imagenet", "imagenet", "bench")
        ids = [r["id"] for r in p.frames.frame_rows()]
        store.commit_scores([dict(frame_id=f, member="imagenet", model_version_id=v, score=float(x), tile=0, x0=0, y0=0,
                                  x1=10, y1=10, tiles=1) for f, x in zip(ids, scores, strict=True)], {})
        decided = np.flatnonzero(scores >= 0.25)[:3000]
        p.decisions.record([dict(frame_id=ids[i], label="accept" if truth[i] else "reject", reviewer="a",
                                      seconds_spent=2.0, policy="p", member_scores="{}") for i in decided])
        steps = [("audit_refresh_s", lambda: refresh_audit(p)),
                 ("report_s", lambda: report(p)),
                 ("supervisor_view_first_s", lambda: supervisor_data(p)),
                 ("supervisor_view_again_s", lambda: supervisor_data(p)),
                 ("policy_preview_s", lambda: propose_policy(p, 0.9)),
                 ("review_queue_s", lambda: ReviewSession(p)),
                 ("finds_s", lambda: timings.__setitem__("finds", len(finds(p))))]
        for name, step in steps:
            t0 = time.perf_counter()
            step()
            timings[name] = round(time.perf_counter() - t0, 2)
    print(json.dumps(timings) if args.json else "\n".join(f"{k:>24}: {v}" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
