"""Review shows the picture scoring kept at once, outlines where the frame's own pixels put
them, and the exact frame in its place once the analyst stays on it or zooms in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.gui.conftest import open_review as _open
from triage_app.core.ingest.pictures import PICTURES_DIR, make_pictures
from triage_app.core.model.settings import save_section
from triage_app.core.store import Workspace
from triage_app.gui.review import exact_frames


def _reduced_pictures(root: Path, px: int) -> None:
    """Keep the project's pictures at ``px`` pixels (the frames are 640x360): made again."""
    save_section("review", {"picture_px": px}, path=root / "settings.toml", replace=False)
    shutil.rmtree(root / PICTURES_DIR, ignore_errors=True)
    with Workspace(root) as ws:
        assert make_pictures(ws) == ws.frames.frame_count()


def test_the_kept_picture_first_then_the_exact_frame_on_zoom(qtbot, review_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exact_frames, "DWELL_MS", 600_000)  # only a zoom asks for the exact frame here
    _reduced_pictures(review_project, 320)
    window = _open(qtbot, review_project)
    view, canvas = window.review_view, window.review_view.canvas
    assert canvas.showing_picture()
    assert canvas._pixmap.pixmap().width() == 320  # the kept picture...
    assert (canvas.sceneRect().width(), canvas.sceneRect().height()) == (640, 360)  # ...drawn at the frame's size
    assert canvas._pixmap.sceneBoundingRect().width() == pytest.approx(640)
    box = canvas.focus_box
    assert box is not None and box.right() <= 640 and box.bottom() <= 360  # outlines in the frame's pixels
    qtbot.keyClick(view, Qt.Key.Key_Plus)  # zoom in: the exact frame is wanted now
    zoomed = canvas.transform().m11()
    qtbot.waitUntil(lambda: not canvas.showing_picture(), timeout=10000)
    assert canvas._pixmap.pixmap().width() == 640 and canvas._pixmap.scale() == 1.0
    assert canvas.transform().m11() == zoomed and canvas.zoomed  # the analyst's zoom stays
    assert canvas.focus_box == box and canvas.sceneRect().width() == 640
    # The next candidate comes up at once from its own kept picture.
    first = window.review.session.current.frame_id
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert window.review.session.current.frame_id != first
    qtbot.waitUntil(lambda: not canvas._pixmap.pixmap().isNull() and canvas.showing_picture(), timeout=10000)
    # Undo brings the first frame back, sharp at once (its exact frame was decoded already).
    qtbot.keyClick(view, Qt.Key.Key_Z)
    assert window.review.session.current.frame_id == first
    qtbot.waitUntil(lambda: not canvas.showing_picture() and canvas._pixmap.pixmap().width() == 640, timeout=10000)


def test_the_exact_frame_replaces_the_picture_when_the_analyst_stays(qtbot, review_project: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exact_frames, "DWELL_MS", 50)
    _reduced_pictures(review_project, 320)
    window = _open(qtbot, review_project)
    canvas = window.review_view.canvas
    qtbot.waitUntil(lambda: not canvas.showing_picture(), timeout=10000)
    assert canvas._pixmap.pixmap().width() == 640
    assert not canvas.zoomed  # it opened whole and stays whole


def test_pictures_missing_are_made_in_the_background(qtbot, review_project: Path) -> None:
    shutil.rmtree(review_project / PICTURES_DIR)  # scored before pictures were kept
    window = _open(qtbot, review_project)  # the first frame decoded from the footage, as before
    with Workspace(review_project) as ws:
        frames = ws.frames.frame_count()
    qtbot.waitUntil(lambda: len(list((review_project / PICTURES_DIR).rglob("*.jpg"))) == frames, timeout=20000)
    assert window.review.session.current is not None


def test_the_tabs_count_a_decision_at_once(qtbot, review_project: Path) -> None:
    """The Finds and Decided counts follow each key within a moment, before their lists are
    rebuilt (which waits for the decisions to pause)."""
    window = _open(qtbot, review_project)
    view, tabs = window.review_view, window.tabs

    def label(page) -> str:
        return tabs.tabText(tabs.indexOf(page))

    qtbot.waitUntil(lambda: label(window.finds_view) == "Finds (0)" and label(window.decided_view) == "Decided (0)", timeout=10000)
    qtbot.keyClick(view, Qt.Key.Key_A)
    qtbot.keyClick(view, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: label(window.finds_view) == "Finds (1)" and label(window.decided_view) == "Decided (2)", timeout=1500)
    assert window.finds._timer.isActive() and window.decided._timer.isActive()  # the lists are not rebuilt yet
    qtbot.keyClick(view, Qt.Key.Key_Z)
    qtbot.keyClick(view, Qt.Key.Key_Z)
    qtbot.waitUntil(lambda: label(window.finds_view) == "Finds (0)" and label(window.decided_view) == "Decided (0)", timeout=1500)
    qtbot.waitUntil(lambda: not window.finds._timer.isActive() and window.finds._task is None, timeout=10000)
    assert label(window.finds_view) == "Finds (0)" and window.finds.items == []  # the list agrees with the count
