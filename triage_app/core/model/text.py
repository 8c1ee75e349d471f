"""Text that came from users' files (source names, paths, reviewers) made safe for where it
goes: XML (KML, GPX) admits no control characters at all, even escaped; a terminal obeys
escape codes and breaks lines. Neither may be handed raw text from a folder name."""

from __future__ import annotations

import re

from triage_app.core.model.errors import printable

# XML 1.0 allows tab, newline, carriage return and everything from U+0020, less the
# surrogates and U+FFFE / U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# C0 and C1 controls and DEL: escape codes, bells, line breaks, backspaces.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def xml_safe(text: object) -> str:
    """``text`` with what XML cannot hold replaced by U+FFFD (escaping ``<`` and ``&`` is the
    XML writer's job)."""
    return _NOT_XML.sub("\ufffd", printable(str(text)))


def terminal_safe(text: object) -> str:
    """``text`` for one line of a terminal: control characters shown as ``\\xNN`` escapes,
    never obeyed."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", printable(str(text)))


def utc_time(stamp: str | None) -> str | None:
    """An ISO 8601 time as UTC (``2024-05-01T08:30:00Z``), for formats that require UTC (GPX
    ``<time>``, KML ``<when>``), or None when it cannot be one: a camera's clock with no zone
    (a naive time) is local to somewhere unknown, and writing it as UTC would put it hours off."""
    import datetime as dt

    if not stamp:
        return None
    try:
        when = dt.datetime.fromisoformat(str(stamp).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None or when.utcoffset() is None:
        return None
    when = when.astimezone(dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{when.microsecond:06d}".rstrip("0") if when.microsecond else "") + "Z"


def duration_words(seconds: float) -> str:
    """A length of time as a person says it: seconds under a minute and a half, then minutes,
    then hours."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
