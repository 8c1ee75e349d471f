"""Simulated scores with known ground truth, to check recall control end to end:
thresholds derived for a target must reach it on held-out frames, and the audit's interval
must cover the true recall. ``scripts/recall_coverage.py`` prints the numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triage_app.core.model.policy import fuse, parse_rule
from triage_app.core.review.recall import choose_audit_sample, derive_thresholds, estimate_recall

NAMES = ["imagenet", "clip"]


def simulate_frames(rng: np.random.Generator, frames: int, prevalence: float) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated members; positives score higher, with overlap (hard positives)."""
    truth = rng.random(frames) < prevalence
    latent = np.where(truth, rng.normal(1.2, 1.0, frames), rng.normal(-1.2, 1.0, frames))
    a = 1 / (1 + np.exp(-(latent + rng.normal(0, 0.8, frames))))
    b = 1 / (1 + np.exp(-(0.7 * latent + rng.normal(0, 1.0, frames))))
    return np.stack([a, b], axis=1), truth


@dataclass
class Trial:
    target: float
    true_recall_heldout: float
    workload: float
    estimated: float
    ci_low: float
    ci_high: float
    enough_labels: bool

    @property
    def reached(self) -> bool:
        return self.true_recall_heldout >= self.target

    @property
    def covered(self) -> bool:
        return self.ci_low <= self.true_recall_heldout <= self.ci_high


def one_trial(seed: int, target: float = 0.9, frames: int = 10000, prevalence: float = 0.03,
              audit_share: float = 0.1, rule: str = "any", confidence: float = 0.95) -> Trial:
    rng = np.random.default_rng(seed)
    r = parse_rule(rule)
    # Round 1: an initial permissive policy; analysts review its candidates, audit the rest.
    scores, truth = simulate_frames(rng, frames, prevalence)
    th0 = np.quantile(scores, 0.7, axis=0)
    fused, cand = fuse(scores, th0, r)
    dropped = np.flatnonzero(~cand)
    picked, strata = choose_audit_sample(fused[dropped], audit_share, rng)
    labels = np.full(frames, -1)
    labels[cand] = truth[cand]  # every round-1 candidate reviewed
    stratum = np.full(frames, -1)
    stratum[dropped] = strata
    labels[dropped[picked]] = truth[dropped[picked]]
    derived = derive_thresholds(scores, NAMES, r, labels, stratum, target, confidence=confidence, levels=100)
    th = np.array([derived.thresholds[n] for n in NAMES])
    # Held-out frames from the same flight conditions, under the derived policy.
    hs, ht = simulate_frames(rng, frames, prevalence)
    hf, hc = fuse(hs, th, r)
    true_recall = (hc & ht).sum() / max(ht.sum(), 1)
    # The audit on those held-out frames: every candidate reviewed, dropped frames sampled.
    hd = np.flatnonzero(~hc)
    pick, st = choose_audit_sample(hf[hd], audit_share, rng)
    n_strata = 4
    sizes = np.bincount(st, minlength=n_strata)
    audited = np.bincount(st[pick], minlength=n_strata)
    acc = np.bincount(st[pick], weights=ht[hd[pick]].astype(float), minlength=n_strata)
    est = estimate_recall(int(hc.sum()), int(hc.sum()), int((hc & ht).sum()), sizes, audited, acc)
    return Trial(target, float(true_recall), float(hc.mean()), est.recall, est.ci_low, est.ci_high,
                 derived.enough_labels)


def _summary(results: list[Trial], audited: bool) -> dict[str, float]:
    out = {
        "trials": len(results),
        "target_reached_share": float(np.mean([t.reached for t in results])),
        "mean_true_recall": float(np.mean([t.true_recall_heldout for t in results])),
        "mean_workload": float(np.mean([t.workload for t in results])),
        "enough_labels_share": float(np.mean([t.enough_labels for t in results])),
    }
    if audited:  # the held-out frames were audited: how well the audit's interval did
        out["audit_ci_coverage"] = float(np.mean([t.covered for t in results]))
        out["mean_ci_width"] = float(np.mean([t.ci_high - t.ci_low for t in results]))
    return out


def simulate_flights(trials: int, seed: int = 0, **kw) -> dict[str, float]:
    return _summary([one_trial(seed + i, **kw) for i in range(trials)], audited=True)


def cold_start_trial(seed: int, target: float = 0.9, frames: int = 10000, prevalence: float = 0.03,
                     reviewed: float = 0.2, confidence: float = 0.95, rule: str = "any") -> Trial:
    """The first policy of a project: every frame a candidate, analysts have reviewed a share
    of them in capture order (independent of the scores), no frame was ever dropped, so there
    is no audit yet. Thresholds derived from those labels, applied to held-out frames."""
    rng = np.random.default_rng(seed)
    r = parse_rule(rule)
    scores, truth = simulate_frames(rng, frames, prevalence)
    labels = np.full(frames, -1)
    seen = rng.random(frames) < reviewed
    labels[seen] = truth[seen]
    derived = derive_thresholds(scores, NAMES, r, labels, np.full(frames, -1), target, confidence=confidence, levels=100)
    th = np.array([derived.thresholds[n] for n in NAMES])
    hs, ht = simulate_frames(rng, frames, prevalence)
    _hf, hc = fuse(hs, th, r)
    true_recall = (hc & ht).sum() / max(ht.sum(), 1)
    return Trial(target, float(true_recall), float(hc.mean()), derived.estimated_recall, *derived.recall_ci,
                 derived.enough_labels)


def cold_start(trials: int, seed: int = 0, **kw) -> dict[str, float]:
    return _summary([cold_start_trial(seed + i, **kw) for i in range(trials)], audited=False)

