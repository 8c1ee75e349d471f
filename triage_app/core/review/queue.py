"""The review queue: the frames waiting for an analyst, in review order, grouped into events.

By default (``review.order = "active"``) it holds every scored frame nobody has decided yet,
the most likely to hold the target first: ranked by what was learnt from the decisions so
far (:mod:`triage_app.core.learning.ranker`), before that by the zero-shot members for the
project's target with a random share mixed in, so the first labels are not all of one kind.
A blind audit of the frames not yet reviewed, drawn at random and stratified by the current
ranking, is mixed in at ``review.audit_share`` of the places; each draw's chance is
recorded, for the estimate of the targets left (:mod:`triage_app.core.review.progress`).

With ``order = "time"`` or ``"score"`` it holds the candidates under the policy in force, the
audit's blind samples of what the policy drops and the cold-start share, in capture order
within events or by fused score. Either way the frames that need another look (second
reviews, the label check's doubts) are in it, and queue items are grouped into *events*
(runs from one source no more than ``event_gap_s`` apart). It can be rebuilt while scoring
runs: new items join without moving the analyst.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from triage_app.core.model.policy import Policy
from triage_app.core.model.records import QueueItem, Why
from triage_app.core.review.agreement import disagreements, second_review_frames
from triage_app.core.store import Workspace
from triage_app.core.store.rankings import AuditDraw


@dataclass
class ReviewQueue:
    """Undecided queue items in review order, with events."""

    items: list[QueueItem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def index_of(self, frame_id: int) -> int | None:
        for i, c in enumerate(self.items):
            if c.frame_id == frame_id:
                return i
        return None

    def event_members(self, event: int) -> list[QueueItem]:
        return [c for c in self.items if c.event == event]


def review_order(order: str) -> Callable[[QueueItem], Any]:
    """The sort key of queue items for the settings' ``review.order``."""
    if order in ("score", "active"):
        return lambda c: -c.rank
    return lambda c: (c.source_id, c.timestamp_s, c.idx)


def build_queue(ws: Workspace, exclude: set[int] | None = None, resolve: bool = False, reviewer: str | None = None,
                ) -> tuple[ReviewQueue, Policy]:
    """The queue under the policy in force for one reviewer (default: the settings'
    reviewer; second reviews are of others' decisions), each item with its members' scores.
    With ``resolve`` it is the supervisor's queue: the frames whose reviewers disagree."""
    r = ws.settings.review
    policy = ws.policy()
    ids, names, mat, _ = ws.scores.score_table()
    queue = ReviewQueue()
    if len(ids) == 0:
        return queue, policy
    fused, cand = policy.fuse(mat, names)
    if r.order == "active" and not resolve:
        queue.items = _active_items(ws, ids, names, mat, fused, reviewer or r.reviewer, exclude or set())
        _mark_events(queue.items, r.event_gap_s)
        return queue, policy
    decided = ws.decisions.decided_frames() | (exclude or set())
    audit = ws.audit.sampled(policy.key)
    uncertain = _cold_start(ws, fused, cand, r.cold_start_share)
    if resolve:
        rereview: set[int] = set()
        second: set[int] = set()
        disputed = set(disagreements(ws))
        keep = [i for i in range(len(ids)) if int(ids[i]) in disputed]
    else:
        rereview = ws.decisions.doubted_frames()
        second = second_review_frames(ws, reviewer or r.reviewer, r.second_review_share, r.audit_seed)
        keep = [i for i in range(len(ids))
                if ((cand[i] or int(ids[i]) in audit or i in uncertain) and int(ids[i]) not in decided)
                or int(ids[i]) in rereview or int(ids[i]) in second]
    if not keep:
        return queue, policy
    rank = fused
    meta = ws.frames.frame_positions([int(ids[i]) for i in keep])
    items = []
    for i in keep:
        fid = int(ids[i])
        source_id, idx, t = meta[fid]
        why = (Why.RESOLVE if resolve else Why.REREVIEW if fid in rereview else Why.SECOND if fid in second
               else Why.CANDIDATE if cand[i] else Why.AUDIT if fid in audit else Why.UNCERTAIN)
        scores = {n: float(mat[i, j]) for j, n in enumerate(names) if not np.isnan(mat[i, j])}
        items.append(QueueItem(fid, source_id, idx, t, float(fused[i]), why=why, rank=float(rank[i]), scores=scores))
    _mark_events(items, r.event_gap_s)
    items.sort(key=review_order(r.order))
    queue.items = items
    return queue, policy


def _mark_events(items: list[QueueItem], gap_s: float) -> None:
    """Number the events: the queue items of one source within one window of ``gap_s``
    seconds of capture time (the items keep their order). A window, not a chain: a flight
    sampled every half second is many events, and Shift+A decides a few seconds of it, never
    the whole flight."""
    width = max(float(gap_s), 1e-6)
    keys: dict[tuple[int, int], int] = {}
    for c in sorted(items, key=lambda c: (c.source_id, c.timestamp_s, c.idx)):
        c.event = keys.setdefault((c.source_id, int(c.timestamp_s // width)), len(keys))


def _cold_start(ws: Workspace, fused: np.ndarray, cand: np.ndarray, share: float) -> set[int]:
    """Until a head is trained, the dropped frames the ensemble is least sure about (fused
    score just below 1) join the queue, so positives the zero-shot members miss can still
    be found and become the head's first labels."""
    if share <= 0 or ws.heads.latest() is not None:
        return set()
    dropped = np.flatnonzero(~cand & ~np.isnan(fused))
    n = int(np.ceil(share * len(dropped)))
    if n == 0:
        return set()
    return set(dropped[np.argsort(-fused[dropped])[:n]].tolist())


#: How many audit places are drawn ahead when the queue is built (they wait their turn).
AUDIT_AHEAD = 80
#: Shares of the audit's draws from the top 10 %, the next 30 % and the rest of the frames
#: not yet reviewed, in the current ranking's order: most where the targets left most
#: likely are, some everywhere, so that no part of the footage goes unchecked.
AUDIT_STRATA = ((0.10, 0.5), (0.30, 0.3), (0.60, 0.2))


def _active_items(ws: Workspace, ids: np.ndarray, names: list[str], mat: np.ndarray, fused: np.ndarray, reviewer: str,
                  exclude: set[int]) -> list[QueueItem]:
    """Every scored frame nobody has decided, most likely first, with the audit's draws at
    their places and the frames that need another look."""
    r = ws.settings.review
    decided = ws.decisions.decided_frames() | exclude
    rereview = ws.decisions.doubted_frames()
    second = second_review_frames(ws, reviewer, r.second_review_share, r.audit_seed)
    ranked = ws.rankings.rank_scores()
    rank = np.where(np.isnan(fused), -np.inf, fused)
    learnt = ranked.ranking_id is not None
    if learnt:
        at = {int(f): i for i, f in enumerate(ranked.frame_ids.tolist())}
        rank = np.array([ranked.scores[at[int(f)]] if int(f) in at else -np.inf for f in ids.tolist()])
    rng = np.random.default_rng(_seed(r.audit_seed, len(decided)))
    rank = rank + rng.random(len(ids)) * 1e-9  # ties (scores of 0 before any learning) in random order
    pool = np.array([i for i in range(len(ids)) if int(ids[i]) not in decided], dtype=np.int64)
    pool = pool[np.argsort(-rank[pool], kind="stable")]
    draws = _audit_places(ws, ids, pool, len(decided), ranked.ranking_id, rng)
    drawn = {i for _place, i, _why in draws}
    meta = ws.frames.frame_positions([int(ids[i]) for i in pool] + [int(f) for f in rereview | second])
    by_id = {int(ids[i]): i for i in range(len(ids))}

    def item(i: int, why: Why, at_rank: float) -> QueueItem:
        fid = int(ids[i])
        source_id, idx, t = meta[fid]
        scores = {n: float(mat[i, j]) for j, n in enumerate(names) if not np.isnan(mat[i, j])}
        return QueueItem(fid, source_id, idx, t, float(fused[i]), why=why, rank=at_rank, scores=scores)

    extra = [(f, Why.REREVIEW if f in rereview else Why.SECOND) for f in sorted(rereview | second) if f in by_id]
    ordered = [i for i in pool if i not in drawn]
    out: list[QueueItem] = []
    places = {place: (i, why) for place, i, why in draws}
    k = 0
    for place in range(len(pool)):  # every frame once: the ranking's order, the audit's draws at their places
        if place in places:
            i, why = places[place]
        else:
            i, why = ordered[k], Why.CANDIDATE
            k += 1
        out.append(item(i, why, -float(place)))
    for f, why in extra:  # another look first: they wait on nobody's ranking
        out.insert(0, item(by_id[f], why, 1.0))
    return out


def _seed(seed: int, decided: int) -> list[int]:
    return [int(seed), int(decided), 7919]


def _audit_places(ws: Workspace, ids: np.ndarray, pool: np.ndarray, reviewed: int, ranking_id: int | None,
                  rng: np.random.Generator) -> list[tuple[int, int, Why]]:
    """(place in the queue, frame row, why) of the blind audit's draws for the next places:
    one place in ``1 / audit_share`` from the frames not yet reviewed (``pool``, in ranking
    order), stratified by the current ranking (uniform before a ranking is learnt, when
    ``random_share`` of the places are random draws); each draw's chance is recorded when it
    is made. Draws made earlier and not yet decided keep their places first."""
    r = ws.settings.review
    learnt = ranking_id is not None
    share = r.audit_share if learnt else max(r.audit_share, r.random_share)
    out: list[tuple[int, int, Why]] = []
    if share <= 0 or len(pool) == 0:
        return out
    pos_of = {int(ids[i]): k for k, i in enumerate(pool.tolist())}
    waiting = [pos_of[d.frame_id] for d in ws.rankings.audit_draws() if d.frame_id in pos_of]
    every = max(1, int(round(1.0 / share)))
    places = [p for p in range(min(AUDIT_AHEAD, len(pool))) if (reviewed + p + 1) % every == 0]
    free = np.ones(len(pool), bool)
    free[waiting] = False
    new: list[AuditDraw] = []
    for place in places:
        if waiting:
            out.append((place, int(pool[waiting.pop(0)]), Why.AUDIT))
            continue
        open_ = np.flatnonzero(free)
        if len(open_) == 0:
            break
        bounds = _strata(len(open_)) if learnt else [(0, len(open_), 1.0)]
        weights = np.array([w for _a, _b, w in bounds])
        h = int(rng.choice(len(bounds), p=weights / weights.sum()))
        lo, hi, w = bounds[h]
        k = int(open_[lo + int(rng.integers(hi - lo))])
        free[k] = False
        prob = float(w / weights.sum()) / (hi - lo)
        new.append(AuditDraw(int(ids[pool[k]]), reviewed, len(open_), h, hi - lo, prob, ranking_id))
        out.append((place, int(pool[k]), Why.AUDIT))
    ws.rankings.record_draws(new)
    return out


def _strata(n: int) -> list[tuple[int, int, float]]:
    """(start, end, weight) of the audit's strata over ``n`` ranked frames (empty ones left out)."""
    out, start = [], 0
    for i, (share, weight) in enumerate(AUDIT_STRATA):
        end = n if i == len(AUDIT_STRATA) - 1 else min(n, start + max(1, int(round(share * n))))
        if end > start:
            out.append((start, end, weight))
        start = end
    return out
