"""Label quality: find the analysts' decisions that the evidence disagrees with.

Out-of-fold probabilities come from the head's own model (class-balanced logistic regression
on standardised pooled embeddings) trained on the other folds, so no decision judges itself.
cleanlab's ``find_label_issues`` then ranks the labels whose out-of-fold probability is low
compared with the per-class confidence thresholds (confident learning); it is a well-tested
implementation of the method, and its ranking by self-confidence puts the most doubtful first.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from triage_app.core.model.errors import TriageError
from triage_app.core.model.cards import ModelCard
from triage_app.core.store import Project


def out_of_fold_probabilities(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """(n, 2) probabilities of reject/accept for each row, each from a model that did not see it."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pos, neg = int(y.sum()), int(len(y) - y.sum())
    k = min(folds, pos, neg)
    if k < 2:
        raise TriageError(f"label check needs at least 2 accepted and 2 rejected frames (has {pos} and {neg})")
    # The regularisation is chosen by an inner cross-validation: a weakly regularised model
    # on many embedding dimensions learns the wrong labels too and then cannot flag them.
    inner = min(3, k)
    model = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=np.logspace(-4, 1, 6), cv=inner, class_weight="balanced",
                                                                 scoring="neg_log_loss", max_iter=2000))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn's notices of changing defaults
        return cross_val_predict(model, np.asarray(x, dtype=np.float32), y, cv=cv, method="predict_proba")


def label_issues(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Indices of the suspicious labels, most doubtful first."""
    from cleanlab.filter import find_label_issues

    return np.asarray(find_label_issues(labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence"), dtype=np.int64)


@dataclass
class SuspiciousLabel:
    frame_id: int
    label: str
    reviewer: str
    label_probability: float  # out-of-fold probability of the label given
    decision_id: int = 0


def suspicious_decisions(project: Project, cards: dict[str, ModelCard]) -> list[SuspiciousLabel]:
    """The accept/reject decisions that confident learning flags, most doubtful first."""
    from triage_app.core.learning.head import pooled_features
    from triage_app.core.review.queue import DecisionStore

    card = cards.get("head")
    if card is None:
        raise TriageError("no model card named 'head' in the models folder")
    frame_ids, feats, _ = pooled_features(project, card.backbone)
    row_of = {int(f): i for i, f in enumerate(frame_ids.tolist())}
    decisions: list[dict[str, Any]] = [d for d in DecisionStore(project).current()
                                       if d["label"] in ("accept", "reject") and int(d["frame_id"]) in row_of]
    y = np.array([1 if d["label"] == "accept" else 0 for d in decisions])
    x = np.asarray(feats[[row_of[int(d["frame_id"])] for d in decisions]], dtype=np.float32)
    probs = out_of_fold_probabilities(x, y)
    return [SuspiciousLabel(int(decisions[i]["frame_id"]), decisions[i]["label"], str(decisions[i].get("reviewer", "")),
                            float(probs[i, y[i]]), int(decisions[i]["id"])) for i in label_issues(y, probs)]


def queue_for_rereview(project: Project, found: list[SuspiciousLabel]) -> int:
    """Put the doubted decisions' frames back into the review queue (replacing the last
    check's list); returns how many."""
    from sqlalchemy import delete, insert

    from triage_app.core.store.project import now_iso

    table = project.db.table("label_flags")
    stamp = now_iso()

    def fn(conn: Any) -> int:
        conn.execute(delete(table))
        if found:
            conn.execute(insert(table), [dict(frame_id=f.frame_id, decision_id=f.decision_id, probability=f.label_probability,
                                              flagged_at=stamp) for f in found])
        return len(found)

    return project.db.write(fn)


def rereview_frames(project: Project) -> set[int]:
    """Frames whose doubted decision still stands (no newer decision since the check)."""
    from sqlalchemy import select

    from triage_app.core.review.queue import DecisionStore

    table = project.db.table("label_flags")
    with project.db.read() as conn:
        flags = {int(r[0]): int(r[1]) for r in conn.execute(select(table.c.frame_id, table.c.decision_id))}
    if not flags:
        return set()
    standing = {int(d["frame_id"]): int(d["id"]) for d in DecisionStore(project).current()}
    return {f for f, d in flags.items() if standing.get(f) == d}
