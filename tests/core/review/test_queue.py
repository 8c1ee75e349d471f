from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from triage_app.core.model.settings import load_settings
from triage_app.core.review.session import ReviewSession
from triage_app.core.store import Workspace


def make_scored_project(root: Path, scores: list[float], times: list[float] | None = None,
                        embeddings: np.ndarray | None = None) -> Workspace:
    """A project whose frames carry the given imagenet scores (threshold 0.25 by card) and,
    given them, pooled imagenet embeddings (what the ranking of active review reads)."""
    p = Workspace(root)
    sid, _ = p.frames.add_source("video", "/flight.mp4", "flight.mp4", {})
    times = times or [float(i) for i in range(len(scores))]
    p.frames.add_frames([{"source_id": sid, "idx": i, "timestamp_s": t, "telemetry_matched": 0} for i, t in enumerate(times)])
    store = p.scores
    v = store.model_version("imagenet", "imagenet", "test")
    ids = [r["id"] for r in p.frames.frame_rows()]
    store.commit_scores([dict(frame_id=f, member="imagenet", model_version_id=v, score=s, tile=0, x0=0, y0=0, x1=10, y1=10, tiles=1)
                         for f, s in zip(ids, scores, strict=True)], {})
    if embeddings is not None:
        meta = p.embeddings.open_set("imagenet:pooled", v, embeddings.shape[1], "imagenet-pooled-test")
        writer = p.embeddings.writer(meta)
        writer.append(np.array(ids), np.full(len(ids), -1), embeddings)
        p.embeddings.set_rows_committed(int(meta["id"]), writer.flush())
        writer.close()
    return p


def _session(p: Workspace, **review) -> ReviewSession:
    """The policy's candidate queue (time order) unless the test asks for another."""
    review = {"cold_start_share": 0.0, "order": "time", **review}
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


def test_the_ranking_reads_an_informative_member_and_never_a_learnt_one(tmp_path: Path) -> None:
    """Active review's ranking, learnt from 40 decisions: the embeddings here carry nothing,
    the 'clip' member's score carries the target, 'imagenet' is noise, and a 'head' has
    memorised the decided frames (its scores there are their labels, elsewhere noise). The
    ranking weighs the informative member and leaves the learnt one out, so the frames it
    puts first are the targets."""
    from triage_app.core.learning.ranker import train_ranking

    rng = np.random.default_rng(3)
    n = 200
    truth = rng.random(n) < 0.3
    informative = np.clip(np.where(truth, rng.normal(0.75, 0.1, n), rng.normal(0.45, 0.1, n)), 0.01, 0.99)
    emb = rng.normal(size=(n, 16)).astype(np.float32)
    with make_scored_project(tmp_path, rng.random(n).tolist(), embeddings=emb) as p:
        ids = [r["id"] for r in p.frames.frame_rows()]
        head = np.where(np.arange(n) < 40, truth.astype(float), rng.random(n))
        for member, values in (("clip", informative), ("head", head)):
            v = p.scores.model_version(member, member, "test")
            p.scores.commit_scores([dict(frame_id=f, member=member, model_version_id=v, score=float(s), tile=0, tiles=1)
                                    for f, s in zip(ids, values, strict=True)], {})
        p.decisions.record([dict(frame_id=f, label="accept" if t else "reject", reviewer="ana", seconds_spent=1,
                                 policy="p", member_scores="{}") for f, t in zip(ids[:40], truth[:40], strict=True)])
        result = train_ranking(p)
        assert result is not None and result.positives == int(truth[:40].sum())
        assert "clip score" in result.features and not any("head" in f for f in result.features)
        by_id = dict(zip(ids, truth, strict=True))
        queue = _session(p, order="active", audit_share=0.0).queue.items
        assert len(queue) == n - 40 and all(c.why == "candidate" for c in queue)
        first = float(np.mean([by_id[c.frame_id] for c in queue[:30]]))
        rest = truth[40:].mean()
        print(f"precision of the first 30: {first:.2f}, base rate {rest:.2f}")
        assert first >= 0.7 and first > rest + 0.35
