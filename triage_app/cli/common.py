"""What every ``triage`` command shares: the progress bar, opening the project with the
command line's settings, list arguments, the exit statuses."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from triage_app.core.model.errors import InputError, NoProjectError, SettingsError, StoreError, TriageError
from triage_app.core.model.settings import Settings, load_settings
from triage_app.core.store import Workspace
from triage_app.core.store.db import is_store_url

#: Exit statuses, one per kind of failure, so that scripts can tell them apart.
EXIT_NOTHING_DONE = 1  # the command ran, but none of its inputs could be used (each named on stderr)
EXIT_USAGE = 2  # the command line asks for something that cannot be done as given (argparse's own code too)
EXIT_INPUT = 3  # a file, folder, project or setting it names is missing or cannot be used
EXIT_STORE = 4  # the project's database cannot be opened or written
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def exit_status(exc: TriageError) -> int:
    """The exit status for an error the program reports."""
    if isinstance(exc, (InputError, SettingsError, NoProjectError)):
        return EXIT_INPUT
    if isinstance(exc, StoreError):
        return EXIT_STORE
    return EXIT_USAGE


class ProgressBar:
    """A tqdm progress bar fed by (done, total) callbacks."""

    def __init__(self, desc: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=False, disable=None)

    def __call__(self, done: int, total: int | None) -> None:
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def project_location(text: str) -> str | Path:
    """A command's PROJECT: a folder, or a team store's PostgreSQL URL (kept as written)."""
    return text if is_store_url(text) else Path(text)


def cli_settings(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Settings:
    """The settings for this command: the project's (when it names one), then ``overrides``."""
    project = getattr(args, "project", None)
    return load_settings(Path(project) if project else None, overrides=overrides)


def open_project(args: argparse.Namespace, overrides: dict[str, Any] | None = None, create: bool = False) -> Workspace:
    """The project the command names, with the command line's settings."""
    return Workspace(args.project, overrides=overrides, create=create)  # its own settings, then the command line's


def csv_list(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]
