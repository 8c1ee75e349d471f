"""What analysts say of their finds: a class ("person", "vehicle", "debris") and a note, one per
frame, the latest word standing. Every statement about the ``find_notes`` table lives here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from triage_app.core.store.db import Database
from triage_app.core.store.frames import now_iso


@dataclass(frozen=True)
class FindNote:
    frame_id: int
    what: str  # the class of what was found, in the analyst's words
    note: str
    author: str
    noted_at: str


class NoteStore:
    """SQL for the notes on finds."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("find_notes")

    def set(self, frame_id: int, what: str, note: str, author: str) -> FindNote | None:
        """Record ``what`` and ``note`` for the frame (replacing its earlier note); both empty
        takes the note away. Returns what stands now."""
        what, note = what.strip(), note.strip()
        row = dict(frame_id=int(frame_id), what=what, note=note, author=author, noted_at=now_iso())
        t = self.table

        def fn(conn: Connection) -> None:
            if not what and not note:
                conn.execute(delete(t).where(t.c.frame_id == int(frame_id)))
                return
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(t).values(**row)
            conn.execute(stmt.on_conflict_do_update(index_elements=[t.c.frame_id],
                                                    set_={k: stmt.excluded[k] for k in ("what", "note", "author", "noted_at")}))

        self.db.write(fn)
        return FindNote(**row) if (what or note) else None  # type: ignore[arg-type]

    def of_frames(self, frame_ids: Iterable[int] | None = None) -> dict[int, FindNote]:
        """The note of each frame that has one (of ``frame_ids``, or of every frame)."""
        q = select(self.table)
        if frame_ids is not None:
            wanted = sorted({int(f) for f in frame_ids})
            if not wanted:
                return {}
            q = q.where(self.table.c.frame_id.in_(wanted))
        with self.db.read() as conn:
            return {int(r["frame_id"]): FindNote(int(r["frame_id"]), r["what"], r["note"], r["author"], r["noted_at"])
                    for r in conn.execute(q).mappings()}
