"""What a team on one project shares beyond its records: the project's own facts (the shared
folder of a PostgreSQL project) and the leases of the frames analysts have on screen. Every
statement about the ``project_meta`` and ``leases`` tables lives here.

A lease says "this frame is on this analyst's screen until ``expires_at``"; it keeps other
reviewers from the frame, not the same reviewer in another window (or in the window that
replaced one that crashed). Taking one is a
short write transaction: on PostgreSQL the pool rows wanted are locked with ``SELECT ... FOR
UPDATE SKIP LOCKED``, so that two analysts asking at once never wait on each other and never
get the same frame; on SQLite the single writer (``BEGIN IMMEDIATE``) serialises them. A
holder renews its leases while it lives; a process that dies stops renewing, and its frames
return to the pool when the leases expire.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import Connection, and_, delete, select, update

from triage_app.core.store.db import Database, insert_ignoring

#: Seconds a lease lasts unless renewed.
LEASE_S = 90.0
#: A lease no one holds (a pool row whose frame is free).
FREE = ""


class MetaStore:
    """The project's facts about itself (key, value)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("project_meta")

    def get(self, key: str) -> str | None:
        with self.db.read() as conn:
            v = conn.execute(select(self.table.c.value).where(self.table.c.key == key)).scalar()
        return None if v is None else str(v)

    def set(self, key: str, value: str) -> None:
        t = self.table

        def fn(conn: Connection) -> None:
            conn.execute(delete(t).where(t.c.key == key))
            conn.execute(t.insert().values(key=key, value=value))

        self.db.write(fn)


class LeaseStore:
    """The leases of frames on analysts' screens."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("leases")
        self.decisions = db.table("decisions")

    def take(self, holder: str, reviewer: str, frame_ids: Sequence[int], want: int = 1, lease_s: float = LEASE_S,
             decided_ok: Sequence[int] = (), second: Sequence[int] = (), keep: Sequence[int] = ()) -> list[int]:
        """Lease up to ``want`` of ``frame_ids`` (in their order) to ``holder``: frames no one
        else holds (or whose lease expired), not decided by anyone (unless in ``decided_ok``: a
        doubted decision, a disagreement to resolve; or in ``second``: a second review, which
        only goes to a reviewer who has not decided the frame, while one reviewer has). The
        frames ``holder`` already holds among them count and are renewed; its other leases,
        but those in ``keep``, go back to the pool in the same transaction. Returns the leased
        frames, in order."""
        ids = list(dict.fromkeys(int(f) for f in frame_ids))
        if not ids or want <= 0:
            return []
        again = {int(f) for f in decided_ok}
        twice = {int(f) for f in second}
        t, d = self.table, self.decisions
        pg = self.db.dialect == "postgresql"

        def fn(conn: Connection) -> list[int]:
            now = time.time()
            # Pool rows for the frames asked about (free ones), then lock the free or own ones.
            conn.execute(insert_ignoring(self.db, t, ["frame_id"]),
                         [dict(frame_id=f, holder=FREE, reviewer=FREE, expires_at=0.0) for f in ids])
            q = select(t.c.frame_id).where(and_(t.c.frame_id.in_(ids), (t.c.holder == holder) | (t.c.holder == FREE)
                                                | (t.c.reviewer == reviewer) | (t.c.expires_at < now)))
            if pg:
                q = q.with_for_update(skip_locked=True)
            free = {int(r[0]) for r in conn.execute(q)}
            decided = {int(r[0]) for r in conn.execute(select(d.c.frame_id).where(
                and_(d.c.frame_id.in_(list(free - again - twice)), d.c.undone_at.is_(None))))}
            if twice & free:  # a second look: not by its first reviewer, not a third
                by: dict[int, set[str]] = {}
                for f, r in conn.execute(select(d.c.frame_id, d.c.reviewer).where(
                        and_(d.c.frame_id.in_(list(twice & free)), d.c.undone_at.is_(None)))):
                    by.setdefault(int(f), set()).add(str(r))
                decided |= {f for f, rs in by.items() if reviewer in rs or len(rs) != 1}
            got = [f for f in ids if f in free and f not in decided][:want]
            if got:
                conn.execute(update(t).where(t.c.frame_id.in_(got)).values(holder=holder, reviewer=reviewer,
                                                                             expires_at=now + lease_s))
            conn.execute(update(t).where(and_(t.c.holder == holder, t.c.frame_id.notin_(got + [int(k) for k in keep])))
                         .values(holder=FREE, reviewer=FREE, expires_at=0.0))
            return got

        return self.db.write(fn)

    def renew(self, holder: str, lease_s: float = LEASE_S) -> int:
        """Extend every lease ``holder`` has; returns how many."""
        t = self.table
        return int(self.db.write(lambda c: c.execute(
            update(t).where(t.c.holder == holder).values(expires_at=time.time() + lease_s)).rowcount or 0))

    def release(self, holder: str, frame_ids: Sequence[int] | None = None) -> None:
        """Give frames back to the pool (all of ``holder``'s when ``frame_ids`` is None)."""
        t = self.table
        cond = t.c.holder == holder
        if frame_ids is not None:
            cond = and_(cond, t.c.frame_id.in_([int(f) for f in frame_ids]))
        self.db.write(lambda c: c.execute(update(t).where(cond).values(holder=FREE, reviewer=FREE, expires_at=0.0)))

    def held_by_others(self, reviewer: str) -> dict[int, str]:
        """Frame id -> reviewer, for the frames other reviewers hold now (leases not expired)."""
        t = self.table
        with self.db.read() as conn:
            rows = conn.execute(select(t.c.frame_id, t.c.reviewer).where(and_(
                t.c.reviewer != reviewer, t.c.holder != FREE, t.c.expires_at >= time.time()))).all()
        return {int(f): str(r) for f, r in rows}


def clear_review(db: Database) -> None:
    """Remove every review record (decisions, leases, the label check's doubts, rankings, their
    scores and forecasts, the blind audit's draws), keeping the footage and its scores: a benchmark's fresh start."""
    def fn(conn: Connection) -> None:
        for name in ("label_flags", "leases", "audit_draws", "forecasts", "past_scores", "rank_scores", "rankings",
                     "decisions"):
            conn.execute(delete(db.table(name)))

    db.write(fn)
