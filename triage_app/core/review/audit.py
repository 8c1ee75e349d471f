"""Audit of dropped frames and the supervisor's numbers.

Under the policy in force, every scored frame the policy drops is considered once for the
audit: it falls in a stratum by fused score (see :mod:`triage_app.core.review.recall`) and is
sampled with that stratum's rate (denser just below the threshold). Sampled frames join the
analysts' queue blindly, among the candidates; their verdicts measure the recall.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from triage_app.core.model.cards import ModelCard
from triage_app.core.review.active_policy import ActivePolicy, active_policy
from triage_app.core.review.recall import audit_rates, audit_strata, derive_thresholds, estimate_recall, unaudited_positives
from triage_app.core.model.policy import fuse
from triage_app.core.model.settings import Settings
from triage_app.core.store import Project
from triage_app.core.store.project import now_iso
from triage_app.core.store.scores import ScoreStore


def policy_key(policy: ActivePolicy) -> str:
    return str(policy.id) if policy.id is not None else "defaults"


def _uniform(frame_ids: np.ndarray, seed: int) -> np.ndarray:
    """A fixed pseudo-random number in [0, 1) per frame: the same frame, the same draw."""
    x = (frame_ids.astype(np.uint64) * np.uint64(2654435761) + np.uint64(seed) * np.uint64(40503)) % np.uint64(2**32)
    return x.astype(np.float64) / 2**32


@dataclass
class Snapshot:
    """Everything the supervisor's numbers are computed from."""

    ids: np.ndarray
    names: list[str]
    scores: np.ndarray
    fused: np.ndarray
    candidate: np.ndarray
    labels: np.ndarray  # 1 accept, 0 reject, -1 none or unsure
    kinds: dict[int, str]
    stratum: np.ndarray  # audit stratum, -1 if never eligible
    sampled: np.ndarray
    policy: ActivePolicy


def snapshot(project: Project, cards: dict[str, ModelCard], settings: Settings) -> Snapshot:
    store = ScoreStore(project)
    policy = active_policy(store, cards, settings)
    ids, names, mat, _ = store.score_table()
    pos = {int(f): i for i, f in enumerate(ids)}
    labels = np.full(len(ids), -1)
    kinds: dict[int, str] = {}
    from triage_app.core.review.queue import DecisionStore

    for d in DecisionStore(project).current():
        i = pos.get(int(d["frame_id"]))
        if i is not None and d["label"] in ("accept", "reject"):
            labels[i] = 1 if d["label"] == "accept" else 0
        kinds[int(d["frame_id"])] = d["sample_kind"]
    # Members trained on the decisions score the decided frames from memory; what they would
    # score on frames like them is the out-of-fold score, so the decided frames carry that.
    # Otherwise a positive found by the audit is learned, leaves the dropped frames, and the
    # audit stops seeing what the policy misses.
    mat = store.with_oof(ids, names, mat, {int(ids[i]) for i in np.flatnonzero(labels >= 0)})
    th = np.array([policy.thresholds.get(n, 0.5) for n in names])
    fused, cand = fuse(mat, th, policy.rule) if len(ids) else (np.zeros(0), np.zeros(0, bool))
    stratum = np.full(len(ids), -1)
    sampled = np.zeros(len(ids), bool)
    table = project.db.table("audit_frames")
    with project.db.read() as conn:
        for fid, st, smp in conn.execute(select(table.c.frame_id, table.c.stratum, table.c.sampled).where(
                table.c.policy_key == policy_key(policy))):
            i = pos.get(int(fid))
            if i is not None:
                stratum[i], sampled[i] = int(st), bool(smp)
    # A dropped frame that was labelled without being drawn for the audit (the cold-start
    # share near the threshold, say) is a known label, not a random sample of its stratum.
    stratum[(~sampled) & (labels >= 0)] = -1
    return Snapshot(ids, names, mat, fused, cand, labels, kinds, stratum, sampled, policy)


def refresh_audit(project: Project, cards: dict[str, ModelCard], settings: Settings) -> int:
    """Consider the newly dropped frames for the audit; returns how many were sampled."""
    snap = snapshot(project, cards, settings)
    dropped = np.flatnonzero(~snap.candidate & (snap.stratum < 0))
    if len(dropped) == 0 or settings.review.audit_share <= 0:
        return 0
    all_dropped = np.flatnonzero(~snap.candidate)
    strata_all = audit_strata(snap.fused[all_dropped], settings.review.audit_strata)
    where = {int(i): s for i, s in zip(all_dropped, strata_all)}
    rates = audit_rates(settings.review.audit_share, settings.review.audit_strata)
    st = np.array([where[int(i)] for i in dropped])
    u = _uniform(snap.ids[dropped], settings.review.audit_seed)
    pick = u < rates[st]
    key, stamp = policy_key(snap.policy), now_iso()
    rows = [dict(frame_id=int(snap.ids[i]), policy_key=key, stratum=int(s), rate=float(rates[s]), sampled=int(p),
                 considered_at=stamp) for i, s, p in zip(dropped, st, pick)]
    table = project.db.table("audit_frames")
    stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=["frame_id", "policy_key"])

    def fn(conn: Connection) -> None:
        conn.execute(stmt, rows)

    project.db.write(fn)
    return int(pick.sum())


def report(project: Project, cards: dict[str, ModelCard], settings: Settings, snap: Snapshot | None = None) -> dict[str, Any]:
    """The supervisor's headline numbers under the policy in force (from ``snap`` when the
    caller already took the snapshot)."""
    snap = snap if snap is not None else snapshot(project, cards, settings)
    cand = snap.candidate
    reviewed_c = int((cand & (snap.labels >= 0)).sum())
    accepted_c = int((cand & (snap.labels == 1)).sum())
    strata = settings.review.audit_strata
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
    frames = project.frame_count()
    return {
        "frames": frames,
        "scored": int(len(snap.ids)),
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


def propose_policy(project: Project, cards: dict[str, ModelCard], settings: Settings, target: float, rule_text: str | None = None,
                   confidence: float | None = None):
    """Thresholds for a target recall from the labels so far (nothing is saved), at the
    assurance ``confidence`` (default ``review.recall_confidence``)."""
    from triage_app.core.model.policy import parse_rule

    snap = snapshot(project, cards, settings)
    rule = parse_rule(rule_text) if rule_text else snap.policy.rule
    if len(snap.ids) == 0:
        raise ValueError("no scored frame yet: score the project before setting a policy")
    conf = settings.review.recall_confidence if confidence is None else confidence
    if not 0.5 <= conf < 1:
        raise ValueError(f"confidence must be at least 0.5 and below 1, not {conf}")
    return derive_thresholds(snap.scores, snap.names, rule, snap.labels, snap.stratum, target, confidence=conf), rule
