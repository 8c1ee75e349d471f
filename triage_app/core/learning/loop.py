"""One step of learning from the decisions: the ranking of active review, and the head
member the live pipeline scores with. Run every ``review.retrain_every`` decisions in the
background, by ``triage retrain`` and by the replay."""

from __future__ import annotations

from dataclasses import dataclass

from triage_app.core.learning.head import RetrainResult, retrain
from triage_app.core.learning.ranker import RankingResult, train_ranking
from triage_app.core.model.errors import TriageError
from triage_app.core.store import Workspace


@dataclass
class LearnResult:
    ranking: RankingResult | None
    head: RetrainResult | None
    note: str = ""  # why something was not learnt (too few labels of one kind yet)


def learn(ws: Workspace, head: bool = True) -> LearnResult:
    """Retrain the ranking and (with ``head``, when the project has a head card) the head."""
    ranking = train_ranking(ws)
    result = LearnResult(ranking, None)
    if ranking is None:
        result.note = "the ranking needs at least 2 accepted and 2 rejected frames"
    if head and "head" in ws.cards:
        try:
            result.head = retrain(ws)
        except TriageError as exc:  # too few labels of one kind yet
            result.note = (result.note + "; " if result.note else "") + str(exc)
    return result
