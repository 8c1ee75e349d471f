"""The project's own exceptions. Every message names the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path


def printable(text: str) -> str:
    """Text safe to print and store: a path whose bytes are not UTF-8 (Python keeps those
    bytes as lone surrogates) shows U+FFFD where the bad bytes were."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class TriageError(Exception):
    """Base class for every error the program reports to a user."""


class InputError(TriageError):
    """A user-supplied file cannot be used; ``path`` names it."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(printable(f"{self.path}: {problem}"))


class SourceError(InputError):
    """A video, image folder or stream cannot be opened or read."""


class TelemetryParseError(InputError):
    """A telemetry file (DJI .SRT) is malformed."""


class StoreError(TriageError):
    """The project database cannot be opened or written."""


class NoProjectError(StoreError):
    """The path named as a project is no project folder (missing, or a file)."""


class StoreUnavailable(StoreError):
    """A team store's database server cannot be reached (network cut, server restarting):
    what was not written can be sent again once it is back. ``reason`` is the short form."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class StoreVersionError(StoreError):
    """The project database was written by a newer version of the program."""


class ModelError(InputError):
    """A model file or card cannot be used."""


class SettingsError(TriageError):
    """A settings file or value is invalid."""
