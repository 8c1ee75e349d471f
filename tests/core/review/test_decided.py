"""Past decisions, browsed and changed where they stand: the newest decision stands, the
history keeps the old one, undo restores it, and another reviewer's change is a second opinion."""

from __future__ import annotations

from pathlib import Path

import pytest

from triage_app.core.evaluation.active_sim import simulated_project
from triage_app.core.review.agreement import disagreements
from triage_app.core.review.decided import decided_frames, matching, revise
from triage_app.core.review.session import ReviewSession


def test_a_past_decision_changes_where_it_stands_and_undo_restores_it(tmp_path: Path) -> None:
    ws, _label = simulated_project(tmp_path / "p", seed=4, frames=60)
    with ws:
        session = ReviewSession(ws)
        first = session.current.frame_id
        for label in ("reject", "accept", "reject", "unsure"):
            session.decide(label)
        rows = decided_frames(ws)
        assert [r.label for r in rows] == ["unsure", "reject", "accept", "reject"]  # newest first
        assert rows[-1].frame_id == first and all(r.reviewer == "oracle" for r in rows)
        assert [r.label for r in matching(rows, label="reject")] == ["reject", "reject"]
        assert matching(rows, reviewer="someone else") == [] and matching(rows, source_id=rows[0].source_id) == rows

        ids = revise(ws, [first], "accept", "oracle")
        assert len(ids) == 1
        assert ws.decisions.standing_labels([first]) == {first: "accept"}
        changed = next(r for r in decided_frames(ws) if r.frame_id == first)
        assert changed.via == "revised" and changed.changes == 1
        assert len([d for d in ws.decisions.history() if d.frame_id == first]) == 2  # the old one is kept
        assert ws.decisions.labels()[first] == 1  # what the ranking learns from
        assert revise(ws, [first], "accept", "oracle") == []  # already so: nothing recorded
        ws.decisions.undo(ids, reviewer="oracle")
        assert ws.decisions.standing_labels([first]) == {first: "reject"}
        assert len(decided_frames(ws)) == 4  # no frame lost or doubled

        # Another reviewer's change is their own opinion beside the first: a disagreement.
        revise(ws, [first], "accept", "bob")
        assert first in set(disagreements(ws))
        with pytest.raises(ValueError, match="no decision"):
            revise(ws, [10_000], "accept", "oracle")
