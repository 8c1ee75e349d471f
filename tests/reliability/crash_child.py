"""The process the crash test kills: scoring runs in a thread while a scripted analyst
decides (and now and then undoes) frames. Each decision is printed as ``ACK`` only after
``decide`` has returned, i.e. after the app has told the analyst it is recorded."""

from __future__ import annotations

import random
import sys
import threading
import time


def main(root: str, seed: int, reviewer: str = "scripted", score: bool = True) -> None:
    from triage_app.core.review.session import ReviewSession
    from triage_app.core.scoring.pipeline import score_project
    from triage_app.core.store import Workspace

    rng = random.Random(seed)
    with Workspace(root) as project:
        scorer = threading.Thread(target=lambda: score_project(project, wait_s=0.0) if score else None, daemon=True)
        scorer.start()
        print("STARTED", flush=True)
        session = ReviewSession(project, reviewer=reviewer)
        while True:
            c = session.current
            if c is None:
                time.sleep(0.05)
                session.refresh()
                if not scorer.is_alive() and session.current is None:
                    print("DONE", flush=True)
                    time.sleep(60)  # wait to be killed like any other moment
                continue
            if session.undo_depth and rng.random() < 0.1:
                session.undo()
                print("UNDO", flush=True)
                continue
            ids = session.decide(rng.choice(["accept", "reject", "unsure"]))
            for i in ids:
                print(f"ACK {i} {c.frame_id} {reviewer}", flush=True)
            if rng.random() < 0.05:
                session.refresh()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *(sys.argv[3:4]), *([False] if sys.argv[4:5] == ["noscore"] else []))
