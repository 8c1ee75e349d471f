"""Small things an analyst notices on a working day: Ctrl+Q quits as closing does, a project
opened after another says nothing of the other's session, and the hint before the first
learning says what it waits for."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from tests.gui.conftest import open_review


def test_ctrl_q_quits_and_another_project_starts_clean(qtbot, review_project: Path, tmp_path: Path) -> None:
    window = open_review(qtbot, review_project)
    view = window.review_view
    qtbot.keyClick(view, Qt.Key.Key_A)
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert "Rejected" in view.feedback.text()
    # The hint before the ranking has learnt names what it waits for (not "accepted and rejected
    # frames", which the decisions already hold).
    qtbot.keyClick(view, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: "once the ranking has learnt" in view.progress.text()
                    or "at least 2 accepted" in view.progress.text(), timeout=5000)
    # A click on the filmstrip says what it is for (it never changes the frame the keys decide).
    shown = window.review.session.current.frame_id
    view.filmstrip.itemClicked.emit(view.filmstrip.item(0))
    assert view.feedback.text().startswith("The filmstrip shows the frames around this one")
    assert window.review.session.current.frame_id == shown
    # Another (new) project: no word of the first one's session.
    other = tmp_path / "other"
    other.mkdir()
    assert window.controller.open_project(other)
    window.show_review()
    qtbot.waitUntil(lambda: "no footage yet" in view.canvas.message_text(), timeout=10000)
    assert view.feedback.text() == ""
    # A long summary (a learning's) is cut with an ellipsis to the line's width, whole in its tooltip.
    long = "Ranking learnt from 30 decisions: " + ", ".join(f"feature {k}" for k in range(80))
    window._on_work_finished(long)
    shown = window.statusBar().currentMessage()
    assert shown.endswith("…") and long.startswith(shown[:-1]) and window.statusBar().toolTip() == long
    assert window.statusBar().fontMetrics().horizontalAdvance(shown) <= window.statusBar().width()
    (quit_action,) = [a for a in window.actions() if QKeySequence("Ctrl+Q") in a.shortcuts()]
    quit_action.trigger()  # what the key does (an offscreen window never holds the keyboard)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
