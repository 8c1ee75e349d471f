"""Active review on simulated flights: it must beat a random order by far, stop by itself
near the target, and its interval must cover the true recall; the two bounds it rests on
checked against the truth where it is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from triage_app.core.evaluation.active_sim import review_until_stop, run_active_trial, simulated_project, summarise
from triage_app.core.review.progress import remaining_samples, review_progress, sequence_lower
from triage_app.core.review.session import ReviewSession


@pytest.fixture(scope="module")
def trials():
    return [run_active_trial(seed, frames=600, prevalence=0.10, target=0.95) for seed in range(4)]


def test_active_review_beats_a_random_order_by_a_clear_margin(trials) -> None:
    out = summarise(trials, 0.95)
    # The frames shown before 95 % of the targets were: a random order shows about 95 % of them.
    assert out["random_share_at"]["95"] > 0.85
    assert out["share_at"]["95"] < 0.5 * out["random_share_at"]["95"], out["share_at"]
    for t in trials:
        assert t.shares["90"] is not None and t.shares["90"] < t.random_shares["90"] - 0.3, (t.seed, t.shares)


def test_review_stops_by_itself_near_the_target_and_its_interval_covers_the_truth(trials) -> None:
    out = summarise(trials, 0.95)
    assert out["stopped"] == len(trials)
    assert out["stop_fraction_max"] < 0.6  # well before every frame was seen
    assert out["stop_true_recall_mean"] >= 0.95
    assert out["stop_true_recall_min"] >= 0.9
    assert out["interval_covered"] >= 0.75
    assert out["sequence_bound_held"] == 1.0  # the conservative bound never claims too much
    for t in trials:
        assert t.stop_low <= t.stop_estimate <= t.stop_high  # the headline lies inside its interval


def test_once_the_target_is_reached_the_queue_says_so_and_offers_more_on_request(tmp_path: Path) -> None:
    ws, label = simulated_project(tmp_path / "p", seed=7, frames=500, review={"target_recall": 0.9, "audit_seed": 7})
    with ws:
        shown, stop = review_until_stop(ws, label)
        assert stop is not None
        session = ReviewSession(ws)
        assert session.target_reached and session.current is None  # nothing more is offered
        assert len(session.held) == 500 - len(shown)
        p = session.progress
        assert p.reached and p.recall_low >= 0.9 and p.recall_low <= p.recall <= p.recall_high
        assert "target 90% reached" in p.headline()
        # The assurance is one-sided: asked for less, the lower bound rises (never falls), and the
        # headline says what it is: at least the bound, with that assurance.
        lows = [review_progress(ws, confidence=c) for c in (0.95, 0.8, 0.5)]
        assert lows[0].recall_low <= lows[1].recall_low <= lows[2].recall_low <= lows[2].recall + 1e-9
        assert f"at least {lows[0].recall_low:.1%} with 95% assurance" in lows[0].headline()
        assert "the median estimate" in lows[2].headline()
        assert any(line.startswith("From the review sequence alone") for line in p.lines())
        # What the next points would cost, in frames, growing with the recall asked for.
        costs = [n for _r, n in p.next_points]
        assert costs == sorted(costs)
        assert session.keep_reviewing() == len(session.held) + 500 - len(shown)
        assert session.current is not None and not session.held


def test_before_anything_is_decided_the_recall_is_not_estimated(tmp_path: Path) -> None:
    ws, _label = simulated_project(tmp_path / "p", seed=1, frames=120)
    with ws:
        p = review_progress(ws)
        assert p.recall is None and not p.reached and p.reviewed == 0
        assert "not estimated yet" in p.headline()


def test_the_counts_follow_every_decision_and_undo_between_learnings(tmp_path: Path) -> None:
    """The header's "reviewed, found" agree with the store after each key, not only after the
    next learning."""
    ws, label = simulated_project(tmp_path / "p", seed=2, frames=120)
    with ws:
        session = ReviewSession(ws)
        for _ in range(7):
            c = session.current
            session.decide("accept" if label[c.frame_id] else "reject")
        session.decide("unsure")
        fresh = review_progress(ws)
        p = session.progress
        assert (p.reviewed, p.found, p.left) == (fresh.reviewed, fresh.found, fresh.left) and p.reviewed == 8
        session.undo()
        session.undo()
        fresh = review_progress(ws)
        assert (p.reviewed, p.found, p.left) == (fresh.reviewed, fresh.found, fresh.left) == (6, fresh.found, 114)


def test_once_every_frame_is_reviewed_the_recall_is_known_and_an_undo_reopens_it(tmp_path: Path) -> None:
    """With nothing left unseen, no estimate: the header says every frame was reviewed, there
    is no "next" to offer, and the target counts as reached until an undo brings one back."""
    ws, label = simulated_project(tmp_path / "p", seed=3, frames=40, review={"target_recall": 0.99})
    with ws:
        session = ReviewSession(ws)
        while session.current is not None:
            session.decide("accept" if label[session.current.frame_id] else "reject")
        p = session.progress
        assert p.left == 0 and p.reached and p.recall == 1.0 and p.next_points == []
        assert p.headline().startswith("Every scored frame reviewed (40, ") and "target 99% reached" in p.headline()
        fresh = review_progress(ws)
        assert fresh.reached and fresh.headline() == p.headline()
        session.undo()
        assert p.left == 1 and not p.reached and p.recall is None
        assert "taken back" in p.headline()


def test_the_sequence_bound_holds_for_a_ranking_no_better_than_chance() -> None:
    """Callaghan & Müller-Hansen's bound at 95 % assumes only that recent frames are as rich
    as those left: under a random order (the worst it allows) it must hold at least 95 % of
    the time."""
    rng = np.random.default_rng(0)
    held = 0
    runs = 300
    for _ in range(runs):
        pool, positives = 1000, 60
        order = rng.permutation(np.r_[np.ones(positives), np.zeros(pool - positives)].astype(np.int64))
        shown = int(rng.integers(300, 900))
        seq = order[:shown]
        low = sequence_lower(seq, pool, 0.95)
        held += low <= seq.sum() / positives + 1e-12
    assert held / runs >= 0.94


@pytest.mark.parametrize("shown_by", ["chance", "score"])
def test_the_model_based_count_of_targets_left_covers_the_truth_when_calibrated(shown_by: str) -> None:
    """Scores whose chance of a target is a known logistic: the 5-95 % range of the draws of
    the targets left must hold the true count about 90 % of the time, whether the decided
    frames were drawn at random or, as a ranking shows them, the highest scores first (and a
    few at random, the blind audit) with every frame left below nearly all of them: the
    calibration on the scores that chose them (forecasts) is not biased by that choice."""
    rng = np.random.default_rng(3)
    inside = 0
    runs = 60
    for _ in range(runs):
        score = rng.normal(0, 1, 3000)
        truth = rng.random(3000) < 1 / (1 + np.exp(-(2.2 * score - (3.2 if shown_by == "chance" else 4.0))))
        if shown_by == "chance":
            decided = rng.random(3000) < 0.3
        else:
            decided = np.zeros(3000, bool)
            decided[np.argsort(-score)[:600]] = True
            decided[rng.choice(3000, 60, replace=False)] = True
        draws = remaining_samples(score[decided], truth[decided].astype(int), score[~decided], rng, boots=300)
        lo, hi = np.quantile(draws, [0.05, 0.95])
        inside += lo <= truth[~decided].sum() <= hi
    assert inside / runs >= 0.8


def test_video_like_flights_come_in_runs_of_near_duplicates(tmp_path: Path) -> None:
    from triage_app.core.evaluation.active_sim import synthetic_flight
    from triage_app.core.learning.folds import fold_groups

    emb, truth = synthetic_flight(5, frames=100, burst=5)
    runs = emb.reshape(20, 5, -1)
    within = np.linalg.norm(runs - runs.mean(axis=1, keepdims=True), axis=2).mean()
    between = np.linalg.norm(runs.mean(axis=1)[:, None] - runs.mean(axis=1)[None, :], axis=2).mean()
    assert within < 0.25 * between
    assert (truth.reshape(20, 5) == truth.reshape(20, 5)[:, :1]).all()  # one truth per run
    ws, _label = simulated_project(tmp_path / "p", seed=5, frames=100, burst=5)
    with ws:
        ids = np.array([f["id"] for f in ws.frames.frame_rows()])
        groups = fold_groups(ws, ids)
    assert len(set(groups.tolist())) == 20 and all(len(set(groups[i : i + 5].tolist())) == 1 for i in range(0, 100, 5))
