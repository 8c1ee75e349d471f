"""Concurrency soak: scoring writes while the window's reads run and an analyst records
decisions, for minutes. No "database is locked", no lost write. Prints the counts.
``RELIABILITY_SOAK_S`` sets the length (default 180 s)."""

from __future__ import annotations

import os
import random
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_flight

pytestmark = pytest.mark.reliability


def test_scoring_reads_and_decisions_together(tmp_path: Path, ortho: np.ndarray, model_cache: Path) -> None:
    from triage_app.core.ingest.footage import ingest_source
    from triage_app.core.outputs.reports import report, source_overview
    from triage_app.core.review.queue import build_queue
    from triage_app.core.review.session import ReviewSession
    from triage_app.core.scoring.pipeline import score_project
    from triage_app.core.store import Workspace

    seconds = float(os.environ.get("RELIABILITY_SOAK_S", "180"))
    root = tmp_path / "p"
    root.mkdir()
    (root / "settings.toml").write_text('[scoring]\nmembers = ["imagenet"]\ndevice = "cpu"\ncommit_every = 2\nbatch = 4\n'
                                        '[review]\nsecond_review_share = 0.0\n')
    counts = dict(score_runs=0, score_batches=0, frames_scored=0, reads=0, decisions=0, undos=0)
    errors: list[str] = []
    stop = threading.Event()
    written_batches: list[tuple[int, float]] = []  # (frame id, score) of the last synthetic re-score batch per frame

    with Workspace(root) as p:
        videos = [write_flight(tmp_path / f"f{i}.mp4", ortho, frames=400, size=(320, 240), step=5 + i) for i in range(3)]
        ingest_source(p, videos[0])
        p.policies.save("any", {"imagenet": 0.0}, created_by="soak")
        store = p.scores

        def guard(name, fn):
            def run():
                try:
                    while not stop.is_set():
                        fn()
                except Exception:  # noqa: BLE001 - every failure is a finding
                    errors.append(f"{name}: {traceback.format_exc()}")
                    stop.set()
            return threading.Thread(target=run, name=name)

        pending_videos = list(videos[1:])

        def scoring():
            s = score_project(p)
            counts["score_runs"] += 1
            counts["frames_scored"] += s.frames_scored
            if pending_videos:  # new footage arrives while people review
                ingest_source(p, pending_videos.pop(0))
            else:  # then a re-score of one member's scores, as a retrain does, in batches
                ids = store.score_table(["imagenet"])[0][:200]
                vid = store.model_version("soak", "head", "v1")
                for k in range(0, len(ids), 20):
                    batch = ids[k : k + 20]
                    value = random.random()
                    store.commit_scores([dict(frame_id=int(f), member="soak", model_version_id=vid, score=value, tile=0,
                                              tiles=1) for f in batch], {})
                    written_batches.extend((int(f), value) for f in batch)
                    counts["score_batches"] += 1

        def gui_reads():
            build_queue(p)
            report(p)
            source_overview(p)
            counts["reads"] += 1

        session = ReviewSession(p, reviewer="soak")
        acked: list[int] = []

        def analyst():
            if session.current is None:
                time.sleep(0.05)
                session.refresh()
                return
            if session.undo_depth and random.random() < 0.05:
                counts["undos"] += session.undo()
                return
            acked.extend(session.decide(random.choice(["accept", "reject"])))
            counts["decisions"] += 1
            time.sleep(random.uniform(0.0, 0.05))
            if random.random() < 0.1:
                session.refresh()

        threads = [guard("scoring", scoring), guard("gui-reads", gui_reads), guard("analyst", analyst)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds and not stop.is_set():
            time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(timeout=120)

        with p.db.read() as conn:
            stored = {int(r[0]) for r in conn.exec_driver_sql("SELECT id FROM decisions")}
        final = {}
        for f, v in written_batches:
            final[f] = v
        soak_scores = {int(f): s for f, s in zip(*store.score_table(["soak"])[::2], strict=True)}
    locked = [e for e in errors if "locked" in e.lower()]
    lost_decisions = [i for i in acked if i not in stored]
    lost_scores = [f for f, v in final.items() if abs(soak_scores.get(f, [np.nan])[0] - v) > 1e-9]
    print(f"\nsoak {seconds:.0f} s: " + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f", errors {len(errors)}, 'database is locked' {len(locked)}, decisions lost {len(lost_decisions)}, "
            f"score writes lost {len(lost_scores)}")
    assert not errors, errors[0]
    assert not lost_decisions and not lost_scores
    assert counts["decisions"] > 0 and counts["reads"] > 0 and counts["frames_scored"] > 0
