from __future__ import annotations

import sqlite3
from pathlib import Path

from PySide6.QtCore import Qt

from tests.gui.conftest import shot
from triage_app.gui.main_window import MainWindow


def _labels(root: Path) -> list[tuple[int, str]]:
    raw = sqlite3.connect(root / "project.db")
    return raw.execute("SELECT frame_id, label FROM decisions WHERE undone_at IS NULL ORDER BY id").fetchall()


def _open(qtbot, root: Path) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    assert window.controller.open_project(root)
    window.show_review()
    view = window.review_view
    qtbot.waitUntil(lambda: not view.canvas._pixmap.pixmap().isNull(), timeout=10000)
    return window


def test_review_flow_by_keys(qtbot, review_project: Path) -> None:
    window = _open(qtbot, review_project)
    view, review = window.review_view, window.review
    session = review.session
    assert len(session.queue) == 12 and window.tabs.tabText(1) == "Review (12)"
    assert "Candidate 1 of 12" in view.header.text() and "imagenet" in view.scores.text()
    assert "time in video" in view.telemetry.text()
    assert view.filmstrip.count() >= 2
    shot(window, "review.png")

    first = session.current.frame_id
    qtbot.keyClick(view, Qt.Key.Key_A)
    second = session.current.frame_id
    qtbot.keyClick(view, Qt.Key.Key_R)
    qtbot.keyClick(view, Qt.Key.Key_U)
    assert [l for _, l in _labels(review_project)] == ["accept", "reject", "unsure"]
    assert _labels(review_project)[0][0] == first and _labels(review_project)[1][0] == second
    # Undo, several levels: the frames come back to the queue.
    qtbot.keyClick(view, Qt.Key.Key_Z)
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _labels(review_project) == [(first, "accept")]
    assert session.current.frame_id == second and len(session.queue) == 11
    # Next / previous.
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert session.position == 1
    qtbot.keyClick(view, Qt.Key.Key_Left)
    assert session.position == 0
    # Zoom on the firing tile and back.
    qtbot.keyClick(view, Qt.Key.Key_F)
    assert view.canvas.transform().m11() > 1.0 or view.canvas.focus_box is not None
    # Help overlay.
    qtbot.keyClick(view, Qt.Key.Key_Question)
    assert view.help.isVisible()
    shot(window, "review_help.png")
    qtbot.keyClick(view, Qt.Key.Key_Question)
    assert not view.help.isVisible()
    # Reject the whole event (all remaining frames are one event), then undo it in one step.
    qtbot.keyClick(view, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    assert len(session.queue) == 0 and len(_labels(review_project)) == 12
    assert "No candidate waiting" in view.header.text()
    qtbot.keyClick(view, Qt.Key.Key_Z)
    assert len(session.queue) == 11 and len(_labels(review_project)) == 1
    window.controller.close()


def test_grid_mode_rejects_a_page_with_marked_accepts(qtbot, review_project: Path) -> None:
    window = _open(qtbot, review_project)
    view = window.review_view
    qtbot.keyClick(view, Qt.Key.Key_G)
    assert view.grid_mode and view.grid.count() == 9
    page = [view.grid.item(i).data(Qt.ItemDataRole.UserRole) for i in range(9)]
    qtbot.keyClick(view, Qt.Key.Key_2)
    qtbot.keyClick(view, Qt.Key.Key_5)
    qtbot.waitUntil(lambda: not view.grid.item(0).icon().isNull(), timeout=10000)
    shot(window, "review_grid.png")
    qtbot.keyClick(view, Qt.Key.Key_R)
    labels = dict(_labels(review_project))
    assert [labels[f] for f in page] == ["reject", "accept", "reject", "reject", "accept", "reject", "reject", "reject", "reject"]
    assert view.grid.count() == 3  # the next page holds the 3 left
    qtbot.keyClick(view, Qt.Key.Key_Z)
    assert _labels(review_project) == [] and view.grid.count() == 9
    qtbot.keyClick(view, Qt.Key.Key_G)
    assert not view.grid_mode
    window.controller.close()


def test_queue_grows_while_scoring_runs(qtbot, review_project: Path, ortho) -> None:
    from tests.conftest import write_flight

    window = _open(qtbot, review_project)
    review = window.review
    before = len(review.session.queue)
    video = write_flight(review_project.parent / "second.mp4", ortho, frames=20, size=(640, 360))
    with qtbot.waitSignal(window.controller.scores_did_commit, timeout=60000):
        window.controller.ingest([str(video)])
    qtbot.waitUntil(lambda: len(review.session.queue) > before, timeout=60000)
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=60000)
    review.refresh()
    assert len(review.session.queue) == before + 20
    assert window.sources_view.rowCount() == 2 and window.sources_view.item(1, 4).text() == "20"
    shot(window.tabs.widget(0), "sources.png")
    window.controller.close()
