"""The status bar's line: a message too long for the window's width is cut with an ellipsis
(never mid-word off the edge) and said whole in the line's tooltip and the log."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QStatusBar

log = logging.getLogger(__name__)


def show(bar: QStatusBar, text: str, ms: int = 15000) -> str:
    """Show ``text`` for ``ms`` milliseconds; returns what fits on the line."""
    room = max(200, bar.width() - 40)
    fitted = bar.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, room)
    bar.showMessage(fitted, ms)
    bar.setToolTip(text if fitted != text else "")
    if fitted != text:
        log.info("%s", text)
    return fitted
