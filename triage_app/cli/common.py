"""What every ``triage`` command shares: the progress bar, opening the project with the
command line's settings, list arguments."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from triage_app.core.model.settings import Settings, load_settings
from triage_app.core.store import Workspace


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


def cli_settings(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Settings:
    """The settings for this command: the project's (when it names one), then ``overrides``."""
    project = getattr(args, "project", None)
    return load_settings(Path(project) if project else None, overrides=overrides)


def open_project(args: argparse.Namespace, overrides: dict[str, Any] | None = None, create: bool = False) -> Workspace:
    """The project the command names, with the command line's settings."""
    return Workspace(args.project, settings=cli_settings(args, overrides), create=create)


def csv_list(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]
