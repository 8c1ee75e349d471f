"""What the supervisor view draws: recall against workload, score histograms of accepted
and rejected frames per member, audit progress, each reviewer's throughput, drift per
flight, and the agreement between reviewers."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import func, select

from triage_app.core.review.agreement import agreement, disagreements
from triage_app.core.review.audit import report, snapshot
from triage_app.core.learning.drift import flight_drift
from triage_app.core.model.policy import fuse
from triage_app.core.model.cards import ModelCard
from triage_app.core.review.recall import quantile_levels, recall_bounds
from triage_app.core.model.settings import Settings
from triage_app.core.store import Project


def recall_curve(snap, levels: int = 40) -> list[dict[str, float]]:
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


def histograms(snap, bins: int = 10) -> dict[str, dict[str, list[int]]]:
    edges = np.linspace(0, 1, bins + 1)
    out = {}
    for j, name in enumerate(snap.names):
        col = snap.scores[:, j]
        out[name] = {
            "accepted": np.histogram(col[(snap.labels == 1) & ~np.isnan(col)], edges)[0].tolist(),
            "rejected": np.histogram(col[(snap.labels == 0) & ~np.isnan(col)], edges)[0].tolist(),
        }
    return out


def reviewer_throughput(project: Project) -> list[dict[str, Any]]:
    t = project.db.table("decisions")
    q = (select(t.c.reviewer, func.count(), func.sum(t.c.seconds_spent)).where(t.c.undone_at.is_(None))
         .group_by(t.c.reviewer).order_by(t.c.reviewer))
    with project.db.read() as conn:
        rows = conn.execute(q).all()
    # A rate from under a minute of review time says nothing (and decisions imported or made
    # by a script carry next to no time at all): no rate then.
    return [{"reviewer": r, "decisions": int(n), "per_hour": round(3600.0 * n / s, 1) if s and s >= 60 else None}
            for r, n, s in rows]


def supervisor_data(project: Project, cards: dict[str, ModelCard], settings: Settings) -> dict[str, Any]:
    snap = snapshot(project, cards, settings)
    return {
        "report": report(project, cards, settings, snap),
        "curve": recall_curve(snap),
        "histograms": histograms(snap),
        "reviewers": reviewer_throughput(project),
        "drift": [f.as_dict() | {"reasons": f.reasons()} for f in flight_drift(project, cards, settings)],
        "agreement": agreement(project),
        "disagreements": len(disagreements(project)),
        "alert_psi": settings.drift.alert_psi,
    }
