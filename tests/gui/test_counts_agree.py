"""Every count in the window agrees with `triage report --json`, the numbers a supervisor
would copy into a report: decided, found, waiting, and the recall headline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt

from tests.gui.conftest import open_review


def test_the_window_and_the_report_say_the_same_numbers(qtbot, review_project: Path) -> None:
    window = open_review(qtbot, review_project)
    view, tabs = window.review_view, window.tabs
    for key in (Qt.Key.Key_A, Qt.Key.Key_R, Qt.Key.Key_U, Qt.Key.Key_A, Qt.Key.Key_R):
        qtbot.keyClick(view, key)
    qtbot.waitUntil(lambda: tabs.tabText(tabs.indexOf(window.decided_view)) == "Decided (5)", timeout=5000)
    window.tabs.setCurrentWidget(window.supervisor_page)
    qtbot.waitUntil(lambda: "(5 reviewed, 2 found" in window.supervisor_view.headline.text()
                    or "5 of 12 scored frames reviewed" in window.supervisor_view.headline.text(), timeout=30000)
    out = subprocess.run([sys.executable, "-m", "triage_app.cli", "report", str(review_project), "--json"],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    active = r["active_review"]
    assert r["reviewed"] == active["reviewed"] == 5 and r["accepted"] == active["found"] == 2
    assert tabs.tabText(tabs.indexOf(window.decided_view)) == f"Decided ({r['reviewed']})"
    assert tabs.tabText(tabs.indexOf(window.finds_view)) == f"Finds ({r['accepted']})"
    assert tabs.tabText(tabs.indexOf(view)) == f"Review ({active['left']})"
    assert view.header.text().startswith(f"Waiting: {active['left']}")
    assert active["headline"] in window.supervisor_view.headline.text()
    assert (r["recall_estimate"], r["recall_ci_low"], r["recall_ci_high"]) == (
        None if active["recall"] is None else round(active["recall"], 4), round(active["recall_low"], 4),
        round(active["recall_high"], 4))
    # The policy's own numbers stand beside them, named: a review by threshold counts its candidates.
    assert r["policy_in_force"]["reviewed"] <= r["reviewed"] and "candidates" in r["policy_in_force"]
    window.controller.close()
