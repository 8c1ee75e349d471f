"""Database access: connection set-up, migrations, and the single writer thread.

A project's database is a SQLite file (the embedded default, one machine) or a PostgreSQL
database named by a URL (a team). Write discipline: every write of a process goes through one
thread that owns the write connection and runs short transactions (``BEGIN IMMEDIATE`` on
SQLite); readers use their own pooled connections (WAL on SQLite, repeatable-read snapshots
on PostgreSQL) and never wait for the writer. A write is durable (``synchronous=FULL``;
PostgreSQL's commit) when its future resolves, so a caller that waits before acknowledging
loses nothing to a crash.
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

from sqlalchemy import URL, Connection, CursorResult, Engine, Insert, MetaData, Table, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, InterfaceError, OperationalError

from triage_app.core.model.errors import NoProjectError, StoreError, StoreUnavailable, StoreVersionError
from triage_app.core.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

SCHEMA_VERSION = len(MIGRATIONS)
T = TypeVar("T")


#: The schemes of a team store's URL (PostgreSQL through psycopg).
URL_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")
#: The advisory lock key that serialises migrations of one PostgreSQL database.
_MIGRATION_LOCK = 0x7472_6961_6765  # "triage"


def is_store_url(where: object) -> bool:
    """Whether a project is named by a database URL (a team store) rather than a folder."""
    return isinstance(where, str) and where.lower().startswith(URL_SCHEMES)


def store_url(text: str) -> URL:
    """The SQLAlchemy URL of a team store, refused with the reason when it carries a password:
    a password belongs in libpq's own files (``~/.pgpass``, ``PGPASSFILE``) or environment
    (``PGPASSWORD``), never on a command line (shell history, process lists) or in a project file."""
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise StoreError(f"{text}: not a database URL ({exc})") from exc
    if url.password:
        raise StoreError(f"{url.render_as_string(hide_password=True)}: the URL holds a password; leave it out and put "
                         "it in ~/.pgpass (or PGPASSFILE, or PGPASSWORD in the environment), where libpq reads it")
    if not url.get_backend_name().startswith("postgres"):
        raise StoreError(f"{text}: only PostgreSQL URLs (postgresql://host/database) name a team store")
    return url.set(drivername="postgresql+psycopg")


def describe_url(url: URL | str) -> str:
    """A team store's URL as it may be shown (no password, plain scheme)."""
    u = make_url(url) if isinstance(url, str) else url
    return u.set(drivername="postgresql").render_as_string(hide_password=True)


def insert_ignoring(db: Database, table: Table, index_elements: list[str]) -> Insert:
    """``INSERT ... ON CONFLICT (index_elements) DO NOTHING`` in the database's dialect."""
    if db.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=index_elements)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=index_elements)


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
    """One project database: migrated on open, reflected tables, one writer thread. ``where``
    is the SQLite file's path or a PostgreSQL URL (see :func:`store_url`)."""

    def __init__(self, where: str | Path, create: bool = True) -> None:
        self.user: str | None = None  # PostgreSQL: the database user this process connects as
        self.backup_path: Path | None = None  # SQLite: the file copied before migrating
        self.backup_schema: str | None = None  # PostgreSQL: the schema the tables were copied to
        if is_store_url(where):
            self.dialect = "postgresql"
            self.url = store_url(str(where))
            self.path: Path | None = None
            self.where = describe_url(self.url)
            self.engine: Engine = create_engine(self.url, pool_pre_ping=True, pool_size=4, max_overflow=8,
                                                connect_args={"connect_timeout": 10,
                                                              "application_name": "triage_app"})
            version = self._check_pg()
            if version == 0 and not create:
                self.engine.dispose()
                raise NoProjectError(f"{self.where}: no triage project in this database; `triage team init URL "
                                     "--shared FOLDER` sets one up")
            if 0 < version < SCHEMA_VERSION:
                self.backup_schema = self._backup_pg(version)
                log.info("copied %s's tables into schema %s before migrating", self.where, self.backup_schema)
        else:
            self.dialect = "sqlite"
            self.path = Path(where)
            self.where = str(self.path)
            existed = self.path.exists() and self.path.stat().st_size > 0
            version = _check_file(self.path) if existed else 0
            self.engine = create_engine(
                f"sqlite:///{self.path}", connect_args={"check_same_thread": False, "timeout": 30}
            )
            # The driver runs in autocommit mode; write transactions are opened explicitly
            # with BEGIN IMMEDIATE so that a writer takes the lock up front.
            event.listen(self.engine, "connect", _on_connect)
            if existed and 0 < version < SCHEMA_VERSION:
                self.backup_path = backup_database(self.path, version)
                log.info("backed up %s to %s before migrating", self.path, self.backup_path)
        self._migrate(version)
        self.meta = MetaData()
        self.meta.reflect(self.engine)
        self._queue: queue.Queue[tuple[Callable[[Connection], Any], Future[Any]] | None] = queue.Queue()
        name = self.path.name if self.path is not None else str(self.url.database)
        self._writer = threading.Thread(target=self._write_loop, name=f"store-writer:{name}", daemon=True)
        self._writer.start()
        self._closed = False

    @property
    def backup(self) -> str | None:
        """Where the data was copied before the last migration (a file, or a schema), if any."""
        return str(self.backup_path) if self.backup_path else self.backup_schema

    # -- PostgreSQL -----------------------------------------------------------------
    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        first = detail[0] if detail else str(exc)
        host = self.url.host or "localhost"
        return StoreUnavailable(f"{self.where}: cannot reach the team database ({first}); check the server and the "
                                "network, and that your password is in ~/.pgpass or PGPASSWORD",
                                reason=f"the team database on {host} cannot be reached")

    def _check_pg(self) -> int:
        """The schema version of a PostgreSQL database; refuse one that holds other tables
        than a project's, or a newer project's."""
        try:
            with self.engine.connect() as conn:
                tables = {str(r[0]) for r in conn.exec_driver_sql(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}
                self.user = str(conn.exec_driver_sql("SELECT current_user").scalar())
                if "triage_schema" not in tables:
                    if tables:
                        raise StoreError(f"{self.where}: not a triage project database (it holds other tables: "
                                         f"{', '.join(sorted(tables)[:5])}); name an empty database")
                    return 0
                version = int(conn.exec_driver_sql("SELECT max(version) FROM triage_schema").scalar() or 0)
        except (OperationalError, InterfaceError) as exc:
            raise self._unavailable(exc) from exc
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"{self.where}: made by a newer triage_app (schema version {version}; this one reads up to "
                f"{SCHEMA_VERSION}). Upgrade triage_app to open it; the database was left untouched.")
        return version

    def _backup_pg(self, version: int) -> str:
        """Copy every table into a schema of its own (one consistent snapshot) before migrating."""
        schema = f"triage_backup_v{version}_{time.strftime('%Y%m%d_%H%M%S')}"
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            tables = [str(r[0]) for r in conn.exec_driver_sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_type = 'BASE TABLE'")]
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            for t in tables:
                conn.exec_driver_sql(f'CREATE TABLE "{schema}"."{t}" AS TABLE "{t}"')
            conn.commit()
        return schema

    # -- schema ---------------------------------------------------------------------
    def _migrate(self, version: int) -> None:
        for step in range(version, SCHEMA_VERSION):
            with self.engine.connect() as conn:
                if self.dialect == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                else:  # several processes may open the project at once: one migrates
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK:d})")
                    conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS triage_schema (version INTEGER NOT NULL)")
                    if int(conn.exec_driver_sql("SELECT coalesce(max(version), 0) FROM triage_schema").scalar() or 0) > step:
                        conn.commit()
                        continue
                try:
                    MIGRATIONS[step](conn)
                    self._set_version(conn, step + 1)
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
            log.info("%s: migrated schema to version %d", self.where, step + 1)

    def _set_version(self, conn: Connection, version: int) -> None:
        if self.dialect == "sqlite":
            conn.exec_driver_sql(f"PRAGMA user_version = {version:d}")
        else:
            conn.exec_driver_sql("DELETE FROM triage_schema")
            conn.exec_driver_sql(f"INSERT INTO triage_schema (version) VALUES ({version:d})")

    @property
    def version(self) -> int:
        with self.engine.connect() as conn:
            sql = "PRAGMA user_version" if self.dialect == "sqlite" else "SELECT max(version) FROM triage_schema"
            return int(conn.exec_driver_sql(sql).scalar() or 0)

    def table(self, name: str) -> Table:
        return self.meta.tables[name]

    # -- reads ----------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading (any thread), on one consistent snapshot (WAL on SQLite,
        a repeatable-read transaction on PostgreSQL)."""
        try:
            conn = self.engine.connect()
        except (OperationalError, InterfaceError) as exc:
            raise self._unavailable(exc) from exc
        try:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn
        except (OperationalError, InterfaceError) as exc:
            if self.dialect == "postgresql":
                raise self._unavailable(exc) from exc
            raise
        finally:
            conn.close()

    # -- writes ---------------------------------------------------------------------
    def _write_loop(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                fn, fut = item
                if not fut.set_running_or_notify_cancel():
                    continue
                try:
                    if conn is None or conn.invalidated or conn.closed:
                        if conn is not None:
                            conn.close()
                        conn = None
                        conn = self.engine.connect()
                    if self.dialect == "sqlite":
                        conn.exec_driver_sql("BEGIN IMMEDIATE")
                    try:
                        result = fn(conn)
                        conn.commit()
                    except BaseException:
                        if not conn.invalidated:
                            conn.rollback()
                        raise
                except (OperationalError, InterfaceError) as exc:
                    lost = self.dialect == "postgresql" and (conn is None or conn.invalidated
                                                             or getattr(exc, "connection_invalidated", False))
                    fut.set_exception(self._unavailable(exc) if lost else
                                      StoreError(f"{self.where}: write failed ({exc.orig})"))
                except DatabaseError as exc:
                    if getattr(exc.orig, "sqlstate", None) == "42501":  # a grant or row-security policy said no
                        first = str(exc.orig).strip().splitlines()[0]
                        fut.set_exception(StoreError(f"{self.where}: {self.user} may not do this ({first}); it is "
                                                     "a supervisor's, or another reviewer's record"))
                    else:
                        fut.set_exception(StoreError(f"{self.where}: write failed ({exc.orig})"))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    fut.set_exception(exc)
                else:
                    fut.set_result(result)
        finally:
            if conn is not None:
                conn.close()

    def submit(self, fn: Callable[[Connection], T]) -> Future[T]:
        """Queue a write transaction; the future resolves once it is committed."""
        if self._closed:
            raise StoreError(f"{self.where}: database is closed")
        fut: Future[T] = Future()
        self._queue.put((fn, fut))
        return fut

    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run a write transaction on the writer thread and wait until it is committed."""
        return self.submit(fn).result()

    def checkpoint(self) -> bool:
        """Copy what the write-ahead log holds into the database file itself (a passive
        checkpoint: it never waits for readers). After it, deleting ``project.db-wal`` (a
        user tidying up after a crash) loses nothing committed. True when the whole log went in.
        (PostgreSQL's commit is already in the database: nothing to do.)"""
        if self.dialect != "sqlite":
            return True

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
        if self.dialect == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        self.engine.dispose()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
