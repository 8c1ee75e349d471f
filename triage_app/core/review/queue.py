"""The review queue: the frames waiting for an analyst, in review order, grouped into events.

It holds the candidates under the policy in force that nobody has decided yet, the audit's
blind samples, the cold-start share, and the frames that need another look (second
reviews, the label check's doubts), grouped into *events* (runs of queue items from one
source no more than ``event_gap_s`` apart) and ordered by time within events, by fused
score, or by a model of the members' scores fitted on the decisions so far
(``review.order``). It can be rebuilt while scoring runs: new items join without moving
the analyst.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from triage_app.core.model.policy import Policy
from triage_app.core.model.records import QueueItem, Why
from triage_app.core.review.agreement import disagreements, second_review_frames
from triage_app.core.store import Workspace


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


def review_order(order: str):
    """The sort key of queue items for the settings' ``review.order``."""
    if order in ("score", "learned"):
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
    rank = learned_rank(ws, ids, mat, fused, names) if r.order == "learned" else fused
    meta = ws.frames.frame_positions([int(ids[i]) for i in keep])
    items = []
    for i in keep:
        fid = int(ids[i])
        source_id, idx, t = meta[fid]
        why = (Why.RESOLVE if resolve else Why.REREVIEW if fid in rereview else Why.SECOND if fid in second
               else Why.CANDIDATE if cand[i] else Why.AUDIT if fid in audit else Why.UNCERTAIN)
        scores = {n: float(mat[i, j]) for j, n in enumerate(names) if not np.isnan(mat[i, j])}
        items.append(QueueItem(fid, source_id, idx, t, float(fused[i]), why=why, rank=float(rank[i]), scores=scores))
    items.sort(key=lambda c: (c.source_id, c.timestamp_s, c.idx))
    event = -1
    prev: QueueItem | None = None
    for c in items:
        if prev is None or c.source_id != prev.source_id or c.timestamp_s - prev.timestamp_s > r.event_gap_s:
            event += 1
        c.event = event
        prev = c
    items.sort(key=review_order(r.order))
    queue.items = items
    return queue, policy


def learned_rank(ws: Workspace, ids: np.ndarray, mat: np.ndarray, fused: np.ndarray,
                 names: list[str] | None = None) -> np.ndarray:
    """How likely each frame is a positive, from a class-balanced logistic regression on the
    members' scores (missing ones filled with the member's median and flagged) fitted on the
    accept/reject decisions so far. Until there are two of each, the fused score. A member
    that does not know the target gets a small weight here, where the fused score ("any")
    would let it crowd the ranking. The decided frames enter the fit with the trained
    members' out-of-fold scores (given ``names``): their own scores there are memorised,
    and would make those members look all-knowing."""
    labels = ws.decisions.labels()
    pos = {int(f): i for i, f in enumerate(ids)}
    rows = [pos[f] for f in labels if f in pos]
    y = np.array([labels[int(ids[r])] for r in rows], dtype=int)
    if len(rows) < 4 or y.sum() < 2 or (1 - y).sum() < 2 or mat.shape[1] == 0:
        return fused
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if names:
        mat = ws.scores.with_oof(ids, names, mat, set(labels))
    missing = np.isnan(mat)
    filled = np.where(missing.all(axis=0), 0.0, mat)  # a member that scored nothing: a constant column
    x = np.where(missing, np.nanmedian(filled, axis=0), filled)
    if missing.any():
        x = np.hstack([x, missing[:, missing.any(axis=0)].astype(float)])
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=1000))
    model.fit(x[rows], y)
    return model.predict_proba(x)[:, 1]


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
