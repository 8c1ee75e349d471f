"""Database access: connection set-up, migrations, and the single writer thread.

Write discipline: every write goes through one thread that owns the write connection and
runs short ``BEGIN IMMEDIATE`` transactions; readers use their own pooled connections and,
thanks to WAL, never wait for the writer. A write is durable (``synchronous=FULL``) when its
future resolves, so a caller that waits before acknowledging loses nothing to a crash.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, CursorResult, Engine, MetaData, Table, create_engine, event
from sqlalchemy.exc import DatabaseError, OperationalError

from triage_app.core.model.errors import StoreError, StoreVersionError
from triage_app.core.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

SCHEMA_VERSION = len(MIGRATIONS)
T = TypeVar("T")


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an INSERT just wrote."""
    key = result.inserted_primary_key
    if key is None:
        raise StoreError("the database gave no key for the row just written")
    return int(key[0])


def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    dbapi_conn.isolation_level = None  # transactions are begun explicitly below
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout = 30000")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA synchronous = FULL")
    mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        log.warning("WAL mode not available (%s)", mode)
    cur.close()


def _check_file(path: Path) -> int:
    """Open with the plain driver: refuse what is not a database or is too new."""
    try:
        conn = sqlite3.connect(path, timeout=30)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not a triage project database ({exc})") from exc
    if version > SCHEMA_VERSION:
        raise StoreVersionError(
            f"{path}: made by a newer triage_app (schema version {version}; this one reads up to "
            f"{SCHEMA_VERSION}). Upgrade triage_app to open it; the file was left untouched."
        )
    return version


def backup_database(path: Path, version: int) -> Path:
    """Copy the database (consistently, through SQLite's backup API) before migrating."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.v{version}-{stamp}.bak")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.v{version}-{stamp}-{n}.bak")
        n += 1
    src = sqlite3.connect(path)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return target


class Database:
    """One project database: migrated on open, reflected tables, one writer thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        existed = self.path.exists() and self.path.stat().st_size > 0
        version = _check_file(self.path) if existed else 0
        self.engine: Engine = create_engine(
            f"sqlite:///{self.path}", connect_args={"check_same_thread": False, "timeout": 30}
        )
        # The driver runs in autocommit mode; write transactions are opened explicitly
        # with BEGIN IMMEDIATE so that a writer takes the lock up front.
        event.listen(self.engine, "connect", _on_connect)
        self.backup_path: Path | None = None
        if existed and 0 < version < SCHEMA_VERSION:
            self.backup_path = backup_database(self.path, version)
            log.info("backed up %s to %s before migrating", self.path, self.backup_path)
        self._migrate(version)
        self.meta = MetaData()
        self.meta.reflect(self.engine)
        self._queue: queue.Queue[tuple[Callable[[Connection], Any], Future[Any]] | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name=f"store-writer:{self.path.name}", daemon=True)
        self._writer.start()
        self._closed = False

    # -- schema ---------------------------------------------------------------------
    def _migrate(self, version: int) -> None:
        for step in range(version, SCHEMA_VERSION):
            with self.engine.connect() as conn:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    MIGRATIONS[step](conn)
                    conn.exec_driver_sql(f"PRAGMA user_version = {step + 1:d}")
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
            log.info("%s: migrated schema to version %d", self.path, step + 1)

    @property
    def version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)

    def table(self, name: str) -> Table:
        return self.meta.tables[name]

    # -- reads ----------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading (any thread). WAL gives it a consistent snapshot."""
        with self.engine.connect() as conn:
            yield conn

    # -- writes ---------------------------------------------------------------------
    def _write_loop(self) -> None:
        conn = self.engine.connect()
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                fn, fut = item
                if not fut.set_running_or_notify_cancel():
                    continue
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    try:
                        result = fn(conn)
                        conn.commit()
                    except BaseException:
                        conn.rollback()
                        raise
                except (OperationalError, DatabaseError) as exc:
                    fut.set_exception(StoreError(f"{self.path}: write failed ({exc.orig})"))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    fut.set_exception(exc)
                else:
                    fut.set_result(result)
        finally:
            conn.close()

    def submit(self, fn: Callable[[Connection], T]) -> Future[T]:
        """Queue a write transaction; the future resolves once it is committed."""
        if self._closed:
            raise StoreError(f"{self.path}: database is closed")
        fut: Future[T] = Future()
        self._queue.put((fn, fut))
        return fut

    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run a write transaction on the writer thread and wait until it is committed."""
        return self.submit(fn).result()

    def checkpoint(self) -> bool:
        """Copy what the write-ahead log holds into the database file itself (a passive
        checkpoint: it never waits for readers). After it, deleting ``project.db-wal`` (a
        user tidying up after a crash) loses nothing committed. True when the whole log went in."""
        def fn(conn: Connection) -> bool:
            conn.commit()  # a checkpoint runs outside any transaction
            row = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the writer loop commits what it began
            return bool(row is not None and row[0] == 0 and row[1] == row[2])

        return self.write(fn)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._writer.join(timeout=30)
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        self.engine.dispose()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
