"""Active review in the window: a new project asks what it looks for, the review says where
recall stands and when the target is reached (M keeps going), the supervisor's headline is
the recall reached with its interval, and Learn is one button."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolBar

from tests.gui.conftest import shot
from triage_app.core.evaluation.active_sim import review_until_stop, simulated_project
from triage_app.core.store import Workspace
from triage_app.gui.main_window import MainWindow


def _window(qtbot) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    return window


def test_a_new_project_asks_what_it_looks_for_and_keeps_the_answer(qtbot, tmp_path: Path) -> None:
    window = _window(qtbot)
    assert window.controller.open_project(tmp_path / "new")
    dialog = window.target_dialog
    assert dialog is not None and dialog.isVisible() and dialog.windowTitle() == "What are you looking for?"
    names = [dialog.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(dialog.list.count())]
    assert {"person", "vehicle", "boat", "animal", "building_damage"} <= set(names)
    dialog.list.setCurrentRow(names.index("vehicle"))
    assert "sports car" in dialog.details.text()
    shot(dialog, "target_dialog.png")
    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    assert "looking for Vehicles" in window.project_label.text()
    with Workspace(tmp_path / "new") as ws:
        assert ws.target_chosen and ws.target.name == "vehicle"
    # Changed later from the toolbar: a target of one's own, checked before it is kept.
    dialog = window.open_target()
    dialog.list.setCurrentRow(dialog.list.count() - 1)
    assert dialog.custom_box.isVisible()
    dialog.custom_name.setText("ufo")
    dialog.custom_classes.setText("flying saucer")
    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    assert "not ImageNet class names: flying saucer" in dialog.problem.text() and dialog.isVisible()
    dialog.custom_name.setText("life raft")
    dialog.custom_classes.setText("lifeboat")
    dialog.custom_prompts.setText("an aerial photo of an orange life raft")
    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    assert not dialog.isVisible() and window.controller.ws.target.name == "life_raft"
    assert window.controller.ws.cards["clip"].target_prompts == ["an aerial photo of an orange life raft"]
    window.controller.close()


def test_review_says_when_the_target_is_reached_and_m_keeps_going(qtbot, tmp_path: Path) -> None:
    ws, label = simulated_project(tmp_path / "p", seed=7, frames=500, review={"target_recall": 0.9, "audit_seed": 7})
    with ws:
        shown, stop = review_until_stop(ws, label)
        ws.set_target("vehicle")  # so that the window does not ask
    assert stop is not None
    window = _window(qtbot)
    assert window.controller.open_project(tmp_path / "p")
    window.show_review()
    view = window.review_view
    assert window.review.session.target_reached
    assert view.header.text().startswith("Target recall reached")
    assert "target 90% reached" in view.progress.text() and view.progress.isVisible()
    assert f"{500 - len(shown):,} frames not reviewed are held back" in view.canvas._message.text()
    shot(window, "review_target_reached.png")
    qtbot.keyClick(view, Qt.Key.Key_M)
    assert window.review.session.current is not None
    assert "reviewing on" in view.progress.text()
    assert window.tabs.tabText(window.tabs.indexOf(view)) == f"Review ({500 - len(shown)})"

    window.tabs.setCurrentWidget(window.supervisor_page)
    sv = window.supervisor_view
    qtbot.waitUntil(lambda: "Recall so far" in sv.headline.text(), timeout=30000)
    assert "target 90% reached" in sv.headline.text() and "model-based" in sv.headline.text()
    assert "From the review sequence alone" in sv.headline.toolTip()
    sv.slider.setValue(990)
    sv.user_did_preview.emit(sv.target)
    qtbot.waitUntil(lambda: "Target 99.0 %" in sv.preview.text() or "Target 99.0%" in sv.preview.text(), timeout=30000)
    assert "more frames to review" in sv.preview.text() or "may not be enough" in sv.preview.text()
    window.statusBar().clearMessage()
    qtbot.wait(300)
    shot(window, "supervisor_active_review.png")
    window.controller.close()


def test_review_says_when_its_estimate_reaches_the_target_but_waits_for_the_guard(qtbot, tmp_path: Path) -> None:
    """The estimate of this learning reaches the target, that of the learning 25 decisions
    before did not: the window says the target is reached by this estimate and why review goes
    on, not a bare "not reached", and offers the next frame."""
    from triage_app.core.learning.loop import learn
    from triage_app.core.review.progress import review_progress
    from triage_app.core.review.session import ReviewSession

    ws, label = simulated_project(tmp_path / "p", seed=8, frames=800, review={"target_recall": 0.9, "audit_seed": 8})
    with ws:
        ws.set_target("vehicle")
        session = ReviewSession(ws)
        for _ in range(40):
            for _ in range(25):
                c = session.current
                session.decide("accept" if label[c.frame_id] else "reject")
            learn(ws, head=False)
            session.refresh()
            if review_progress(ws).waiting:
                break
        assert review_progress(ws).waiting and not review_progress(ws).reached
        session.close()
    window = _window(qtbot)
    assert window.controller.open_project(tmp_path / "p")
    window.show_review()
    view = window.review_view
    assert not window.review.session.target_reached and window.review.session.current is not None
    assert "target 90% reached by this estimate; review stops once an estimate made 25+ decisions earlier agrees" \
        in view.progress.text()
    assert not view.header.text().startswith("Target recall reached")
    window.tabs.setCurrentWidget(window.supervisor_page)
    sv = window.supervisor_view
    sv.user_did_preview.emit(sv.target)
    qtbot.waitUntil(lambda: "Target 90" in sv.preview.text(), timeout=30000)
    assert "reached by the current estimate; review stops once an estimate made 25+ decisions earlier agrees" \
        in sv.preview.text()
    window.controller.close()


def test_learn_is_one_button_and_runs_by_itself_every_few_dozen_decisions(qtbot, tmp_path: Path) -> None:
    ws, label = simulated_project(tmp_path / "p", seed=3, frames=200, review={"retrain_every": 6})
    ws.set_target("vehicle")
    ws.close()
    window = _window(qtbot)
    texts = [a.text() for a in window.findChildren(QToolBar)[0].actions()]
    assert "Learn" in texts and "Target…" in texts and "Retrain head" not in texts
    assert window.controller.open_project(tmp_path / "p")
    window.show_review()
    view = window.review_view
    s = window.review.session
    assert window.controller.ws.rankings.rank_scores().ranking_id is None
    for _ in range(5):
        qtbot.keyClick(view, Qt.Key.Key_A if label[s.current.frame_id] else Qt.Key.Key_R)
    assert not window.controller.busy
    with qtbot.waitSignal(window.controller.work_did_finish, timeout=60000) as said:
        qtbot.keyClick(view, Qt.Key.Key_A if label[s.current.frame_id] else Qt.Key.Key_R)
    # Six decisions with a target among them are enough for a ranking (or say why not).
    assert "Review order: ranking" in said.args[0] or "needs at least 2 accepted" in said.args[0]
    window.controller.close()
