"""Decisions and what is derived from them in SQL: the standing decision of each frame,
who decided what, the label check's doubts. Every statement about the ``decisions`` and
``label_flags`` tables lives here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from triage_app.core.model.records import Decision, Why
from triage_app.core.store.db import Database, inserted_id
from triage_app.core.store.frames import now_iso


@dataclass
class LabelFlag:
    """A decision the label check doubts: its frame returns to the queue until a newer
    decision stands."""

    frame_id: int
    decision_id: int
    probability: float


class DecisionStore:
    """SQL for decisions."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("decisions")
        self.flags = db.table("label_flags")
        self.frames = db.table("frames")

    def record(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert decisions in one durable transaction; returns their ids."""
        stamp = now_iso()
        rows = [dict(r, label=getattr(r["label"], "value", r["label"])) for r in rows]

        def fn(conn: Connection) -> list[int]:
            return [inserted_id(conn.execute(insert(self.table).values(decided_at=stamp, **r))) for r in rows]

        ids = self.db.write(fn)
        # Decisions are the one record people cannot make again: the database file itself holds
        # them at once, not only the write-ahead log beside it.
        self.db.checkpoint()
        return ids

    def undo(self, ids: Sequence[int], reviewer: str | None = None) -> int:
        """Mark decisions undone (history is kept); with ``reviewer``, only that reviewer's own.
        Returns how many were taken back."""
        stamp = now_iso()
        cond = and_(self.table.c.id.in_(list(ids)), self.table.c.undone_at.is_(None))
        if reviewer is not None:
            cond = and_(cond, self.table.c.reviewer == reviewer)
        return int(self.db.write(lambda c: c.execute(update(self.table).where(cond).values(undone_at=stamp)).rowcount or 0))

    def decided_frames(self) -> set[int]:
        with self.db.read() as conn:
            q = select(self.table.c.frame_id).where(self.table.c.undone_at.is_(None)).distinct()
            return {int(r[0]) for r in conn.execute(q)}

    def standing_labels(self, frame_ids: Sequence[int]) -> dict[int, str]:
        """Frame id -> the label of its standing decision (latest, not undone), for these frames."""
        t = self.table
        with self.db.read() as conn:
            rows = conn.execute(select(t.c.frame_id, t.c.label).where(
                and_(t.c.frame_id.in_([int(f) for f in frame_ids]), t.c.undone_at.is_(None))).order_by(t.c.id)).all()
        return {int(f): str(label) for f, label in rows}

    def recorded(self) -> dict[int, tuple[int, str, bool]]:
        """Every decision ever recorded, undone ones too: id -> (frame id, reviewer, undone)."""
        t = self.table
        with self.db.read() as conn:
            rows = conn.execute(select(t.c.id, t.c.frame_id, t.c.reviewer, t.c.undone_at)).all()
        return {int(i): (int(f), str(r), u is not None) for i, f, r, u in rows}

    def history(self) -> list[Decision]:
        """Every decision not undone, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(select(self.table).where(self.table.c.undone_at.is_(None)).order_by(self.table.c.id)).mappings().all()
        return [Decision.from_row(r) for r in rows]

    def current(self) -> list[Decision]:
        """The standing decision of every decided frame (latest, not undone)."""
        latest: dict[int, Decision] = {}
        for d in self.history():
            latest[d.frame_id] = d
        return list(latest.values())

    def last_id(self) -> int | None:
        """The id of the latest decision recorded (undone or not); None before any."""
        with self.db.read() as conn:
            value = conn.execute(select(func.max(self.table.c.id))).scalar()
        return None if value is None else int(value)

    def labels(self) -> dict[int, int]:
        """Frame id -> 1 (accepted) or 0 (rejected), from the standing decisions; unsure
        frames are left out."""
        return {d.frame_id: t for d in self.current() if (t := d.label.target) is not None}

    def counts_by_source(self) -> dict[int, int]:
        """Decided frames per source."""
        f = self.frames
        with self.db.read() as conn:
            q = select(f.c.source_id, func.count(func.distinct(self.table.c.frame_id))).join(
                f, f.c.id == self.table.c.frame_id).where(self.table.c.undone_at.is_(None)).group_by(f.c.source_id)
            return {int(sid): int(n) for sid, n in conn.execute(q)}

    def reviewers_and_policies(self) -> tuple[list[str], list[int]]:
        """Everyone who decided something, and every policy a decision was made under."""
        t = self.table
        with self.db.read() as conn:
            rows = conn.execute(select(t.c.reviewer, t.c.policy_id).where(t.c.undone_at.is_(None)).distinct()).all()
        return sorted({str(r[0]) for r in rows}), sorted({int(r[1]) for r in rows if r[1] is not None})

    def throughput(self) -> list[tuple[str, int, float | None]]:
        """(reviewer, decisions, seconds spent) per reviewer, by name."""
        t = self.table
        q = (select(t.c.reviewer, func.count(), func.sum(t.c.seconds_spent)).where(t.c.undone_at.is_(None))
             .group_by(t.c.reviewer).order_by(t.c.reviewer))
        with self.db.read() as conn:
            return [(str(r), int(n), None if s is None else float(s)) for r, n, s in conn.execute(q)]

    def by_reviewer(self) -> tuple[dict[int, dict[str, str]], dict[int, str]]:
        """(per frame, each reviewer's latest label outside resolutions; per frame, the sample
        kind of the decision that stands)."""
        t = self.table
        with self.db.read() as conn:
            rows = conn.execute(select(t.c.frame_id, t.c.reviewer, t.c.label, t.c.sample_kind)
                                .where(t.c.undone_at.is_(None)).order_by(t.c.id)).all()
        labels: dict[int, dict[str, str]] = {}
        last_kind: dict[int, str] = {}
        for fid, reviewer, label, kind in rows:
            last_kind[int(fid)] = kind or ""
            if kind != Why.RESOLVE.value:
                labels.setdefault(int(fid), {})[str(reviewer)] = str(label)
        return labels, last_kind

    # -- the label check's doubts ------------------------------------------------------------
    def replace_flags(self, found: Sequence[LabelFlag]) -> int:
        """Put the doubted decisions' frames back into the queue (replacing the last check's
        list); returns how many."""
        stamp = now_iso()

        def fn(conn: Connection) -> int:
            conn.execute(delete(self.flags))
            if found:
                conn.execute(insert(self.flags), [dict(frame_id=f.frame_id, decision_id=f.decision_id,
                                                       probability=f.probability, flagged_at=stamp) for f in found])
            return len(found)

        return self.db.write(fn)

    def doubted_frames(self) -> set[int]:
        """Frames whose doubted decision still stands (no newer decision since the check)."""
        with self.db.read() as conn:
            flags = {int(r[0]): int(r[1]) for r in conn.execute(select(self.flags.c.frame_id, self.flags.c.decision_id))}
        if not flags:
            return set()
        standing = {d.frame_id: d.id for d in self.current()}
        return {f for f, d in flags.items() if standing.get(f) == d}
