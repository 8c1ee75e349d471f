"""Audit of dropped frames and the supervisor's numbers.

Under the policy in force, every scored frame the policy drops is considered once for the
audit: it falls in a stratum by fused score (see :mod:`triage_app.core.review.recall`) and is
sampled with that stratum's rate (denser just below the threshold). Sampled frames join the
analysts' queue blindly, among the candidates; their verdicts measure the recall.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from triage_app.core.model.policy import Policy, Rule, parse_rule
from triage_app.core.review.recall import Derived, audit_rates, audit_strata, derive_thresholds
from triage_app.core.store import Workspace


def seeded_uniform(frame_ids: np.ndarray, seed: int, stream: str = "audit") -> np.ndarray:
    """A random number in [0, 1) per frame from a generator keyed by the seed: counter-based
    (BLAKE2b of seed, stream and frame id), so the same frame always gets the same draw
    whenever it is first considered, and the draws of different frames are independent (no
    lattice: a sequence such as the golden ratio's would sample every 13th or 21st frame)."""
    key = f"{stream}:{seed}".encode()
    out = np.empty(len(frame_ids), dtype=np.float64)
    for i, f in enumerate(np.asarray(frame_ids).tolist()):
        digest = hashlib.blake2b(int(f).to_bytes(8, "little", signed=True), digest_size=8, key=key).digest()
        out[i] = int.from_bytes(digest, "little") / 2**64
    return out


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
    policy: Policy


def snapshot(ws: Workspace) -> Snapshot:
    policy = ws.policy()
    ids, names, mat, _ = ws.scores.score_table()
    pos = {int(f): i for i, f in enumerate(ids)}
    labels = np.full(len(ids), -1)
    kinds: dict[int, str] = {}
    for d in ws.decisions.current():
        i = pos.get(d.frame_id)
        if i is not None and d.label.target is not None:
            labels[i] = d.label.target
        kinds[d.frame_id] = d.sample_kind
    # Members trained on the decisions score the decided frames from memory; what they would
    # score on frames like them is the out-of-fold score, so the decided frames carry that.
    # Otherwise a positive found by the audit is learned, leaves the dropped frames, and the
    # audit stops seeing what the policy misses.
    mat = ws.scores.with_oof(ids, names, mat, {int(ids[i]) for i in np.flatnonzero(labels >= 0)})
    fused, cand = policy.fuse(mat, names)
    stratum = np.full(len(ids), -1)
    sampled = np.zeros(len(ids), bool)
    for fid, st, smp in ws.audit.considered(policy.key):
        i = pos.get(fid)
        if i is not None:
            stratum[i], sampled[i] = st, smp
    # A dropped frame that was labelled without being drawn for the audit (the cold-start
    # share near the threshold, say) is a known label, not a random sample of its stratum.
    stratum[(~sampled) & (labels >= 0)] = -1
    return Snapshot(ids, names, mat, fused, cand, labels, kinds, stratum, sampled, policy)


def refresh_audit(ws: Workspace) -> int:
    """Consider the newly dropped frames for the audit; returns how many were sampled."""
    settings = ws.settings
    snap = snapshot(ws)
    dropped = np.flatnonzero(~snap.candidate & (snap.stratum < 0))
    if len(dropped) == 0 or settings.review.audit_share <= 0:
        return 0
    all_dropped = np.flatnonzero(~snap.candidate)
    strata_all = audit_strata(snap.fused[all_dropped], settings.review.audit_strata)
    where = {int(i): s for i, s in zip(all_dropped, strata_all, strict=True)}
    rates = audit_rates(settings.review.audit_share, settings.review.audit_strata)
    st = np.array([where[int(i)] for i in dropped])
    u = seeded_uniform(snap.ids[dropped], settings.review.audit_seed, f"audit:{snap.policy.key}")
    pick = u < rates[st]
    rows = [dict(frame_id=int(snap.ids[i]), stratum=int(s), rate=float(rates[s]), sampled=int(p))
            for i, s, p in zip(dropped, st, pick, strict=True)]
    ws.audit.record(snap.policy.key, rows)
    return int(pick.sum())


def propose_policy(ws: Workspace, target: float, rule_text: str | None = None,
                   confidence: float | None = None) -> tuple[Derived, Rule]:
    """Thresholds for a target recall from the labels so far (nothing is saved), at the
    assurance ``confidence`` (default ``review.recall_confidence``)."""
    settings = ws.settings
    snap = snapshot(ws)
    rule = parse_rule(rule_text) if rule_text else snap.policy.rule
    if len(snap.ids) == 0:
        raise ValueError("no scored frame yet: score the project before setting a policy")
    conf = settings.review.recall_confidence if confidence is None else confidence
    if not 0.5 <= conf < 1:
        raise ValueError(f"confidence must be at least 0.5 and below 1, not {conf}")
    return derive_thresholds(snap.scores, snap.names, rule, snap.labels, snap.stratum, target, confidence=conf), rule
