"""Simulated flights for active review, run through the product's own loop: a project with
synthetic embeddings (backgrounds of several kinds, a target that shows clearly in most of
its frames and faintly in some), an uninformative zero-shot score, and an oracle that
answers every frame the queue offers. What it measures: the share of frames shown at each
share of the positives against a random order, and where review stops by itself, with its
true recall and whether its interval covered it. ``scripts/recall_coverage.py --active``
prints the numbers over many seeds; the tests run a few."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from triage_app.core.evaluation.replay import recall_shares
from triage_app.core.learning.loop import learn
from triage_app.core.model.settings import save_section
from triage_app.core.review.session import ReviewSession
from triage_app.core.store import Workspace


@dataclass
class ActiveTrial:
    seed: int
    frames: int
    positives: int
    shares: dict[str, float | None]
    random_shares: dict[str, float | None]
    stopped: bool
    stop_fraction: float | None
    stop_true_recall: float | None
    stop_estimate: float | None
    stop_low: float | None
    stop_high: float | None
    stop_sequence_low: float | None = None  # the review sequence's own lower bound then

    @property
    def covered(self) -> bool | None:
        if self.stop_true_recall is None or self.stop_low is None or self.stop_high is None:
            return None
        return self.stop_low <= self.stop_true_recall <= self.stop_high + 1e-12


def synthetic_flight(seed: int, frames: int = 1000, prevalence: float = 0.10, dim: int = 48, separation: float = 2.0,
                     faint: float = 0.06, clusters: int = 6, burst: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(pooled embeddings, truth): background clusters; the target adds a direction, clearly
    in most of its frames and faintly (a third as strong) in a share ``faint`` of them. With
    ``burst`` > 1 the frames come in runs of that many near duplicates (one scene, one truth,
    a little noise each), as a video sampled a few times a second."""
    rng = np.random.default_rng(seed)
    scenes = -(-frames // burst)
    truth = rng.random(scenes) < prevalence
    centres = rng.normal(0, 3, (clusters, dim))
    x = centres[rng.integers(clusters, size=scenes)] + rng.normal(0, 1, (scenes, dim))
    direction = rng.normal(0, 1, dim)
    direction /= np.linalg.norm(direction)
    strength = np.where(rng.random(scenes) < faint, separation * 0.35, separation) * 2.0
    x += (truth * strength)[:, None] * direction[None, :]
    if burst > 1:
        x = np.repeat(x, burst, axis=0)[:frames] + rng.normal(0, 0.35, (frames, dim))
        truth = np.repeat(truth, burst)[:frames]
    return x.astype(np.float32), truth


def simulated_project(root: Path, seed: int, frames: int = 1000, prevalence: float = 0.10, separation: float = 2.0,
                      faint: float = 0.06, review: dict[str, Any] | None = None, burst: int = 1,
                      ) -> tuple[Workspace, dict[int, bool]]:
    """A project over a simulated flight (its ``settings.toml`` holds ``review``; frames 2 s
    apart, one frame an event; with ``burst`` > 1, runs of that many near duplicates 0.5 s
    apart, 10 s between runs): synthetic pooled embeddings, a zero-shot score that knows
    nothing of the target. Returns the open workspace and the truth per frame id."""
    emb, truth = synthetic_flight(seed, frames, prevalence, separation=separation, faint=faint, burst=burst)
    times = [i * 2.0 for i in range(frames)] if burst <= 1 else [(i // burst) * 10.0 + (i % burst) * 0.5
                                                                 for i in range(frames)]
    rng = np.random.default_rng(seed + 1)
    zero_shot = np.clip(0.05 + 0.02 * rng.standard_normal(frames), 0.001, 0.999)
    root.mkdir(parents=True, exist_ok=True)
    save_section("review", {"reviewer": "oracle", **(review or {})}, path=root / "settings.toml")
    ws = Workspace(root)
    sid, _ = ws.frames.add_source("video", "/simulated.mp4", "simulated.mp4", {})
    ws.frames.add_frames([{"source_id": sid, "idx": i, "timestamp_s": times[i], "telemetry_matched": 0}
                          for i in range(frames)])
    ids = np.array([r["id"] for r in ws.frames.frame_rows()], dtype=np.int64)
    v = ws.scores.model_version("imagenet", "imagenet", "simulated")
    ws.scores.commit_scores([dict(frame_id=int(f), member="imagenet", model_version_id=v, score=float(s), tile=0, x0=0, y0=0,
                                  x1=10, y1=10, tiles=1) for f, s in zip(ids, zero_shot, strict=True)], {})
    meta = ws.embeddings.open_set("imagenet:pooled", v, emb.shape[1], "imagenet-pooled-sim")
    writer = ws.embeddings.writer(meta)
    writer.append(ids, np.full(frames, -1), emb)
    ws.embeddings.set_rows_committed(int(meta["id"]), writer.flush())
    writer.close()
    return ws, dict(zip(ids.tolist(), truth.tolist(), strict=True))


def review_until_stop(ws: Workspace, label: dict[int, bool], retrain_every: int = 25, until_stop: bool = True
                      ) -> tuple[list[int], dict[str, Any] | None]:
    """The oracle reviews what the queue offers, learning every ``retrain_every`` decisions,
    until review stops by itself (with ``until_stop``) or every target was shown after it.
    Returns the frames in the order shown and where it stopped (share of frames, true
    recall, estimate and interval then), or None when it never stopped."""
    positives = {f for f, t in label.items() if t}
    session = ReviewSession(ws)
    shown: list[int] = []
    stop: dict[str, Any] | None = None
    since = 0
    while True:
        c = session.current
        if c is None:
            if session.target_reached and not session.keep_going:
                if stop is None:
                    p = session.progress
                    assert p is not None
                    stop = dict(fraction=len(shown) / len(label), true=len(set(shown) & positives) / len(positives),
                                est=p.recall, low=p.recall_low, high=p.recall_high,
                                seq=p.sequence_low)
                if until_stop or positives <= set(shown):
                    break
                session.keep_reviewing()
                continue
            if since == 0:
                break
            learn(ws, head=False)
            session.refresh()
            since = 0
            continue
        session.decide("accept" if label[c.frame_id] else "reject")
        shown.append(c.frame_id)
        since += 1
        if since >= retrain_every:
            learn(ws, head=False)
            session.refresh()
            since = 0
        if stop is not None and positives <= set(shown):
            break
    return shown, stop


def run_active_trial(seed: int, frames: int = 1000, prevalence: float = 0.10, target: float = 0.95,
                     confidence: float | None = None, separation: float = 2.0, faint: float = 0.06,
                     retrain_every: int = 25, until_stop: bool = False, burst: int = 1) -> ActiveTrial:
    """One simulated flight reviewed by the oracle through the product's queue, learning and
    stopping point (``burst``: see :func:`simulated_project`)."""
    review: dict[str, Any] = {"target_recall": target, "retrain_every": retrain_every, "audit_seed": seed}
    if confidence is not None:
        review["recall_confidence"] = confidence
    with tempfile.TemporaryDirectory(prefix="triage-sim-") as tmp:
        ws, label = simulated_project(Path(tmp) / "p", seed, frames, prevalence, separation, faint, review, burst)
        with ws:
            shown, stop = review_until_stop(ws, label, retrain_every, until_stop)
    ids = list(label)
    positives = {f for f, t in label.items() if t}
    shares = recall_shares(shown, positives, frames)
    random_shares = recall_shares([int(f) for f in np.random.default_rng(seed).permutation(ids)], positives, frames)
    return ActiveTrial(seed, frames, len(positives), shares, random_shares, stop is not None,
                       None if stop is None else stop["fraction"], None if stop is None else stop["true"],
                       None if stop is None else stop["est"], None if stop is None else stop["low"],
                       None if stop is None else stop["high"], None if stop is None else stop["seq"])


def summarise(trials: list[ActiveTrial], target: float) -> dict[str, Any]:
    """Means and worst cases over trials: shares against random, the stop, its coverage."""
    def mean(key: str, which: str = "shares") -> float | None:
        vals = [getattr(t, which)[key] for t in trials if getattr(t, which).get(key) is not None]
        return round(float(np.mean(vals)), 4) if vals else None

    stopped = [t for t in trials if t.stopped]
    out: dict[str, Any] = {
        "trials": len(trials), "target": target,
        "share_at": {k: mean(k) for k in ("90", "95", "98", "100")},
        "random_share_at": {k: mean(k, "random_shares") for k in ("90", "95", "98", "100")},
        "stopped": len(stopped),
    }
    if stopped:
        out.update(
            stop_fraction_mean=round(float(np.mean([t.stop_fraction for t in stopped])), 4),
            stop_fraction_max=round(float(np.max([t.stop_fraction for t in stopped])), 4),
            stop_true_recall_mean=round(float(np.mean([t.stop_true_recall for t in stopped])), 4),
            stop_true_recall_min=round(float(np.min([t.stop_true_recall for t in stopped])), 4),
            reached_target=round(float(np.mean([(t.stop_true_recall or 0) >= target for t in stopped])), 4),
            interval_covered=round(float(np.mean([bool(t.covered) for t in stopped])), 4),
            sequence_bound_held=round(float(np.mean([(t.stop_sequence_low or 0) <= (t.stop_true_recall or 0) + 1e-12
                                                     for t in stopped])), 4),
        )
    out["runs"] = [asdict(t) for t in trials]
    return out
