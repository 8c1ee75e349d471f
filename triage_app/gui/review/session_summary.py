"""A review session's summary, kept in the project when the window closes and said to the same
reviewer when they open the project again."""

from __future__ import annotations

import logging

from triage_app.core.model.errors import StoreError
from triage_app.core.store import Workspace
from triage_app.gui.tables import local_time

log = logging.getLogger(__name__)

#: How a session's summary is kept in the project's messages (one per session that decided).
SESSION_NOTE = "review session of"


def keep_summary(ws: Workspace, text: str, reviewer: str) -> None:
    """``text`` (``Pace.summary()``) into the log file and the project's messages."""
    log.info("%s", text)  # in the log file, for the analyst's records
    try:
        ws.frames.add_message("info", f"{SESSION_NOTE} {reviewer}: {text}")
    except StoreError as exc:
        log.warning("the session's summary could not be kept in the project: %s", exc)


def last_summary(ws: Workspace, reviewer: str) -> str:
    """The reviewer's last session in this project, in words ("" if none)."""
    lead = f"{SESSION_NOTE} {reviewer}: This session: "
    rows = [r for r in ws.frames.message_rows() if r["level"] == "info" and str(r["message"]).startswith(lead)]
    if not rows:
        return ""
    when = local_time(str(rows[-1]["created_at"]))[:16]
    return f"Your last session here, ended {when}: {str(rows[-1]['message'])[len(lead):]}"
