"""Fusion of member scores: per-member thresholds, a voting rule, one score for ranking.

A member *fires* on a frame when its score (the max over the frame's tiles) reaches its
threshold. The rule says how many must fire: ``any`` (1-of-n, buys recall), ``all``
(n-of-n, buys precision) or ``K-of-N``. Members without a score for a frame (not trained,
not available) do not vote; K-of-N is then scaled to the members that did, ceil(K*v/N).

The fused score puts every member on one scale where its threshold sits at 1:
``s / t`` below the threshold and ``1 + (s - t) / (1 - t)`` above, and takes the K-th
largest. So a frame is a candidate exactly when its fused score is at least 1, and frames
sort by how clearly they pass the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

_KOFN = re.compile(r"^\s*(\d+)\s*-?\s*of\s*-?\s*(\d+)\s*$", re.I)


@dataclass(frozen=True)
class Rule:
    """``k`` members of ``n`` must fire; ``k=None`` means all of them."""

    k: int | None
    n: int | None = None
    text: str = "any"

    def needed(self, voters: np.ndarray) -> np.ndarray:
        """Members that must fire on each frame, given how many scored it. K-of-N is
        scaled to the members present: ceil(K * voters / N)."""
        v = np.maximum(voters, 1)
        if self.k is None:
            return v
        if self.n:
            return np.minimum(np.ceil(self.k * v / self.n).astype(v.dtype), v)
        return np.minimum(np.full_like(v, self.k), v)


def parse_rule(text: str) -> Rule:
    """``any``, ``all`` or ``K-of-N`` (for example ``2-of-3``)."""
    t = text.strip().lower()
    if t == "any":
        return Rule(1, None, "any")
    if t == "all":
        return Rule(None, None, "all")
    m = _KOFN.match(t)
    if m:
        k, n = int(m.group(1)), int(m.group(2))
        if 1 <= k <= n:
            return Rule(k, n, f"{k}-of-{n}")
    raise ValueError(f"voting rule '{text}' is not any, all, or K-of-N with 1 <= K <= N")


def normalised(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Scores on the scale where each member's threshold is 1 (NaN stays NaN)."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.clip(np.asarray(thresholds, dtype=np.float64), 1e-9, 1.0)
    below = s / t
    above = 1.0 + (s - t) / np.maximum(1.0 - t, 1e-9)
    return np.where(s >= t, above, below)


def fuse(scores: np.ndarray, thresholds: np.ndarray, rule: Rule) -> tuple[np.ndarray, np.ndarray]:
    """(fused score, candidate mask) for a (frames x members) score matrix."""
    z = normalised(scores, thresholds)
    voters = np.sum(~np.isnan(z), axis=1)
    need = rule.needed(voters)
    ordered = -np.sort(-np.where(np.isnan(z), -np.inf, z), axis=1)  # descending, NaN last
    idx = np.clip(need - 1, 0, max(z.shape[1] - 1, 0))
    fused = ordered[np.arange(len(z)), idx] if z.shape[1] else np.full(len(z), -np.inf)
    fused = np.where(voters > 0, fused, np.nan)
    fires = np.nan_to_num(z, nan=-np.inf) >= 1.0
    candidate = (fires.sum(axis=1) >= need) & (voters > 0)
    return fused, candidate


def firing_tile(scores: dict[str, dict[str, Any]], thresholds: dict[str, float]
                ) -> tuple[str | None, tuple[int, int, int, int] | None]:
    """For one frame's stored score rows by member: the member that fired most clearly (or
    came closest, on the threshold-normalised scale) among those whose score keeps a tile box,
    and that box."""
    with_box = {m: r for m, r in scores.items() if r.get("x0") is not None}
    if not with_box:
        return (max(scores, key=lambda m: scores[m]["score"]) if scores else None), None
    names = sorted(with_box)
    z = normalised(np.array([[with_box[m]["score"] for m in names]]), np.array([thresholds.get(m, 0.5) for m in names]))[0]
    best = names[int(np.argmax(z))]
    r = with_box[best]
    return best, (int(r["x0"]), int(r["y0"]), int(r["x1"]), int(r["y1"]))


@dataclass
class Policy:
    """The policy in force: a voting rule and per-member thresholds. ``id`` is None while the
    cards' default thresholds and the settings' rule apply (no supervisor has set one)."""

    id: int | None
    rule: Rule
    thresholds: dict[str, float]
    target_recall: float | None = None
    confidence: float | None = None

    @property
    def key(self) -> str:
        """What audit samples are recorded under: one audit per policy."""
        return str(self.id) if self.id is not None else "defaults"

    def threshold_array(self, members: list[str]) -> np.ndarray:
        return np.array([self.thresholds.get(n, 0.5) for n in members], dtype=np.float64)

    def fuse(self, scores: np.ndarray, members: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(fused score, candidate mask) of a (frames x members) score matrix."""
        if len(scores) == 0:
            return np.zeros(0), np.zeros(0, bool)
        return fuse(scores, self.threshold_array(members), self.rule)

    def describe(self, members: list[str] | None = None) -> str:
        th = ", ".join(f"{k} {v:.3g}" for k, v in sorted(self.thresholds.items()) if members is None or k in members)
        return f"rule {self.rule.text}; thresholds {th}" + ("" if self.id else " (card defaults)")
