from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from triage_app.core.model.settings import load_settings
from triage_app.core.review.session import ReviewSession
from triage_app.core.store import Workspace


def make_scored_project(root: Path, scores: list[float], times: list[float] | None = None) -> Workspace:
    """A project whose frames carry the given imagenet scores (threshold 0.25 by card)."""
    p = Workspace(root)
    sid, _ = p.frames.add_source("video", "/flight.mp4", "flight.mp4", {})
    times = times or [float(i) for i in range(len(scores))]
    p.frames.add_frames([{"source_id": sid, "idx": i, "timestamp_s": t, "telemetry_matched": 0} for i, t in enumerate(times)])
    store = p.scores
    v = store.model_version("imagenet", "imagenet", "test")
    ids = [r["id"] for r in p.frames.frame_rows()]
    store.commit_scores([dict(frame_id=f, member="imagenet", model_version_id=v, score=s, tile=0, x0=0, y0=0, x1=10, y1=10, tiles=1)
                         for f, s in zip(ids, scores, strict=True)], {})
    return p


def _session(p: Workspace, **review) -> ReviewSession:
    review = {"cold_start_share": 0.0, **review}
    p.settings = load_settings(p.root, overrides={"review": {"reviewer": "ana", **review}})
    return ReviewSession(p)


def test_queue_holds_candidates_in_events(tmp_path: Path) -> None:
    # Candidates at t = 1, 2, 3 (one event) and 20, 21 (another); others below threshold.
    scores = [0.1] * 25
    for t in (1, 2, 3, 20, 21):
        scores[t] = 0.9 if t != 2 else 0.5
    with make_scored_project(tmp_path, scores) as p:
        s = _session(p)
        assert [c.idx for c in s.queue.items] == [1, 2, 3, 20, 21]
        assert [c.event for c in s.queue.items] == [0, 0, 0, 1, 1]
        by_score = _session(p, order="score")
        assert by_score.queue.items[-1].idx == 2


def test_decisions_are_recorded_with_provenance_and_undone(tmp_path: Path) -> None:
    scores = [0.9, 0.8, 0.1, 0.7]
    with make_scored_project(tmp_path, scores) as p:
        s = _session(p)
        assert len(s.queue) == 3
        first = s.current.frame_id
        s.decide("accept")
        s.decide("reject")
        assert len(s.queue) == 1 and s.undo_depth == 2
        raw = sqlite3.connect(p.root / "project.db")
        rows = raw.execute("SELECT frame_id, label, reviewer, policy, member_scores, seconds_spent, undone_at FROM decisions").fetchall()
        assert rows[0][:3] == (first, "accept", "ana") and "imagenet 0.25" in rows[0][3]
        assert json.loads(rows[0][4]) == {"imagenet": pytest.approx(0.9)} and rows[0][5] >= 0
        assert s.undo() and s.undo()
        assert len(s.queue) == 3 and s.current.frame_id == first
        assert raw.execute("SELECT count(*) FROM decisions WHERE undone_at IS NULL").fetchone()[0] == 0
        assert not s.undo()


def test_event_decisions_and_refresh_keep_position(tmp_path: Path) -> None:
    scores = [0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9]
    with make_scored_project(tmp_path, scores) as p:
        s = _session(p)
        assert {c.event for c in s.queue.items} == {0, 1}
        s.decide_event("reject")
        assert [c.idx for c in s.queue.items] == [10]
        s.undo()
        s.move(1)
        here = s.current.frame_id
        # Scoring goes on: a new candidate arrives; the analyst stays where they are.
        store = p.scores
        v = store.model_version("imagenet", "imagenet", "test")
        f5 = next(r["id"] for r in p.frames.frame_rows() if r["idx"] == 5)
        store.commit_scores([dict(frame_id=f5, member="imagenet", model_version_id=v, score=0.95, tile=0, x0=0, y0=0, x1=1, y1=1, tiles=1)], {})
        assert s.refresh() == 1 and s.current.frame_id == here and len(s.queue) == 5
        # A fresh session on the same project does not show decided frames again.
        s.decide("accept")
        assert here not in {c.frame_id for c in _session(p).queue.items}


def test_a_rebuild_on_another_thread_keeps_decisions_made_meanwhile(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with make_scored_project(tmp_path, [0.9] * 6) as p:
        s = _session(p)
        build = s.begin_refresh()
        with ThreadPoolExecutor(1) as pool:
            built = pool.submit(build).result()  # read before the analyst's next decisions
        decided = [s.current.frame_id]
        s.decide("accept")
        decided.append(s.current.frame_id)
        s.decide("reject")
        assert s.apply_refresh(built) == 0
        assert len(s.queue) == 4 and not set(decided) & {c.frame_id for c in s.queue.items}
        # An undo while a rebuild runs makes it stale: the caller builds again.
        build = s.begin_refresh()
        built = build()
        s.undo()
        assert s.apply_refresh(built) == -1 and len(s.queue) == 5
        assert s.refresh() == 0 and len(s.queue) == 5


def test_cold_start_queue_carries_the_most_uncertain_dropped_frames(tmp_path: Path) -> None:
    import numpy as np

    scores = [0.01 * i for i in range(20)] + [0.9]  # threshold 0.25: frames 0-19 are dropped
    with make_scored_project(tmp_path, scores) as p:
        s = _session(p, cold_start_share=0.1)  # 10 % of 20 dropped frames: the 2 closest to it
        kinds = {c.idx: c.kind for c in s.queue.items}
        assert kinds == {20: "candidate", 19: "uncertain", 18: "uncertain"}
        s.move(1)
        s.decide("reject")
        raw = sqlite3.connect(p.root / "project.db")
        assert raw.execute("SELECT sample_kind FROM decisions").fetchone()[0] in ("uncertain", "candidate")
        # Once a head is trained the cold-start share stops.
        p.heads.save("imagenet", None, np.zeros(4, np.float32), 0.0)
        assert {c.kind for c in _session(p, cold_start_share=0.1).queue.items} == {"candidate"}


def test_learned_order_puts_the_informative_member_first(tmp_path: Path) -> None:
    """Two members: 'imagenet' does not know the target (its scores are noise), 'clip'
    does. Under the 'any' rule the fused score lets the noise crowd the ranking; the learned
    order, fitted on a few decisions, ranks by what predicts them."""
    import numpy as np

    rng = np.random.default_rng(3)
    n = 200
    truth = rng.random(n) < 0.3
    noise = rng.random(n)
    informative = np.clip(np.where(truth, rng.normal(0.75, 0.1, n), rng.normal(0.45, 0.1, n)), 0, 1)
    with make_scored_project(tmp_path, noise.tolist()) as p:
        store = p.scores
        v = store.model_version("clip", "clip", "test")
        ids = [r["id"] for r in p.frames.frame_rows()]
        store.commit_scores([dict(frame_id=f, member="clip", model_version_id=v, score=float(s), tile=0, tiles=1)
                             for f, s in zip(ids, informative, strict=True)], {})
        p.policies.save("any", {"imagenet": 0.0, "clip": 0.0}, created_by="t")  # every frame a candidate
        # The first 40 frames are decided (from the truth); the order of the rest is what counts.
        p.decisions.record([dict(frame_id=f, label="accept" if t else "reject", reviewer="ana", seconds_spent=1,
                                      policy="p", member_scores="{}") for f, t in zip(ids[:40], truth[:40], strict=True)])
        by_id = dict(zip(ids, truth, strict=True))

        def precision_at(order: str, k: int = 30) -> float:
            q = _session(p, order=order).queue.items
            assert len(q) == n - 40
            return float(np.mean([by_id[c.frame_id] for c in q[:k]]))

        fused, learned = precision_at("score"), precision_at("learned")
        rest = truth[40:].mean()
        print(f"precision of the first 30: fused {fused:.2f}, learned {learned:.2f}, base rate {rest:.2f}")
        assert learned >= 0.8 and learned > fused + 0.2, (fused, learned, rest)


def test_learned_order_reads_a_memorising_member_through_its_out_of_fold_scores(tmp_path: Path) -> None:
    """A 'head' that memorised the decided frames (its scores there equal the labels) but
    knows nothing of the rest, beside an informative 'clip'. Fitted on the head's own scores,
    the learned order would trust the head and rank the rest by noise; its out-of-fold scores
    (noise, like its scores on the undecided frames) keep it from that."""
    import numpy as np

    rng = np.random.default_rng(8)
    n = 200
    truth = rng.random(n) < 0.3
    informative = np.clip(np.where(truth, rng.normal(0.75, 0.1, n), rng.normal(0.45, 0.1, n)), 0, 1)
    with make_scored_project(tmp_path, rng.random(n).tolist()) as p:
        store = p.scores
        ids = [r["id"] for r in p.frames.frame_rows()]
        head = np.where(np.arange(n) < 40, truth.astype(float), rng.random(n))  # memorised, then noise
        for member, values in (("clip", informative), ("head", head)):
            v = store.model_version(member, member, "test")
            store.commit_scores([dict(frame_id=f, member=member, model_version_id=v, score=float(s), tile=0, tiles=1)
                                 for f, s in zip(ids, values, strict=True)], {})
        p.policies.save("any", {"imagenet": 0.0, "clip": 0.0, "head": 0.0}, created_by="t")
        p.decisions.record([dict(frame_id=f, label="accept" if t else "reject", reviewer="ana", seconds_spent=1,
                                      policy="p", member_scores="{}") for f, t in zip(ids[:40], truth[:40], strict=True)])
        by_id = dict(zip(ids, truth, strict=True))

        def precision(k: int = 30) -> float:
            q = _session(p, order="learned").queue.items
            return float(np.mean([by_id[c.frame_id] for c in q[:k]]))

        trusting = precision()  # no out-of-fold scores stored: the memorised ones are all there is
        store.replace_oof("head", ids[:40], rng.random(40).tolist())
        honest = precision()
        print(f"precision of the first 30: memorised {trusting:.2f}, out-of-fold {honest:.2f}")
        assert honest >= 0.8 and honest > trusting + 0.2, (trusting, honest)
