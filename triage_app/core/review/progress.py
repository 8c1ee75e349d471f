"""How far active review has come: the targets found so far, an estimate of those left among
the frames nobody has reviewed, the recall reached with its interval at the supervisor's
assurance, whether the target recall is reached, and what the next points would cost.

Three kinds of evidence, each named where it is shown:

- **Model-based** (the headline and the stopping decision). The ranking's scores are
  calibrated on its *forecasts*: the score each decided frame had, under the ranking in force,
  when it was shown, before its label was known. A frame was shown because of that very score
  (or at random, by the audit), so among frames of one forecast those decided are like those
  left; and a forecast is made as the scores of the frames left are, knowing the labels of
  their near duplicates. A logistic map from score to the chance of holding the target, every
  ranking's forecasts pooled, is refitted on bootstrap resamples; summed over the unreviewed
  frames it gives the positives left, with their spread: the map's uncertainty and the
  frames' own chance, widened where targets come in runs of consecutive frames (a target in
  view for a while): a count of runs varies E[K^2] / E[K] times as much as a count of single
  frames, K the length of the runs found in capture order. Until enough forecasts are
  recorded, the map is fitted on the decided frames' *out-of-fold* scores instead (each from
  a ranking that saw neither the frame's label nor its near duplicates'): those come from
  rankings that never saw an event whole, so they rank less sharply than the scores of the
  frames left, and a frame decided because an earlier ranking put it on top is likelier to
  hold the target than an unreviewed frame of the same out-of-fold score; that estimate is
  cautious and is named as such.
  Review stops only where the bound reaches the target at this learning and at its reference,
  the latest learning made at least ``review.stop_guard`` decisions earlier (read again from
  the store as it stood; at the default cadence, the learning before): targets come in clusters,
  and between two of them the frames a ranking shows yield little for a while, which a single
  estimate can take for the end. The guard spans decisions, not learnings: a Learn asked for
  a few decisions after another would otherwise agree with it by construction.
- **From the review sequence alone** (shown beside the model-based interval; the lower end
  before a model can be fitted). The hypergeometric stopping test of Callaghan &
  Müller-Hansen (2020): the frames shown most recently are taken as at least as rich in
  targets as a random draw of those then left (a ranking better than chance makes that
  true), and the largest number of targets left that the sequence does not rule out at the
  assurance bounds the recall from below.
- **The blind audit**: frames drawn at random from the unreviewed, stratified by the current
  ranking, with the chance each had recorded: a design-based estimate of the positives left
  (Hansen-Hurwitz, each draw's estimate carried forward by the targets found since). Its
  draws also enter the calibration above, where they are the only decided frames the ranking
  did not choose.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from triage_app.core.store import Workspace
from triage_app.core.store.rankings import AuditDraw, Forecasts, RankScores

BOOTSTRAPS = 400
#: Review does not stop before this many frames were shown and targets found: an estimate
#: from fewer says too little.
MIN_REVIEWED = 50
MIN_FOUND = 3
#: The most recent decisions the review-sequence test reads (older ones add little and cost much).
CMH_WINDOW = 5000
#: Forecasts with labels needed before the calibration reads them (out-of-fold scores before).
MIN_FORECASTS = 20
#: The tail of the ranking: frames scored below all but this share of the decided frames.
TAIL_SHARE = 0.05


@dataclass
class Progress:
    frames: int  # frames scored (the population review ranks)
    reviewed: int  # frames decided (accept or reject; unsure ones count as reviewed, not as found)
    found: int  # accepted among them
    left: int  # scored frames nobody has decided
    target: float
    confidence: float
    recall: float | None = None  # headline: model-based median
    recall_low: float = 0.0  # at the assurance: the model's lower bound (the sequence's before a model can be fitted)
    recall_high: float = 1.0
    model_low: float | None = None
    previous_low: float | None = None  # the model-based lower bound at the reference learning, read again
    sequence_low: float | None = None
    remaining: float | None = None  # positives estimated left (model-based median)
    remaining_high: float | None = None  # at the assurance
    # Of them, those in the ranking's tail (frames scored below all but TAIL_SHARE of the decided
    # frames, few of them decided): the calibration's extrapolation (the median's share that the
    # plain fit puts there), the frames left there, the decided frames there.
    tail_remaining: float | None = None
    tail_frames: int = 0
    tail_decided: int = 0
    audit_draws: int = 0
    audit_positives: int = 0
    audit_remaining: float | None = None  # design-based estimate of the positives left
    reached: bool = False
    waiting: str = ""  # the estimate says the target is reached, but review goes on: why, in a few words
    basis: str = ""
    note: str = ""
    next_points: list[tuple[float, int]] = field(default_factory=list)  # (recall, frames more to review)
    found_curve: list[tuple[int, int]] = field(default_factory=list)  # (frames reviewed, targets found), ~100 points
    settled: bool = False  # every scored frame reviewed: the recall is known, not estimated

    def gain_curve(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """(share of the frames reviewed, share of the estimated targets found) along review so
        far, and ahead of it as the next points expect (model-based); empty before an estimate."""
        if self.recall is None or self.remaining is None or not self.frames:
            return [], []
        total = max(self.found + self.remaining, 1e-9)
        done = [(n / self.frames, min(1.0, k / total)) for n, k in self.found_curve]
        here = (self.reviewed / self.frames, min(1.0, self.found / total))
        ahead = [here] + [((self.reviewed + n) / self.frames, r) for r, n in self.next_points]
        return done, ahead if len(ahead) > 1 else []

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["next_points"] = [list(p) for p in self.next_points]
        out["found_curve"] = [list(p) for p in self.found_curve]
        done, ahead = self.gain_curve()
        out["gain_curve"] = {"done": [list(p) for p in done], "ahead": [list(p) for p in ahead]}
        return out

    def settle_if_all_reviewed(self) -> None:
        """Every scored frame reviewed: the recall of what was scored is known, not estimated.
        (An undo that brings a frame back unsettles it until the next estimate.)"""
        if self.settled and self.left > 0:
            self.settled = self.reached = False
            self.recall, self.recall_low, self.recall_high = None, self.sequence_low or 0.0, 1.0
            self.remaining = self.remaining_high = None
            self.basis = ""
            self.note = "a frame was taken back: the estimate comes with the next learning"
            return
        if self.left > 0 or self.reviewed == 0:
            return
        self.settled = True
        self.recall = self.recall_low = self.recall_high = 1.0
        self.remaining = self.remaining_high = 0.0
        self.next_points = []
        self.reached = True
        self.basis = "every scored frame was reviewed: nothing is left to estimate"
        self.note = ""

    def headline(self) -> str:
        """One line for a header: the recall reached, its interval, the target."""
        if self.settled:
            return (f"Every scored frame reviewed ({self.reviewed:,}, {self.found:,} targets found): nothing was "
                    f"left unseen · target {self.target:.0%} reached")
        if self.recall is None:
            return (f"Recall so far: not estimated yet ({self.reviewed} reviewed, {self.found} found"
                    f"{'; ' + self.note if self.note else ''}) · target {self.target:.0%}")
        state = f"target {self.target:.0%} reached" if self.reached else f"target {self.target:.0%} not reached yet"
        if not self.reached and self.waiting:
            state = f"target {self.target:.0%} reached by this estimate; {self.waiting}"
        # The assurance is one-sided: how sure the recall is at least the lower bound (the range
        # up to the same quantile above is said beside it; asked for 50 %, the median alone).
        sure = (f"at least {self.recall_low:.1%} with {self.confidence:.0%} assurance, likely "
                f"{self.recall_low:.1%}–{self.recall_high:.1%}" if self.confidence > 0.5 else "the median estimate")
        return f"Recall so far ≈ {self.recall:.1%} (model-based, {sure}) · {state}"

    def next_points_text(self) -> str:
        """What the next points of recall would cost, in words."""
        parts = [f"{r:.0%} after about {n:,} more frame{'s' if n != 1 else ''}" for r, n in self.next_points]
        return "Next: " + "; ".join(parts) + "." if parts else ""

    def lines(self) -> list[str]:
        """What the supervisor and ``triage report`` say about active review, line by line:
        the basis of each number is named."""
        out = [self.headline()]
        out.append(f"{self.reviewed:,} of {self.frames:,} scored frames reviewed ({self.reviewed / max(self.frames, 1):.1%}), "
                   f"{self.found:,} targets found, {self.left:,} frames not reviewed")
        if self.remaining is not None:
            high = f", at most {self.remaining_high:.0f} at {self.confidence:.0%}" if self.remaining_high is not None else ""
            out.append(f"Targets left among the unreviewed (model-based): about {self.remaining:.0f}{high}")
            if self.tail_remaining is not None and self.tail_frames:
                out.append(f"{self.tail_frames:,} of the {self.left:,} frames not reviewed score below all but "
                           f"{TAIL_SHARE:.0%} of the decided frames, and about {self.tail_remaining:.0f} of the targets "
                           f"left are estimated among them: there the estimate extrapolates from the {self.tail_decided} "
                           "decided frames that score as low (the audit's random draws, mostly), and only more such "
                           "draws could check it (review.audit_share sets their share of the frames shown)")
        if self.audit_draws:
            audit = (f"about {self.audit_remaining:.0f} left (design-based)" if self.audit_remaining is not None
                     else "not enough decided yet for an estimate")
            out.append(f"Blind audit: {self.audit_draws} drawn at random from the unreviewed, {self.audit_positives} "
                       f"held the target; {audit}")
        if self.sequence_low is not None:
            out.append(f"From the review sequence alone, recall is at least {self.sequence_low:.1%} at {self.confidence:.0%}")
        if self.next_points:
            out.append(self.next_points_text())
        if self.basis:
            out.append(f"Basis: {self.basis}")
        return out


def _fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Weighted 1-D logistic regressions (intercept a, slope b), one per row of ``w``, by
    Newton's method at once for every row; a tiny ridge keeps separable data finite."""
    a = np.zeros(len(w))
    b = np.zeros(len(w))
    ridge = 1e-3
    for _ in range(iters):
        z = np.clip(a[:, None] + b[:, None] * x[None, :], -30, 30)
        p = 1.0 / (1.0 + np.exp(-z))
        r = w * (y[None, :] - p)
        h = w * p * (1 - p)
        ga, gb = r.sum(1) - ridge * a, (r * x).sum(1) - ridge * b
        haa, hab, hbb = h.sum(1) + ridge, (h * x).sum(1), (h * x * x).sum(1) + ridge
        det = haa * hbb - hab * hab
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        a, b = a + da, b + db
        if np.max(np.abs(da)) + np.max(np.abs(db)) < 1e-7:
            break
    return a, b


def remaining_samples(oof: np.ndarray, y: np.ndarray, left_scores: np.ndarray, rng: np.random.Generator,
                      boots: int = BOOTSTRAPS, design_effect: float = 1.0) -> np.ndarray:
    """Draws of the number of targets among frames with ``left_scores``, from decided frames'
    scores ``oof`` (forecasts or out-of-fold scores) and labels ``y``: a logistic calibration
    per Poisson bootstrap resample, and the frames' own chance on top: a Poisson count, or where targets come in events (``design_effect`` > 1:
    the variance of a count of near duplicates over that of independent frames) a negative
    binomial count of the same mean and that much more variance."""
    if len(left_scores) == 0:
        return np.zeros(boots)
    mu, sd = float(np.mean(oof)), float(np.std(oof)) or 1.0
    x, xl = (oof - mu) / sd, (left_scores - mu) / sd
    w = rng.poisson(1.0, size=(boots, len(y))).astype(float)
    w[0] = 1.0  # the first draw is the plain fit
    a, b = _fit_logistic(x, y.astype(float), w)
    out = np.empty(boots)
    for i in range(boots):  # frame by frame the sum is Poisson-binomial; a Poisson draw errs on the wide side
        lam = float((1.0 / (1.0 + np.exp(-np.clip(a[i] + b[i] * xl, -30, 30)))).sum())
        if design_effect > 1.0 + 1e-9 and lam > 0:
            out[i] = rng.negative_binomial(lam / (design_effect - 1.0), 1.0 / design_effect)
        else:
            out[i] = rng.poisson(lam)
    return out


def capture_positions(frames: dict[int, Any]) -> dict[int, tuple[int, int]]:
    """Frame id -> (source, place among that source's frames here in capture order): frames
    next to each other in a flight, as sampled."""
    by_source: dict[int, list[tuple[int, int]]] = {}
    for f, row in frames.items():
        by_source.setdefault(int(row["source_id"]), []).append((int(row["idx"]), int(f)))
    out: dict[int, tuple[int, int]] = {}
    for source, rows in by_source.items():
        for place, (_, f) in enumerate(sorted(rows)):
            out[f] = (source, place)
    return out


def target_runs(positions: dict[int, tuple[int, int]], accepted: Iterable[int]) -> list[int]:
    """The lengths of the runs of accepted frames in capture order (frames of one source next
    to each other: a target in view for a while); a frame without a place is a run of one."""
    frames = list(accepted)
    placed = sorted(positions[f] for f in frames if f in positions)
    runs = [1 for f in frames if f not in positions]
    length = 0
    for i, here in enumerate(placed):
        length = length + 1 if i and placed[i - 1] == (here[0], here[1] - 1) else 1
        if i + 1 == len(placed) or placed[i + 1] != (here[0], here[1] + 1):
            runs.append(length)
    return runs


def clump_factor(runs: Sequence[int]) -> float:
    """How much more a count of targets that come in runs varies than a count of single
    frames: a Poisson number of runs, each of a length drawn as the runs found so far are
    long, gives a count whose variance is E[K^2] / E[K] times its mean (K a run's length).
    1 for single frames, about 5 for runs of 5 near duplicates."""
    k = np.asarray(runs, dtype=float)
    return float((k * k).sum() / k.sum()) if k.sum() > 0 else 1.0


def sequence_pvalue(labels: np.ndarray, pool: int, target: float, r_hyp: int | None = None) -> float:
    """Callaghan & Müller-Hansen's test of "recall below ``target``" (or of "``r_hyp`` targets
    in all"): the last n frames shown read as a random draw of the frames left before them;
    ``pool`` is the number of frames the review ranks (shown and left). The test is made at
    a doubling ladder of n (25, 50, 100, ... and the whole sequence) and the smallest p-value
    is multiplied by the number of tests (Bonferroni): the smallest over every n would
    reject too often even when the order is random."""
    t = len(labels)
    k = int(labels.sum())
    if r_hyp is None:
        r_hyp = int(np.floor(k / target)) + 1
    rev = labels[::-1][:CMH_WINDOW]
    if len(rev) == 0:
        return 1.0
    ladder = [n for n in (25 * 2 ** j for j in range(20)) if n < len(rev)] + [len(rev)]
    n = np.array(ladder, dtype=np.int64)
    kn = np.concatenate([[0], np.cumsum(rev)])[n]
    nn = pool - t + n
    big_k = np.clip(r_hyp - (k - kn), 0, nn)
    return float(min(1.0, stats.hypergeom.cdf(kn, nn, big_k, n).min() * len(n)))


def sequence_lower(labels: np.ndarray, pool: int, confidence: float) -> float:
    """Recall's lower bound from the review sequence: found / the most targets in all that
    the sequence does not rule out at ``confidence``."""
    k = int(labels.sum())
    if k == 0:
        return 0.0
    lo, hi = k, k + max(pool - len(labels), 0)
    alpha = 1.0 - confidence
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sequence_pvalue(labels, pool, 1.0, r_hyp=mid) >= alpha:
            lo = mid
        else:
            hi = mid - 1
    return k / lo


def audit_estimate(draws: list[AuditDraw], labels: dict[int, int], found_after: Any) -> float | None:
    """Design-based positives left (Hansen-Hurwitz): each decided draw estimates the targets
    left when it was drawn, less those found since (``found_after(reviewed_before)``); the
    draws' mean, the later draws weighing more (their pool was smaller)."""
    est, weight = [], []
    for d in draws:
        if d.frame_id not in labels or d.probability <= 0:
            continue
        est.append(labels[d.frame_id] / d.probability - found_after(d.reviewed_before))
        weight.append(1.0 / max(d.pool, 1))
    if not est:
        return None
    return max(0.0, float(np.average(est, weights=weight)))


def review_progress(ws: Workspace, target: float | None = None, confidence: float | None = None,
                    seed: int = 0) -> Progress:
    """Where active review stands (reads only)."""
    saved = ws.policies.current()
    target = target if target is not None else float((saved or {}).get("target_recall") or ws.settings.review.target_recall)
    confidence = confidence if confidence is not None else float((saved or {}).get("confidence")
                                                                 or ws.settings.review.recall_confidence)
    history = ws.decisions.history()
    standing = {d.frame_id: d for d in history}
    order: list[int] = []
    seen: set[int] = set()
    for d in history:  # the frames in the order they were first decided
        if d.frame_id not in seen:
            seen.add(d.frame_id)
            order.append(d.frame_id)
    labels = {f: t for f, d in standing.items() if (t := d.label.target) is not None}
    scored = ws.scores.score_table()[0]
    pool = len(scored)
    scored_set = set(int(f) for f in scored.tolist())
    left_ids = scored_set - set(standing)
    seq = np.array([labels.get(f, 0) for f in order if f in scored_set], dtype=np.int64)
    found = int(seq.sum())
    p = Progress(frames=pool, reviewed=len(seq), found=found, left=len(left_ids), target=target, confidence=confidence)
    if len(seq):
        points = np.unique(np.linspace(0, len(seq), 101).astype(int))
        found_by = np.concatenate([[0], np.cumsum(seq)])
        p.found_curve = [(int(n), int(found_by[n])) for n in points]
    draws = ws.rankings.audit_draws()
    decided_draws = [d for d in draws if d.frame_id in labels]
    p.audit_draws, p.audit_positives = len(decided_draws), sum(labels[d.frame_id] for d in decided_draws)
    cum = np.concatenate([[0], np.cumsum(seq)])
    p.audit_remaining = audit_estimate(decided_draws, labels, lambda before: int(cum[-1] - cum[min(before, len(seq))]))
    if found:
        p.sequence_low = sequence_lower(seq, pool, confidence)
    if not left_ids and len(seq):
        p.settle_if_all_reviewed()
        return p
    ranked = ws.rankings.rank_scores()
    if ranked.ranking_id is None or found < 2:
        p.basis = "no ranking learnt yet: the zero-shot members' order"
        p.recall_low = p.sequence_low or 0.0
        p.note = ("the recall can be estimated once decisions hold at least 2 accepted frames" if found < 2 else
                  "the recall is estimated once the ranking has learnt from the decisions (Learn, or by itself "
                  f"after {ws.settings.review.retrain_every} decisions)" if ws.settings.review.retrain_every else
                  "the recall is estimated once the ranking has learnt from the decisions (Learn)")
        return p
    at = {int(f): i for i, f in enumerate(ranked.frame_ids.tolist())}
    left_list = [f for f in left_ids if f in at]
    left = np.array([ranked.scores[at[f]] for f in left_list])
    made = ws.rankings.forecasts_made()
    calibration = _forecast_calibration(made, labels)
    if calibration is not None:
        dec, x, y = calibration
        basis = ("model-based: the ranking's scores calibrated on its forecasts (each decided frame's score when it "
                 "was shown, before its label was known)")
    else:
        dec = [f for f in labels if f in at and not np.isnan(ranked.oof[at[f]])]
        x = np.array([ranked.oof[at[f]] for f in dec])
        y = np.array([labels[f] for f in dec], dtype=int)
        basis = ("model-based, cautious: the ranking's scores calibrated on the decided frames' out-of-fold scores "
                 f"(until {MIN_FORECASTS} decided frames have a forecast)")
    if len(dec) < 10 or y.sum() < 2 or y.sum() == len(y):
        p.basis = "too few decided frames with out-of-fold scores to calibrate the ranking"
        p.recall_low = p.sequence_low or 0.0
        return p
    frames = ws.frames.frames_by_id(ranked.frame_ids.tolist())  # read once: the previous learning's too
    positions = capture_positions(frames)
    deff = clump_factor(target_runs(positions, [f for f, t in labels.items() if t == 1]))
    draws_left = remaining_samples(x, y, left, np.random.default_rng(seed), design_effect=deff)
    recall = found / (found + draws_left)
    p.remaining = float(np.median(draws_left))
    p.remaining_high = float(np.quantile(draws_left, confidence))
    p.recall = float(np.median(recall))
    p.model_low = float(np.quantile(recall, 1 - confidence))
    p.recall_high = float(np.quantile(recall, confidence)) if confidence > 0.5 else 1.0
    p.recall_low = p.model_low
    p.recall = min(max(p.recall, p.recall_low), p.recall_high)
    spread = (f"; the count spread for targets that come in runs of consecutive frames ({deff:.1f} times a count of "
              "single frames, as long as the runs found)" if deff > 1.05 else "")
    p.basis = (f"{basis}{spread} (the review sequence's own lower bound, which assumes only that the ranking beats "
               "chance, is given beside it)")
    enough = p.reviewed >= MIN_REVIEWED and found >= MIN_FOUND
    if p.model_low >= target:
        p.previous_low = _previous_low(ws, ranked, made, standing, labels, scored_set, positions, confidence, seed)
    agree = p.previous_low is not None and p.previous_low >= target
    p.reached = p.model_low >= target and agree and enough
    guard = ws.settings.review.stop_guard
    if p.model_low >= target and not enough:
        p.waiting = f"review stops only after {MIN_REVIEWED} frames and {MIN_FOUND} targets"
        p.note = f"the estimate says the target is reached, but {p.waiting}"
    elif p.model_low >= target and not agree:
        p.waiting = f"review stops once an estimate made {guard}+ decisions earlier agrees"
        p.note = ("the estimate says the target is reached; review stops once the estimate made at a learning at "
                  f"least {guard} decisions earlier said so too (the last such one did not)")
    chance = _plain_chances(x, y, left)
    p.next_points = _next_points(found, p.remaining, left, chance, target)
    p.tail_frames, p.tail_decided, tail_share = _tail(x, left, chance)
    p.tail_remaining = p.remaining * tail_share
    return p


def _plain_chances(x: np.ndarray, y: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Each frame left's chance of holding the target under the plain fit of the calibration
    (decided frames' scores ``x``, labels ``y``)."""
    mu, sd = float(np.mean(x)), float(np.std(x)) or 1.0
    a, b = _fit_logistic((x - mu) / sd, y.astype(float), np.ones((1, len(y))))
    return 1.0 / (1.0 + np.exp(-np.clip(a[0] + b[0] * (left - mu) / sd, -30, 30)))


def _tail(x: np.ndarray, left: np.ndarray, chance: np.ndarray) -> tuple[int, int, float]:
    """(frames left, decided frames, share of the targets estimated left (plain fit)) where the
    ranking's score lies below all but ``TAIL_SHARE`` of the decided frames' calibration
    scores ``x``: what the calibration says there is its extrapolation, which the decisions
    hardly test."""
    if len(left) == 0 or len(x) == 0:
        return 0, 0, 0.0
    cut = float(np.quantile(x, TAIL_SHARE))
    low = left < cut
    return int(low.sum()), int((x < cut).sum()), float(chance[low].sum() / max(chance.sum(), 1e-12))


def _forecast_calibration(made: Forecasts, labels: dict[int, int], before_ranking: int | None = None
                          ) -> tuple[list[int], np.ndarray, np.ndarray] | None:
    """(decided frames, their forecasts, labels) for the calibration, from the forecasts made
    by rankings before ``before_ranking`` (all: None) of frames with ``labels``; None while
    fewer than ``MIN_FORECASTS`` or fewer than 2 of either label."""
    ids = made.frame_ids.tolist()
    rows = [i for i, f in enumerate(ids) if f in labels and (before_ranking is None or made.ranking_ids[i] < before_ranking)]
    y = np.array([labels[int(ids[i])] for i in rows], dtype=int)
    if len(rows) < MIN_FORECASTS or not 2 <= y.sum() <= len(y) - 2:
        return None
    return [int(ids[i]) for i in rows], made.scores[rows], y


def _previous_low(ws: Workspace, ranked: RankScores, made: Forecasts, standing: dict[int, Any],
                  labels: dict[int, int], scored: set[int], positions: dict[int, tuple[int, int]], confidence: float,
                  seed: int) -> float | None:
    """The model-based lower bound of the recall as it stood at the reference learning (the
    latest at least ``review.stop_guard`` decisions before the latest), read again: the
    decisions made up to it, the forecasts recorded before it and every frame not decided then
    with its score under the ranking it made. None where it cannot be read (no reference yet,
    or too few forecasts then)."""
    prev = ws.rankings.previous()
    if prev is None or prev["last_decision"] is None:
        return None
    decided = {f for f, d in standing.items() if d.id <= prev["last_decision"]}
    labels_then = {f: t for f, t in labels.items() if f in decided}
    calibration = _forecast_calibration(made, labels_then, before_ranking=int(prev["id"]))
    if calibration is None:
        return None
    dec, x, y = calibration
    found = sum(t for f, t in labels_then.items() if f in scored)
    keep = np.array([int(f) not in decided for f in ranked.frame_ids.tolist()]) & ~np.isnan(ranked.previous)
    if found == 0 or not keep.any():
        return None
    deff = clump_factor(target_runs(positions, [f for f, t in labels_then.items() if t == 1]))
    draws = remaining_samples(x, y, ranked.previous[keep], np.random.default_rng(seed), design_effect=deff)
    return float(np.quantile(found / (found + draws), 1 - confidence))


def _next_points(found: int, remaining: float, left: np.ndarray, chance: np.ndarray,
                 target: float) -> list[tuple[float, int]]:
    """Frames to review, in ranking order, before the expected recall reaches the target and
    the next points above it (the calibrated ``chance`` of each frame ``left``, summed down the
    ranking)."""
    if len(left) == 0:
        return []
    gained = np.cumsum(chance[np.argsort(-left, kind="stable")])
    total = found + max(remaining, float(gained[-1]))
    out = []
    for r in sorted({round(target, 2), *(round(x, 2) for x in np.arange(np.ceil(target * 100) / 100, 1.0001, 0.01))}):
        need = r * total - found
        if need <= 0:
            continue  # already reached: only the points still ahead cost frames
        if need > gained[-1]:
            break
        out.append((float(r), int(np.searchsorted(gained, need) + 1)))
    return out[:6]
