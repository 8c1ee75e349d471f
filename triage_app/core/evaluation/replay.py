"""Replay evaluation: the whole human-in-the-loop process with an oracle instead of a person.

Ingest, score, a policy for the target recall, the review queue in its real order (events,
audit samples, the cold-start share), retraining every N decisions, audit sampling: the same
code the window runs. The oracle answers each frame it is shown from the ground truth
(``unsure`` where the truth says nothing). After each retrain the supervisor's step runs too:
thresholds for the target recall from the labels so far, saved once the audit has enough
labels, and the audit refreshed for the new policy. The replay ends when the queue is empty
and learning brings nothing new into it (or after ``max_decisions``).

Reported: the true recall of what people were shown (positives shown / all positives), the
fraction of frames shown, the audit's recall estimate (with its interval) against the true
recall of the policy in force, the decisions needed, and curves over the review.
"""

from __future__ import annotations

import csv
import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triage_app.core.evaluation.truth import Truth, box_inside_share
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.ingest.reader import frame_file
from triage_app.core.learning.head import retrain
from triage_app.core.learning.loop import learn
from triage_app.core.model.errors import TriageError
from triage_app.core.model.policy import firing_tile
from triage_app.core.model.records import Frame, Source
from triage_app.core.model.settings import Settings
from triage_app.core.outputs.reports import report
from triage_app.core.review.audit import propose_policy, refresh_audit
from triage_app.core.review.progress import (
    MIN_FOUND,
    MIN_REVIEWED,
    Progress,
    capture_positions,
    clump_factor,
    target_runs,
)
from triage_app.core.review.session import ReviewSession
from triage_app.core.scoring.pipeline import score_project
from triage_app.core.store import Workspace

log = logging.getLogger(__name__)
ORACLE = "oracle"


@dataclass
class ReplayResult:
    frames: int = 0
    positives: int = 0
    unknown: int = 0  # frames the truth says nothing about (left out of every rate)
    shown: int = 0
    shown_positives: int = 0
    true_recall: float | None = None
    workload_fraction: float = 0.0
    estimated_recall: float | None = None
    estimated_recall_ci: tuple[float, float] = (0.0, 1.0)
    policy_true_recall: float | None = None  # of the candidates under the final policy
    policy_workload_fraction: float = 0.0
    decisions: int = 0
    retrains: int = 0
    policies_saved: int = 0
    firing_tile_hits: int | None = None  # shown positives whose firing tile holds half a truth box
    firing_tile_checked: int = 0
    target_recall: float = 0.95
    confidence: float = 0.95  # the supervisor's assurance (review.recall_confidence)
    order: str = "active"
    target: str = ""  # what the footage was searched for
    # Share of the frames shown when 90 / 95 / 98 / 100 % of the positives had been shown, by the
    # review and, in the same run, by a random order of the same frames; work saved over
    # sampling at 95 % recall (WSS@95 = 1 - share@95 - 0.05).
    shares: dict[str, float | None] = field(default_factory=dict)
    random_shares: dict[str, float | None] = field(default_factory=dict)
    wss95: float | None = None
    random_wss95: float | None = None
    # Where the review stopped by itself (the target reached by its own estimate): frames
    # shown, true recall then, and its estimate and interval then.
    stop: dict[str, Any] | None = None
    # Where a count of the targets left that erred only by chance (Poisson about the true
    # number left; a count of the runs they form where they come in runs) would first have let
    # review stop, after any decision: how much of the stop's lateness the ranking's order
    # leaves, the rest being the estimate's.
    stop_floor: dict[str, Any] | None = None
    project: str = ""
    scoring: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["estimated_recall_ci"] = list(self.estimated_recall_ci)
        return out


def _oracle_decides(session: ReviewSession, labels: dict[int, bool | None], frame_id: int) -> None:
    """The oracle's answer to the frame shown, from the truth (unsure where it has none)."""
    answer = labels.get(frame_id)
    session.decide("unsure" if answer is None else "accept" if answer else "reject")


def frame_image_path(ws: Workspace, source: Source, frame: Frame) -> str | None:
    path = frame_file(source, frame, ws.root)
    return None if path is None else str(path)


def truth_by_frame(ws: Workspace, truth: Truth) -> dict[int, bool | None]:
    sources = {s["id"]: s for s in ws.frames.source_summaries()}
    out: dict[int, bool | None] = {}
    for f in ws.frames.frame_rows():
        s = sources[f["source_id"]]
        out[int(f["id"])] = truth.label(frame_image_path(ws, s, f), str(s["name"]), str(s["uri"]), int(f["idx"]))
    return out


SHARE_POINTS = (0.90, 0.95, 0.98, 1.00)


def recall_shares(order: list[int], positives: set[int], frames: int) -> dict[str, float | None]:
    """Share of ``frames`` shown, in ``order``, when each share of the positives had been shown."""
    out: dict[str, float | None] = {}
    total = len(positives)
    found = 0
    marks = sorted(SHARE_POINTS)
    k = 0
    for n, fid in enumerate(order, start=1):
        found += fid in positives
        while k < len(marks) and total and found >= int(np.ceil(marks[k] * total - 1e-9)):
            out[f"{round(marks[k] * 100)}"] = n / frames
            k += 1
    for m in marks[k:]:
        out[f"{round(m * 100)}"] = None
    return out


def wss(shares: dict[str, float | None]) -> float | None:
    at95 = shares.get("95")
    return None if at95 is None else round(1.0 - at95 - 0.05, 4)


def replay(ws: Workspace, truth: Truth, target_recall: float = 0.95, retrain_every: int = 50,
           max_decisions: int | None = None, progress: Callable[[int, int | None], None] | None = None,
           until_stop: bool = False) -> ReplayResult:
    """Run the review with the oracle on a scored project (its decisions so far are kept):
    active review by default (the queue ranked by what was learnt, a stopping point), or the
    policy's candidate queue (``review.order`` time or score)."""
    if ws.settings.review.order == "active":
        return _replay_active(ws, truth, target_recall, retrain_every, max_decisions, progress, until_stop)
    return _replay_policy(ws, truth, target_recall, retrain_every, max_decisions, progress)


def _replay_policy(ws: Workspace, truth: Truth, target_recall: float, retrain_every: int, max_decisions: int | None,
                   progress: Callable[[int, int | None], None] | None) -> ReplayResult:
    """The policy's candidate queue with the oracle (``review.order`` time or score): after
    each retrain the supervisor's step sets thresholds for the target from the labels so far."""
    settings = ws.settings
    labels = truth_by_frame(ws, truth)
    known = {f: v for f, v in labels.items() if v is not None}
    positives = {f for f, v in known.items() if v}
    res = ReplayResult(frames=len(known), positives=len(positives), unknown=len(labels) - len(known),
                       target_recall=target_recall, project=str(ws.root),
                       confidence=settings.review.recall_confidence, order=settings.review.order, target=ws.target.name)
    if res.unknown:
        res.messages.append(f"{res.unknown} frames have no ground truth: the oracle answers 'unsure' and they are left "
                            f"out of every rate")
    def supervise() -> None:
        try:
            d, rule = propose_policy(ws, target_recall)
        except ValueError as exc:
            res.messages.append(str(exc))
            return
        if d.enough_labels:
            ws.policies.save(rule.text, d.thresholds, ORACLE, target_recall=target_recall, note="replay",
                              confidence=d.confidence)
            res.policies_saved += 1
        refresh_audit(ws)

    def learn() -> None:
        if retrain_every:
            try:
                retrain(ws)
                res.retrains += 1
            except TriageError as exc:  # too few labels of one kind yet
                log.info("replay: no retrain yet (%s)", exc)
        supervise()

    shown: set[int] = set()
    checkpoint = max(1, retrain_every // 2 if retrain_every else 25)

    def point() -> None:
        rep = report(ws)
        rep = rep.get("policy_in_force") or rep  # the policy's estimate (active review's stop is read on its own)
        ids, _, cand = ws.candidates()
        cand_ids = {int(i) for i, c in zip(ids, cand, strict=True) if c}
        found = len(shown & positives)
        res.curve.append(dict(
            decisions=res.decisions, shown=len(shown), workload_fraction=len(shown) / max(res.frames, 1),
            true_recall=found / len(positives) if positives else None,
            policy_true_recall=len((cand_ids | shown) & positives) / len(positives) if positives else None,
            estimated_recall=rep["recall_estimate"], ci_low=rep["recall_ci_low"], ci_high=rep["recall_ci_high"],
            candidates=rep["candidates"]))

    supervise()
    session = ReviewSession(ws, reviewer=ORACLE)
    point()
    since_learn = 0
    while max_decisions is None or res.decisions < max_decisions:
        c = session.current
        if c is None:
            if since_learn == 0:
                break
            learn()
            since_learn = 0
            session.refresh()
            point()
            continue
        _oracle_decides(session, labels, c.frame_id)
        res.decisions += 1
        since_learn += 1
        shown.add(c.frame_id)
        if retrain_every and res.decisions % retrain_every == 0:
            learn()
            since_learn = 0
            session.refresh()
        if res.decisions % checkpoint == 0:
            point()
        if progress:
            progress(res.decisions, None)
    point()

    res.shown = len(shown & set(known))
    res.shown_positives = len(shown & positives)
    res.true_recall = res.shown_positives / len(positives) if positives else None
    res.workload_fraction = res.shown / max(res.frames, 1)
    last = res.curve[-1]
    res.estimated_recall = last["estimated_recall"]
    res.estimated_recall_ci = (last["ci_low"], last["ci_high"])
    res.policy_true_recall = last["policy_true_recall"]
    res.policy_workload_fraction = last["candidates"] / max(res.frames, 1)
    _tile_hits(ws, truth, shown & positives, res)
    return res


def _replay_active(ws: Workspace, truth: Truth, target_recall: float, retrain_every: int, max_decisions: int | None,
                   progress: Callable[[int, int | None], None] | None, until_stop: bool) -> ReplayResult:
    """Active review with the oracle: decide what the queue offers, learn every
    ``retrain_every`` decisions (the ranking and the head), note where review stops by itself
    (the target reached by its own estimate), then go on (unless ``until_stop``) until every
    positive has been shown, so that the whole curve is known."""
    settings = ws.settings
    settings.review.target_recall = target_recall
    labels = truth_by_frame(ws, truth)
    scored = {int(f) for f in ws.scores.score_table()[0].tolist()}
    known = {f: v for f, v in labels.items() if v is not None and f in scored}
    positives = {f for f, v in known.items() if v}
    res = ReplayResult(frames=len(known), positives=len(positives), unknown=len(labels) - len(known),
                       target_recall=target_recall, project=str(ws.root), confidence=settings.review.recall_confidence,
                       order="active", target=ws.target.name)
    if res.unknown:
        res.messages.append(f"{res.unknown} frames have no ground truth or no score: the oracle answers 'unsure' and they "
                            f"are left out of every rate")
    shown: list[int] = []
    session = ReviewSession(ws, reviewer=ORACLE)
    checkpoint = max(1, retrain_every // 2 if retrain_every else 25)

    def point(stopped: bool = False) -> None:
        res.curve.append(_active_point(res, session.progress, shown, positives, stopped))

    def learn_now() -> None:
        out = learn(ws)
        res.retrains += out.ranking is not None
        session.refresh()

    since_learn = 0
    point()
    while max_decisions is None or res.decisions < max_decisions:
        c = session.current
        if c is None:
            if session.target_reached and not session.keep_going:
                if res.stop is None:
                    _note_stop(res, session, shown, positives)
                    point(stopped=True)
                if until_stop:
                    break
                session.keep_reviewing()
                continue
            if since_learn == 0:
                break
            learn_now()
            since_learn = 0
            continue
        _oracle_decides(session, labels, c.frame_id)
        res.decisions += 1
        since_learn += 1
        shown.append(c.frame_id)
        if retrain_every and since_learn >= retrain_every:
            learn_now()
            since_learn = 0
        if res.decisions % checkpoint == 0:
            point()
        if progress:
            progress(res.decisions, None)
        if res.stop is not None and positives and positives <= set(shown):
            break  # every positive shown after the stop: the curve is complete
    point()
    _sum_up_active(res, session, shown, set(known), positives, settings.review.audit_seed)
    positions = capture_positions(ws.frames.frames_by_id(sorted(known)))
    res.stop_floor = first_floor(shown, positives, res.frames, target_recall, settings.review.recall_confidence,
                                 positions)
    _tile_hits(ws, truth, set(shown) & positives, res)
    return res


def first_floor(shown: list[int], positives: set[int], frames: int, target: float, confidence: float,
                positions: dict[int, tuple[int, int]] | None = None) -> dict[str, Any] | None:
    """The first decision, along the frames in the order shown, after which :func:`floor_stop`
    lets review stop (None if none does). With the frames' ``positions`` in capture order, the
    targets left count as the runs they form (frames next to each other not shown yet)."""
    found = 0
    left = set(positives)
    for n, fid in enumerate(shown, start=1):
        if fid in left:
            found += 1
            left.discard(fid)
        if floor_stop(found, len(left), n, frames, target, confidence, n) is None:
            continue  # a count of runs spreads at least as far as a count of frames
        spread = clump_factor(target_runs(positions, left)) if positions else 1.0
        at = floor_stop(found, len(left), n, frames, target, confidence, n, spread)
        if at is not None:
            return at
    return None


def _active_point(res: ReplayResult, p: Progress | None, shown: list[int], positives: set[int],
                  stopped: bool) -> dict[str, Any]:
    """One point of an active replay's curve: the truth so far beside review's estimate."""
    found = len(positives.intersection(shown))
    est: dict[str, Any] = dict(estimated_recall=None, ci_low=None, ci_high=None, model_low=None, sequence_low=None,
                               remaining_estimate=None)
    if p is not None:
        est = dict(estimated_recall=p.recall, ci_low=p.recall_low, ci_high=p.recall_high, model_low=p.model_low,
                   sequence_low=p.sequence_low, remaining_estimate=p.remaining)
    return dict(decisions=res.decisions, shown=len(shown), workload_fraction=len(shown) / max(res.frames, 1),
                true_recall=found / len(positives) if positives else None, **est, reached=bool(p and p.reached),
                stopped=stopped)


def _sum_up_active(res: ReplayResult, session: ReviewSession, shown: list[int], known: set[int], positives: set[int],
                   seed: int) -> None:
    """The replay's totals, the shares of frames shown at each share of the positives (and a
    random order's, drawn with ``seed``), and review's last estimate."""
    order = [f for f in shown if f in known]
    res.shown = len(order)
    res.shown_positives = len(set(order) & positives)
    res.true_recall = res.shown_positives / len(positives) if positives else None
    res.workload_fraction = res.shown / max(res.frames, 1)
    res.shares = recall_shares(order, positives, res.frames)
    rng = np.random.default_rng(seed)
    res.random_shares = recall_shares([int(f) for f in rng.permutation(sorted(known))], positives, res.frames)
    res.wss95, res.random_wss95 = wss(res.shares), wss(res.random_shares)
    last = session.progress
    if last is not None:
        res.estimated_recall = last.recall
        res.estimated_recall_ci = (last.recall_low, last.recall_high)


def floor_stop(found: int, left: int, shown: int, frames: int, target: float, confidence: float,
               decisions: int, spread: float = 1.0) -> dict[str, Any] | None:
    """The stop a count of the targets left would allow if it erred only by chance: the
    targets left drawn as Poisson about the true number ``left`` (the spread any estimate from
    chances keeps), or, where targets come in runs of consecutive frames, as a count of runs
    (``spread``: E[K^2] / E[K] of the runs the targets left form, K a run's length; a
    negative binomial of that variance over its mean), its ``confidence`` quantile as the
    bound. None while that bound does not show the target (nor before review's own minimum of
    frames and targets)."""
    from scipy import stats

    if shown < MIN_REVIEWED or found < MIN_FOUND:
        return None
    if left <= 0:
        high = 0.0
    elif spread > 1.0 + 1e-9:
        high = float(stats.nbinom.ppf(confidence, left / (spread - 1.0), 1.0 / spread))
    else:
        high = float(stats.poisson.ppf(confidence, left))
    if found / (found + high) < target:
        return None
    total = found + left
    return dict(decisions=decisions, shown=shown, shown_fraction=shown / max(frames, 1), true_recall=found / total,
                bound=found / (found + high), spread=spread)


def _note_stop(res: ReplayResult, session: ReviewSession, shown: list[int], positives: set[int]) -> None:
    p = session.progress
    assert p is not None
    found = len(set(shown) & positives)
    res.stop = dict(decisions=res.decisions, shown=len(shown), shown_fraction=len(shown) / max(res.frames, 1),
                    true_recall=found / len(positives) if positives else None, estimated_recall=p.recall,
                    ci_low=p.recall_low, ci_high=p.recall_high, model_low=p.model_low, sequence_low=p.sequence_low,
                    remaining_estimate=p.remaining, basis=p.basis, audit_draws=p.audit_draws,
                    covered=(p.recall_low <= found / len(positives) <= p.recall_high) if positives else None)


def _tile_hits(ws: Workspace, truth: Truth, frames: set[int], res: ReplayResult) -> None:
    """Where the truth has boxes: did the firing tile of each shown positive hold at least half
    of a truth box (the analyst was pointed at the object, not just at the frame)?"""
    if truth.boxes is None and truth.yolo is None or not frames:
        return
    thresholds = ws.policy().thresholds
    rows = ws.scores.frame_score_rows(sorted(frames))
    sources = {s["id"]: s for s in ws.frames.source_summaries()}
    hits = checked = 0
    for fid in sorted(frames):
        f = ws.frames.frame(fid)
        path = frame_image_path(ws, sources[f["source_id"]], f)
        _, box = firing_tile(rows.get(fid, {}), thresholds)
        width, height = f.get("width"), f.get("height")
        if path is None or box is None or not width or not height:
            continue
        boxes = truth.boxes_for(path, int(width), int(height))
        checked += 1
        hits += bool(boxes) and bool((box_inside_share(np.array(boxes), box) >= 0.5).any())
    res.firing_tile_hits, res.firing_tile_checked = hits, checked


def evaluate(sources: list[str], truth: Truth, settings: Settings, target_recall: float = 0.95, retrain_every: int = 50,
             project_dir: Path | None = None, max_decisions: int | None = None,
             progress_factory: Callable[[str], Any] | None = None, until_stop: bool = False) -> ReplayResult:
    """Ingest and score the sources in a fresh project (``project_dir`` keeps it; otherwise a
    temporary folder is used and removed), then replay the review."""
    if project_dir is not None and Workspace.exists(project_dir):
        raise TriageError(f"{project_dir}: already holds a project; a replay needs a new folder (its decisions would mix)")
    with tempfile.TemporaryDirectory(prefix="triage-replay-") as tmp:
        root = Path(project_dir) if project_dir is not None else Path(tmp) / "project"
        with Workspace(root, settings=settings) as ws:
            messages = []
            for uri in sources:
                bar = progress_factory(f"ingest {Path(uri).name}") if progress_factory else None
                r = ingest_source(ws, uri, progress=bar)
                if bar is not None:
                    bar.close()
                if r.error:
                    messages.append(r.error)
            if not ws.frames.frame_count():
                raise TriageError("no frame could be ingested from the sources given: " + "; ".join(messages))
            bar = progress_factory("score") if progress_factory else None
            summary = score_project(ws, progress=bar)
            refresh_audit(ws)
            if bar is not None:
                bar.close()
            # The head is untrained before the first decisions: the replay trains it, no news there.
            messages += [f"member {m} left out: {why}" for m, why in summary.unavailable.items()
                         if not (m == "head" and retrain_every)] + summary.errors[:10]
            bar = progress_factory("replay") if progress_factory else None
            res = replay(ws, truth, target_recall, retrain_every, max_decisions=max_decisions, progress=bar,
                         until_stop=until_stop)
            if bar is not None:
                bar.close()
            res.messages = messages + res.messages
            res.scoring = dict(members=summary.members, provider=summary.provider, frames_scored=summary.frames_scored,
                               seconds=round(summary.seconds, 2))
            res.project = str(root) if project_dir is not None else ""
    return res


def write_curve_csv(res: ReplayResult, path: Path) -> None:
    cols = list(res.curve[0]) if res.curve else []
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(res.curve)


def plot_curves(res: ReplayResult, folder: Path) -> list[Path]:
    """Recall against the frames shown, for the review and a random order of the same
    frames, with the review's own estimate and interval and where it stopped; beside it, for
    active review the targets left (estimated and true), else the workload over the review
    (PNG, and the numbers as CSV)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    c = res.curve
    x = [p["workload_fraction"] for p in c]

    def col(k: str) -> list[float]:
        return [math.nan if p.get(k) is None else p[k] for p in c]

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    ax1.plot(x, col("true_recall"), label="review: true recall of the frames shown", lw=2)
    ax1.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="random order (expected)")
    if res.random_shares:
        pts = sorted((v, float(k) / 100) for k, v in res.random_shares.items() if v is not None)
        ax1.plot([0] + [p[0] for p in pts], [0] + [p[1] for p in pts], color="grey", marker=".", lw=0.8,
                 label="random order, this run")
    ax1.plot(x, col("estimated_recall"), label="review's own estimate", lw=1.5)
    ax1.fill_between(x, col("ci_low"), col("ci_high"), alpha=0.2, label=f"its interval ({res.confidence:.0%} assurance)")
    ax1.axhline(res.target_recall, color="grey", lw=1, ls=":", label=f"target {res.target_recall:.0%}")
    if res.stop:
        ax1.axvline(res.stop["shown_fraction"], color="tab:red", lw=1.2,
                    label=f"stopped by itself at {res.stop['shown_fraction']:.1%} (true recall {res.stop['true_recall']:.1%})")
    if res.stop_floor:
        ax1.axvline(res.stop_floor["shown_fraction"], color="tab:red", lw=1, ls=":",
                    label=f"a count erring only by chance would stop at {res.stop_floor['shown_fraction']:.1%}")
    ax1.set(xlabel="share of frames shown", ylabel="recall", xlim=(0, 1), ylim=(0, 1.02),
            title=f"Recall against work ({res.order} review, target: {res.target or 'n/a'})")
    ax1.legend(loc="lower right", fontsize=7)
    if res.order == "active" and res.positives:
        # What the stopping point rests on: the targets review believes are left, against the truth.
        ax2.plot(x, [res.positives * (1 - v) if v == v else math.nan for v in col("true_recall")],
                 label="targets left: true", lw=2)
        ax2.plot(x, col("remaining_estimate"), label="targets left: review's estimate (model-based)", lw=1.5)
        if res.stop:
            ax2.axvline(res.stop["shown_fraction"], color="tab:red", lw=1.2, label="stopped by itself")
        ax2.set(xlabel="share of frames shown", ylabel="targets (log scale above 1)", xlim=(0, 1), yscale="symlog",
                title="Targets left among the frames not shown")
        ax2.set_ylim(bottom=0)
    else:
        ax2.plot([p["decisions"] for p in c], x, label="frames shown", lw=2)
        if any(p.get("candidates") is not None for p in c):
            ax2.plot([p["decisions"] for p in c], [(p.get("candidates") or 0) / max(res.frames, 1) for p in c],
                     label="candidates under the policy", lw=1.5, ls="--")
        ax2.set(xlabel="decisions", ylabel="share of frames", ylim=(0, 1.02), title="Workload")
    ax2.legend(loc="upper right", fontsize=8)
    png = folder / "replay_curves.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    csv_path = folder / "replay_curve.csv"
    write_curve_csv(res, csv_path)
    return [png, csv_path]
