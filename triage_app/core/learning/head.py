"""The learning loop: train the ``head`` member on the analysts' decisions and re-score
every frame from the cached pooled embeddings, without running any backbone again.

Accepted frames are positives, rejected ones negatives, unsure ones are left out. The head
is a class-balanced logistic regression (scikit-learn) on standardised pooled features
(the mean over the frame's tiles of their embeddings, the max over them of each
tile's strongest cells, in its last feature map and in two finer ones), or on the whole-frame tile's embedding when
that cross-validates clearly better on the same folds; its cross-validated ROC AUC is stored
with each version.

Context (capture order, altitude, gimbal pitch, the neighbouring frames' scores) is compared,
not used: each retrain reports the cross-validated AUC on the same folds with and without it,
so a user sees whether it helps. The stored head reads the embeddings alone, because the live
pipeline scores a frame before its next neighbour exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from triage_app.core.learning.folds import fold_groups, grouped_folds
from triage_app.core.model.errors import TriageError
from triage_app.core.model.records import Frame
from triage_app.core.scoring.members.ensemble import HeadModel
from triage_app.core.store import Workspace


@dataclass
class RetrainResult:
    head_id: int
    positives: int
    negatives: int
    cv_auc: float | None
    cv_folds: int
    rescored: int
    seconds: float
    rescore_seconds: float
    cv_auc_context: float | None = None  # the same folds with the context features added
    context_features: tuple[str, ...] = ()
    cv_auc_whole_frame: float | None = None  # the whole-frame embedding alone instead of pooled tiles
    features_used: str = "pooled"  # what the stored head reads: "pooled" or "whole_frame"


#: How much higher the whole-frame embedding's cross-validated AUC must be before the head
#: reads it instead of the pooled tiles (pooled tiles keep small objects; a tie keeps them).
WHOLE_FRAME_MARGIN = 0.02


CONTEXT_FEATURES = ("capture_order", "rel_alt", "alt_missing", "gimbal_pitch", "pitch_missing",
                    "prev_score", "next_score")


def context_features(ws: Workspace, frame_ids: np.ndarray) -> np.ndarray:
    """Per frame: capture order within its source (0..1), relative altitude and gimbal pitch
    (missing values take the source's median, with a flag), and the highest backbone-member
    score of the previous and of the next frame of the same source. Columns follow
    ``CONTEXT_FEATURES``."""
    rows = ws.frames.frame_rows()
    ids, names, mat, _ = ws.scores.score_table()
    backbone_cols = [j for j, n in enumerate(names) if n != "head"]
    best = {int(f): float(np.nanmax(mat[i, backbone_cols])) if backbone_cols and not np.all(np.isnan(mat[i, backbone_cols]))
            else 0.0 for i, f in enumerate(ids.tolist())}
    by_source: dict[int, list[Frame]] = {}
    for r in rows:
        by_source.setdefault(int(r["source_id"]), []).append(r)
    ctx: dict[int, list[float]] = {}
    for frames in by_source.values():
        n = len(frames)
        cols = {}
        for key, column in (("rel_alt", [f.get("rel_alt") for f in frames]), ("gimbal_pitch", [f.get("gimbal_pitch") for f in frames])):
            vals = np.array([np.nan if v is None else float(v) for v in column])
            med = float(np.nanmedian(vals)) if not np.all(np.isnan(vals)) else 0.0
            cols[key] = (np.where(np.isnan(vals), med, vals), np.isnan(vals).astype(float))
        for k, f in enumerate(frames):
            prev_s = best.get(int(frames[k - 1]["id"]), 0.0) if k > 0 else 0.0
            next_s = best.get(int(frames[k + 1]["id"]), 0.0) if k + 1 < n else 0.0
            ctx[int(f["id"])] = [k / max(n - 1, 1), cols["rel_alt"][0][k], cols["rel_alt"][1][k],
                                 cols["gimbal_pitch"][0][k], cols["gimbal_pitch"][1][k], prev_s, next_s]
    zero = [0.0] * len(CONTEXT_FEATURES)
    return np.array([ctx.get(int(f), zero) for f in frame_ids.tolist()], dtype=np.float32).reshape(-1, len(CONTEXT_FEATURES))


def rescore_head(ws: Workspace, model: HeadModel, frame_ids: np.ndarray, features: np.ndarray) -> int:
    """Score every frame with the head from its pooled features; one transaction."""
    version = ws.scores.model_version("head", "head", f"head-{model.id}")
    scores = model.score(features)
    ws.scores.replace_member_scores("head", version, frame_ids.tolist(), scores.astype(np.float64).tolist())
    return len(scores)


def _cross_validated(make: Callable[[], Any], x: np.ndarray, y: np.ndarray,
                     cv: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, float]:
    """(out-of-fold probabilities, ROC AUC of them all) of a fresh model per fold. One AUC
    over the pooled out-of-fold scores: with folds that keep events whole, a fold may hold
    frames of one kind only, where an AUC of its own says nothing."""
    from sklearn.metrics import roc_auc_score

    oof = np.zeros(len(y))
    for train, test in cv:
        oof[test] = make().fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    return oof, float(roc_auc_score(y, oof))


def retrain(ws: Workspace) -> RetrainResult:
    """Train a new head version from the decisions and re-score every frame with it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    card = ws.cards.get("head")
    if card is None:
        raise TriageError("no model card named 'head' in the models folder")
    frame_ids, feats, backbone_version = ws.embeddings.pooled(card.backbone)
    labels = ws.decisions.labels()
    row_of = {int(f): i for i, f in enumerate(frame_ids.tolist())}
    rows = [row_of[f] for f in labels if f in row_of]
    y = np.array([labels[int(frame_ids[r])] for r in rows])
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos < 2 or neg < 2:
        raise TriageError(f"{ws.root}: the head needs at least 2 accepted and 2 rejected frames "
                          f"with cached embeddings (has {pos} and {neg})")
    x = np.asarray(feats[rows], dtype=np.float32)

    def make() -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))

    labelled = frame_ids[rows]
    # Folds keep each event (near duplicates) on one side, so no fold is judged on a frame's
    # neighbour of a fraction of a second after learning from the frame.
    cv = grouped_folds(y, fold_groups(ws, labelled), 5, seed=0)
    if len(cv) < 2:
        raise TriageError(f"{ws.root}: the head needs decided frames from at least 2 events of each kind "
                          f"(has {pos} accepted and {neg} rejected frames)")
    folds = len(cv)
    # Out-of-fold probabilities (each decided frame scored by a head that did not see its
    # label) give both the fold AUCs and the scores recall estimates read for decided frames.
    oof, cv_auc = _cross_validated(make, x, y, cv)
    cv_auc_context = _cross_validated(make, np.hstack([x, context_features(ws, labelled)]), y, cv)[1]
    cv_auc_whole = oof_whole = None
    if ws.settings.tiling.whole_frame:
        whole = ws.embeddings.whole_frame(card.backbone, labelled)
        if whole is not None:
            oof_whole, cv_auc_whole = _cross_validated(make, whole, y, cv)
    # Keep what the evidence favours: the whole-frame embedding replaces the pooled tiles only
    # when it cross-validates clearly better on these labels (and every frame has one).
    used, all_feats = "pooled", feats
    if cv_auc_whole is not None and cv_auc_whole > cv_auc + WHOLE_FRAME_MARGIN:
        whole_all = ws.embeddings.whole_frame(card.backbone, frame_ids)
        if whole_all is not None and oof_whole is not None:
            used, all_feats, x, oof = "whole_frame", whole_all, whole_all[rows], oof_whole
    model = make().fit(x, y)
    scaler, clf = model.steps[0][1], model.steps[1][1]
    ws.scores.replace_oof("head", labelled.tolist(), oof.tolist())
    described = {"pooled": "mean+max of tile embeddings", "whole_frame": "whole-frame embedding"}[used]
    head_id = ws.heads.save(card.backbone, backbone_version, clf.coef_[0], float(clf.intercept_[0]),
                              mean=scaler.mean_, scale=scaler.scale_,
                              metrics={"cv_auc": cv_auc, "folds": folds, "features": described, "features_used": used,
                                       "cv_auc_with_context": cv_auc_context, "context_features": list(CONTEXT_FEATURES),
                                       "cv_auc_whole_frame_only": cv_auc_whole},
                              n_pos=pos, n_neg=neg)
    head = HeadModel(head_id, card.backbone, clf.coef_[0].astype(np.float32), float(clf.intercept_[0]),
                     scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32), features=used)
    t1 = time.perf_counter()
    n = rescore_head(ws, head, frame_ids, all_feats)
    t2 = time.perf_counter()
    return RetrainResult(head_id, pos, neg, cv_auc, folds, n, t2 - t0, t2 - t1, cv_auc_context, CONTEXT_FEATURES, cv_auc_whole,
                         used)
