from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.core.review.test_queue import make_scored_project
from tests.gui.conftest import shot
from triage_app.core.model.settings import load_settings
from triage_app.core.review.session import ReviewSession
from triage_app.gui.main_window import MainWindow


def _supervisor(qtbot, root: Path) -> tuple[MainWindow, object]:
    """The main window on a project, showing the supervisor view."""
    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    assert window.controller.open_project(root)
    window.tabs.setCurrentWidget(window.supervisor_page)
    return window, window.supervisor_view


def _reviewed_project(root: Path) -> Path:
    """300 scored frames, 15 % positive, every candidate reviewed by an oracle."""
    rng = np.random.default_rng(5)
    truth = rng.random(300) < 0.15
    scores = np.clip(np.where(truth, rng.normal(0.7, 0.15, 300), rng.normal(0.2, 0.15, 300)), 0, 1).tolist()
    with make_scored_project(root, scores) as p:
        (root / "settings.toml").write_text('[review]\norder = "time"\n')  # the policy's candidate queue
        p.settings = load_settings(root)
        s = ReviewSession(p)
        idx = {r["id"]: r["idx"] for r in p.frames.frame_rows()}
        while s.current is not None:
            s.decide("accept" if truth[idx[s.current.frame_id]] else "reject")
    return root


def test_supervisor_previews_then_applies_a_policy(qtbot, tmp_path: Path) -> None:
    root = _reviewed_project(tmp_path / "p")
    window, view = _supervisor(qtbot, root)
    qtbot.waitUntil(lambda: " recall " in view.headline.text(), timeout=20000)
    # No audit has considered the dropped frames yet: their positives are estimated, and said so.
    assert view.headline.text().startswith("Estimated recall") and "not measured" in view.headline.toolTip()
    view.slider.setValue(900)
    view.user_did_preview.emit(view.target)
    qtbot.waitUntil(lambda: "people review" in view.preview.text(), timeout=20000)
    assert "Nothing is saved" in view.preview.text()
    before = len(window.review.session.queue)
    headline = view.headline.text()
    with qtbot.waitSignal(window.supervisor.policy_did_change, timeout=20000):
        view.apply_button.click()
    qtbot.waitUntil(lambda: "is in force" in view.preview.text(), timeout=20000)
    qtbot.waitUntil(lambda: window.review.session.policy.id == 1, timeout=20000)
    qtbot.waitUntil(lambda: view.headline.text() != headline, timeout=20000)  # the new policy's figures
    assert view.headline.text().startswith("Measured recall")  # applying the policy ran the audit
    assert len(window.review.session.queue) != before or before == 0
    window.statusBar().clearMessage()  # (this synthetic project's video does not exist: the review says so)
    qtbot.wait(300)  # the charts lay their legends out on the next passes of the event loop
    shot(window, "supervisor.png")
    window.controller.close()


def test_supervisor_shows_drift_per_flight_and_reviewer_agreement(qtbot, tmp_path: Path, three_flights: Path) -> None:
    import shutil

    from triage_app.core.store import Workspace

    root = tmp_path / "p"
    shutil.copytree(three_flights, root)
    with Workspace(root) as p:  # a second reviewer looks again at ten frames and disagrees on two
        frames = [f for f in p.frames.frame_rows() if f["source_id"] == 1][:10]
        p.decisions.record([dict(frame_id=f["id"], label=("reject" if i % 4 == 0 else "accept") if i in (0, 1) else
                                      ("accept" if i % 4 == 0 else "reject"), reviewer="ben", seconds_spent=1.0,
                                      policy="p", member_scores="{}", sample_kind="second") for i, f in enumerate(frames)])
    window, view = _supervisor(qtbot, root)
    qtbot.waitUntil(lambda: view.drift_table.rowCount() == 3, timeout=30000)
    rows = {view.drift_table.item(r, 0).text(): [view.drift_table.item(r, c).text() for c in range(7)] for r in range(3)}
    assert rows["harbour.mp4"][2] == "ALERT" and rows["forest-b.mp4"][2] == ""
    assert "PSI" in rows["harbour.mp4"][3] and rows["forest-b.mp4"][6] == "labelled flights"
    assert "1 past 0.25" in view.quality_tabs.tabText(0)
    assert view.agreement_table.rowCount() == 1
    cells = [view.agreement_table.item(0, c).text() for c in range(4)]
    assert cells[:3] == ["ana / ben", "10", "80%"] and float(cells[3]) < 1
    assert "2 disagreements wait" in view.agreement_note.text()
    shot(window, "supervisor_drift.png")
    view.quality_tabs.setCurrentIndex(1)
    shot(view.quality_tabs, "supervisor_agreement.png")
    window.controller.close()


def test_count_axes_label_whole_distinct_counts_above_the_tallest_bar() -> None:
    from triage_app.gui.supervisor.supervisor_view import count_ticks

    for top in [0, 1, 2, 3, 7, 9, 10, 11, 37, 99, 100, 101, 640, 1634, 25_000]:
        step, ticks = count_ticks(top)
        labels = [k * step for k in range(ticks)]
        assert step >= 1 and len(set(labels)) == ticks <= 8  # whole, distinct, few
        assert labels[-1] > top or (top == 0 and labels[-1] >= 1)  # the tallest bar fits below the top
        assert labels[-1] - step <= max(top, 1)  # and no more than one step of empty headroom


def test_supervisor_chooses_the_assurance_and_it_is_kept_with_the_policy(qtbot, tmp_path: Path) -> None:
    from triage_app.core.store import Workspace

    root = _reviewed_project(tmp_path / "p")
    window, view = _supervisor(qtbot, root)
    assert view.confidence == 0.95 and view.assurance.count() == 3  # the settings' default
    view.assurance.setCurrentIndex(view.assurance.findData(0.5))
    view.assurance.activated.emit(view.assurance.currentIndex())  # as a person picking it
    qtbot.waitUntil(lambda: "point estimate" in view.preview.text(), timeout=20000)
    shot(window, "supervisor_assurance.png")
    with qtbot.waitSignal(window.supervisor.policy_did_change, timeout=20000):
        view.apply_button.click()
    qtbot.waitUntil(lambda: "is in force" in view.preview.text(), timeout=20000)
    window.controller.close()
    with Workspace(root) as p:
        assert p.policies.current()["confidence"] == 0.5
    again, view2 = _supervisor(qtbot, root)  # reopened: the policy's assurance is shown
    assert view2.confidence == 0.5
    again.controller.close()


def test_the_preview_follows_the_keys_and_reopening_shows_the_policy_in_force(qtbot, tmp_path: Path) -> None:
    """Home, PageUp and the arrows preview the target they land on (not only a mouse release);
    after reopening, the slider and the preview say which policy is in force."""
    from PySide6.QtCore import Qt

    root = _reviewed_project(tmp_path / "p")
    window, view = _supervisor(qtbot, root)
    view.slider.setFocus()
    qtbot.keyClick(view.slider, Qt.Key.Key_Home)  # the lowest target
    qtbot.waitUntil(lambda: "Target 50.0%" in view.preview.text(), timeout=20000)
    qtbot.keyClick(view.slider, Qt.Key.Key_PageUp)
    qtbot.waitUntil(lambda: f"Target {view.target:.1%}" in view.preview.text() and view.target > 0.5, timeout=20000)
    view.slider.setValue(901)
    with qtbot.waitSignal(window.supervisor.policy_did_change, timeout=20000):
        view.apply_button.click()
    window.controller.close()
    again, view2 = _supervisor(qtbot, root)
    assert view2.slider.value() == 901 and view2.target_label.text() == "90.1 %"
    assert "is in force (target 90.1%" in view2.preview.text()
    qtbot.wait(600)  # showing the policy in force asks for no preview of its own
    assert "is in force" in view2.preview.text()
    again.controller.close()
