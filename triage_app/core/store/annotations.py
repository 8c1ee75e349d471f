"""Annotations drawn in another tool (CVAT, Label Studio) and brought back: each frame's latest
import is its annotation. Every statement about the ``annotation_sets`` and
``annotation_boxes`` tables lives here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, delete, insert, select

from triage_app.core.store.db import Database
from triage_app.core.store.frames import now_iso


@dataclass(frozen=True)
class Box:
    """A drawn box in the frame's pixels (x0, y0 top left; x1, y1 bottom right)."""

    label: str
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass
class Annotation:
    """A frame's annotation: the boxes drawn on it (none: the annotator saw nothing to box)."""

    frame_id: int
    tool: str
    annotator: str | None
    file: str
    imported_at: str = ""
    boxes: list[Box] = field(default_factory=list)


class AnnotationStore:
    """SQL for imported annotations."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sets = db.table("annotation_sets")
        self.boxes = db.table("annotation_boxes")

    def replace(self, annotations: Sequence[Annotation]) -> int:
        """Record these annotations in one transaction, each replacing what its frame had;
        returns how many frames were annotated."""
        stamp = now_iso()

        def fn(conn: Connection) -> int:
            ids = [a.frame_id for a in annotations]
            for chunk in _chunks(ids, 500):
                conn.execute(delete(self.boxes).where(self.boxes.c.frame_id.in_(chunk)))
                conn.execute(delete(self.sets).where(self.sets.c.frame_id.in_(chunk)))
            if annotations:
                conn.execute(insert(self.sets), [dict(frame_id=a.frame_id, tool=a.tool, annotator=a.annotator, file=a.file,
                                                      imported_at=stamp) for a in annotations])
            rows = [dict(frame_id=a.frame_id, label=b.label, x0=b.x0, y0=b.y0, x1=b.x1, y1=b.y1)
                    for a in annotations for b in a.boxes]
            if rows:
                conn.execute(insert(self.boxes), rows)
            return len(annotations)

        return int(self.db.write(fn))

    def of_frames(self, frame_ids: Iterable[int] | None = None) -> dict[int, Annotation]:
        """The annotation of each frame that has one (of ``frame_ids``, or of every frame)."""
        wanted = None if frame_ids is None else sorted({int(f) for f in frame_ids})
        out: dict[int, Annotation] = {}
        with self.db.read() as conn:
            for chunk in [None] if wanted is None else _chunks(wanted, 500):
                q = select(self.sets)
                b = select(self.boxes).order_by(self.boxes.c.id)
                if chunk is not None:
                    q, b = q.where(self.sets.c.frame_id.in_(chunk)), b.where(self.boxes.c.frame_id.in_(chunk))
                for r in conn.execute(q).mappings():
                    out[int(r["frame_id"])] = Annotation(int(r["frame_id"]), r["tool"], r["annotator"], r["file"],
                                                         r["imported_at"])
                for r in conn.execute(b).mappings():
                    out[int(r["frame_id"])].boxes.append(Box(r["label"], float(r["x0"]), float(r["y0"]), float(r["x1"]),
                                                             float(r["y1"])))
        return out


def _chunks(ids: list[int], n: int) -> list[list[int]]:
    return [ids[i:i + n] for i in range(0, len(ids), n)]
