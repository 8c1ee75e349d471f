"""The window on a team store: two analysts' windows never show one frame, and a database
outage mid-review keeps the decision on screen until it can be sent."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from tests.conftest import write_flight
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.model.records import Sampling
from triage_app.core.scoring.pipeline import score_project
from triage_app.core.store import Workspace
from triage_app.gui.main_window import MainWindow


def _team_project(tmp_path: Path, ortho, url: str) -> str:
    video = write_flight(tmp_path / "flight.mp4", ortho, frames=24, size=(640, 360))
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "settings.toml").write_text('[review]\nevent_gap_s = 0.5\nsecond_review_share = 0.0\n'
                                          '[scoring]\nmembers = ["imagenet"]\ndevice = "cpu"\n')
    with Workspace(url, shared=shared) as p:
        ingest_source(p, video, sampling=Sampling(every=2))
        score_project(p)
    return url


def _window(qtbot, where: str) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    assert not window.open_team_store("/some/folder") and "not a team store" in window.statusBar().currentMessage()
    assert window.open_team_store(where)
    window.show_review()
    assert window.reviewer_edit.isReadOnly()  # the database login signs the decisions
    return window


def test_a_team_window_rides_out_a_database_outage(qtbot, tmp_path: Path, ortho, pg_database, pg_admin,
                                                    monkeypatch) -> None:
    from triage_app.gui.review import review_controller

    monkeypatch.setattr(review_controller, "RESEND_MS", 200)
    url = _team_project(tmp_path, ortho, pg_database())
    name = url.rsplit("/", 1)[1]
    window, other = _window(qtbot, url), None
    try:
        view, review = window.review_view, window.review
        assert "team store, as postgres" in window.windowTitle()
        # A second analyst's window (another reviewer) never gets the frame this one shows.
        with Workspace(url) as ws:
            from triage_app.core.review.session import ReviewSession

            other = ReviewSession(ws, reviewer="ben")
            assert other.current.frame_id != review.session.current.frame_id
            other.close()
        qtbot.keyClick(view, Qt.Key.Key_A)
        on_screen = review.session.current.frame_id
        with pg_admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            qtbot.keyClick(view, Qt.Key.Key_R)
            assert "Not sent yet: the team database on 127.0.0.1 cannot be reached" in view.feedback.text()
            assert review.session.current.frame_id == on_screen and review.session.pending is not None
            # What the window reads meanwhile (the finds panel, the sources table) waits too.
            review.set_finds(list(review.finds))
            window.controller.refresh()
            qtbot.wait(600)  # the window keeps trying; the message stands
            assert review.session.pending is not None and "Not sent yet" in view.feedback.text()
        finally:
            with pg_admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        qtbot.waitUntil(lambda: review.session.pending is None, timeout=10000)
        assert "decision that waited is recorded" in view.feedback.text()
        assert review.session.current.frame_id != on_screen
        with Workspace(url) as ws:
            labels = [(d.frame_id, d.label.value) for d in ws.decisions.history()]
        assert len(labels) == 2 and labels[1] == (on_screen, "reject")
    finally:
        window.controller.close()


def test_the_window_sees_what_teammates_change(qtbot, tmp_path: Path, ortho, pg_database) -> None:
    """Another analyst's decisions and the supervisor's new policy reach an open window: it
    announces them to its views as it does its own."""
    from triage_app.gui.tasks import Change

    url = _team_project(tmp_path, ortho, pg_database())
    window = _window(qtbot, url)
    try:
        c = window.controller
        assert c.look_for_changes() == Change.NONE
        mine = window.review.session.current.frame_id
        with Workspace(url) as ws:
            other = next(f["id"] for f in ws.frames.frame_rows() if f["id"] != mine)
            ws.decisions.record([dict(frame_id=other, label="accept", reviewer="ben", seconds_spent=1.0, policy="p",
                                      member_scores="{}")])
            ws.policies.save("any", {"imagenet": 0.3}, "sam")
        with qtbot.waitSignal(c.project_did_change, timeout=10000) as sig:
            c._poll()  # the watcher's tick: the store read on a worker, the change announced on the GUI thread
        seen = Change(sig.args[0])
        assert seen & Change.DECISIONS and seen & Change.POLICY
        assert c.look_for_changes() == Change.NONE  # each change announced once
        qtbot.keyClick(window.review_view, Qt.Key.Key_A)  # the window's own decision: announced by itself
        assert c.look_for_changes() == Change.NONE
    finally:
        window.controller.close()
