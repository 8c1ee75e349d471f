from __future__ import annotations

import sqlite3
from pathlib import Path

from triage_app.core.review import DecisionStore
from triage_app.core.store import Project
from triage_app.gui.main_window import MainWindow


def test_retrain_button_trains_the_head_and_rescores(qtbot, review_project: Path) -> None:
    with Project(review_project) as p:
        DecisionStore(p).record([dict(frame_id=r["id"], label="accept" if r["idx"] % 3 == 0 else "reject", reviewer="ana",
                                      seconds_spent=1.0, policy="p", member_scores="{}") for r in p.frame_rows()])
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    assert window.controller.open_project(review_project)
    with qtbot.waitSignal(window.controller.work_did_finish, timeout=60000) as blocker:
        window.controller.retrain()
    assert "Head version 1" in blocker.args[0] and "12 frames re-scored" in blocker.args[0]
    raw = sqlite3.connect(review_project / "project.db")
    assert raw.execute("SELECT count(*) FROM scores WHERE member='head'").fetchone()[0] == 12
    window.controller.close()
