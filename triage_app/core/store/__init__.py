"""The project store: one folder, one SQLite database (WAL), arrays beside it.

Every SQL statement of the program lives in this package."""

from triage_app.core.store.db import Database, SCHEMA_VERSION
from triage_app.core.store.project import Project

__all__ = ["Database", "Project", "SCHEMA_VERSION"]
