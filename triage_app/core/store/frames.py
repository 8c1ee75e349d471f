"""Sources, frames and messages: what footage a project holds and what went wrong reading
it. Every statement about the ``sources``, ``frames`` and ``messages`` tables lives here."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote_from_bytes, unquote_to_bytes

from sqlalchemy import Connection, and_, bindparam, case, func, insert, select, update

from triage_app.core.model.errors import StoreError, printable
from triage_app.core.model.records import Frame, Source
from triage_app.core.store.db import Database, insert_ignoring, inserted_id

DB_NAME = "project.db"
_FS_BYTES = "fs-bytes:"
_PATH_COLUMNS = ("uri", "path", "telemetry_path")


def path_to_db(text: str | None) -> str | None:
    """A file path as database text. Paths whose bytes are not UTF-8 (kept by Python as lone
    surrogates, which SQLite cannot store) are written percent-encoded behind a prefix, so
    the very same file can be opened again."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _FS_BYTES + quote_from_bytes(os.fsencode(text), safe="/")
    return _FS_BYTES + quote_from_bytes(text.encode("utf-8"), safe="/") if text.startswith(_FS_BYTES) else text


def path_from_db(text: str | None) -> str | None:
    if text is None or not text.startswith(_FS_BYTES):
        return text
    return os.fsdecode(unquote_to_bytes(text[len(_FS_BYTES):]))


def _paths_from_db(row: dict[str, Any]) -> dict[str, Any]:
    for k in _PATH_COLUMNS:
        if k in row and isinstance(row[k], str):
            row[k] = path_from_db(row[k])
    return row


def _frame(row: Any) -> Frame:
    return cast(Frame, _paths_from_db(dict(row)))


def _source(row: Any) -> Source:
    return cast(Source, _paths_from_db(dict(row)))


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class FrameStore:
    """The project's sources, their frames, and the messages recorded while reading them."""

    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.root = root
        self.sources = db.table("sources")
        self.frames = db.table("frames")
        self.messages = db.table("messages")

    # -- sources --------------------------------------------------------------------
    def add_source(self, kind: str, uri: str, name: str, sampling: dict[str, Any]) -> tuple[int, bool]:
        """The id of the source with this uri and sampling, creating it if new.
        Returns ``(id, created)``."""
        key = json.dumps(sampling, sort_keys=True)
        db_uri, name = path_to_db(uri), printable(name)

        def fn(conn: Connection) -> tuple[int, bool]:
            row = conn.execute(
                select(self.sources.c.id).where(and_(self.sources.c.uri == db_uri, self.sources.c.sampling == key))
            ).first()
            if row is not None:
                return int(row[0]), False
            res = conn.execute(
                insert(self.sources).values(kind=kind, uri=db_uri, name=name, sampling=key, added_at=now_iso())
            )
            return inserted_id(res), True

        return self.db.write(fn)

    def update_source(self, source_id: int, **values: Any) -> None:
        values = {k: path_to_db(v) if k in _PATH_COLUMNS else printable(v) if k in ("name", "message") and v else v
                  for k, v in values.items()}
        self.db.write(lambda conn: conn.execute(update(self.sources).where(self.sources.c.id == source_id).values(**values)))

    def source(self, source_id: int) -> Source:
        with self.db.read() as conn:
            row = conn.execute(select(self.sources).where(self.sources.c.id == source_id)).mappings().first()
        if row is None:
            raise StoreError(f"{self.root}: no source with id {source_id}")
        return _source(row)

    def source_summaries(self) -> list[Source]:
        """Each source with its frame counts (frames, flagged, telemetry matched)."""
        f = self.frames
        counts = (
            select(
                f.c.source_id,
                func.count().label("frames"),
                func.sum(case((f.c.quality_flag.is_not(None), 1), else_=0)).label("flagged"),
                func.sum(f.c.telemetry_matched).label("telemetry_matched"),
                func.max(f.c.idx).label("last_idx"),
            )
            .group_by(f.c.source_id)
            .subquery()
        )
        q = select(self.sources, counts.c.frames, counts.c.flagged, counts.c.telemetry_matched, counts.c.last_idx).join(
            counts, counts.c.source_id == self.sources.c.id, isouter=True
        ).order_by(self.sources.c.id)
        with self.db.read() as conn:
            rows = [_source(r) for r in conn.execute(q).mappings()]
        for r in rows:
            r["frames"] = int(r.get("frames") or 0)
            r["flagged"] = int(r.get("flagged") or 0)
            r["telemetry_matched"] = int(r.get("telemetry_matched") or 0)
        return rows

    # -- frames ---------------------------------------------------------------------
    def add_frames(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert frames in one transaction; frames already stored (same source and
        index) are left as they are. Returns how many were new."""
        if not rows:
            return 0
        stmt = insert_ignoring(self.db, self.frames, ["source_id", "idx"])
        keys = sorted({k for r in rows for k in r})
        full = [{k: path_to_db(r.get(k)) if k == "path" else r.get(k) for k in keys} for r in rows]

        def fn(conn: Connection) -> int:
            if self.db.dialect == "postgresql":  # its executemany gives no row count: the new rows' keys do
                return len(conn.execute(stmt.returning(self.frames.c.id), full).all())
            return int(conn.execute(stmt, full).rowcount or 0)

        return self.db.write(fn)

    def update_frames(self, rows: Sequence[dict[str, Any]]) -> int:
        """Set the given columns of stored frames, each row naming its frame by ``source_id``
        and ``idx`` (a frame read again, telemetry matched again), in one transaction."""
        if not rows:
            return 0
        f = self.frames

        def fn(conn: Connection) -> int:
            n = 0
            for r in rows:
                values = {k: path_to_db(v) if k == "path" else v for k, v in r.items() if k not in ("source_id", "idx")}
                n += int(conn.execute(update(f).where((f.c.source_id == r["source_id"]) & (f.c.idx == r["idx"]))
                                      .values(**values)).rowcount or 0)
            return n

        return self.db.write(fn)

    def stored_stills(self, source_id: int) -> tuple[dict[str, int], set[str], str | None]:
        """(path -> index of the stored frames, paths of those that could not be read, the
        earliest capture time) of a source of stills."""
        f = self.frames
        with self.db.read() as conn:
            rows = conn.execute(select(f.c.idx, f.c.path, f.c.quality_flag, f.c.captured_at)
                                .where(f.c.source_id == source_id)).all()
        known = {str(path_from_db(r[1])): int(r[0]) for r in rows if r[1] is not None}
        failed = {str(path_from_db(r[1])) for r in rows if r[1] is not None and r[2] == "undecodable"}
        stamps = [r[3] for r in rows if r[3]]
        return known, failed, min(stamps) if stamps else None

    def frame_times(self, source_id: int) -> list[tuple[int, float]]:
        """(index, time in the source) of a source's stored frames."""
        f = self.frames
        with self.db.read() as conn:
            return [(int(r[0]), float(r[1])) for r in conn.execute(select(f.c.idx, f.c.timestamp_s)
                                                                   .where(f.c.source_id == source_id))]

    def frame_indices(self, source_id: int) -> set[int]:
        with self.db.read() as conn:
            return {int(r[0]) for r in conn.execute(select(self.frames.c.idx).where(self.frames.c.source_id == source_id))}

    def frame_count(self) -> int:
        """How many frames the project holds (all sources, flagged ones included)."""
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(self.frames)).scalar_one())

    def frame_sources(self) -> dict[int, int]:
        """Frame id -> source id, for every frame (without reading the frames' other columns)."""
        with self.db.read() as conn:
            return {int(f): int(s) for f, s in conn.execute(select(self.frames.c.id, self.frames.c.source_id))}

    def frame_rows(self, source_id: int | None = None, flagged: bool | None = None) -> list[Frame]:
        q = select(self.frames).order_by(self.frames.c.source_id, self.frames.c.idx)
        if source_id is not None:
            q = q.where(self.frames.c.source_id == source_id)
        if flagged is True:
            q = q.where(self.frames.c.quality_flag.is_not(None))
        elif flagged is False:
            q = q.where(self.frames.c.quality_flag.is_(None))
        with self.db.read() as conn:
            return [_frame(r) for r in conn.execute(q).mappings()]

    def neighbour_frames(self, source_id: int, idx: int, radius: int) -> list[Frame]:
        """Up to ``radius`` frames either side of frame ``idx`` of a source, in order."""
        f = self.frames
        base = select(f.c.id, f.c.idx, f.c.timestamp_s).where(f.c.source_id == source_id)
        with self.db.read() as conn:
            before = conn.execute(base.where(f.c.idx < idx).order_by(f.c.idx.desc()).limit(radius)).mappings().all()
            after = conn.execute(base.where(f.c.idx >= idx).order_by(f.c.idx).limit(radius + 1)).mappings().all()
        return [_frame(r) for r in reversed(before)] + [_frame(r) for r in after]

    def frames_by_id(self, frame_ids: Sequence[int]) -> dict[int, Frame]:
        """The rows of these frames, by id (absent ids are left out)."""
        ids = [int(f) for f in frame_ids]
        out: dict[int, Frame] = {}
        with self.db.read() as conn:
            for k in range(0, len(ids), 900):  # SQLite's bound-parameter limit
                q = select(self.frames).where(self.frames.c.id.in_(ids[k : k + 900]))
                out.update({int(r["id"]): _frame(r) for r in conn.execute(q).mappings()})
        return out

    def frame_positions(self, frame_ids: Sequence[int]) -> dict[int, tuple[int, int, float]]:
        """(source id, index, timestamp) of these frames, by id."""
        ids = [int(f) for f in frame_ids]
        f = self.frames
        out: dict[int, tuple[int, int, float]] = {}
        with self.db.read() as conn:
            for k in range(0, len(ids), 900):  # SQLite's bound-parameter limit
                q = select(f.c.id, f.c.source_id, f.c.idx, f.c.timestamp_s).where(f.c.id.in_(ids[k : k + 900]))
                out.update({int(i): (int(s), int(x), float(t)) for i, s, x, t in conn.execute(q)})
        return out

    def sources_of(self, frame_ids: Sequence[int]) -> dict[int, int]:
        """Frames per source among these frames."""
        out: dict[int, int] = {}
        for source_id, _idx, _t in self.frame_positions(frame_ids).values():
            out[source_id] = out.get(source_id, 0) + 1
        return out

    def frame(self, frame_id: int) -> Frame:
        with self.db.read() as conn:
            row = conn.execute(select(self.frames).where(self.frames.c.id == frame_id)).mappings().first()
        if row is None:
            raise StoreError(f"{self.root}: no frame with id {frame_id}")
        return _frame(row)

    def set_quality_flags(self, verdicts: dict[int, tuple[str | None, str | None]]) -> None:
        """Replace frames' quality flags and notes (frame id -> (flag, note)) in one transaction."""
        if not verdicts:
            return
        f = self.frames
        params = [dict(fid=k, flag=v[0], note=printable(v[1]) if v[1] else None) for k, v in verdicts.items()]
        stmt = update(f).where(f.c.id == bindparam("fid")).values(quality_flag=bindparam("flag"), quality_note=bindparam("note"))
        self.db.write(lambda conn: conn.execute(stmt, params))

    def flag_counts(self, source_id: int | None = None) -> dict[str, int]:
        q = select(self.frames.c.quality_flag, func.count()).where(self.frames.c.quality_flag.is_not(None))
        if source_id is not None:
            q = q.where(self.frames.c.source_id == source_id)
        q = q.group_by(self.frames.c.quality_flag)
        with self.db.read() as conn:
            return {str(k): int(n) for k, n in conn.execute(q)}

    # -- messages -------------------------------------------------------------------
    def add_message(self, level: str, message: str, path: str | None = None, source_id: int | None = None) -> None:
        self.db.write(
            lambda conn: conn.execute(
                insert(self.messages).values(
                    created_at=now_iso(), level=level, path=path_to_db(path), message=printable(message), source_id=source_id
                )
            )
        )

    def message_rows(self, source_id: int | None = None) -> list[dict[str, Any]]:
        q = select(self.messages).order_by(self.messages.c.id)
        if source_id is not None:
            q = q.where(self.messages.c.source_id == source_id)
        with self.db.read() as conn:
            return [_paths_from_db(dict(r)) for r in conn.execute(q).mappings()]

    def stream_dir(self, source_id: int) -> Path:
        """Where the frames of a live stream are kept (a stream cannot be read twice)."""
        return self.root / "streams" / f"source-{source_id:d}"


def iter_chunks(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
