"""Audit samples: which dropped frames each policy considered for the audit, in which
stratum, at what rate, and whether they were drawn. Every statement about the
``audit_frames`` table lives here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, select

from triage_app.core.store.db import Database, insert_ignoring
from triage_app.core.store.frames import now_iso


class AuditStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("audit_frames")

    def considered(self, policy_key: str) -> list[tuple[int, int, bool]]:
        """(frame id, stratum, sampled) of every frame considered under a policy."""
        t = self.table
        with self.db.read() as conn:
            q = select(t.c.frame_id, t.c.stratum, t.c.sampled).where(t.c.policy_key == policy_key)
            return [(int(f), int(s), bool(p)) for f, s, p in conn.execute(q)]

    def sampled(self, policy_key: str) -> set[int]:
        """The frames drawn for the audit under a policy."""
        t = self.table
        with self.db.read() as conn:
            q = select(t.c.frame_id).where(and_(t.c.policy_key == policy_key, t.c.sampled == 1))
            return {int(r[0]) for r in conn.execute(q)}

    def record(self, policy_key: str, rows: Sequence[dict[str, Any]]) -> None:
        """Record frames as considered (``frame_id``, ``stratum``, ``rate``, ``sampled``); a
        frame already considered under this policy keeps its first draw."""
        if not rows:
            return
        stamp = now_iso()
        full = [dict(r, policy_key=policy_key, considered_at=stamp) for r in rows]
        stmt = insert_ignoring(self.db, self.table, ["frame_id", "policy_key"])

        def fn(conn: Connection) -> None:
            conn.execute(stmt, full)

        self.db.write(fn)
