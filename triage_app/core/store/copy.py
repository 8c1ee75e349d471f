"""Moving a project between stores: a project folder (SQLite) into a team store (PostgreSQL)
and back, with every source, frame, score, decision, policy and ranking, the embedding cache
and kept stream frames; checked by row counts and a content hash per table."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, select

from triage_app.core.model.errors import StoreError
from triage_app.core.store.db import Database
from triage_app.core.store.workspace import SHARED_KEY, Workspace

#: Records that belong to the moment, not the project: leases of frames on screens.
NOT_COPIED = {"leases", "triage_schema"}
CHUNK = 5000


@dataclass
class CopyResult:
    tables: dict[str, int] = field(default_factory=dict)  # rows copied per table
    digest: str = ""  # the content hash both stores agree on
    files: int = 0  # files of the project folder copied (embedding cache, stream frames, settings)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def _value(v: Any) -> str:
    if v is None:
        return "\x00"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "b:" + bytes(v).hex()
    if isinstance(v, float):
        return "f:" + repr(v)
    if isinstance(v, bool):
        return "i:" + str(int(v))
    if isinstance(v, int):
        return "i:" + str(v)
    return "s:" + str(v)


def _rows(conn: Connection, table: Table, skip: Callable[[dict[str, Any]], bool] | None = None
          ) -> Iterator[dict[str, Any]]:
    order = list(table.primary_key.columns) or list(table.columns)
    for row in conn.execute(select(table).order_by(*order)).mappings():
        r = dict(row)
        if skip is None or not skip(r):
            yield r


def _skip_meta(r: dict[str, Any]) -> bool:
    return r.get("key") == SHARED_KEY  # each store knows its own shared folder


def table_digests(db: Database, paths: tuple[str, str] | None = None) -> dict[str, tuple[int, str]]:
    """(rows, SHA-256) of every copied table's content, rows in primary-key order, columns by
    name; with ``paths`` (old prefix, new prefix) frame paths under the old project folder are
    read as under the new one."""
    out: dict[str, tuple[int, str]] = {}
    with db.read() as conn:
        for table in db.meta.sorted_tables:
            if table.name in NOT_COPIED:
                continue
            h = hashlib.sha256()
            n = 0
            cols = sorted(c.name for c in table.columns)
            for r in _rows(conn, table, _skip_meta if table.name == "project_meta" else None):
                if paths and table.name == "frames":
                    r = _moved(r, paths)
                h.update("\x1f".join(f"{c}={_value(r[c])}" for c in cols).encode("utf-8", "surrogateescape"))
                h.update(b"\x1e")
                n += 1
            out[table.name] = (n, h.hexdigest())
    return out


def _moved(r: dict[str, Any], paths: tuple[str, str]) -> dict[str, Any]:
    p = r.get("path")
    old, new = paths
    if isinstance(p, str) and old != new and p.startswith(old.rstrip("/") + "/"):
        r = dict(r, path=new.rstrip("/") + p[len(old.rstrip("/")):])
    return r


def combined(digests: dict[str, tuple[int, str]]) -> str:
    return hashlib.sha256("".join(f"{t}:{n}:{d};" for t, (n, d) in sorted(digests.items())).encode()).hexdigest()


def copy_project(src: str | Path, dst: str | Path, shared: str | Path | None = None,
                 progress: Callable[[str, int], None] | None = None) -> CopyResult:
    """Copy the project at ``src`` into ``dst`` (a new folder, or an empty PostgreSQL database
    with ``shared``: the team's folder), in one transaction, then check that every table holds
    the same rows on both sides. Raises ``StoreError`` when ``dst`` already holds a project or
    the check fails (the copy is then emptied again; ``src`` is never written to)."""
    with Workspace(src, create=False) as a:
        with Workspace(dst, shared=shared, create=True) as b:
            if b.frames.frame_count() or b.decisions.history() or b.policies.current():
                raise StoreError(f"{b.location}: already holds a project; copy into a new folder or an empty database")
            result = CopyResult()
            paths = (str(a.root.resolve()), str(b.root.resolve()))
            tables = [t for t in a.db.meta.sorted_tables if t.name not in NOT_COPIED]

            def fn(conn: Connection) -> None:
                with a.db.read() as rconn:
                    for table in tables:
                        target = b.db.table(table.name)
                        if table.name == "project_meta":
                            conn.execute(target.delete().where(target.c.key != SHARED_KEY))
                        n = 0
                        chunk: list[dict[str, Any]] = []
                        for r in _rows(rconn, table, _skip_meta if table.name == "project_meta" else None):
                            chunk.append(_moved(r, paths) if table.name == "frames" else r)
                            if len(chunk) >= CHUNK:
                                conn.execute(target.insert(), chunk)
                                n += len(chunk)
                                chunk = []
                                if progress:
                                    progress(table.name, n)
                        if chunk:
                            conn.execute(target.insert(), chunk)
                            n += len(chunk)
                        result.tables[table.name] = n
                if b.db.dialect == "postgresql":  # identity keys go on after the copied ones
                    for table in tables:
                        if "id" in table.columns and table.columns["id"].primary_key:
                            conn.exec_driver_sql(
                                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                f"coalesce((SELECT max(id) FROM {table.name}), 0) + 1, false)")

            b.db.write(fn)
            result.files = _copy_files(a.root, b.root)
            want, got = table_digests(a.db, paths), table_digests(b.db)
            bad = sorted(t for t in want if want[t] != got.get(t))
            if bad:
                _empty(b.db, tables)
                raise StoreError(f"{b.location}: the copy does not match {a.location} in "
                                 f"{', '.join(f'{t} ({want[t][0]} rows, {got.get(t, (0,))[0]} copied)' for t in bad)}; "
                                 "it was emptied again")
            result.digest = combined(want)
            return result


def _empty(db: Database, tables: list[Table]) -> None:
    def fn(conn: Connection) -> None:
        for t in reversed(tables):
            target = db.table(t.name)
            conn.execute(target.delete() if t.name != "project_meta" else target.delete().where(
                target.c.key != SHARED_KEY))

    db.write(fn)


def _copy_files(src: Path, dst: Path) -> int:
    """The project folder's files beside the database (embedding cache, kept stream frames,
    review pictures, settings, deployed members) into the other store's folder; the database files, their
    backups and the writer lock stay."""
    if src.resolve() == dst.resolve():
        return 0
    n = 0
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        name = rel.parts[0]
        if name.startswith(("project.db", ".triage-writer")) or not path.is_file():
            continue
        out = dst / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, out)
        n += 1
    return n
