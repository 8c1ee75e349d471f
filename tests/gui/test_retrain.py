from __future__ import annotations

import sqlite3
from pathlib import Path

from PySide6.QtWidgets import QLabel, QToolBar

from tests.gui.conftest import shot
from triage_app.core.store import Workspace
from triage_app.gui.main_window import MainWindow


def _open(qtbot, root: Path) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    assert window.controller.open_project(root)
    return window


def test_retrain_button_trains_the_head_and_rescores(qtbot, review_project: Path) -> None:
    with Workspace(review_project) as p:
        p.decisions.record([dict(frame_id=r["id"], label="accept" if r["idx"] % 3 == 0 else "reject", reviewer="ana",
                                      seconds_spent=1.0, policy="p", member_scores="{}") for r in p.frames.frame_rows()])
    window = _open(qtbot, review_project)
    with qtbot.waitSignal(window.controller.work_did_finish, timeout=60000) as blocker:
        window.controller.learn()
    assert "Head version 1" in blocker.args[0] and "12 frames re-scored" in blocker.args[0]
    raw = sqlite3.connect(review_project / "project.db")
    assert raw.execute("SELECT count(*) FROM scores WHERE member='head'").fetchone()[0] == 12
    window.controller.close()


def test_automatic_retrain_every_n_decisions(qtbot, review_project: Path) -> None:
    from PySide6.QtCore import Qt

    with Workspace(review_project) as p:  # labels of both kinds exist before the analyst starts
        rows = p.frames.frame_rows()
        p.decisions.record([dict(frame_id=r["id"], label="accept" if i % 2 else "reject", reviewer="ana",
                                      seconds_spent=1.0, policy="p", member_scores="{}") for i, r in enumerate(rows[:4])])
    (review_project / "settings.toml").write_text(
        (review_project / "settings.toml").read_text().replace("[review]\n", "[review]\nretrain_every = 3\n"))
    window = _open(qtbot, review_project)
    window.show_review()
    view = window.review_view
    for key in (Qt.Key.Key_A, Qt.Key.Key_R):
        qtbot.keyClick(view, key)
    assert not window.controller.busy
    with qtbot.waitSignal(window.controller.work_did_finish, timeout=60000) as blocker:
        qtbot.keyClick(view, Qt.Key.Key_R)  # the third decision starts a retrain
    assert "Head version 1" in blocker.args[0]
    window.controller.close()


def test_check_labels_puts_doubted_decisions_back_in_the_queue(qtbot, review_project: Path) -> None:
    with Workspace(review_project) as p:
        rows = p.frames.frame_rows()
        wrong = rows[2]["id"]  # one frame of the first half rejected among accepted neighbours
        p.decisions.record([dict(frame_id=r["id"], label="reject" if r["id"] == wrong or i >= 6 else "accept",
                                      reviewer="ana", seconds_spent=1.0, policy="p", member_scores="{}")
                                 for i, r in enumerate(rows)])
    window = _open(qtbot, review_project)
    with qtbot.waitSignal(window.controller.work_did_finish, timeout=60000) as blocker:
        window.controller.check_labels()
    assert "look wrong and are back in the review queue" in blocker.args[0]
    qtbot.waitUntil(lambda: window.review.session is not None and any(
        c.kind == "rereview" for c in window.review.session.queue.items), timeout=10000)
    back = {c.frame_id for c in window.review.session.queue.items if c.kind == "rereview"}
    assert wrong in back
    window.controller.close()


def test_finetune_button_deploys_a_member_that_joins_the_ensemble(qtbot, review_project: Path) -> None:
    with Workspace(review_project) as p:
        p.decisions.record([dict(frame_id=r["id"], label="accept" if r["idx"] % 3 == 0 else "reject", reviewer="ana",
                                      seconds_spent=1.0, policy="p", member_scores="{}") for r in p.frames.frame_rows()[:9]])
    window = _open(qtbot, review_project)
    assert "Fine-tune backbone" in [a.text() for a in window.findChildren(QToolBar)[0].actions()]
    with qtbot.waitSignal(window.controller.work_did_finish, timeout=240000) as blocker:
        window.controller.finetune(blocks=0, epochs=1, deploy="always")
    message = blocker.args[0]
    assert "the evidence favours the" in message and "Deployed as the member 'finetuned'" in message
    assert "12 frames scored with it" in message
    assert "finetuned" in window.controller.ws.cards  # the window's policy knows its threshold
    raw = sqlite3.connect(review_project / "project.db")
    assert raw.execute("SELECT count(*) FROM scores WHERE member='finetuned'").fetchone()[0] == 12
    # The review view shows the new member's score beside the others.
    window.resize(1400, 900)
    window.show_review()
    qtbot.waitUntil(lambda: window.review.session is not None and window.review.session.current is not None, timeout=20000)
    qtbot.waitUntil(lambda: "finetuned" in " ".join(w.text() for w in window.review_view.findChildren(QLabel)),
                    timeout=20000)
    shot(window, "review_with_finetuned_member.png")
    window.tabs.setCurrentWidget(window.supervisor_page)

    def charted() -> bool:  # the supervisor's charts include the new member
        bars = window.supervisor_view.hist_chart.series()
        return bool(bars) and any("finetuned" in b.label() for b in bars[0].barSets())

    qtbot.waitUntil(charted, timeout=20000)
    shot(window, "supervisor_with_finetuned_member.png")
    window.controller.close()


def test_retrain_right_after_opening_works_in_a_fresh_interpreter() -> None:
    """Opening a project starts background jobs that import scikit-learn while the retrain
    does: in a process where it is not imported yet, that once failed with a circular-import
    error. In this test session it is imported already, so the check runs in a new process."""
    import os
    import subprocess
    import sys

    here = Path(__file__)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                           f"{here}::test_retrain_button_trains_the_head_and_rescores"],
                          cwd=here.parents[2], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
