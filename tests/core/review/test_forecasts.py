"""The stopping estimate calibrates the ranking on its forecasts: the score each decided frame
had, under the ranking in force, when it was shown. Recorded by the store as rankings replace
each other; read with the decisions' near-duplicate structure (events) in the count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from triage_app.core.evaluation.active_sim import simulated_project
from triage_app.core.learning.loop import learn
from triage_app.core.review.progress import (
    capture_positions,
    clump_factor,
    remaining_samples,
    review_progress,
    target_runs,
)
from triage_app.core.review.session import ReviewSession


def _review_and_learn(ws, session: ReviewSession, label: dict[int, bool], n: int = 25) -> None:
    """The oracle decides the next ``n`` frames offered, then the ranking learns."""
    for _ in range(n):
        c = session.current
        session.decide("accept" if label[c.frame_id] else "reject")
    learn(ws, head=False)
    session.refresh()


def test_each_decided_frame_keeps_the_score_it_had_when_it_was_shown(tmp_path: Path) -> None:
    ws, label = simulated_project(tmp_path / "p", seed=4, frames=300, review={"audit_seed": 4})
    with ws:
        session = ReviewSession(ws)

        def review(n: int) -> list[int]:
            done = []
            for _ in range(n):
                c = session.current
                session.decide("accept" if label[c.frame_id] else "reject")
                done.append(c.frame_id)
            return done

        before_any = review(40)  # the zero-shot order: no ranking yet
        assert learn(ws, head=False).ranking is not None
        session.refresh()
        assert len(ws.rankings.forecasts_made().frame_ids) == 0  # nothing was decided under a ranking
        first = ws.rankings.rank_scores()
        score_then = dict(zip(first.frame_ids.tolist(), first.scores.tolist(), strict=True))
        under_first = review(30)
        session.undo()  # the last one taken back: it has no standing decision
        undone = under_first.pop()
        second = learn(ws, head=False).ranking
        assert second is not None
        session.refresh()
        made = ws.rankings.forecasts_made()
        assert sorted(made.frame_ids.tolist()) == sorted(under_first)
        got = dict(zip(made.frame_ids.tolist(), made.scores.tolist(), strict=True))
        for f in under_first:
            assert got[f] == score_then[f]  # the first ranking's score, not the second's
        assert set(made.ranking_ids.tolist()) == {first.ranking_id}  # made by the first ranking
        assert not set(before_any) & set(got)
        # A later ranking keeps those forecasts as they were and adds the frames decided since,
        # except one decided (then undone) before the second ranking was learnt: that ranking may
        # have learnt its label.
        under_second = review(10)
        second_scores = ws.rankings.rank_scores()
        learn(ws, head=False)
        made = ws.rankings.forecasts_made()
        got2 = dict(zip(made.frame_ids.tolist(), made.scores.tolist(), strict=True))
        assert set(got2) == set(under_first) | (set(under_second) - {undone})
        assert all(got2[f] == got[f] for f in under_first)
        at = {f: s for f, s in zip(second_scores.frame_ids.tolist(), second_scores.scores.tolist(), strict=True)}
        assert all(got2[f] == at[f] for f in set(under_second) - {undone})


def test_the_estimate_says_which_scores_it_is_calibrated_on(tmp_path: Path) -> None:
    ws, label = simulated_project(tmp_path / "p", seed=6, frames=400, review={"audit_seed": 6})
    with ws:
        session = ReviewSession(ws)
        bases = []
        for _ in range(6):
            _review_and_learn(ws, session, label)
            bases.append(review_progress(ws).basis)
        assert any("out-of-fold" in b and "cautious" in b for b in bases[:2])  # before forecasts enough
        assert "calibrated on its forecasts" in bases[-1]


def test_targets_in_runs_of_consecutive_frames_widen_the_count() -> None:
    # Two sources; frames stored out of order, and with sampled indices (every third frame).
    frames = {10 + i: {"source_id": 1, "idx": 3 * i} for i in range(10)}
    frames |= {100 + i: {"source_id": 2, "idx": i} for i in range(5)}
    positions = capture_positions(dict(reversed(list(frames.items()))))
    assert positions[10] == (1, 0) and positions[19] == (1, 9) and positions[100] == (2, 0)
    # Runs: 10-12 (three), 15 (one), 19 and 100 are in different sources (two runs of one), 103-104 (two),
    # and a frame with no place is a run of its own.
    runs = target_runs(positions, [12, 11, 10, 15, 19, 100, 103, 104, 999])
    assert sorted(runs) == [1, 1, 1, 1, 2, 3]
    assert clump_factor([1] * 40) == 1.0  # single frames: a Poisson count
    assert clump_factor([5] * 8) == 5.0  # runs of five near duplicates
    assert clump_factor(runs) == (4 + 4 + 9) / (4 + 2 + 3)
    assert clump_factor([]) == 1.0
    rng = np.random.default_rng(0)
    # The count of targets left keeps its mean and gains (design effect - 1) times it in variance,
    # on top of the calibration's own uncertainty.
    x = rng.normal(0, 1, 600)
    y = (rng.random(600) < 1 / (1 + np.exp(-(2 * x - 2)))).astype(int)
    left = rng.normal(-1, 1, 2000)
    plain = remaining_samples(x, y, left, np.random.default_rng(1), boots=2000)
    wide = remaining_samples(x, y, left, np.random.default_rng(1), boots=2000, design_effect=5.0)
    assert abs(wide.mean() - plain.mean()) < 0.1 * plain.mean()
    assert 0.75 < (wide.var() - plain.var()) / (4.0 * plain.mean()) < 1.25


def test_review_stops_only_where_two_learnings_25_decisions_apart_say_the_target_is_reached(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    """The stop needs the estimate of this learning and that of the learning 25 decisions before
    (read again from the store: the decisions, forecasts and scores as they stood) to reach the
    target: a single ranking's lull between two clusters of targets cannot stop review."""
    import triage_app.core.review.progress as progress

    ws, label = simulated_project(tmp_path / "p", seed=8, frames=500, review={"target_recall": 0.99, "audit_seed": 8})
    with ws:
        session = ReviewSession(ws)
        states = []
        for _ in range(8):
            _review_and_learn(ws, session, label)
            states.append(review_progress(ws, target=0.01))  # every bound reaches 1 %: the previous one is read
        read_again = [(b.model_low, a.previous_low) for b, a in zip(states, states[1:], strict=False)
                      if a.previous_low is not None]
        assert len(read_again) >= 4
        for said, again in read_again:  # the bound the previous learning gave, to the digit
            assert again == pytest.approx(said, abs=1e-12)
        now = states[-1]
        assert now.reached and now.model_low >= 0.01 and now.previous_low >= 0.01
        monkeypatch.setattr(progress, "_previous_low", lambda *a, **k: 0.005)
        held = review_progress(ws, target=0.01)
        assert held.model_low == now.model_low and not held.reached
        assert "at a learning at least 25 decisions earlier said so too" in held.note
        assert "target 1% reached by this estimate; review stops once an estimate made 25+ decisions earlier agrees" \
            in held.headline()  # not a bare "not reached"
        assert "reached by this estimate" not in now.headline() and "target 1% reached" in now.headline()


@pytest.mark.parametrize(("burst", "low", "high"), [(5, 3.0, 8.0), (1, 1.0, 1.5)])
def test_the_count_left_is_spread_as_a_count_of_runs_where_targets_fill_frames_in_a_row(
        tmp_path: Path, burst: int, low: float, high: float) -> None:
    """A video sampled a few times a second shows a target in several frames in a row, which
    review keeps or misses together: the count of targets left is spread as a count of such
    runs (their length measured on the accepted frames in capture order); stills of separate
    scenes stay a count of single frames."""
    ws, label = simulated_project(tmp_path / "p", seed=7, frames=400, burst=burst, review={"audit_seed": 7})
    with ws:
        session = ReviewSession(ws)
        for _ in range(5):
            _review_and_learn(ws, session, label)
        p = review_progress(ws)
        accepted = [d.frame_id for d in ws.decisions.history() if d.label.target == 1]
        frames = ws.frames.frames_by_id(sorted(label))
    factor = clump_factor(target_runs(capture_positions(frames), accepted))
    assert low <= factor <= high
    if factor > 1.05:
        assert f"runs of consecutive frames ({factor:.1f} times a count of single frames" in p.basis
    else:
        assert "runs of consecutive frames" not in p.basis


def test_learnings_closer_than_the_guard_are_not_a_second_look(tmp_path: Path) -> None:
    """Learnings asked for every few decisions (Learn pressed again, or a short
    ``review.retrain_every``): the estimate this learning must agree with is still the one made
    at least ``review.stop_guard`` decisions before, read again as it stood, whatever learnings
    came in between; the scores of the rankings no reference needs any more are dropped."""
    from sqlalchemy import func, select

    ws, label = simulated_project(tmp_path / "p", seed=8, frames=500, review={"audit_seed": 8, "stop_guard": 25})
    with ws:
        session = ReviewSession(ws)
        _review_and_learn(ws, session, label, 40)
        states = []
        for _ in range(9):
            _review_and_learn(ws, session, label, 10)
            p = review_progress(ws, target=0.01)  # every bound reaches 1 %: the reference's is read
            states.append((ws.rankings.latest()["decisions"], p.model_low, p.previous_low))
            past = ws.db.table("past_scores")
            with ws.db.read() as conn:
                kept = conn.execute(select(func.min(past.c.ranking_id))).scalar()
            reference = ws.rankings.previous()
            assert kept == (reference["id"] if reference else 1)  # nothing older than the reference is kept
        checked = 0
        for made, _, again in states:
            if again is None:
                continue
            ref = max((m, low) for m, low, _ in states if m <= made - 25)
            assert made - ref[0] < 35 and again == pytest.approx(ref[1], abs=1e-12)
            checked += 1
        assert checked >= 5


def test_the_share_of_the_estimate_that_lies_in_the_rankings_tail_is_named(tmp_path: Path) -> None:
    """Of the targets estimated left, those the calibration puts among frames the ranking scores
    below nearly every decided frame are its extrapolation: the supervisor is told how many
    frames lie there, how many targets the estimate puts there, and from how few decided frames."""
    ws, label = simulated_project(tmp_path / "p", seed=5, frames=1000, review={"audit_seed": 5})
    with ws:
        session = ReviewSession(ws)
        for _ in range(6):
            _review_and_learn(ws, session, label)
        p = review_progress(ws)
        made, ranked = ws.rankings.forecasts_made(), ws.rankings.rank_scores()
        decided = ws.decisions.labels()
    x = np.array([s for f, s in zip(made.frame_ids.tolist(), made.scores.tolist(), strict=True) if f in decided])
    cut = np.quantile(x, 0.05)
    left = np.array([s for f, s in zip(ranked.frame_ids.tolist(), ranked.scores.tolist(), strict=True)
                     if f not in decided])
    assert p.tail_frames == int((left < cut).sum()) > 300  # most unreviewed frames lie below the decided ones
    assert p.tail_decided == int((x < cut).sum()) <= 0.05 * len(x) + 1
    assert p.remaining is not None and 0 < p.tail_remaining < p.remaining
    line = next(t for t in p.lines() if "score below all but 5% of the decided frames" in t)
    assert line.startswith(f"{p.tail_frames:,} of the {p.left:,} frames not reviewed")
    assert f"extrapolates from the {p.tail_decided} decided frames" in line
