"""The review queue and the record of decisions.

The queue holds the candidate frames under the policy in force that nobody has decided
yet, grouped into *events* (runs of candidates from one source no more than
``event_gap_s`` apart) and ordered by time within events, by fused score, or by a model of
the members' scores fitted on the decisions so far (``review.order``). It can be
refreshed while scoring runs: new candidates join without moving the analyst.

A decision is written (and committed, durably) before ``decide`` returns, with the
reviewer, the time spent, the policy in force and every member's score at that moment.
Undo marks the latest decision undone (history is kept) and puts the frame back.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, insert, select, update

from triage_app.core.review.agreement import disagreements, second_review_frames
from triage_app.core.learning.label_check import rereview_frames
from triage_app.core.model.cards import ModelCard
from triage_app.core.review.active_policy import ActivePolicy, active_policy
from triage_app.core.model.policy import fuse
from triage_app.core.model.settings import Settings
from triage_app.core.store import Project
from triage_app.core.store.project import now_iso
from triage_app.core.store.scores import ScoreStore

LABELS = ("accept", "reject", "unsure")


@dataclass
class Candidate:
    frame_id: int
    source_id: int
    idx: int
    timestamp_s: float
    fused: float
    event: int = 0
    kind: str = "candidate"  # or "audit": a dropped frame sampled blindly
    rank: float = 0.0  # what score and learned orders sort by (highest first)


@dataclass
class Decision:
    id: int
    frame_id: int
    label: str


class DecisionStore:
    """SQL for decisions."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.table = project.db.table("decisions")

    def record(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert decisions in one durable transaction; returns their ids."""
        stamp = now_iso()

        def fn(conn: Connection) -> list[int]:
            return [int(conn.execute(insert(self.table).values(decided_at=stamp, **r)).inserted_primary_key[0]) for r in rows]

        return self.project.db.write(fn)

    def undo(self, ids: list[int]) -> None:
        stamp = now_iso()
        self.project.db.write(lambda c: c.execute(
            update(self.table).where(and_(self.table.c.id.in_(ids), self.table.c.undone_at.is_(None))).values(undone_at=stamp)))

    def decided_frames(self) -> set[int]:
        with self.project.db.read() as conn:
            q = select(self.table.c.frame_id).where(self.table.c.undone_at.is_(None)).distinct()
            return {int(r[0]) for r in conn.execute(q)}

    def current(self) -> list[dict[str, Any]]:
        """The standing decision of every decided frame (latest, not undone)."""
        with self.project.db.read() as conn:
            rows = conn.execute(select(self.table).where(self.table.c.undone_at.is_(None)).order_by(self.table.c.id)).mappings().all()
        latest: dict[int, dict[str, Any]] = {}
        for r in rows:
            latest[int(r["frame_id"])] = dict(r)
        return list(latest.values())

    def counts_by_source(self) -> dict[int, int]:
        f = self.project.frames
        with self.project.db.read() as conn:
            q = select(f.c.source_id, self.table.c.frame_id).join(f, f.c.id == self.table.c.frame_id).where(
                self.table.c.undone_at.is_(None)).distinct()
            out: dict[int, int] = {}
            for sid, _ in conn.execute(q):
                out[int(sid)] = out.get(int(sid), 0) + 1
            return out


@dataclass
class ReviewQueue:
    """Undecided candidates in review order, with events."""

    items: list[Candidate] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def index_of(self, frame_id: int) -> int | None:
        for i, c in enumerate(self.items):
            if c.frame_id == frame_id:
                return i
        return None

    def event_members(self, event: int) -> list[Candidate]:
        return [c for c in self.items if c.event == event]


def build_queue(project: Project, cards: dict[str, ModelCard], settings: Settings,
                exclude: set[int] | None = None, resolve: bool = False, reviewer: str | None = None,
                ) -> tuple[ReviewQueue, ActivePolicy, dict[int, dict[str, float]]]:
    """The queue under the policy in force, plus each candidate's member scores, for one
    reviewer (default: the settings' reviewer; second reviews are of others' decisions). With
    ``resolve`` it is the supervisor's queue: the frames whose reviewers disagree."""
    store = ScoreStore(project)
    policy = active_policy(store, cards, settings)
    ids, names, mat, _ = store.score_table()
    queue = ReviewQueue()
    scores: dict[int, dict[str, float]] = {}
    if len(ids) == 0:
        return queue, policy, scores
    th = np.array([policy.thresholds.get(n, 0.5) for n in names])
    fused, cand = fuse(mat, th, policy.rule)
    decided = DecisionStore(project).decided_frames() | (exclude or set())
    audit = _audit_sampled(project, policy)
    uncertain = _cold_start(store, ids, fused, cand, settings.review.cold_start_share)
    r = settings.review
    if resolve:
        rereview = second = set()
        disputed = set(disagreements(project))
        keep = [i for i in range(len(ids)) if int(ids[i]) in disputed]
    else:
        rereview = rereview_frames(project)
        second = second_review_frames(project, reviewer or r.reviewer, r.second_review_share, r.audit_seed)
        keep = [i for i in range(len(ids))
                if ((cand[i] or int(ids[i]) in audit or i in uncertain) and int(ids[i]) not in decided)
                or int(ids[i]) in rereview or int(ids[i]) in second]
    if not keep:
        return queue, policy, scores
    rank = learned_rank(project, ids, mat, fused, names) if settings.review.order == "learned" else fused
    f = project.frames
    with project.db.read() as conn:
        meta = {int(r[0]): r for r in conn.execute(
            select(f.c.id, f.c.source_id, f.c.idx, f.c.timestamp_s).where(f.c.id.in_([int(ids[i]) for i in keep])))}
    items = []
    for i in keep:
        fid = int(ids[i])
        m = meta[fid]
        kind = ("resolve" if resolve else "rereview" if fid in rereview else "second" if fid in second
                else "candidate" if cand[i] else "audit" if fid in audit else "uncertain")
        items.append(Candidate(fid, int(m[1]), int(m[2]), float(m[3]), float(fused[i]), kind=kind, rank=float(rank[i])))
        scores[fid] = {n: float(mat[i, j]) for j, n in enumerate(names) if not np.isnan(mat[i, j])}
    items.sort(key=lambda c: (c.source_id, c.timestamp_s, c.idx))
    event = -1
    prev: Candidate | None = None
    for c in items:
        if prev is None or c.source_id != prev.source_id or c.timestamp_s - prev.timestamp_s > settings.review.event_gap_s:
            event += 1
        c.event = event
        prev = c
    if settings.review.order in ("score", "learned"):
        items.sort(key=lambda c: -c.rank)
    queue.items = items
    return queue, policy, scores


def learned_rank(project: Project, ids: np.ndarray, mat: np.ndarray, fused: np.ndarray,
                 names: list[str] | None = None) -> np.ndarray:
    """How likely each frame is a positive, from a class-balanced logistic regression on the
    members' scores (missing ones filled with the member's median and flagged) fitted on the
    accept/reject decisions so far. Until there are two of each, the fused score. A member
    that does not know the target gets a small weight here, where the fused score ("any")
    would let it crowd the ranking. The decided frames enter the fit with the trained
    members' out-of-fold scores (given ``names``): their own scores there are memorised,
    and would make those members look all-knowing."""
    labels = {int(d["frame_id"]): d["label"] == "accept" for d in DecisionStore(project).current()
              if d["label"] in ("accept", "reject")}
    pos = {int(f): i for i, f in enumerate(ids)}
    rows = [pos[f] for f in labels if f in pos]
    y = np.array([labels[int(ids[r])] for r in rows], dtype=int)
    if len(rows) < 4 or y.sum() < 2 or (1 - y).sum() < 2 or mat.shape[1] == 0:
        return fused
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if names:
        mat = ScoreStore(project).with_oof(ids, names, mat, set(labels))
    missing = np.isnan(mat)
    filled = np.where(missing.all(axis=0), 0.0, mat)  # a member that scored nothing: a constant column
    x = np.where(missing, np.nanmedian(filled, axis=0), filled)
    if missing.any():
        x = np.hstack([x, missing[:, missing.any(axis=0)].astype(float)])
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=1000))
    model.fit(x[rows], y)
    return model.predict_proba(x)[:, 1]


def _cold_start(store: ScoreStore, ids: np.ndarray, fused: np.ndarray, cand: np.ndarray, share: float) -> set[int]:
    """Until a head is trained, the dropped frames the ensemble is least sure about (fused
    score just below 1) join the queue, so positives the zero-shot members miss can still
    be found and become the head's first labels."""
    if share <= 0 or store.latest_head() is not None:
        return set()
    dropped = np.flatnonzero(~cand & ~np.isnan(fused))
    n = int(np.ceil(share * len(dropped)))
    if n == 0:
        return set()
    return set(dropped[np.argsort(-fused[dropped])[:n]].tolist())


def _audit_sampled(project: Project, policy: ActivePolicy) -> set[int]:
    from triage_app.core.review.audit import policy_key

    table = project.db.table("audit_frames")
    with project.db.read() as conn:
        q = select(table.c.frame_id).where(and_(table.c.policy_key == policy_key(policy), table.c.sampled == 1))
        return {int(r[0]) for r in conn.execute(q)}


class ReviewSession:
    """One analyst's pass through the queue: decisions, undo, live refresh."""

    def __init__(self, project: Project, cards: dict[str, ModelCard], settings: Settings, reviewer: str | None = None,
                 resolve: bool = False) -> None:
        self.project, self.cards, self.settings = project, cards, settings
        self.reviewer = reviewer or settings.review.reviewer
        self.resolve = resolve  # the supervisor's queue of disagreements
        self.decisions = DecisionStore(project)
        self.queue, self.policy, self.scores = build_queue(project, cards, settings, resolve=resolve, reviewer=self.reviewer)
        self.position = 0
        self._shown_at = time.monotonic()
        self._undo: list[tuple[list[int], list[Candidate], int]] = []
        self._during: dict[str, Any] | None = None  # what changed while a rebuild runs

    # -- navigation -------------------------------------------------------------------
    @property
    def current(self) -> Candidate | None:
        if not self.queue.items:
            return None
        self.position = min(max(self.position, 0), len(self.queue.items) - 1)
        return self.queue.items[self.position]

    def move(self, step: int) -> Candidate | None:
        if self.queue.items:
            self.position = min(max(self.position + step, 0), len(self.queue.items) - 1)
            self._shown_at = time.monotonic()
        return self.current

    def mark_shown(self) -> None:
        self._shown_at = time.monotonic()

    def refresh(self) -> int:
        """Rebuild the queue from the store (new scores, new policy); keep the analyst on
        the frame they are looking at. Returns how many candidates joined."""
        return self.apply_refresh(self.begin_refresh()())

    def begin_refresh(self) -> Any:
        """Start a rebuild that may run on another thread: returns the function that builds
        the queue (reads only). Decisions and undos made meanwhile are remembered, so that
        ``apply_refresh`` can put the built queue in place without losing them."""
        self._during = {"decided": set(), "undone": False}
        project, cards, settings, resolve, reviewer = self.project, self.cards, self.settings, self.resolve, self.reviewer
        return lambda: build_queue(project, cards, settings, resolve=resolve, reviewer=reviewer)

    def apply_refresh(self, built: tuple[ReviewQueue, ActivePolicy, dict[int, dict[str, float]]]) -> int:
        """Put a queue built by ``begin_refresh``'s function in place; returns how many
        candidates joined, or -1 when an undo meanwhile made it stale (build again)."""
        during, self._during = self._during, None
        if during is None or during["undone"]:
            return -1
        here = self.current.frame_id if self.current else None
        before = {c.frame_id for c in self.queue.items}
        queue, self.policy, self.scores = built
        queue.items = [c for c in queue.items if c.frame_id not in during["decided"]]
        self.queue = queue
        if here is not None:
            i = self.queue.index_of(here)
            if i is not None:
                self.position = i
        return len({c.frame_id for c in self.queue.items} - before)

    # -- decisions ---------------------------------------------------------------------
    def _row(self, c: Candidate, label: str, spent: float, via: str) -> dict[str, Any]:
        return dict(
            frame_id=c.frame_id, label=label, reviewer=self.reviewer, seconds_spent=round(spent, 3),
            policy_id=self.policy.id, policy=self.policy.describe(), member_scores=json.dumps(self.scores.get(c.frame_id, {})),
            fused_score=c.fused, via=via, sample_kind=c.kind,
        )

    def decide(self, label: str) -> list[int]:
        """Decide the current frame; committed before this returns."""
        c = self.current
        if c is None:
            return []
        return self._decide_many([c], {c.frame_id: label}, "single")

    def decide_event(self, label: str) -> list[int]:
        """Decide every remaining candidate of the current frame's event."""
        c = self.current
        if c is None:
            return []
        members = self.queue.event_members(c.event)
        return self._decide_many(members, {m.frame_id: label for m in members}, "event")

    def decide_frames(self, labels: dict[int, str], via: str = "grid") -> list[int]:
        members = [c for c in self.queue.items if c.frame_id in labels]
        return self._decide_many(members, labels, via)

    def _decide_many(self, members: list[Candidate], labels: dict[int, str], via: str) -> list[int]:
        if any(l not in LABELS for l in labels.values()):
            raise ValueError(f"label must be one of {LABELS}")
        spent = time.monotonic() - self._shown_at
        per = spent / max(len(members), 1)
        ids = self.decisions.record([self._row(m, labels[m.frame_id], per, via) for m in members])
        if self._during is not None:
            self._during["decided"].update(m.frame_id for m in members)
        first = min(self.queue.items.index(m) for m in members)
        gone = {m.frame_id for m in members}
        self._undo.append((ids, members, self.position))
        self.queue.items = [c for c in self.queue.items if c.frame_id not in gone]
        self.position = min(first, max(len(self.queue.items) - 1, 0))
        self._shown_at = time.monotonic()
        return ids

    def undo(self) -> int:
        """Take the last decision (or event/grid batch) back and show its frame again.
        Returns how many decisions were taken back (0 when there is nothing to undo)."""
        if not self._undo:
            return 0
        ids, members, position = self._undo.pop()
        self.decisions.undo(ids)
        if self._during is not None:
            self._during["undone"] = True
        present = {c.frame_id for c in self.queue.items}
        restored = self.queue.items + [m for m in members if m.frame_id not in present]
        order = ((lambda c: -c.rank) if self.settings.review.order in ("score", "learned")
                 else (lambda c: (c.source_id, c.timestamp_s, c.idx)))
        self.queue.items = sorted(restored, key=order)
        self.position = self.queue.index_of(members[0].frame_id) or 0
        self._shown_at = time.monotonic()
        return len(ids)

    @property
    def undo_depth(self) -> int:
        return len(self._undo)
