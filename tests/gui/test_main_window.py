from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from triage_app.gui.main_window import MainWindow  # noqa: E402

SHOTS = Path(__file__).resolve().parents[1] / "screenshots"


def test_ingest_from_the_window_fills_the_sources_list(qtbot, tmp_path: Path, flight_video: Path) -> None:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    assert window.controller.open_project(tmp_path / "proj")
    with qtbot.waitSignal(window.controller.work_did_finish, timeout=30000):
        window.controller.ingest([str(flight_video), str(tmp_path / "missing.mp4")])
    view = window.sources_view
    assert view.rowCount() == 1
    assert view.item(0, 0).text() == "flight.mp4" and view.item(0, 3).text() == "30"
    assert not window.progress.isVisible()
    problems = [window.problems_view.item(i).text() for i in range(window.problems_view.count())]
    assert any("missing.mp4: no such file" in p for p in problems)
    SHOTS.mkdir(exist_ok=True)
    assert window.grab().save(str(SHOTS / "main_window_sources.png"))
    window.controller.close()


def test_adding_videos_asks_how_densely_to_sample_and_shows_what_they_are(qtbot, tmp_path: Path, flight_video: Path,
                                                                          shared_data: Path) -> None:
    """The analyst picks videos: the dialog shows each one's length, rate, size and telemetry,
    names the file it cannot read, counts the frames each sampling would score, and adds the
    videos at the chosen rate (recorded in the sources list); the same video added again is
    said to be in the project already."""
    import shutil

    from triage_app.core.model.records import Sampling

    with_srt = tmp_path / "DJI_0001.mp4"
    shutil.copy(flight_video, with_srt)
    shutil.copy(shared_data / "telemetry" / "juanirache" / "mavic_2pro_new.SRT", tmp_path / "DJI_0001.SRT")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    assert window.controller.open_project(tmp_path / "proj")
    window.controller.settings.ingest.every = 1
    dialog = window.open_add_footage([str(flight_video), str(with_srt), str(broken)])
    qtbot.waitUntil(lambda: len(dialog.probes) == 3, timeout=20000)
    table = dialog.table
    assert [table.item(r, 0).text() for r in range(3)] == ["flight.mp4", "DJI_0001.mp4", "broken.mp4"]
    assert table.item(0, 1).text() == "0:03" and table.item(0, 2).text() == "10 frames/s" and table.item(0, 3).text() == "320 × 240"
    assert table.item(0, 4).text() == "none found" and table.item(1, 4).text() == "DJI_0001.SRT"
    assert "cannot be read" in table.item(2, 5).text() and "Problems" in table.item(2, 5).text()
    assert dialog.every_frame.isChecked()  # the settings' default
    assert "60 frames to score from 2 videos" in dialog.estimate.text()
    dialog.per_second.setChecked(True)
    dialog.fps_spin.setValue(2.0)
    assert dialog.sampling() == Sampling(fps=2.0)
    assert "12 frames to score from 2 videos" in dialog.estimate.text() and "1 cannot be read" in dialog.estimate.text()
    shot_dir = Path(__file__).resolve().parents[1] / "screenshots"
    shot_dir.mkdir(exist_ok=True)
    assert dialog.grab().save(str(shot_dir / "add_footage.png"))
    dialog.score_after.setChecked(False)
    with qtbot.waitSignal(window.controller.work_did_finish, timeout=30000):
        dialog.accept()
    qtbot.waitUntil(lambda: window.sources_view.rowCount() == 2, timeout=10000)
    view = window.sources_view
    assert {view.item(r, 0).text() for r in range(2)} == {"flight.mp4", "DJI_0001.mp4"}
    assert all(view.item(r, 2).text() == "2 frames per second of video" and view.item(r, 3).text() == "6" for r in range(2))
    problems = [window.problems_view.item(i).text() for i in range(window.problems_view.count())]
    assert any("broken.mp4" in p for p in problems)
    assert not window.controller.busy  # not scored: the analyst said so

    from sqlalchemy import update


    store = window.controller.ws.scores
    assert store.recent_speed() is None  # nothing scored yet: no estimate of the time
    run = store.start_run(["imagenet"], "CPUExecutionProvider", "cpu")
    store.finish_run(run, 100, "done")
    store.db.write(lambda c: c.execute(update(store.runs).where(store.runs.c.id == run).values(
        started_at="2026-01-01T10:00:00.000+00:00", finished_at="2026-01-01T10:00:20.000+00:00")))
    assert store.recent_speed() == (5.0, "CPUExecutionProvider")
    again = window.open_add_footage([str(flight_video)])
    qtbot.waitUntil(lambda: len(again.probes) == 1, timeout=20000)
    assert again.per_second.isChecked() and again.fps_spin.value() == 2.0  # the last choice is offered again
    assert "already in the project at 2 frames per second of video" in again.table.item(0, 5).text()
    assert "last scoring speed (5.0 frames/s on CPUExecutionProvider), about 1 s" in again.estimate.text()
    again.one_in.setChecked(True)
    again.every_spin.setValue(2)  # 15 frames: 3 s
    assert "15 frames to score" in again.estimate.text() and "about 3 s" in again.estimate.text()
    again.reject()
    window.controller.close()


def test_footage_dropped_on_the_window_is_sorted_and_added(qtbot, tmp_path: Path, flight_video: Path, ortho) -> None:
    """A camera card's folder (a clip, its telemetry, a low-resolution proxy, stills) and a
    stray document dropped together: the clip goes to the sampling dialog, the stills are
    added as a folder at once, the proxy is left alone and the document is named."""
    import shutil

    import cv2
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    from triage_app.core.ingest.footage import sort_dropped

    card = tmp_path / "DCIM" / "100MEDIA"
    card.mkdir(parents=True)
    shutil.copy(flight_video, card / "DJI_0001.MP4")
    shutil.copy(flight_video, card / "DJI_0001.LRF")
    for k in range(3):
        assert cv2.imwrite(str(card / f"DJI_01{k}.JPG"), ortho[k * 100 : k * 100 + 300, :400])
    note = tmp_path / "notes.txt"
    note.write_text("flight log")
    sorted_ = sort_dropped([card, note, tmp_path / "DCIM"])
    assert sorted_.videos == [str(card / "DJI_0001.MP4")] and sorted_.image_sources == [str(card)]
    assert sorted_.ignored == [str(note), str(tmp_path / "DCIM")]  # a folder holding neither

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    assert window.acceptDrops()
    assert window.add_dropped([str(card)]) is None  # no project yet: said, nothing added
    assert "Open or create a project first" in window.problems_view.item(window.problems_view.count() - 1).text()
    assert window.controller.open_project(tmp_path / "proj")
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(card)), QUrl.fromLocalFile(str(note))])
    with qtbot.waitSignal(window.controller.work_did_finish, timeout=30000):
        window.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                                    Qt.KeyboardModifier.NoModifier))
    dialog = window.add_footage_dialog
    qtbot.waitUntil(lambda: len(dialog.probes) == 1, timeout=20000)
    assert dialog.table.item(0, 0).text() == "DJI_0001.MP4"
    qtbot.waitUntil(lambda: window.sources_view.rowCount() == 1, timeout=20000)  # the stills, added at once
    assert window.sources_view.item(0, 1).text() == "images" and window.sources_view.item(0, 3).text() == "3"
    problems = [window.problems_view.item(i).text() for i in range(window.problems_view.count())]
    assert any("notes.txt" in p for p in problems)
    dialog.reject()
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=60000)
    window.controller.close()


def test_score_from_the_window_says_who_else_is_writing_the_project(qtbot, tmp_path: Path, flight_video: Path) -> None:
    """A terminal's `triage score` holds the project: the window's Score names it and stops;
    once it ends, Score works."""
    from triage_app.core.store import Workspace

    root = tmp_path / "p"
    with Workspace(root) as ws:
        ws.set_target("vehicle")
        from triage_app.core.ingest.footage import ingest_source

        ingest_source(ws, flight_video)
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    assert window.controller.open_project(root)
    with Workspace(root) as other, other.writing("scoring"):
        with qtbot.waitSignal(window.controller.work_did_fail, timeout=60000) as failed:
            window.controller.score()
        assert "is writing this project" in failed.args[0] and str(root) in failed.args[0]
    with qtbot.waitSignal(window.controller.work_did_finish, timeout=120000) as done:
        window.controller.score()
    assert "Scored" in done.args[0]
    window.controller.close()


def test_two_sources_of_one_name_are_told_apart_in_the_list() -> None:
    from triage_app.gui.sources.sources_view import distinct_names

    rows = [{"name": "flight.mp4", "uri": "/media/cardA/DCIM/100MEDIA/flight.mp4"},
            {"name": "flight.mp4", "uri": "/media/cardB/DCIM/100MEDIA/flight.mp4"},
            {"name": "other.mp4", "uri": "/media/cardA/DCIM/100MEDIA/other.mp4"}]
    assert distinct_names(rows) == ["cardA/DCIM/100MEDIA/flight.mp4", "cardB/DCIM/100MEDIA/flight.mp4", "other.mp4"]


def test_the_window_remembers_its_size_and_the_side_panel_width_inside_the_screen(qtbot) -> None:
    """Closed at a size with the side panel dragged wider, opened again the same way; a size
    larger than the screen is brought inside it."""
    from triage_app.gui.main_window import MainWindow

    first = MainWindow()
    qtbot.addWidget(first)
    first.restore_layout()
    first.show()
    screen = first.screen().availableGeometry()
    assert first.width() <= screen.width() and first.height() <= screen.height()
    size = (min(760, screen.width() - 20), min(560, screen.height() - 20))
    first.resize(*size)
    first.review_view.splitter.setSizes([size[0] - 330, 300])
    qtbot.wait(50)
    side = first.review_view.splitter.sizes()[1]
    first.close()
    assert first.layout_file().is_file()

    again = MainWindow()
    qtbot.addWidget(again)
    again.restore_layout()
    again.show()
    qtbot.wait(50)
    assert (again.width(), again.height()) == size
    assert abs(again.review_view.splitter.sizes()[1] - side) <= 2
    again.resize(screen.width() * 3, screen.height() * 3)
    again.close()
    third = MainWindow()
    qtbot.addWidget(third)
    third.restore_layout()
    assert third.width() <= screen.width() and third.height() <= screen.height()
    third.close()


def test_text_size_and_full_screen_by_key_and_the_size_is_remembered(qtbot) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from triage_app.gui.main_window import MainWindow

    base = QApplication.font().pointSizeF()
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)  # window keys work wherever the focus is in it
    try:
        qtbot.keyClick(window.review_view, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
        qtbot.keyClick(window.review_view, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
        assert QApplication.font().pointSizeF() == base + 2 and window.text_step == 2
        qtbot.waitUntil(lambda: window.review_view.footer.font().pointSizeF() == base + 2, timeout=3000)  # every page follows
        qtbot.keyClick(window.review_view, Qt.Key.Key_F11)
        qtbot.waitUntil(window.isFullScreen, timeout=3000)
        qtbot.keyClick(window.review_view, Qt.Key.Key_F11)
        qtbot.waitUntil(lambda: not window.isFullScreen(), timeout=3000)
        window.close()
        font = QApplication.font()  # the next window starts from the system's size again
        font.setPointSizeF(base)
        QApplication.setFont(font)
        again = MainWindow()
        qtbot.addWidget(again)
        again.restore_layout()
        again.show()
        again.activateWindow()
        qtbot.waitUntil(again.isActiveWindow, timeout=3000)
        assert again.text_step == 2 and QApplication.font().pointSizeF() == base + 2
        qtbot.keyClick(again.review_view, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
        assert QApplication.font().pointSizeF() == base and again.text_step == 0
        again.close()
    finally:
        font = QApplication.font()
        font.setPointSizeF(base)
        QApplication.setFont(font)


def test_the_dark_look_by_key_reaches_every_page_and_is_remembered(qtbot) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from triage_app.gui import theme
    from triage_app.gui.main_window import MainWindow

    base = QApplication.font().pointSizeF()
    light_window = QApplication.palette().color(QPalette.ColorRole.Window).lightness()
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    try:
        assert theme.current() == "light" and "#1f4e8c" in window.review_view.feedback.styleSheet()
        qtbot.keyClick(window.review_view, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
        assert theme.current() == "dark" and QApplication.palette().color(QPalette.ColorRole.Window).lightness() < 80 < light_window
        text = QApplication.palette().color(QPalette.ColorRole.WindowText).lightness()
        assert text > 200  # light words on the dark window
        # The pages' own colours follow: the feedback line, the decided list's, the charts.
        assert theme.TONES["dark"]["feedback"] in window.review_view.feedback.styleSheet()
        assert theme.TONES["dark"]["feedback"] in window.decided_view.feedback.styleSheet()
        from PySide6.QtCharts import QChart

        assert window.supervisor_view.curve_chart.theme() == QChart.ChartTheme.ChartThemeDark
        # Headers are sized from the window's text, so they grow with Ctrl+= too.
        before = window.review_view.header.styleSheet()
        window.set_text_step(3)
        assert f"font-size: {(base + 3) * 1.25:.1f}pt" in window.review_view.header.styleSheet() != before
        window.set_text_step(0)
        window.close()
        again = MainWindow()
        qtbot.addWidget(again)
        theme.apply("light")
        again.restore_layout()  # the look of the last session
        assert theme.current() == "dark"
        again.set_theme("light")
        assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() == light_window
        assert "#1f4e8c" in again.review_view.feedback.styleSheet()
        again.close()
    finally:
        theme.apply("light")
        font = QApplication.font()
        font.setPointSizeF(base)
        QApplication.setFont(font)


def test_the_sources_list_says_how_many_frames_are_not_scored_yet() -> None:
    """"ingested" alone while scoring runs (or never ran) hid that nothing can be reviewed yet."""
    from triage_app.gui.sources.sources_view import _status_text

    assert _status_text({"status": "ingested", "frames": 30, "scored": 12}) == "ingested; 18 frames not scored yet"
    assert _status_text({"status": "ingested", "frames": 30, "scored": 30}) == "ingested"
    assert _status_text({"status": "ingesting", "frames": 30, "scored": 0}) == "ingesting"


def test_a_folder_without_a_project_becomes_one_only_when_the_user_says_so(qtbot, tmp_path: Path, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    from triage_app.gui.main_window import MainWindow

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    window = MainWindow()
    qtbot.addWidget(window)
    asked: list[str] = []

    def say(answer):
        def question(_parent, _title, text, *_args):
            asked.append(text)
            return answer
        return question

    monkeypatch.setattr(QMessageBox, "question", say(QMessageBox.StandardButton.No))
    assert not window.open_or_create(notes)
    assert "holds 1 other item(s) and no project" in asked[0] and not (notes / "project.db").exists()
    assert "left as it is" in window.statusBar().currentMessage()
    monkeypatch.setattr(QMessageBox, "question", say(QMessageBox.StandardButton.Yes))
    assert window.open_or_create(notes) and (notes / "project.db").exists()
    assert window.statusBar().currentMessage().startswith("New project made in")
    asked.clear()
    assert window.open_or_create(notes) and not asked  # an existing project opens without a question
    window.controller.close()


def test_the_window_fits_a_small_screen_at_150_percent(qtbot) -> None:
    """1366x768 at 150 % leaves about 910x510 of the screen: long telemetry, a long finds
    summary and wide tables scroll or wrap instead of making the window larger than that."""
    from triage_app.gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.review_view.telemetry.setText("<br>".join(f"telemetry line {i}: a value with its unit" for i in range(24)))
    window.review_view.scores.setText("<br>".join(f"member {i} 0.5 in tile 3 of 16" for i in range(6)))
    window.finds_view.summary.setText("4 accepted frames at 2 places, newest first: 4 placed on the ground (flat ground "
                                      "assumed), 0 at the aircraft's position.")
    for page in (window.review_view, window.finds_view, window.decided_view, window.supervisor_view):
        window.tabs.setCurrentWidget(page)
        hint = window.minimumSizeHint()
        assert hint.width() <= 900 and hint.height() <= 500, (type(page).__name__, hint.toTuple())
    window.close()
