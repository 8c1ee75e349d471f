"""The store: the one owner of SQL. A project is a folder with one database (``project.db``,
SQLite in WAL mode) and, beside it, the embedding cache and kept stream frames; a
:class:`Workspace` opens it with its settings and model cards and hands out one store per
kind of record. No SQL statement runs outside this package."""

from triage_app.core.store.db import SCHEMA_VERSION, Database
from triage_app.core.store.workspace import Workspace

__all__ = ["Database", "SCHEMA_VERSION", "Workspace"]
