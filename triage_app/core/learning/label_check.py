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

import numpy as np

from triage_app.core.learning.folds import fold_groups, grouped_folds
from triage_app.core.model.errors import TriageError
from triage_app.core.model.records import Decision
from triage_app.core.store import Workspace
from triage_app.core.store.decisions import LabelFlag


def out_of_fold_probabilities(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0,
                              groups: np.ndarray | None = None) -> np.ndarray:
    """(n, 2) probabilities of reject/accept for each row, each from a model that saw neither
    it nor the rest of its group (its event: near duplicates)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pos, neg = int(y.sum()), int(len(y) - y.sum())
    groups = np.arange(len(y)) if groups is None else groups
    cv = grouped_folds(y, groups, folds, seed)
    k = len(cv)
    if k < 2:
        raise TriageError(f"label check needs at least 2 accepted and 2 rejected frames, from 2 events each "
                          f"(has {pos} and {neg})")
    # The regularisation is chosen by an inner cross-validation: a weakly regularised model
    # on many embedding dimensions learns the wrong labels too and then cannot flag them.
    inner = min(3, k)
    model = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=np.logspace(-4, 1, 6), cv=inner, class_weight="balanced",
                                                                 scoring="neg_log_loss", max_iter=2000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn's notices of changing defaults
        return cross_val_predict(model, np.asarray(x, dtype=np.float32), y, cv=cv, method="predict_proba")


def label_issues(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Indices of the suspicious labels, most doubtful first.

    In one process: cleanlab otherwise forks a pool of workers, and a fork from a process
    whose other threads hold locks (the window's, a scoring thread's) can hang for ever."""
    from cleanlab.filter import find_label_issues

    return np.asarray(find_label_issues(labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence",
                                        n_jobs=1), dtype=np.int64)


@dataclass
class SuspiciousLabel:
    frame_id: int
    label: str
    reviewer: str
    label_probability: float  # out-of-fold probability of the label given
    decision_id: int = 0


def suspicious_decisions(ws: Workspace) -> list[SuspiciousLabel]:
    """The accept/reject decisions that confident learning flags, most doubtful first."""
    card = ws.cards.get("head")
    if card is None:
        raise TriageError("no model card named 'head' in the models folder")
    frame_ids, feats, _ = ws.embeddings.pooled(card.backbone)
    row_of = {int(f): i for i, f in enumerate(frame_ids.tolist())}
    decisions: list[Decision] = [d for d in ws.decisions.current() if d.label.target is not None and d.frame_id in row_of]
    y = np.array([d.label.target for d in decisions], dtype=int)
    x = np.asarray(feats[[row_of[d.frame_id] for d in decisions]], dtype=np.float32)
    probs = out_of_fold_probabilities(x, y, groups=fold_groups(ws, np.array([d.frame_id for d in decisions])))
    return [SuspiciousLabel(decisions[i].frame_id, decisions[i].label.value, decisions[i].reviewer,
                            float(probs[i, y[i]]), decisions[i].id) for i in label_issues(y, probs)]


def queue_for_rereview(ws: Workspace, found: list[SuspiciousLabel]) -> int:
    """Put the doubted decisions' frames back into the review queue (replacing the last
    check's list); returns how many."""
    return ws.decisions.replace_flags([LabelFlag(f.frame_id, f.decision_id, f.label_probability) for f in found])
