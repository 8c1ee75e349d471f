"""The policy in force: the voting rule and per-member thresholds. Until a supervisor
sets one, the cards' default thresholds and the settings' rule apply."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triage_app.core.model.policy import Rule, fuse, parse_rule
from triage_app.core.model.cards import ModelCard
from triage_app.core.model.settings import Settings
from triage_app.core.store.scores import ScoreStore


@dataclass
class ActivePolicy:
    id: int | None
    rule: Rule
    thresholds: dict[str, float]

    def describe(self, members: list[str] | None = None) -> str:
        th = ", ".join(f"{k} {v:.3g}" for k, v in sorted(self.thresholds.items()) if members is None or k in members)
        return f"rule {self.rule.text}; thresholds {th}" + ("" if self.id else " (card defaults)")


def active_policy(store: ScoreStore, cards: dict[str, ModelCard], settings: Settings) -> ActivePolicy:
    saved = store.current_policy()
    thresholds = {name: card.threshold for name, card in cards.items()}
    if saved is None:
        return ActivePolicy(None, parse_rule(settings.scoring.rule), thresholds)
    thresholds.update(saved["thresholds"])
    return ActivePolicy(int(saved["id"]), parse_rule(saved["rule"]), thresholds)


def candidate_frames(store: ScoreStore, policy: ActivePolicy, members: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame ids, fused scores, candidate mask) under the policy, from stored scores only."""
    ids, names, mat, _ = store.score_table(members)
    if len(ids) == 0:
        return ids, np.zeros(0), np.zeros(0, bool)
    th = np.array([policy.thresholds.get(n, 0.5) for n in names])
    fused, cand = fuse(mat, th, policy.rule)
    return ids, fused, cand
