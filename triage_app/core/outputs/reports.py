"""Reports: the headline numbers (``triage report``), what the supervisor view draws (recall
against workload, score histograms of accepted and rejected frames per member, audit
progress, each reviewer's throughput, drift per flight, the agreement between reviewers),
and the per-source counts of the sources list."""

from __future__ import annotations

from typing import Any

import numpy as np

from triage_app.core.learning.drift import flight_drift
from triage_app.core.model.policy import fuse
from triage_app.core.model.records import Source
from triage_app.core.review.agreement import agreement, disagreements
from triage_app.core.review.audit import Snapshot, snapshot
from triage_app.core.review.progress import review_progress
from triage_app.core.review.recall import estimate_recall, quantile_levels, recall_bounds, unaudited_positives
from triage_app.core.store import Workspace


def report(ws: Workspace, snap: Snapshot | None = None) -> dict[str, Any]:
    """The supervisor's headline numbers (from ``snap`` when the caller already took the
    snapshot). In active review (the default order) the top-level counts and recall are active
    review's, as the window shows them, its details under ``active_review``, and the policy in
    force's own (the frames past its thresholds and the blind audit of the rest, for a review
    by threshold) under ``policy_in_force``; in time or score order they are the policy's."""
    snap = snap if snap is not None else snapshot(ws)
    cand = snap.candidate
    reviewed_c = int((cand & (snap.labels >= 0)).sum())
    accepted_c = int((cand & (snap.labels == 1)).sum())
    strata = ws.settings.review.audit_strata
    eligible = (~cand) & (snap.stratum >= 0)
    audited = eligible & (snap.labels >= 0)
    sizes = np.bincount(snap.stratum[eligible], minlength=strata)[:strata]
    n_h = np.bincount(snap.stratum[audited], minlength=strata)[:strata]
    a_h = np.bincount(snap.stratum[audited & (snap.labels == 1)], minlength=strata)[:strata]
    known_dropped = int(((~cand) & (snap.stratum < 0) & (snap.labels == 1)).sum())
    # Dropped frames no audit has considered (the audit is off, or has not run since the
    # policy changed): estimated from labelled frames of similar fused score, never assumed empty.
    unconsidered = (~cand) & (snap.stratum < 0) & (snap.labels < 0)
    unaudited = unaudited_positives(unconsidered, (~cand) & (snap.labels >= 0), snap.labels == 1, snap.fused, 0.975,
                                    pool=snap.labels >= 0)
    est = estimate_recall(int(cand.sum()), reviewed_c, accepted_c, sizes, n_h, a_h, known_dropped=known_dropped,
                          unaudited=unaudited)
    frames = ws.frames.frame_count()
    policy = {  # the policy in force: the frames past its thresholds, and the blind audit of the rest
        "candidates": int(cand.sum()),
        "reviewed": reviewed_c,
        "accepted": accepted_c,
        "audit_sampled": int(n_h.sum()),
        "audit_waiting": int((snap.sampled & (snap.labels < 0) & ~cand).sum()),
        "audit_positives": int(a_h.sum()),
        "unaudited_dropped": int(unconsidered.sum()),  # dropped frames whose positives are estimated, not measured
        "unaudited_positives": round(float(unaudited[0]), 1),
        "recall_estimate": None if np.isnan(est.recall) else round(est.recall, 4),
        "recall_ci_low": round(est.ci_low, 4),
        "recall_ci_high": round(est.ci_high, 4),
        "workload_fraction": round(float(cand.mean()) if len(cand) else 0.0, 4),
        "policy": {"id": snap.policy.id, "rule": snap.policy.rule.text,
                   "thresholds": {n: round(snap.policy.thresholds.get(n, 0.5), 6) for n in snap.names}},
        "strata": est.strata,
    }
    out: dict[str, Any] = {"active_review": None, "target": ws.target.name, "frames": frames, "scored": int(len(snap.ids)),
                           **policy}
    if ws.settings.review.order == "active":
        # The headline numbers are active review's, as the window shows them; the policy's own
        # (a review by threshold) stand beside them, named so.
        progress = review_progress(ws)
        active = progress.as_dict() | {"lines": progress.lines(), "headline": progress.headline(),
                                       "next": progress.next_points_text()}
        out.update(active_review=active, policy_in_force=policy, reviewed=progress.reviewed, accepted=progress.found,
                   audit_sampled=progress.audit_draws, audit_positives=progress.audit_positives,
                   recall_estimate=None if progress.recall is None else round(progress.recall, 4),
                   recall_ci_low=round(progress.recall_low, 4), recall_ci_high=round(progress.recall_high, 4))
    return out




def recall_curve(snap: Snapshot, levels: int = 40) -> list[dict[str, float]]:
    """(workload, estimated recall, lower bound) at evenly spaced quantile levels."""
    out: list[dict[str, float]] = []
    if len(snap.ids) == 0:
        return out
    best_lower = best_point = 0.0
    taus = np.linspace(0.99, 0.0, levels)
    for th in quantile_levels(snap.scores, snap.names, taus):
        fused, cand = fuse(snap.scores, np.array([th[n] for n in snap.names]), snap.policy.rule)
        point, lo, _hi = recall_bounds(cand, snap.labels, snap.stratum, evidence=fused)
        # Candidate sets grow as the level falls, so recall cannot drop: a bound (or an
        # estimate) shown at a smaller workload holds for every larger one. Estimates made
        # where no label lies borrow the nearest ones and can dip; the curve does not.
        best_lower = max(best_lower, float(lo))
        if point == point:
            best_point = max(best_point, float(point))
        out.append({"workload": float(cand.mean()), "recall": best_point if point == point or best_point else float("nan"),
                    "lower": best_lower})
    return out


def histograms(snap: Snapshot, bins: int = 10) -> dict[str, dict[str, list[int]]]:
    edges = np.linspace(0, 1, bins + 1)
    out = {}
    for j, name in enumerate(snap.names):
        col = snap.scores[:, j]
        out[name] = {
            "accepted": np.histogram(col[(snap.labels == 1) & ~np.isnan(col)], edges)[0].tolist(),
            "rejected": np.histogram(col[(snap.labels == 0) & ~np.isnan(col)], edges)[0].tolist(),
        }
    return out


def reviewer_throughput(ws: Workspace) -> list[dict[str, Any]]:
    rows = ws.decisions.throughput()
    # A rate from under a minute of review time says nothing (and decisions imported or made
    # by a script carry next to no time at all): no rate then.
    return [{"reviewer": r, "decisions": int(n), "per_hour": round(3600.0 * n / s, 1) if s and s >= 60 else None}
            for r, n, s in rows]


def supervisor_data(ws: Workspace) -> dict[str, Any]:
    snap = snapshot(ws)
    return {
        "report": report(ws, snap),
        "curve": recall_curve(snap),
        "histograms": histograms(snap),
        "reviewers": reviewer_throughput(ws),
        "drift": [f.as_dict() | {"reasons": f.reasons()} for f in flight_drift(ws)],
        "agreement": agreement(ws),
        "disagreements": len(disagreements(ws)),
        "alert_psi": ws.settings.drift.alert_psi,
    }


def source_overview(ws: Workspace) -> list[Source]:
    """Per source: its summary (frames, flagged, telemetry matched) with frames scored,
    candidates under the policy in force and frames reviewed."""
    rows = ws.frames.source_summaries()
    ids, _fused, cand = ws.candidates()
    per_source = ws.frames.sources_of([int(i) for i in ids[np.flatnonzero(cand)]]) if len(ids) else {}
    scored = ws.frames.sources_of([int(i) for i in ids]) if len(ids) else {}
    reviewed = ws.decisions.counts_by_source()
    for r in rows:
        r["scored"] = scored.get(r["id"], 0)
        r["candidates"] = per_source.get(r["id"], 0)
        r["reviewed"] = reviewed.get(r["id"], 0)
    return rows
