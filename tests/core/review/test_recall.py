from __future__ import annotations

import numpy as np
import pytest

from triage_app.core.evaluation.recall_sim import cold_start, simulate_flights
from triage_app.core.model.policy import parse_rule
from triage_app.core.review.recall import audit_rates, derive_thresholds, estimate_recall, recall_bounds


def test_audit_rates_are_denser_below_the_threshold() -> None:
    r = audit_rates(0.05, 4)
    assert np.all(np.diff(r) > 0) and r.mean() == pytest.approx(0.05)


def test_recall_bounds_count_found_missed_and_hidden() -> None:
    labels = np.array([1, 1, 1, 0, -1, -1, -1, -1, 0, 1])
    stratum = np.array([-1, -1, -1, -1, 0, 0, 0, 0, 0, 0])
    cand = np.array([True, True, False, True, False, False, False, False, False, False])
    point, lo, hi = recall_bounds(cand, labels, stratum, evidence=np.linspace(0, 1, 10))
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


def test_a_higher_target_never_costs_fewer_frames() -> None:
    """The supervisor's preview, target by target: the workload never falls as the target
    rises, also where the labels cannot show the higher targets and the policy falls back."""
    rng = np.random.default_rng(4)
    n = 600
    truth = rng.random(n) < 0.15
    scores = np.clip(np.where(truth, rng.normal(0.65, 0.2, n), rng.normal(0.35, 0.2, n)), 0, 1)[:, None]
    labels = np.full(n, -1)
    seen = rng.choice(n, 60, replace=False)
    labels[seen] = truth[seen]
    targets = np.linspace(0.5, 0.99, 25)
    out = [derive_thresholds(scores, ["a"], parse_rule("any"), labels, np.full(n, -1), t, levels=120) for t in targets]
    work = [d.workload_fraction for d in out]
    assert any(d.enough_labels for d in out) and not all(d.enough_labels for d in out)  # both kinds of policy occur
    assert all(b >= a - 1e-12 for a, b in zip(work, work[1:], strict=False)), work


def test_first_policy_from_capture_order_labels_is_calibrated() -> None:
    """Cold start: every frame a candidate, a fifth reviewed in capture order, no audit yet.
    The unreviewed frames are estimated from reviewed ones of similar score; the thresholds
    reach the target on held-out frames at least as often as the assurance promises, and
    less assurance means less work."""
    runs = {c: cold_start(12, seed=300, target=0.9, reviewed=0.2, confidence=c) for c in (0.95, 0.8, 0.5)}
    assert runs[0.95]["target_reached_share"] >= 0.9 and runs[0.8]["target_reached_share"] >= 0.8
    assert runs[0.95]["mean_workload"] > runs[0.8]["mean_workload"] > runs[0.5]["mean_workload"]
    assert runs[0.8]["enough_labels_share"] == 1.0  # a real policy, not the fallback
    # The point estimate picks the least work whose estimate reaches the target: it lands
    # near the target, not far below it.
    assert runs[0.5]["mean_true_recall"] >= 0.85


def test_estimate_with_nothing_reviewed_is_unknown() -> None:
    est = estimate_recall(10, 0, 0, np.array([5, 5]), np.array([0, 0]), np.array([0, 0]))
    assert np.isnan(est.recall) and (est.ci_low, est.ci_high) == (0.0, 1.0)


def test_simulated_replays_reach_the_target_and_cover_the_truth() -> None:
    """A smaller version of scripts/recall_coverage.py (200 replays there)."""
    result = simulate_flights(30, seed=7, target=0.9, audit_share=0.2)
    assert result["target_reached_share"] >= 0.85
    assert result["audit_ci_coverage"] >= 0.9
    assert result["mean_workload"] < 0.9  # the policy does drop frames


def test_lower_assurance_buys_less_work_at_more_risk_of_missing_the_target() -> None:
    """The supervisor's assurance: at 0.5 the thresholds meet the target on the point
    estimate, at 0.95 on a strict lower bound; less assurance, less work."""
    runs = {c: simulate_flights(30, seed=11, target=0.9, audit_share=0.2, confidence=c) for c in (0.95, 0.8, 0.5)}
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


def test_a_side_without_labels_borrows_the_nearest_labelled_frames() -> None:
    """Only the top half of the frames was ever reviewed (the first policy's candidates); a
    policy that drops the bottom half has no label there. The nearest reviewed frames (the
    lowest candidates: all negative here) stand in, so the estimate is neither the prior's
    coin toss nor 'all missed'; a positive among them raises the estimate of what is missed."""
    rng = np.random.default_rng(4)
    n = 400
    evidence = np.sort(rng.random(n))
    labels = np.full(n, -1)
    top = np.arange(n // 2, n)
    labels[top] = (evidence[top] > 0.8).astype(int)  # 80 positives among the reviewed half
    cand = np.arange(n) >= n // 2
    stratum = np.full(n, -1)
    point, lower, _ = recall_bounds(cand, labels, stratum, 0.95, evidence=evidence)
    assert point > 0.9 and lower > 0.5  # the 25 lowest reviewed frames hold no positive
    assert lower < 0.95  # the stand-ins are 25 frames: their bound is honest about it
    labels[n // 2 : n // 2 + 5] = 1  # five positives among the lowest reviewed frames
    point2, lower2, _ = recall_bounds(cand, labels, stratum, 0.95, evidence=evidence)
    assert point2 < point and lower2 < lower


def test_the_supervisor_curve_never_falls_as_the_workload_grows() -> None:
    from types import SimpleNamespace

    from triage_app.core.outputs.reports import recall_curve

    rng = np.random.default_rng(6)
    n = 300
    scores = rng.random((n, 1))
    labels = np.full(n, -1)
    top = np.flatnonzero(scores[:, 0] > 0.55)  # only the first policy's candidates were reviewed
    labels[top] = (rng.random(len(top)) < scores[top, 0] - 0.3).astype(int)
    snap = SimpleNamespace(ids=np.arange(n), scores=scores, names=["a"], labels=labels, stratum=np.full(n, -1),
                           policy=SimpleNamespace(rule=parse_rule("any")))
    curve = recall_curve(snap)
    recall = [c["recall"] for c in curve if c["recall"] == c["recall"]]
    lower = [c["lower"] for c in curve]
    assert len(recall) > 10 and all(b >= a for a, b in zip(recall, recall[1:], strict=False))
    assert all(b >= a for a, b in zip(lower, lower[1:], strict=False))


def test_report_estimates_dropped_frames_no_audit_considered(tmp_path) -> None:
    """With the audit off, the dropped frames were never sampled: the report must not call the
    recall 100 % measured. It estimates their positives from the reviewed frames nearest in score
    (here the lowest candidates, richer in positives than the dropped frames: the estimate errs
    on the safe side, below the true recall); once the audit considers them, it is measured."""
    from tests.core.review.test_queue import make_scored_project
    from triage_app.core.model.settings import load_settings
    from triage_app.core.outputs.reports import report
    from triage_app.core.review.audit import refresh_audit
    from triage_app.core.review.session import ReviewSession

    rng = np.random.default_rng(4)
    truth = rng.random(400) < 0.2
    scores = np.clip(np.where(truth, rng.normal(0.45, 0.15, 400), rng.normal(0.15, 0.08, 400)), 0, 1)
    off = load_settings(tmp_path, overrides={"review": {"audit_share": 0.0, "cold_start_share": 0.0, "order": "time"}})
    with make_scored_project(tmp_path, scores.tolist()) as p:
        p.settings = off
        s = ReviewSession(p)
        idx = {r["id"]: r["idx"] for r in p.frames.frame_rows()}
        while s.current is not None:
            s.decide("accept" if truth[idx[s.current.frame_id]] else "reject")
        kept = scores >= 0.25  # the card's threshold
        true_recall = (truth & kept).sum() / truth.sum()
        assert true_recall < 0.95  # some positives were dropped
        r = report(p)
        assert r["audit_sampled"] == 0 and r["unaudited_dropped"] == int((~kept).sum())
        assert r["unaudited_positives"] > 0 and r["recall_estimate"] < 1.0
        assert r["recall_ci_low"] <= r["recall_estimate"] <= true_recall and r["recall_ci_high"] - r["recall_ci_low"] > 0.05
        on = load_settings(tmp_path, overrides={"review": {"audit_share": 0.3, "order": "time"}})
        p.settings = on
        assert refresh_audit(p) > 0
        r = report(p)
        assert r["unaudited_dropped"] == 0
