from __future__ import annotations

import numpy as np
import pytest

from triage_app.core.fusion import parse_rule
from triage_app.core.recall import audit_rates, derive_thresholds, estimate_recall, recall_bounds
from triage_app.core.recall_sim import cold_start, replay


def test_audit_rates_are_denser_below_the_threshold() -> None:
    r = audit_rates(0.05, 4)
    assert np.all(np.diff(r) > 0) and r.mean() == pytest.approx(0.05)


def test_recall_bounds_count_found_missed_and_hidden() -> None:
    labels = np.array([1, 1, 1, 0, -1, -1, -1, -1, 0, 1])
    stratum = np.array([-1, -1, -1, -1, 0, 0, 0, 0, 0, 0])
    cand = np.array([True, True, False, True, False, False, False, False, False, False])
    point, lo, hi = recall_bounds(cand, labels, stratum)
    # Found 2; missed 2 labelled positives (rows 2 and 9); the stratum's audited frames
    # (rows 8, 9) are half positive, so about 2 of the 4 unlabelled ones are too.
    assert point == pytest.approx(2 / (2 + 2 + 2))
    assert lo < point < hi


def test_too_few_labels_fall_back_to_conservative_thresholds() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((500, 2))
    labels = np.full(500, -1)
    d = derive_thresholds(scores, ["a", "b"], parse_rule("any"), labels, np.full(500, -1), 0.98)
    assert not d.enough_labels and "too few labels" in d.note  # no label at all
    assert d.workload_fraction >= 0.3
    # Three labels, all positive: the policy keeps nearly every frame.
    labels[:3] = 1
    d = derive_thresholds(scores, ["a", "b"], parse_rule("any"), labels, np.full(500, -1), 0.98)
    assert d.workload_fraction >= 0.95


def test_first_policy_from_capture_order_labels_is_calibrated() -> None:
    """Cold start: every frame a candidate, a fifth reviewed in capture order, no audit yet.
    The unreviewed frames are estimated from reviewed ones of similar score; the thresholds
    reach the target on held-out frames at least as often as the assurance promises, and
    less assurance means less work."""
    runs = {c: cold_start(12, seed=300, target=0.9, reviewed=0.2, confidence=c) for c in (0.95, 0.5)}
    assert runs[0.95]["target_reached_share"] >= 0.9 and runs[0.5]["target_reached_share"] >= 0.5
    assert runs[0.5]["mean_workload"] < runs[0.95]["mean_workload"]
    assert runs[0.5]["enough_labels_share"] == 1.0  # a real policy, not the fallback


def test_estimate_with_nothing_reviewed_is_unknown() -> None:
    est = estimate_recall(10, 0, 0, np.array([5, 5]), np.array([0, 0]), np.array([0, 0]))
    assert np.isnan(est.recall) and (est.ci_low, est.ci_high) == (0.0, 1.0)


def test_simulated_replays_reach_the_target_and_cover_the_truth() -> None:
    """A smaller version of scripts/recall_coverage.py (200 replays there)."""
    result = replay(30, seed=7, target=0.9, audit_share=0.2)
    assert result["target_reached_share"] >= 0.85
    assert result["audit_ci_coverage"] >= 0.9
    assert result["mean_workload"] < 0.9  # the policy does drop frames


def test_lower_assurance_buys_less_work_at_more_risk_of_missing_the_target() -> None:
    """The supervisor's assurance: at 0.5 the thresholds meet the target on the point
    estimate, at 0.95 on a strict lower bound; less assurance, less work."""
    runs = {c: replay(30, seed=11, target=0.9, audit_share=0.2, confidence=c) for c in (0.95, 0.8, 0.5)}
    work = [runs[c]["mean_workload"] for c in (0.95, 0.8, 0.5)]
    reached = [runs[c]["target_reached_share"] for c in (0.95, 0.8, 0.5)]
    assert work[0] > work[1] > work[2]
    assert reached[0] >= reached[1] >= reached[2] and reached[0] >= 0.9
    # Even the point estimate lands near the target, not far below it.
    assert runs[0.5]["mean_true_recall"] >= 0.85


def test_derived_policy_says_its_assurance() -> None:
    rng = np.random.default_rng(2)
    scores = rng.random((400, 1))
    labels = np.where(rng.random(400) < 0.5, (scores[:, 0] > 0.7).astype(int), -1)
    for c in (0.95, 0.5):
        d = derive_thresholds(scores, ["a"], parse_rule("any"), labels, np.full(400, -1), 0.9, confidence=c)
        assert d.confidence == c
