"""One writer of frames, scores and embeddings per project, across processes.

Scoring appends to the embedding cache and records how many rows are committed; two
scorers at once would each append and each record their own count, and the cache would
hold other frames' vectors for good. So ingest and scoring take the project's writer lock:
an OS-level lock (``filelock``: ``flock`` on Unix, ``LockFileEx`` on Windows) on
``PROJECT/.triage-writer.lock`` that the operating system releases when its process dies,
however it dies. Who holds it (command, process, host, since when) is written beside it, so
that a second run can say who it waits for. On a team store (PostgreSQL) the lock is a
session-level advisory lock of the database instead, which every analyst's machine sees and
the server releases when the holder's connection ends (a file lock on a network share is
not to be trusted). Decisions, policies and reports need no lock: the database serialises
their short transactions.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from triage_app.core.model.errors import StoreError

LOCK_NAME = ".triage-writer.lock"
HOLDER_NAME = ".triage-writer.json"


class ProjectBusy(StoreError):
    """Another process (or another task of this one) is writing the project."""


def _command() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    args = [a for a in sys.argv[1:3] if not a.startswith("-")]
    return " ".join([name, *args[:1]]) if name in ("triage", "__main__.py") else name


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock with ``FileLock``'s acquire and release: held
    on a connection of its own, released by the server when that connection ends."""

    KEY = 0x7472_6961_6767  # one per database: the project's writer

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._conn: Any = None

    def acquire(self, timeout: float = 0.0) -> None:
        conn = self.engine.connect()
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            if conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({self.KEY:d})").scalar():
                conn.commit()
                self._conn = conn
                return
            conn.rollback()
            if time.monotonic() >= deadline:
                conn.close()
                raise Timeout(str(self.KEY))
            time.sleep(0.2)

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({self.KEY:d})")
                conn.commit()
            finally:
                conn.close()


class WriterLock:
    """The project's writer lock: re-entrant in the thread that holds it, exclusive against
    other threads of this process and against other processes (on a team store, on every
    machine: ``engine`` is its database's)."""

    def __init__(self, root: Path, engine: Any = None) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_NAME
        self.holder_path = self.root / HOLDER_NAME
        self._file: Any = FileLock(str(self.path), thread_local=False) if engine is None else AdvisoryLock(engine)
        self._guard = threading.RLock()
        self._owner: int | None = None
        self._depth = 0
        self._what = ""

    def holder(self) -> dict[str, object] | None:
        """Who holds the lock by the note it left (None when unknown)."""
        try:
            return json.loads(self.holder_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _busy(self, wanted: str) -> ProjectBusy:
        if self._owner is not None and self._owner != threading.get_ident():
            who = f"{self._what} in this window"
        else:
            h = self.holder() or {}
            since = h.get("since")
            when = time.strftime("%H:%M:%S", time.localtime(float(since))) if isinstance(since, (int, float)) else "?"
            who = (f"{h.get('what', 'another run')} ({h.get('command', '?')}, process {h.get('pid', '?')} on "
                   f"{h.get('host', '?')}, since {when})") if h else "another run"
        return ProjectBusy(f"{self.root}: cannot start {wanted}: {who} is writing this project. Try again when it ends "
                           "(two writers at once would corrupt the embedding cache).")

    @contextmanager
    def hold(self, what: str, wait_s: float = 0.0) -> Iterator[None]:
        """Hold the lock for ``what`` (waiting up to ``wait_s`` seconds for it), or raise
        :class:`ProjectBusy` naming who holds it."""
        me = threading.get_ident()
        if not self._guard.acquire(timeout=wait_s if wait_s > 0 else 0):
            raise self._busy(what) from None
        try:
            if self._owner == me:  # re-entrant: ingest then score in one task
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            try:
                self._file.acquire(timeout=wait_s if wait_s > 0 else 0)
            except Timeout:
                raise self._busy(what) from None
            except OSError as exc:
                raise StoreError(f"{self.path}: the project's writer lock cannot be taken ({exc.strerror or exc}); "
                                 "is the folder read-only?") from exc
            self._owner, self._depth, self._what = me, 1, what
            try:
                self._note(what)
                yield
            finally:
                self._owner, self._depth, self._what = None, 0, ""
                try:
                    self.holder_path.unlink(missing_ok=True)
                except OSError:
                    pass
                self._file.release()
        finally:
            self._guard.release()

    def _note(self, what: str) -> None:
        note = {"what": what, "command": _command(), "pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        try:
            tmp = self.holder_path.with_name(self.holder_path.name + ".tmp")
            tmp.write_text(json.dumps(note), encoding="utf-8")
            os.replace(tmp, self.holder_path)
        except OSError:
            pass  # the note only helps a second run say who it waits for
