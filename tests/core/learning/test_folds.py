"""Folds grouped by event: near-duplicate frames of one moment never sit on both sides of a
split, so the scores the stopping point and the label check read are honest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.core.review.test_queue import make_scored_project
from triage_app.core.learning.folds import fold_groups, grouped_folds
from triage_app.core.learning.ranker import train_ranking
from triage_app.core.model.settings import load_settings


def _events(root: Path, events: int = 60, per_event: int = 4, seed: int = 0):
    """Events of near-identical frames (0.1 s apart, 20 s between events), each event's
    frames alike in embedding and in label; the labels follow nothing the pictures show."""
    rng = np.random.default_rng(seed)
    times = [e * 20.0 + k * 0.1 for e in range(events) for k in range(per_event)]
    centre = rng.normal(0, 1, (events, 32))
    emb = np.repeat(centre, per_event, axis=0) + 0.01 * rng.normal(0, 1, (events * per_event, 32))
    event_label = rng.random(events) < 0.4
    p = make_scored_project(root, [0.1] * len(times), times=times, embeddings=emb.astype(np.float32))
    p.settings = load_settings(root, overrides={"review": {"event_gap_s": 5.0}})
    ids = [r["id"] for r in p.frames.frame_rows()]
    labels = np.repeat(event_label, per_event)
    p.decisions.record([dict(frame_id=f, label="accept" if y else "reject", reviewer="ana", seconds_spent=1.0, policy="p",
                             member_scores="{}") for f, y in zip(ids, labels, strict=True)])
    return p, np.array(ids), labels.astype(int)


def test_grouped_folds_keep_each_event_on_one_side(tmp_path: Path) -> None:
    p, ids, y = _events(tmp_path / "p")
    with p:
        groups = fold_groups(p, ids)
        assert len(np.unique(groups)) == 60  # one group per event of four frames
        folds = grouped_folds(y, groups, 5)
        assert len(folds) == 5
        tested = np.concatenate([test for _train, test in folds])
        assert sorted(tested.tolist()) == list(range(len(ids)))  # every frame tested once
        for train, test in folds:
            assert not set(groups[train]) & set(groups[test])
            assert 0 < y[test].sum() < len(test)  # stratified: both labels in every fold


def test_out_of_fold_scores_learn_nothing_from_a_near_duplicate(tmp_path: Path) -> None:
    """Labels that follow no visual cause: with the event's other frames in training, a
    frame would be 'predicted' from its own copy. Grouped, the ranking's
    out-of-fold AUC stays near chance, as it must."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from triage_app.core.learning.ranker import _model

    p, ids, y = _events(tmp_path / "p")
    with p:
        result = train_ranking(p)
        assert result is not None and result.cv_auc is not None
        assert abs(result.cv_auc - 0.5) < 0.2, result.cv_auc
        # Labels that follow nothing: the ranking is said to be no better than chance, under Problems.
        assert result.cv_auc < 0.6 and result.weak and "no better than chance" in result.describe()
        assert any("no better than chance" in m["message"] and m["level"] == "warning" for m in p.frames.message_rows())
        again = train_ranking(p)  # still weak: said once, not at every retrain
        assert again is not None and again.weak
        assert sum("no better than chance" in m["message"] for m in p.frames.message_rows()) == 1
        _ids, feats, _v = p.embeddings.pooled("imagenet")
    leaky = np.zeros(len(y))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(feats, y):
        leaky[test] = _model().fit(feats[train], y[train]).decision_function(feats[test])
    # What ungrouped folds would have claimed for the same model and labels.
    assert roc_auc_score(y, leaky) > result.cv_auc + 0.2
