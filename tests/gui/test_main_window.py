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
    assert view.item(0, 0).text() == "flight.mp4" and view.item(0, 2).text() == "30"
    assert not window.progress.isVisible()
    problems = [window.problems_view.item(i).text() for i in range(window.problems_view.count())]
    assert any("missing.mp4: no such file" in p for p in problems)
    SHOTS.mkdir(exist_ok=True)
    assert window.grab().save(str(SHOTS / "main_window_sources.png"))
    window.controller.close()
