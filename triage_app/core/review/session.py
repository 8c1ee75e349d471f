"""One analyst's pass through the review queue: what is on screen, decisions, undo, and
the queue rebuilt while scoring or learning goes on.

A decision is written (and committed, durably) before ``decide`` returns, with the
reviewer, the time spent, the policy in force and every member's score at that moment.
Undo marks the latest decision undone (history is kept) and puts the frame back; it only
ever takes back this analyst's own decisions.

Several analysts may review one project at once (a team store): the frame on screen is
leased (:mod:`triage_app.core.store.team`), so no two analysts see the same frame at once; a
frame another analyst holds, or has decided meanwhile, leaves this analyst's queue when they
reach it. The session renews its leases while it lives. When the database cannot be reached
the decision stays on screen, unsent (``pending``), and ``send_pending`` sends it once the
database is back.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from triage_app.core.model.errors import StoreError, StoreUnavailable
from triage_app.core.model.policy import Policy
from triage_app.core.model.records import Label, QueueItem, Why
from triage_app.core.review.progress import Progress, review_progress
from triage_app.core.review.queue import ReviewQueue, build_queue, review_order
from triage_app.core.store import Workspace
from triage_app.core.store.team import LEASE_S

log = logging.getLogger(__name__)

Built = tuple[ReviewQueue, Policy, Progress | None]
#: How many queue items ahead of the one on screen are asked for at once when it cannot be
#: had (another analyst holds it, or decided it meanwhile).
CLAIM_AHEAD = 16


@dataclass
class Pending:
    """A decision the database could not take (it was unreachable): still on screen, sent by
    ``send_pending`` once the database is back."""

    members: list[QueueItem]
    labels: dict[int, Label]
    via: str
    spent: float
    error: str


def build(ws: Workspace, resolve: bool, reviewer: str) -> Built:
    """The queue, the policy in force and, in active review, where review stands (reads the
    store; the audit's new draws are recorded)."""
    queue, policy = build_queue(ws, resolve=resolve, reviewer=reviewer)
    progress = review_progress(ws) if ws.settings.review.order == "active" and not resolve else None
    return queue, policy, progress


class ReviewSession:
    """One analyst's pass through the queue: decisions, undo, live refresh."""

    def __init__(self, ws: Workspace, reviewer: str | None = None, resolve: bool = False) -> None:
        self.ws = ws
        self.reviewer = reviewer or ws.settings.review.reviewer
        self.resolve = resolve  # the supervisor's queue of disagreements
        self.keep_going = False  # the analyst asked for more frames once the target was reached
        self.held: list[QueueItem] = []  # frames held back once the target is reached
        self.progress: Progress | None = None
        self.queue = ReviewQueue()
        self.policy: Policy | None = None
        self._put(build(ws, resolve, self.reviewer))
        self.position = 0
        self._shown_at = time.monotonic()
        self._undo: list[tuple[list[int], list[QueueItem], int, tuple[int, int]]] = []
        self.skipped: set[int] = set()  # frames the analyst moved past without deciding
        self._during: dict[str, Any] | None = None  # what changed while a rebuild runs
        self.pending: Pending | None = None  # a decision not sent yet (the database was unreachable)
        self.holder = f"{self.reviewer}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_s = LEASE_S
        self.others_took = 0  # queue items left out because another analyst had them first
        self._stop = threading.Event()
        self.queue.items = self._without_others(self.queue.items)
        self._claim()
        self._renewer = threading.Thread(target=self._renew_loop, name="lease-renewal", daemon=True)
        self._renewer.start()

    # -- leases -----------------------------------------------------------------------
    def _without_others(self, items: list[QueueItem], keep: int | None = None) -> list[QueueItem]:
        """The queue items no other reviewer has on screen now (and ``keep``, the one on this one)."""
        try:
            others = self.ws.leases.held_by_others(self.reviewer)
        except StoreError:
            return items
        return [c for c in items if c.frame_id not in others or c.frame_id == keep]

    def _claim(self) -> None:
        """Lease the frame on screen; when another analyst has it (or decided it meanwhile),
        drop it from this queue and try the next ones."""
        ahead = CLAIM_AHEAD
        while self.queue.items:
            self.position = min(max(self.position, 0), len(self.queue.items) - 1)
            window = self.queue.items[self.position:self.position + ahead]
            ahead *= 2  # many analysts at the same place: look further ahead each round
            again = [c.frame_id for c in window if c.why in (Why.REREVIEW, Why.RESOLVE)]
            second = [c.frame_id for c in window if c.why == Why.SECOND]
            try:
                got = self.ws.leases.take(self.holder, self.reviewer, [c.frame_id for c in window], 1, self.lease_s,
                                          decided_ok=again, second=second)
            except StoreError as exc:  # review goes on; a decision itself waits for the database
                log.warning("frame not leased: %s", exc)
                return
            if got and got[0] == window[0].frame_id:
                return
            first = next((i for i, c in enumerate(window) if got and c.frame_id == got[0]), len(window))
            gone = {c.frame_id for c in window[:first]}
            self.others_took += len(gone)
            self.queue.items = [c for c in self.queue.items if c.frame_id not in gone]

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self.ws.leases.renew(self.holder, self.lease_s)
            except StoreUnavailable:
                continue
            except StoreError:  # the project was closed
                return

    def close(self) -> None:
        """Stop renewing and give the frame on screen back to the pool."""
        self._stop.set()
        try:
            self.ws.leases.release(self.holder)
        except StoreError:
            pass

    # -- navigation -------------------------------------------------------------------
    @property
    def current(self) -> QueueItem | None:
        if not self.queue.items:
            return None
        self.position = min(max(self.position, 0), len(self.queue.items) - 1)
        return self.queue.items[self.position]

    def move(self, step: int) -> QueueItem | None:
        if self.queue.items:
            before = self.current
            self.position = min(max(self.position + step, 0), len(self.queue.items) - 1)
            if before is not None and self.current is not None and self.current.frame_id != before.frame_id:
                self.skipped.add(before.frame_id)  # passed over undecided: no batch decides it unseen
                self._claim()
            self._shown_at = time.monotonic()
        return self.current

    def mark_shown(self) -> None:
        self._shown_at = time.monotonic()

    def refresh(self) -> int:
        """Rebuild the queue from the store (new scores, new policy); keep the analyst on
        the frame they are looking at. Returns how many queue items joined."""
        return self.apply_refresh(self.begin_refresh()())

    def begin_refresh(self) -> Callable[[], Built]:
        """Start a rebuild that may run on another thread: returns the function that builds
        the queue (reads only). Decisions and undos made meanwhile are remembered, so that
        ``apply_refresh`` can put the built queue in place without losing them."""
        self._during = {"decided": set(), "undone": False}
        ws, resolve, reviewer = self.ws, self.resolve, self.reviewer
        return lambda: build(ws, resolve, reviewer)

    def apply_refresh(self, built: Built) -> int:
        """Put a queue built by ``begin_refresh``'s function in place; returns how many
        queue items joined, or -1 when an undo meanwhile made it stale (build again)."""
        during, self._during = self._during, None
        if during is None or during["undone"]:
            return -1
        here = self.current.frame_id if self.current else None
        before = {c.frame_id for c in self.queue.items}
        queue, policy, progress = built
        queue.items = [c for c in queue.items if c.frame_id not in during["decided"]]
        queue.items = self._without_others(queue.items, here)
        self._put((queue, policy, progress))
        if here is not None:
            i = self.queue.index_of(here)
            if i is not None and self.ws.settings.review.order == "active":
                # The frame on screen stays; what follows it is the new ranking's best.
                self.queue.items.insert(0, self.queue.items.pop(i))
                self.position = 0
            elif i is not None:
                self.position = i
        self._claim()
        return len({c.frame_id for c in self.queue.items} - before)

    def _put(self, built: Built) -> None:
        """Put a built queue in place; once the target recall is reached (active review),
        only the frames that need another look stay offered, unless the analyst asked for more."""
        queue, self.policy, self.progress = built
        self.held = []
        if self.target_reached and not self.keep_going:
            self.held = [c for c in queue.items if c.why in (Why.CANDIDATE, Why.AUDIT)]
            queue.items = [c for c in queue.items if c.why not in (Why.CANDIDATE, Why.AUDIT)]
        self.queue = queue

    @property
    def target_reached(self) -> bool:
        return bool(self.progress is not None and self.progress.reached)

    def keep_reviewing(self) -> int:
        """Offer the frames held back since the target was reached; returns how many."""
        self.keep_going = True
        held, self.held = self.held, []
        self.queue.items = self.queue.items + held
        return len(held)

    # -- decisions ---------------------------------------------------------------------
    def _row(self, c: QueueItem, label: Label, spent: float, via: str) -> dict[str, Any]:
        return dict(
            frame_id=c.frame_id, label=label.value, reviewer=self.reviewer, seconds_spent=round(spent, 3),
            policy_id=self.policy.id if self.policy else None, policy=self.policy.describe() if self.policy else "",
            member_scores=json.dumps(c.scores),
            fused_score=c.fused, via=via, sample_kind=c.kind,
        )

    def decide(self, label: str | Label) -> list[int]:
        """Decide the current frame; committed before this returns."""
        c = self.current
        if c is None:
            return []
        return self._decide_many([c], {c.frame_id: label}, "single")

    def decide_event(self, label: str | Label, on_screen: set[int] | None = None) -> list[int]:
        """Decide the current frame and the other queue items of its event that the analyst
        can see (``on_screen``: the frames shown beside it; None: the whole event), leaving
        out frames they passed over without deciding. "Reviewed" means looked at: a batch
        never decides a frame nobody was shown."""
        c = self.current
        if c is None:
            return []
        members = [m for m in self.queue.event_members(c.event) if m.frame_id == c.frame_id or (
            (on_screen is None or m.frame_id in on_screen) and m.frame_id not in self.skipped)]
        return self._decide_many(members, {m.frame_id: label for m in members}, "event")

    def decide_frames(self, labels: dict[int, str | Label], via: str = "grid") -> list[int]:
        members = [c for c in self.queue.items if c.frame_id in labels]
        return self._decide_many(members, labels, via)

    def _decide_many(self, members: list[QueueItem], labels: dict[int, str | Label], via: str) -> list[int]:
        if self.pending is not None:
            raise StoreUnavailable(f"a decision is waiting to be sent ({self.pending.error}); it goes first")
        parsed = {f: Label.parse(label) for f, label in labels.items()}
        spent = time.monotonic() - self._shown_at
        if len(members) > 1:  # a batch decides only what no other analyst has on screen
            here = self.current.frame_id if self.current else None
            try:
                mine = set(self.ws.leases.take(
                    self.holder, self.reviewer, [m.frame_id for m in members], len(members), self.lease_s,
                    decided_ok=[m.frame_id for m in members if m.why in (Why.REREVIEW, Why.RESOLVE)],
                    second=[m.frame_id for m in members if m.why == Why.SECOND]))
            except StoreUnavailable as exc:
                self.pending = Pending(members, parsed, via, spent, str(exc))
                raise
            members = [m for m in members if m.frame_id in mine or m.frame_id == here]
        return self._send(members, parsed, via, spent)

    def send_pending(self) -> list[int]:
        """Send the decision the database could not take; raises ``StoreUnavailable`` while
        it still cannot. Returns the ids written ([] when nothing was waiting)."""
        p, self.pending = self.pending, None
        if p is None:
            return []
        return self._send(p.members, p.labels, p.via, p.spent)

    def _send(self, members: list[QueueItem], parsed: dict[int, Label], via: str, spent: float) -> list[int]:
        per = spent / max(len(members), 1)
        try:
            ids = self.ws.decisions.record([self._row(m, parsed[m.frame_id], per, via) for m in members])
        except StoreUnavailable as exc:
            self.pending = Pending(members, parsed, via, spent, str(exc))
            raise
        if self._during is not None:
            self._during["decided"].update(m.frame_id for m in members)
        gone = {m.frame_id for m in members}
        places = [i for i, c in enumerate(self.queue.items) if c.frame_id in gone]
        first = min(places) if places else self.position
        counted = (len(members), sum(1 for m in members if parsed[m.frame_id].target == 1))
        self._count(*counted)
        self._undo.append((ids, members, self.position, counted))
        self.queue.items = [c for c in self.queue.items if c.frame_id not in gone]
        self.position = min(first, max(len(self.queue.items) - 1, 0))
        self._claim()
        self._shown_at = time.monotonic()
        return ids

    def undo(self) -> int:
        """Take the last decision (or event/grid batch) back and show its frame again.
        Returns how many decisions were taken back (0 when there is nothing to undo)."""
        if not self._undo:
            return 0
        ids, members, _position, counted = self._undo[-1]
        self.ws.decisions.undo(ids, reviewer=self.reviewer)
        self._undo.pop()
        self._count(-counted[0], -counted[1])
        if self._during is not None:
            self._during["undone"] = True
        present = {c.frame_id for c in self.queue.items}
        restored = self.queue.items + [m for m in members if m.frame_id not in present]
        self.queue.items = sorted(restored, key=review_order(self.ws.settings.review.order))
        self.position = self.queue.index_of(members[0].frame_id) or 0
        self._claim()
        self._shown_at = time.monotonic()
        return len(ids)

    def _count(self, reviewed: int, found: int) -> None:
        """Keep the progress's counts in step with each decision and undo between two
        learnings (its estimate stays the one of the last learning, until the next)."""
        p = self.progress
        if p is None:
            return
        p.reviewed = max(0, p.reviewed + reviewed)
        p.found = max(0, p.found + found)
        p.left = max(0, p.left - reviewed)
        p.settle_if_all_reviewed()

    @property
    def undo_depth(self) -> int:
        return len(self._undo)
