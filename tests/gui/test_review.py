from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from tests.gui.conftest import open_review as _open
from tests.gui.conftest import shot
from triage_app.gui.main_window import MainWindow


def _labels(root: Path) -> list[tuple[int, str]]:
    raw = sqlite3.connect(root / "project.db")
    return raw.execute("SELECT frame_id, label FROM decisions WHERE undone_at IS NULL ORDER BY id").fetchall()


def test_review_flow_by_keys(qtbot, review_project: Path) -> None:
    window = _open(qtbot, review_project)
    view, review = window.review_view, window.review
    session = review.session
    assert len(session.queue) == 12 and window.tabs.tabText(1) == "Review (12)"
    assert view.header.text().startswith("Waiting: 12  ·  ") and "imagenet" in view.scores.text()
    assert "time in video" in view.telemetry.text()
    assert view.filmstrip.count() >= 2
    shot(window, "review.png")

    first = session.current.frame_id
    qtbot.keyClick(view, Qt.Key.Key_A)
    second = session.current.frame_id
    qtbot.keyClick(view, Qt.Key.Key_R)
    qtbot.keyClick(view, Qt.Key.Key_U)
    assert [label for _, label in _labels(review_project)] == ["accept", "reject", "unsure"]
    assert _labels(review_project)[0][0] == first and _labels(review_project)[1][0] == second
    # Undo, several levels: the frames come back to the queue.
    qtbot.keyClick(view, Qt.Key.Key_Z)
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _labels(review_project) == [(first, "accept")]
    assert session.current.frame_id == second and len(session.queue) == 11
    assert view.header.text().startswith("Waiting: 11  ·  ")  # the count follows the decisions
    # Next / previous.
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert session.position == 1 and view.header.text().startswith("Waiting: 11 (this is number 2)  ·  ")
    qtbot.keyClick(view, Qt.Key.Key_Left)
    assert session.position == 0
    # Zoom on the firing tile: go to a candidate whose best tile is a grid tile (smaller than
    # the frame), press F: the view scales up onto it; 0 fits the frame again.

    store = window.controller.ws.scores
    target = next(i for i, c in enumerate(session.queue.items) if store.frame_scores(c.frame_id)[0]["tile"] > 0)
    for _ in range(target):
        qtbot.keyClick(view, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: view.canvas.focus_box is not None
                    and view.canvas.focus_box.width() < view.canvas.sceneRect().width(), timeout=10000)
    fitted = view.canvas.transform().m11()
    box = view.canvas.focus_box
    qtbot.keyClick(view, Qt.Key.Key_F)
    seen = view.canvas.mapToScene(view.canvas.viewport().rect()).boundingRect()
    assert seen.adjusted(-2, -2, 2, 2).contains(box)  # the whole tile is on screen...
    assert seen.width() <= box.width() * 1.1 or seen.height() <= box.height() * 1.1  # ...and fills it
    assert view.canvas.transform().m11() >= fitted
    qtbot.keyClick(view, Qt.Key.Key_0)
    assert abs(view.canvas.transform().m11() - fitted) < 1e-6
    for _ in range(target):
        qtbot.keyClick(view, Qt.Key.Key_Left)
    assert session.position == 0
    # Help overlay.
    qtbot.keyClick(view, Qt.Key.Key_Question)
    assert view.help.isVisible()
    shot(window, "review_help.png")
    qtbot.keyClick(view, Qt.Key.Key_Question)
    assert not view.help.isVisible()
    # Reject the rest of the event on screen (the frames of half a second: events are short
    # windows, never the flight), then undo it in one step.
    at = next(i for i, c in enumerate(session.queue.items) if len(session.queue.event_members(c.event)) > 1)
    for _ in range(at):
        qtbot.keyClick(view, Qt.Key.Key_Right)
    event = {c.frame_id for c in session.queue.event_members(session.current.event)}
    on_strip = {view.filmstrip.item(i).data(Qt.ItemDataRole.UserRole) for i in range(view.filmstrip.count())}
    # Only what is on screen and was not passed over: the frames this test moved past are left.
    members = {session.current.frame_id} | (event & on_strip) - session.skipped
    assert 1 < len(members) < len(session.queue) and session.skipped & event
    qtbot.keyClick(view, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    assert len(session.queue) == 11 - len(members) and len(_labels(review_project)) == 1 + len(members)
    assert not members & {c.frame_id for c in session.queue.items}
    assert f"Rejected {len(members)} frames" in view.feedback.text() and f"Z takes all {len(members)} back" in view.feedback.text()
    qtbot.keyClick(view, Qt.Key.Key_Z)
    assert len(session.queue) == 11 and len(_labels(review_project)) == 1
    assert f"Took back {len(members)} decisions" in view.feedback.text()
    window.controller.close()


def test_the_filmstrip_marks_decided_frames_and_the_feedback_names_the_last_decision(qtbot, review_project: Path) -> None:
    window = _open(qtbot, review_project)
    view, session = window.review_view, window.review.session
    first = session.current.frame_id
    qtbot.keyClick(view, Qt.Key.Key_A)
    assert view.feedback.text().startswith("Accepted the frame at t=") and "Z takes it back" in view.feedback.text()
    captions = {view.filmstrip.item(i).data(Qt.ItemDataRole.UserRole): view.filmstrip.item(i).text()
                for i in range(view.filmstrip.count())}
    assert captions[first].endswith("✓ accepted")
    assert sum("✓" in t or "✗" in t for t in captions.values()) == 1
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert view.feedback.text().startswith("Rejected the frame at t=")
    qtbot.keyClick(view, Qt.Key.Key_Z)
    qtbot.keyClick(view, Qt.Key.Key_Z)
    assert "Took back 1 decision:" in view.feedback.text() and not _labels(review_project)
    assert not any("✓" in view.filmstrip.item(i).text() for i in range(view.filmstrip.count()))
    window.controller.close()


def test_grid_mode_rejects_a_page_with_marked_accepts(qtbot, review_project: Path) -> None:
    window = _open(qtbot, review_project)
    view = window.review_view
    qtbot.keyClick(view, Qt.Key.Key_G)
    assert view.grid_mode and view.grid.count() == 9
    assert view.footer.text().startswith("1-9") and "A accept" not in view.footer.text()  # the grid's own keys
    assert not view.filmstrip.isVisible()  # one frame's neighbours mean nothing beside nine candidates
    page = [view.grid.item(i).data(Qt.ItemDataRole.UserRole) for i in range(9)]
    qtbot.keyClick(view, Qt.Key.Key_2)
    qtbot.keyClick(view, Qt.Key.Key_5)
    qtbot.keyClick(view, Qt.Key.Key_7)
    qtbot.keyClick(view, Qt.Key.Key_7)  # a second press: unsure
    qtbot.keyClick(view, Qt.Key.Key_9)
    qtbot.keyClick(view, Qt.Key.Key_9)
    qtbot.keyClick(view, Qt.Key.Key_9)  # a third: neither
    assert view.grid.item(6).text().endswith("? unsure") and not view.grid.item(8).text().endswith(("accept", "unsure"))
    # Each thumbnail outlines its frame's firing tile, in the frame's place scaled down.
    from triage_app.gui.review.candidate_text import grid_boxes

    boxes = grid_boxes(window.controller.ws, page)
    k, (rect, colour) = next((k, b[0][0]) for k, b in enumerate(boxes[f] for f in page) if b[0])
    frame_w = boxes[page[k]][1]
    qtbot.waitUntil(lambda: bool(view.grid.item(k).icon().availableSizes())
                    and view.grid.item(k).icon().availableSizes()[0].width() > 300, timeout=10000)  # the picture, not the placeholder
    icon = view.grid.item(k).icon()
    thumb = icon.pixmap(icon.availableSizes()[0]).toImage()
    s = thumb.width() / frame_w
    want = QColor(colour)
    x, y = int((rect.x() + rect.width() / 2) * s), int(rect.y() * s)  # the middle of the box's top edge

    def off(c: QColor) -> int:
        return abs(c.red() - want.red()) + abs(c.green() - want.green()) + abs(c.blue() - want.blue())

    assert min(off(thumb.pixelColor(x, min(thumb.height() - 1, max(0, y + d)))) for d in range(-2, 3)) < 60
    shot(window, "review_grid.png")
    qtbot.keyClick(view, Qt.Key.Key_R)
    labels = dict(_labels(review_project))
    assert [labels[f] for f in page] == ["reject", "accept", "reject", "reject", "accept", "reject", "unsure", "reject", "reject"]
    assert view.grid.count() == 3  # the next page holds the 3 left
    qtbot.keyClick(view, Qt.Key.Key_Z)
    assert _labels(review_project) == [] and view.grid.count() == 9
    # The page comes back with its marks as they were decided.
    assert [view.grid.labels()[f] for f in page] == ["reject", "accept", "reject", "reject", "accept", "reject", "unsure",
                                                     "reject", "reject"]
    assert view.grid.item(1).text().endswith("✔ accept") and view.grid.item(6).text().endswith("? unsure")
    qtbot.keyClick(view, Qt.Key.Key_G)
    assert not view.grid_mode and view.footer.text().startswith("A accept") and view.filmstrip.isVisible()
    window.controller.close()


def test_queue_grows_while_scoring_runs(qtbot, review_project: Path, ortho) -> None:
    from tests.conftest import write_flight

    window = _open(qtbot, review_project)
    review = window.review
    before = len(review.session.queue)
    video = write_flight(review_project.parent / "second.mp4", ortho, frames=20, size=(640, 360))
    from triage_app.gui.tasks import Change

    with qtbot.waitSignal(window.controller.project_did_change, timeout=60000,
                          check_params_cb=lambda change: bool(change & Change.SCORES)):
        window.controller.ingest([str(video)])
    qtbot.waitUntil(lambda: len(review.session.queue) > before, timeout=60000)
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=60000)
    with qtbot.waitSignal(review.queue_did_change, timeout=30000):
        review.refresh()  # rebuilt on a worker; the signal says it is in place
    assert len(review.session.queue) == before + 20
    assert window.sources_view.rowCount() == 2 and window.sources_view.item(1, 6).text() == "20"
    assert window.sources_view.item(1, 4).text() == "20" and "not scored" not in window.sources_view.item(1, 9).text()
    shot(window.tabs.widget(0), "sources.png")
    window.controller.close()


def test_canvas_zooms_onto_a_small_tile_and_back(qtbot) -> None:
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QImage

    from triage_app.gui.review.frame_canvas import FrameCanvas

    canvas = FrameCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(800, 450)
    canvas.show()
    image = QImage(3840, 2160, QImage.Format.Format_RGB888)
    image.fill(0x336699)
    canvas.show_frame(image, [(QRectF(2000, 1000, 448, 448), "#ff0000", "imagenet 0.91")])
    fitted = canvas.transform().m11()
    canvas.zoom_to_focus()
    assert canvas.transform().m11() > fitted * 4  # a 448 px tile of a 4K frame fills the view
    seen = canvas.mapToScene(canvas.viewport().rect()).boundingRect()
    assert seen.adjusted(-2, -2, 2, 2).contains(QRectF(2000, 1000, 448, 448))
    canvas.fit()
    assert abs(canvas.transform().m11() - fitted) < 1e-9
    # Zoomed in, the view stays zoomed when the canvas is resized (a line of text appearing
    # above it, the window growing): it used to snap back to the whole frame at once.
    canvas.zoom(2.0)
    zoomed = canvas.transform().m11()
    canvas.resize(800, 420)
    qtbot.wait(50)
    assert abs(canvas.transform().m11() - zoomed) < 1e-9 and canvas.zoomed
    canvas.fit()  # 0 fits again, and then a resize fits too
    canvas.resize(800, 450)
    qtbot.wait(50)
    assert not canvas.zoomed and abs(canvas.transform().m11() - fitted) < 1e-6


def test_supervisor_settles_disagreements_from_the_resolve_queue(qtbot, review_project: Path) -> None:
    from PySide6.QtCore import Qt

    from triage_app.core.review.agreement import disagreements
    from triage_app.core.store import Workspace
    from triage_app.gui.main_window import MainWindow

    with Workspace(review_project) as p:
        rows = p.frames.frame_rows()
        store = p.decisions
        for who, flip in (("ana", False), ("bob", True)):
            store.record([dict(frame_id=r["id"], label=("reject" if flip else "accept") if i < 3 else "accept", reviewer=who,
                               seconds_spent=1.0, policy="p", member_scores="{}") for i, r in enumerate(rows[:6])])
        disputed = disagreements(p)
    assert len(disputed) == 3
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    assert window.controller.open_project(review_project)
    window.show_review()
    window.resolve_action.setChecked(True)
    session = window.review.session
    # Every disputed frame and nothing else, in the review order (most likely first).
    assert session.resolve and sorted(c.frame_id for c in session.queue.items) == disputed
    assert {c.kind for c in session.queue.items} == {"resolve"}
    assert window.review_view.header.text().startswith("Disagreements to resolve: 3  ·  ")
    first = session.queue.items[0].frame_id
    qtbot.keyClick(window.review_view, Qt.Key.Key_A)
    with Workspace(review_project) as p:
        assert disagreements(p) == [f for f in disputed if f != first]
        kinds = {d.frame_id: d.sample_kind for d in p.decisions.current()}
    assert kinds[first] == "resolve"
    shot(window, "resolve_queue.png")
    window.resolve_action.setChecked(False)
    assert not window.review.session.resolve
    window.controller.close()


def test_the_reviewer_is_named_in_the_window_remembered_and_recorded(qtbot, review_project: Path) -> None:
    """Analysts sharing a machine say who is reviewing in the toolbar: the name goes with
    every decision from then on and into their own settings file (the project's own file,
    which names ana here, is said to win when the project is opened again)."""
    import os

    window = _open(qtbot, review_project)
    edit, review = window.reviewer_edit, window.review
    assert edit.text() == "ana"
    edit.setText("ben")
    edit.editingFinished.emit()
    message = window.statusBar().currentMessage()
    assert message.startswith("Reviewing as ben (saved in ") and "names ana, which wins" in message
    assert review.session.reviewer == "ben" and window.controller.settings.review.reviewer == "ben"
    assert 'reviewer = "ben"' in Path(os.environ["TRIAGE_SETTINGS"]).read_text()
    qtbot.waitUntil(lambda: not window.review_view.canvas._pixmap.pixmap().isNull(), timeout=10000)
    frame = review.session.current.frame_id
    qtbot.keyClick(window.review_view, Qt.Key.Key_A)
    raw = sqlite3.connect(review_project / "project.db")
    assert raw.execute("SELECT reviewer FROM decisions WHERE frame_id = ?", (frame,)).fetchone() == ("ben",)
    edit.setText("  ")
    edit.editingFinished.emit()  # no name: refused, the field shows who still reviews
    assert edit.text() == "ben" and review.session.reviewer == "ben"
    # Enter in the field gives the keys back to reviewing: A decides, it does not type "a".
    edit.setFocus()
    qtbot.keyClicks(edit, "x")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert not edit.hasFocus() and window.review_view.hasFocus()
    decided = raw.execute("SELECT count(*) FROM decisions").fetchone()[0]
    qtbot.keyClick(window.focusWidget() or window.review_view, Qt.Key.Key_A)
    assert raw.execute("SELECT count(*) FROM decisions").fetchone()[0] == decided + 1
    assert edit.text() == "benx"
    assert window.cancel_button.focusPolicy() == Qt.FocusPolicy.NoFocus  # a click leaves no focus behind
    window.controller.close()


def test_a_member_keeps_its_colour_whatever_its_rank_on_the_frame() -> None:
    from triage_app.gui.review.review_view import member_colour

    members = ["clip", "head", "imagenet"]
    assert member_colour("imagenet", members) == member_colour("imagenet", list(reversed(members)))
    assert len({member_colour(m, members) for m in members}) == 3


def test_filmstrip_captions_tell_frames_a_quarter_second_apart() -> None:
    from triage_app.gui.review.candidate_text import short_time

    assert [short_time(t) for t in (0.0, 0.25, 0.5, 0.75, 12.5, 187.25)] == ["0s", "0.25s", "0.5s", "0.75s", "12.5s",
                                                                             "3:07.25"]


def test_an_empty_review_says_why_and_what_to_do(qtbot, tmp_path: Path, review_project: Path) -> None:
    """No footage: how to add some. Footage not scored: press Score. Everything decided: where
    the finds are. Never "new ones appear while scoring runs" when nothing scores."""
    from triage_app.core.store import Workspace

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    assert window.controller.open_project(tmp_path / "empty")
    window.show_review()
    view = window.review_view
    qtbot.waitUntil(lambda: "no footage yet" in view.canvas.message_text(), timeout=10000)
    assert "Drop videos" in view.canvas.message_text() and "scoring runs" not in view.canvas.message_text()
    window.controller.close()

    with Workspace(review_project) as p:  # every candidate decided
        ids = [r["id"] for r in p.frames.frame_rows()]
        p.decisions.record([dict(frame_id=f, label="reject", reviewer="ana", seconds_spent=1, policy="p",
                                 member_scores="{}") for f in ids])
    assert window.controller.open_project(review_project)
    window.show_review()
    qtbot.waitUntil(lambda: "Every candidate has been reviewed" in view.canvas.message_text(), timeout=10000)
    assert "Finds tab" in view.canvas.message_text()
    window.controller.close()


def test_a_click_on_the_filmstrip_adds_no_second_highlight(qtbot, review_project: Path) -> None:
    from PySide6.QtTest import QTest

    window = _open(qtbot, review_project)
    view, session = window.review_view, window.review.session
    current = session.current.frame_id
    other = next(i for i in range(view.filmstrip.count())
                 if view.filmstrip.item(i).data(Qt.ItemDataRole.UserRole) != current)
    rect = view.filmstrip.visualItemRect(view.filmstrip.item(other))
    QTest.mouseClick(view.filmstrip.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert not view.filmstrip.selectedItems()
    qtbot.keyClick(view, Qt.Key.Key_A)
    assert _labels(review_project) == [(current, "accept")]  # the frame in the large view, as the highlight said
    window.controller.close()


def test_a_score_bar_is_filled_to_the_score_with_the_threshold_marked() -> None:
    from triage_app.gui.review.candidate_text import score_bar

    cells = score_bar(0.5, 0.25, "#ff0000", length=8).split("</span>")[:-1]
    assert len(cells) == 8
    assert "#111" in cells[2] and all("#111" not in c for i, c in enumerate(cells) if i != 2)
    assert [("#ff0000" in c) for c in cells] == [True, True, False, True, False, False, False, False]
    assert "#111" not in score_bar(0.9, None, "#ff0000", length=8)


def test_picture_keys_brighten_stretch_and_hide_outlines_without_touching_the_frame(qtbot) -> None:
    import numpy as np
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage

    from triage_app.gui.review.adjust import image_pixels
    from triage_app.gui.review.review_view import ReviewView

    view = ReviewView()
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()
    # A dark, flat frame, as a thermal camera at night gives: values 40-80 of 255.
    ramp = np.tile(np.linspace(40, 80, 320).astype(np.uint8), (200, 1))
    rgb = np.ascontiguousarray(np.stack([ramp] * 3, axis=2))
    image = QImage(rgb.data, 320, 200, 960, QImage.Format.Format_RGB888).copy()
    info = {"header": "frame", "tiles": [("imagenet", 0.9, (10, 10, 100, 80))], "members": ["imagenet"]}
    view.show_candidate(info, image)
    original = image_pixels(view.canvas.shown_image())
    assert view.canvas.overlays_visible()
    view.canvas.zoom(2.0)
    zoom = view.canvas.transform().m11()

    qtbot.keyClick(view, Qt.Key.Key_B)
    brighter = image_pixels(view.canvas.shown_image())
    assert brighter.mean() > original.mean() + 5
    assert "brightness +1" in view.feedback.text()
    assert abs(view.canvas.transform().m11() - zoom) < 1e-9  # the analyst's zoom stays
    qtbot.keyClick(view, Qt.Key.Key_B, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(view, Qt.Key.Key_B, Qt.KeyboardModifier.ShiftModifier)
    assert image_pixels(view.canvas.shown_image()).mean() < original.mean() - 3
    qtbot.keyClick(view, Qt.Key.Key_Backspace)
    assert np.array_equal(image_pixels(view.canvas.shown_image()), original)
    assert "as captured" in view.feedback.text()

    # Auto-contrast spreads the frame's own range over black to white.
    qtbot.keyClick(view, Qt.Key.Key_E)
    stretched = image_pixels(view.canvas.shown_image())
    assert stretched.min() <= 5 and stretched.max() >= 250
    qtbot.keyClick(view, Qt.Key.Key_N)
    assert "auto-contrast, contrast +1" in view.feedback.text()

    # H hides the outlines; the next frame keeps both choices until they are undone.
    qtbot.keyClick(view, Qt.Key.Key_H)
    assert not view.canvas.overlays_visible()
    assert view.picture_state.text() == "Picture: auto-contrast, contrast +1, outlines hidden"
    view.show_candidate(info, image)
    assert not view.canvas.overlays_visible()
    assert image_pixels(view.canvas.shown_image()).max() >= 250
    qtbot.keyClick(view, Qt.Key.Key_H)
    qtbot.keyClick(view, Qt.Key.Key_Backspace)
    assert view.canvas.overlays_visible()
    assert np.array_equal(image_pixels(view.canvas.shown_image()), original)
    assert view.picture_state.isHidden()  # nothing left to say once the picture is as captured
    # The decoded frame itself is never changed: only what is shown.
    assert np.array_equal(image_pixels(image), original)


def test_the_header_gives_the_pace_and_leaving_the_review_sums_the_session_up(qtbot, review_project: Path) -> None:
    window = _open(qtbot, review_project)
    view = window.review_view
    for key in (Qt.Key.Key_A, Qt.Key.Key_R, Qt.Key.Key_R, Qt.Key.Key_R, Qt.Key.Key_U, Qt.Key.Key_R):
        qtbot.wait(20)
        qtbot.keyClick(view, key)
    assert "6 decided this session (" in view.header.text() and "/min)" in view.header.text()
    qtbot.keyClick(view, Qt.Key.Key_Z)
    assert "5 decided this session" in view.header.text()
    window.tabs.setCurrentWidget(window.finds_view)
    said = window.statusBar().currentMessage()
    assert said.startswith("This session: 5 frames decided in ") and "(1 accepted, 3 rejected, 1 unsure; 1 taken back)" in said
    window.controller.close()


def test_a_past_decision_is_found_in_the_decided_tab_and_changed_there(qtbot, review_project: Path) -> None:
    window = _open(qtbot, review_project)
    view = window.review_view
    for key in (Qt.Key.Key_A, Qt.Key.Key_R, Qt.Key.Key_R):
        qtbot.keyClick(view, key)
    decided = _labels(review_project)
    window.tabs.setCurrentWidget(window.decided_view)
    table = window.decided_view.table
    qtbot.waitUntil(lambda: table.rowCount() == 3, timeout=10000)
    assert window.tabs.tabText(window.tabs.indexOf(window.decided_view)) == "Decided (3)"
    # Only the rejected ones; the oldest of them is the frame decided second.
    box = window.decided_view.label_box
    box.setCurrentIndex(box.findData("reject"))
    qtbot.waitUntil(lambda: table.rowCount() == 2, timeout=10000)
    assert "2 of 3 decided frames" in window.decided_view.summary.text()
    table.selectRow(1)
    assert window.decided_view.selected_frames() == [decided[1][0]]
    qtbot.waitUntil(lambda: window.decided_view.preview.pixmap() is not None
                    and not window.decided_view.preview.pixmap().isNull(), timeout=10000)
    qtbot.keyClick(table, Qt.Key.Key_A)
    standing = dict(_labels(review_project))
    assert standing[decided[1][0]] == "accept"
    assert "1 frame now accepted" in window.decided_view.feedback.text()
    qtbot.waitUntil(lambda: table.rowCount() == 1, timeout=10000)  # the filter still shows the rejected only
    box.setCurrentIndex(box.findData(None))
    qtbot.waitUntil(lambda: table.rowCount() == 3, timeout=10000)
    table.selectRow(0)  # the newest decision first: the change
    assert window.decided_view.selected_frames() == [decided[1][0]]
    assert window.decided_view.caption.text().endswith("accepted by ana")
    assert table.item(0, 7).text() == "changed here" and table.item(0, 8).text() == "1×"
    # The finds follow: two accepted frames now.
    qtbot.waitUntil(lambda: window.tabs.tabText(window.tabs.indexOf(window.finds_view)) == "Finds (2)", timeout=10000)
    qtbot.keyClick(table, Qt.Key.Key_Z)
    assert dict(_labels(review_project))[decided[1][0]] == "reject"
    qtbot.waitUntil(lambda: window.decided_view.caption.text().endswith("rejected by ana"), timeout=10000)
    window.controller.close()


def test_the_frame_viewer_pops_out_follows_review_and_decides_with_its_keys(qtbot) -> None:
    import numpy as np
    import pytest
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage

    from triage_app.gui.review.adjust import image_pixels
    from triage_app.gui.review.review_view import ReviewView

    view = ReviewView()
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()

    def frame(value: int) -> QImage:
        rgb = np.full((200, 320, 3), value, np.uint8)
        return QImage(rgb.data, 320, 200, 960, QImage.Format.Format_RGB888).copy()

    info = {"header": "flight.mp4 frame 30", "tiles": [("imagenet", 0.9, (10, 10, 100, 80))], "members": ["imagenet"]}
    view.show_candidate(info, frame(90))
    qtbot.keyClick(view, Qt.Key.Key_P)
    viewer = view.popout
    assert viewer is not None and viewer.isVisible() and viewer.isWindow()
    assert np.array_equal(image_pixels(viewer.canvas.shown_image()), image_pixels(view.canvas.shown_image()))
    assert viewer.canvas.overlays_visible() and "flight.mp4 frame 30" in viewer.windowTitle()
    # Its keys decide in the review; the next candidate shows in it at once.
    with qtbot.waitSignal(view.user_did_decide) as decided:
        qtbot.keyClick(viewer, Qt.Key.Key_A)
    assert decided.args == ["accept"]
    view.show_candidate(dict(info, header="flight.mp4 frame 32"), frame(150))
    assert image_pixels(viewer.canvas.shown_image()).mean() == pytest.approx(150, abs=1)
    assert viewer.caption.text() == "flight.mp4 frame 32"
    # Picture keys (brighter, outlines) change both; the viewer's own zoom is its own.
    qtbot.keyClick(view, Qt.Key.Key_B)
    assert image_pixels(viewer.canvas.shown_image()).mean() > 155
    qtbot.keyClick(viewer, Qt.Key.Key_H)
    assert not viewer.canvas.overlays_visible() and not view.canvas.overlays_visible()
    qtbot.keyClick(viewer, Qt.Key.Key_P)  # closes it, from either window
    assert not viewer.isVisible()


def test_v_plays_the_seconds_around_the_frame_and_any_key_goes_back_to_it(qtbot, review_project: Path) -> None:
    from triage_app.gui.review.adjust import image_pixels

    window = _open(qtbot, review_project)
    view, session = window.review_view, window.review.session
    first = session.current.frame_id
    still = image_pixels(view.canvas.shown_image())
    qtbot.keyClick(view, Qt.Key.Key_V)
    qtbot.waitUntil(view.player.playing, timeout=15000)
    player = view.player
    assert len(player.images) >= 10 and player.times == sorted(player.times)
    assert "around the frame" in view.feedback.text() and "· the frame" not in player.where.text()  # it starts before
    player.slider.setValue(player.centre)  # scrubbed onto the candidate's own frame: its outlines are back
    assert "· the frame" in player.where.text() and view.canvas.focus_box is not None
    player.pause()
    player.slider.setValue(player.centre)
    qtbot.keyClick(view, Qt.Key.Key_Period)  # one picture on, paused there
    assert player.slider.value() == player.centre + 1 and not player.timer.isActive() and player.playing()
    qtbot.keyClick(view, Qt.Key.Key_Comma)
    qtbot.keyClick(view, Qt.Key.Key_Comma)
    assert player.slider.value() == player.centre - 1 and "(-" in player.where.text()
    player.slider.setValue(0)
    assert not np.array_equal(image_pixels(view.canvas.shown_image()), still)  # an earlier picture of the video
    qtbot.keyClick(view, Qt.Key.Key_A)  # a decision goes to the candidate, shown again first
    assert not player.playing() and _labels(review_project) == [(first, "accept")]
    window.controller.close()


def test_leaving_keeps_the_session_summary_and_the_next_opening_says_it(qtbot, review_project: Path) -> None:
    window = _open(qtbot, review_project)
    qtbot.keyClick(window.review_view, Qt.Key.Key_A)
    qtbot.keyClick(window.review_view, Qt.Key.Key_R)
    window.close()
    again = _open(qtbot, review_project)
    said = again.review_view.feedback.text()
    assert said.startswith("Your last session here, ended ") and "2 frames decided in" in said
    assert "1 accepted, 1 rejected" in said
    again.close()
