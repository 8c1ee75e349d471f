"""Recall control: derive thresholds for a target recall, and measure the recall of what
was dropped from blind audit samples.

**Thresholds from a target.** Each member's scores are put on one footing through their
empirical distribution over the project's scored frames: a single level ``tau`` gives each
member the threshold at its ``tau`` quantile, and the voting rule combines them as usual.
Lowering ``tau`` buys recall with workload. The labelled positives so far (accepted
candidates, and accepted audit samples weighted by the inverse of their sampling rate) say
which levels keep them: we take the highest level at which the *lower* confidence bound
of the recall on those positives still reaches the target (Clopper-Pearson on the effective
sample size). Frames no audit could have sampled (candidates of the policy in force that
nobody has reviewed yet, which a narrower policy would drop or keep) are estimated from the
reviewed frames of similar fused score (:func:`unaudited_positives`: model-based, exact when
review follows capture order, on the safe side when it follows the scores). The bound's
one-sided confidence is the supervisor's assurance (``review.recall_confidence``, 0.95 by
default): at 0.95 the target is met with high assurance and, while labels are few, most
frames stay candidates; at 0.5 the bound is the point estimate, which cuts the work much
earlier at a higher risk of falling short. With too few labels no level qualifies, and the
policy falls back to a conservative one that keeps every labelled positive and at least
``fallback_workload`` of the frames.

**Measured recall.** Recall = found / (found + dropped positives). *Found* is the number
of positives among the candidates (accepted candidates, scaled to the candidates not yet
reviewed by the accept rate of those that were). *Dropped positives* are estimated from the
audit samples, stratified by fused score: stratum h holds N_h dropped frames of which n_h
were audited and a_h accepted, so it holds about N_h * a_h / n_h positives. The 95 %
interval comes from Monte Carlo draws of each stratum's positive rate from its Jeffreys
posterior Beta(a_h + 1/2, n_h - a_h + 1/2) (and of the candidates' accept rate likewise);
the interval's ends are the 2.5 % and 97.5 % quantiles of the resulting recall.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from triage_app.core.model.policy import Rule, fuse


@dataclass
class Derived:
    tau: float
    thresholds: dict[str, float]
    workload_fraction: float
    candidates: int
    estimated_recall: float
    recall_ci: tuple[float, float]
    positives_used: float
    enough_labels: bool
    note: str = ""
    confidence: float = 0.95  # the assurance the thresholds were derived at


def quantile_thresholds(scores: np.ndarray, names: list[str], tau: float) -> dict[str, float]:
    """Each member's threshold at level ``tau`` of its own score distribution."""
    return quantile_levels(scores, names, np.array([tau]))[0]


def quantile_levels(scores: np.ndarray, names: list[str], taus: np.ndarray) -> list[dict[str, float]]:
    """:func:`quantile_thresholds` at every level of ``taus``, each member's scores sorted once."""
    per_member = []
    for j in range(len(names)):
        col = scores[:, j]
        col = col[~np.isnan(col)]
        per_member.append(np.quantile(col, taus) if len(col) else np.ones(len(taus)))
    return [{n: float(per_member[j][i]) for j, n in enumerate(names)} for i in range(len(taus))]


def _lower_bound(kept: float, total: float, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson lower bound of a proportion (non-integer counts allowed)."""
    if total <= 0:
        return 0.0
    if kept <= 0:
        return 0.0
    return float(stats.beta.ppf(1 - confidence, kept, total - kept + 1))


def _interval(kept: float, total: float, confidence: float = 0.95) -> tuple[float, float]:
    if total <= 0:
        return (0.0, 1.0)
    a = (1 - confidence) / 2
    lo = 0.0 if kept <= 0 else float(stats.beta.ppf(a, kept, total - kept + 1))
    hi = 1.0 if kept >= total else float(stats.beta.ppf(1 - a, kept + 1, total - kept))
    return lo, hi


def unaudited_positives(rest: np.ndarray, known: np.ndarray, positive: np.ndarray, evidence: np.ndarray,
                        confidence: float = 0.95, per_bin: int = 25, max_bins: int = 5,
                        pool: np.ndarray | None = None) -> tuple[float, float, float]:
    """Positives expected among the unlabelled frames ``rest`` on one side of a cut (dropped
    frames no audit could sample, or candidates nobody has reviewed yet) from the labelled
    frames ``known`` on the same side and of similar ``evidence`` (the fused score): (point,
    low, high) counts.

    Frames are grouped into quantile bins of the evidence (one bin per ``per_bin`` labelled
    frames, at most ``max_bins``). In a bin, the positive rate has the Jeffreys posterior
    Beta(a + 1/2, n - a + 1/2); its mean is the point and its one-sided quantiles at
    ``confidence`` the ends. A bin with no labelled frame counts as all positive at the high
    end. When no labelled frame lies on this side at all, the ``per_bin`` labelled frames of
    ``pool`` nearest in evidence stand in (the lowest candidates for dropped frames, the
    highest dropped frames for candidates: either way the rate errs on the safe side when
    positives grow likelier with the score). This is model-based, not design-based like the
    audit: it assumes that among frames of similar score, those reviewed are like those not.
    Review in capture order meets that; review ordered by score leans the reviewed frames
    towards positives, which errs on the safe side. The blind audit then measures the recall
    actually reached."""
    rest = np.asarray(rest, bool)
    known = np.asarray(known, bool)
    n_rest = int(rest.sum())
    if n_rest == 0:
        return 0.0, 0.0, 0.0
    ev = np.nan_to_num(np.asarray(evidence, np.float64), nan=-1.0)
    n_known = int(known.sum())
    if n_known == 0 and pool is not None and np.asarray(pool, bool).any():
        lo_e, hi_e = float(ev[rest].min()), float(ev[rest].max())
        gap = np.maximum(lo_e - ev, 0.0) + np.maximum(ev - hi_e, 0.0)
        candidates = np.flatnonzero(np.asarray(pool, bool))
        nearest = candidates[np.argsort(gap[candidates], kind="stable")[:per_bin]]
        known = np.zeros(len(ev), bool)
        known[nearest] = True
        n_known = int(known.sum())  # at most per_bin: one bin
    if n_known == 0:
        return 0.5 * n_rest, 0.0, float(n_rest)  # nothing to go by: the prior's mean, and either extreme
    bins = int(np.clip(n_known // per_bin, 1, max_bins))
    # Only the frames on this side of the cut matter: bin those, not every frame.
    idx = np.flatnonzero(rest | known)
    ev_s, rest_s, known_s = ev[idx], rest[idx], known[idx]
    pos_s = np.asarray(positive, bool)[idx] & known_s
    edges = np.unique(np.quantile(ev_s, np.linspace(0, 1, bins + 1)[1:-1]))
    where = np.searchsorted(edges, ev_s, side="right")
    nb = len(edges) + 1
    size = np.bincount(where[rest_s], minlength=nb).astype(np.float64)
    n = np.bincount(where[known_s], minlength=nb).astype(np.float64)
    a = np.bincount(where[pos_s], minlength=nb).astype(np.float64)
    pooled = (float(pos_s.sum()) + 0.5) / (n_known + 1.0)
    empty = (size > 0) & (n == 0)  # no labelled frame: the pooled rate, and all positive at the high end
    full = (size > 0) & (n > 0)
    sf, af, nf = size[full], a[full], n[full]
    point = float((size[empty] * pooled).sum() + (sf * (af + 0.5) / (nf + 1.0)).sum())
    low = float((sf * stats.beta.ppf(1 - confidence, af + 0.5, nf - af + 0.5)).sum()) if len(sf) else 0.0
    high = float(size[empty].sum() + ((sf * stats.beta.ppf(confidence, af + 0.5, nf - af + 0.5)).sum() if len(sf) else 0.0))
    return point, low, high


def recall_bounds(cand: np.ndarray, labels: np.ndarray, stratum: np.ndarray, confidence: float = 0.95,
                  predictive: bool = False, *, evidence: np.ndarray) -> tuple[float, float, float]:
    """(point estimate, lower and upper confidence bounds) of the recall of a candidate mask, from
    the labels so far. ``labels``: 1 positive, 0 negative, -1 not looked at; ``stratum``:
    the audit stratum of every frame that was eligible for audit (-1 otherwise).

    The bounds are one-sided at ``confidence`` each. Positives the mask keeps count as found, labelled positives it drops as missed, and the
    positives hidden among the unlabelled frames it drops are bounded from the labelled
    frames of the same strata that it drops (see :func:`dropped_rate_interval`). Unlabelled
    dropped frames outside every audit stratum, and the candidates nobody has reviewed, are
    estimated from the labelled frames of similar ``evidence`` on their side of the cut
    (:func:`unaudited_positives`)."""
    pos = labels == 1
    found = float((pos & cand).sum())
    missed = float((pos & ~cand).sum())
    hidden_hi = hidden = hidden_lo = 0.0
    dropped_in = ~cand & (stratum >= 0)  # stratum -1: outside every stratum, below
    s_of = np.asarray(stratum, np.int64)
    m = int(s_of.max()) + 1 if len(s_of) else 0
    unlabelled = np.bincount(s_of[dropped_in & (labels == -1)], minlength=m)
    groups = np.flatnonzero(unlabelled)  # strata holding dropped frames nobody has looked at
    if len(groups):
        sizes_a = unlabelled[groups].astype(np.float64)
        audited = np.bincount(s_of[dropped_in & (labels >= 0)], minlength=m)[groups].astype(np.float64)
        positives = np.bincount(s_of[dropped_in & pos], minlength=m)[groups].astype(np.float64)
        # One-sided: only the upper end of the hidden positives matters for a lower bound.
        p, lo, hi = dropped_rate_interval(sizes_a, audited, positives, 2 * confidence - 1)
        hidden = 0.0 if np.isnan(p) else p * sizes_a.sum()
        hidden_hi, hidden_lo = hi * sizes_a.sum(), lo * sizes_a.sum()
    elsewhere = (labels == -1) & ~cand & (stratum < 0)
    e_point, e_lo, e_hi = unaudited_positives(elsewhere, (labels >= 0) & ~cand, pos, evidence, confidence,
                                              pool=labels >= 0)
    hidden, hidden_lo, hidden_hi = hidden + e_point, hidden_lo + e_lo, hidden_hi + e_hi
    # Likewise the positives among the candidates nobody has reviewed yet: they will be
    # found, and counting them keeps both sides of the ratio on the same footing.
    f_point, f_lo, f_hi = unaudited_positives((labels == -1) & cand, (labels >= 0) & cand, pos, evidence, confidence,
                                              pool=labels >= 0)
    found, found_lo, found_hi = found + f_point, found + f_lo, found + f_hi
    point = found / (found + missed + hidden) if found + missed + hidden > 0 else float("nan")
    lower = found_lo / (found_lo + missed + hidden_hi) if found_lo + missed + hidden_hi > 0 else 0.0
    if predictive and found + missed + hidden > 0:
        # A policy is applied to the next flight, whose own positives scatter around the
        # rate: widen by the binomial spread of as many positives as these labels show.
        n_pos = found + missed + hidden
        z = float(stats.norm.ppf(confidence))
        lower = max(0.0, lower - z * float(np.sqrt(max(lower * (1 - lower), 1e-12) / n_pos)))
    upper = found_hi / (found_hi + missed + hidden_lo) if found_hi + missed + hidden_lo > 0 else 1.0
    return point, lower, upper


def derive_thresholds(
    scores: np.ndarray, names: list[str], rule: Rule, labels: np.ndarray, stratum: np.ndarray,
    target: float, confidence: float = 0.95, fallback_workload: float = 0.3, levels: int = 200,
) -> Derived:
    """The least workload whose recall lower bound reaches ``target`` (module docstring)."""
    if not 0 < target < 1:
        raise ValueError("target recall must be between 0 and 1")
    labels = np.asarray(labels)
    stratum = np.asarray(stratum)
    positives = int((labels == 1).sum())
    taus = np.linspace(0.999, 0.0, levels)
    best_tau, best_lower = 1.0, -1.0
    for tau, th in zip(taus, quantile_levels(scores, names, taus), strict=True):
        fused, cand = fuse(scores, np.array([th[n] for n in names]), rule)
        if cand.all():
            break  # reviewing every frame proves nothing about the labels: fall back
        # Every level in turn: the bound is not monotone in the level (strata and score bins
        # shift as frames change sides), so a coarser search could miss the level that qualifies.
        point, lower, upper = recall_bounds(cand, labels, stratum, confidence, predictive=True, evidence=fused)
        if lower >= target:
            return Derived(float(tau), th, float(cand.mean()), int(cand.sum()), point, (lower, upper), positives, True,
                           confidence=confidence)
        if lower > best_lower:
            best_tau, best_lower = float(tau), lower
    # Too few labels to show the target: keep every labelled positive and a generous share,
    # and never fewer frames than the level with the best bound, which any lower target that
    # can be shown would keep at least: a higher target never costs less than a lower one.
    tau = min(1.0 - fallback_workload, best_tau)
    pos_rows = np.flatnonzero(labels == 1)
    tries = np.linspace(tau, 0.0, levels)
    for tau_try, th in zip(tries, quantile_levels(scores, names, tries), strict=True):
        _, cand = fuse(scores, np.array([th[n] for n in names]), rule)
        if cand[pos_rows].all():
            tau = float(tau_try)
            break
    th = quantile_thresholds(scores, names, tau)
    fused, cand = fuse(scores, np.array([th[n] for n in names]), rule)
    point, lower, upper = recall_bounds(cand, labels, stratum, confidence, evidence=fused)
    return Derived(tau, th, float(cand.mean()), int(cand.sum()), point, (lower, upper), positives, False,
                   f"too few labels to show {target:.0%} recall at {confidence:.0%} confidence "
                   f"({positives} labelled positives); conservative thresholds keep every labelled positive "
                   f"and {cand.mean():.0%} of the frames", confidence=confidence)


# ------------------------------------------------------------------------------ audit
def audit_strata(fused_dropped: np.ndarray, strata: int = 4) -> np.ndarray:
    """Stratum of each dropped frame by fused score; the highest stratum lies just below
    the threshold. Returns integers 0..strata-1."""
    if len(fused_dropped) == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.quantile(fused_dropped, np.linspace(0, 1, strata + 1)[1:-1])
    return np.searchsorted(edges, fused_dropped, side="right").astype(np.int64)


def audit_rates(share: float, strata: int = 4) -> np.ndarray:
    """Sampling rate per stratum: denser just below the threshold (rates grow 1:2:4:8...),
    averaging ``share`` over equal-sized strata."""
    raw = 2.0 ** np.arange(strata)
    return np.clip(raw / raw.mean() * share, 0.0, 1.0)


def choose_audit_sample(fused_dropped: np.ndarray, share: float, rng: np.random.Generator, strata: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(indices into the dropped frames to audit, their stratum)."""
    s = audit_strata(fused_dropped, strata)
    rates = audit_rates(share, strata)
    pick = rng.random(len(fused_dropped)) < rates[s]
    return np.flatnonzero(pick), s


@dataclass
class RecallEstimate:
    recall: float
    ci_low: float
    ci_high: float
    found: float
    dropped_positives: float
    audit_sampled: int
    audit_positives: int
    strata: list[dict[str, float]] = field(default_factory=list)


def dropped_rate_interval(sizes: np.ndarray, audited: np.ndarray, positives: np.ndarray,
                          confidence: float = 0.95) -> tuple[float, float, float]:
    """Point estimate and interval of the positive rate among dropped frames from a
    stratified sample: the stratified (Horvitz-Thompson) estimate, with a Clopper-Pearson
    interval on the effective sample size (Korn & Graubard 1998). With no positive seen,
    the effective size is the number audited."""
    N = np.asarray(sizes, np.float64)
    n = np.asarray(audited, np.float64)
    a = np.asarray(positives, np.float64)
    total = N.sum()
    if total <= 0:
        return 0.0, 0.0, 0.0
    seen = n > 0
    if not seen.any():
        return float("nan"), 0.0, 1.0
    # Strata never audited are covered by the audited ones' rate (they should not occur:
    # every stratum gets a share); their weight is folded into the audited strata.
    Ws = N[seen] / N[seen].sum()
    ph = a[seen] / n[seen]
    p = float((Ws * ph).sum())
    var = float((Ws**2 * ph * (1 - ph) / np.maximum(n[seen] - 1, 1)).sum())
    n_eff = float(n.sum()) if var <= 0 or p <= 0 else min(float(n.sum()), p * (1 - p) / var)
    lo, hi = _interval(p * n_eff, n_eff, confidence)
    return p, lo, hi


def estimate_recall(
    candidates: int, reviewed_candidates: int, accepted_candidates: int,
    stratum_sizes: np.ndarray, audited: np.ndarray, audit_accepted: np.ndarray, confidence: float = 0.95,
    known_dropped: int = 0, unaudited: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> RecallEstimate:
    """Recall of the policy with its interval (see the module docstring): the dropped
    positives' rate interval from :func:`dropped_rate_interval`, the candidates' positives
    exact when all are reviewed, else scaled with a Clopper-Pearson interval on the accept
    rate; the recall interval combines the two intervals' ends. ``unaudited`` is the (point,
    low, high) count of positives among dropped frames no audit has considered
    (:func:`unaudited_positives`); they count as missed, their range widens the interval."""
    N = np.asarray(stratum_sizes, np.float64)
    dropped = float(N.sum())
    p, p_lo, p_hi = dropped_rate_interval(stratum_sizes, audited, audit_accepted, confidence)
    if reviewed_candidates >= candidates or reviewed_candidates == 0:
        found = f_lo = f_hi = float(accepted_candidates)
    else:
        rest = candidates - reviewed_candidates
        r_lo, r_hi = _interval(accepted_candidates, reviewed_candidates, confidence)
        found = accepted_candidates + accepted_candidates / reviewed_candidates * rest
        f_lo, f_hi = accepted_candidates + r_lo * rest, accepted_candidates + r_hi * rest
    u, u_lo, u_hi = unaudited
    # Positives seen among dropped frames outside the audit, and those expected among the
    # dropped frames no audit has considered yet.
    d = (0.0 if np.isnan(p) else p * dropped) + known_dropped + u

    def ratio(f: float, dd: float) -> float:
        return f / (f + dd) if f + dd > 0 else 1.0

    if reviewed_candidates == 0 and float(np.sum(audited)) == 0 and known_dropped == 0:
        return RecallEstimate(float("nan"), 0.0, 1.0, 0.0, 0.0, 0, 0, [])
    rows = [{"frames": float(N[h]), "audited": float(audited[h]), "positives": float(audit_accepted[h])} for h in range(len(N))]
    return RecallEstimate(ratio(found, d), ratio(f_lo, p_hi * dropped + known_dropped + u_hi),
                          ratio(f_hi, p_lo * dropped + known_dropped + u_lo), found, d,
                          int(np.sum(audited)), int(np.sum(audit_accepted)), rows)
