"""The ranking of active review: how likely each frame is to hold the target, learnt from the
decisions so far (continuous active learning).

Features: the backbone's pooled tile features (the mean over the frame's tiles of their
embeddings, the max over them of each tile's strongest cells, in its last feature map
and in two finer ones),
standardised and projected on their first principal components (fitted on every frame, no
label needed), the zero-shot members' scores for the project's target, how like the frame is
to the nearest accepted and to the nearest rejected frames (cosine similarity on those
components: a target that looks unlike the rest only in a few frames is found by its
neighbours, where a linear model would need many labels) where grouped cross-validation
says they help, and, where it says they help by a clear margin, the frame's context in its flight
(capture order, height, gimbal pitch, the neighbouring frames' scores). The model is a
class-balanced, strongly regularised logistic regression: it is refitted every few dozen
decisions from the cache in a fraction of a second.

Cross-validation keeps each event (the frames of one source within a few seconds, near
duplicates) on one side of every fold. Each decided frame's out-of-fold score (from a fit
that did not see its label, nor its near duplicates') is stored with the ranking: the
stopping estimate calibrates the ranking's scores with them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from triage_app.core.learning.folds import fold_groups, grouped_folds
from triage_app.core.learning.head import CONTEXT_FEATURES, context_features
from triage_app.core.model.errors import TriageError
from triage_app.core.store import Workspace

#: Principal components of the pooled embeddings the ranking reads.
COMPONENTS = 128
#: Inverse strength of the L2 penalty: strong, since labels are few and dimensions many.
C = 0.01
#: How much higher the context features' grouped cross-validated AUC must be before the
#: ranking uses them.
CONTEXT_MARGIN = 0.02
FOLDS = 5
PCA_SAMPLE = 10_000
#: Decided frames of each kind (accepted, rejected) the similarity features average over.
NEIGHBOURS = 3
#: How much higher the similarity features' grouped cross-validated AUC must be before the
#: ranking uses them (embeddings that hold nothing of the target make them noise).
SIMILARITY_MARGIN = 0.0
#: A ranking whose cross-validated AUC is under this is said to be no better than chance.
WEAK_AUC = 0.6


@dataclass
class RankingResult:
    ranking_id: int
    positives: int
    negatives: int
    frames: int
    cv_auc: float | None
    cv_auc_context: float | None
    uses_context: bool
    features: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def weak(self) -> bool:
        """Cross-validated no better than chance (with labels enough to say so)."""
        return self.cv_auc is not None and self.cv_auc < WEAK_AUC and min(self.positives, self.negatives) >= 5

    def describe(self) -> str:
        auc = "n/a" if self.cv_auc is None else f"{self.cv_auc:.3f}"
        ctx = "" if self.cv_auc_context is None else f"; with context {self.cv_auc_context:.3f}"
        text = (f"ranking {self.ranking_id} from {self.positives} accepted and {self.negatives} rejected frames "
                f"(event-grouped cross-validated AUC {auc}{ctx}; reads {', '.join(self.features)})")
        if self.weak:
            text += (f". Warning: no better than chance (AUC under {WEAK_AUC}): the ranking cannot yet tell the target "
                     "from the rest; review goes on, but check the target (`triage target`) and the decisions")
        return text


def _backbone(ws: Workspace) -> str:
    head = ws.cards.get("head")
    if head is not None and head.backbone:
        return head.backbone
    for name, card in ws.cards.items():
        if card.kind == "imagenet":
            return name
    raise TriageError("no backbone member gives embeddings to rank by (a card of kind 'imagenet' is needed)")


def _project(feats: np.ndarray, components: int, seed: int = 0, chunk: int = 8192) -> np.ndarray:
    """Standardised features on their first principal components (fitted on a sample of at
    most ``PCA_SAMPLE`` frames), read from the memory-mapped cache in chunks."""
    from sklearn.decomposition import PCA

    n, d = feats.shape
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, PCA_SAMPLE, replace=False)) if n > PCA_SAMPLE else np.arange(n)
    xs = np.asarray(feats[sample], dtype=np.float32)
    mu, sd = xs.mean(axis=0), xs.std(axis=0) + 1e-6
    k = int(min(components, d, max(1, len(sample) - 1)))
    pca = PCA(k, random_state=seed, svd_solver="randomized" if k < min(len(sample), d) else "full").fit((xs - mu) / sd)
    out = np.empty((n, k), dtype=np.float32)
    for i in range(0, n, chunk):
        block = (np.asarray(feats[i : i + chunk], dtype=np.float32) - mu) / sd
        out[i : i + chunk] = pca.transform(block)
    return out


def _member_features(ws: Workspace, frame_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The zero-shot members' scores (logit; a missing score takes the member's median and a
    flag). Learnt members (head, fine-tuned) are left out: they are trained on the same
    decisions and would echo them."""
    ids, names, mat, _ = ws.scores.score_table()
    keep = [j for j, n in enumerate(names) if ws.cards.get(n) is not None and ws.cards[n].kind in ("imagenet", "clip")]
    if not keep:
        return np.zeros((len(frame_ids), 0), np.float32), []
    row = {int(f): i for i, f in enumerate(ids.tolist())}
    idx = np.array([row.get(int(f), -1) for f in frame_ids.tolist()])
    cols, used = [], []
    for j in keep:
        v = np.where(idx >= 0, mat[np.maximum(idx, 0), j], np.nan)
        missing = np.isnan(v)
        if missing.all():
            continue
        v = np.clip(np.where(missing, np.nanmedian(v), v), 1e-6, 1 - 1e-6)
        cols.append(np.log(v / (1 - v)))
        used.append(names[j])
        if missing.any():
            cols.append(missing.astype(float))
    if not cols:
        return np.zeros((len(frame_ids), 0), np.float32), []
    return np.stack(cols, axis=1).astype(np.float32), used


def similarity_features(zn: np.ndarray, ref_rows: np.ndarray, ref_y: np.ndarray, query_rows: np.ndarray,
                        k: int = NEIGHBOURS, chunk: int = 4096) -> np.ndarray:
    """Per query frame (rows of the unit-length features ``zn``): the mean cosine similarity
    to its ``k`` most similar accepted frames and to its ``k`` most similar rejected frames
    among ``ref_rows`` (labels ``ref_y``). A frame never counts as its own neighbour, so a
    decided frame's features read as an undecided frame's would (leave one out); with no
    neighbour of a kind the similarity is 0."""
    out = np.zeros((len(query_rows), 2), np.float32)
    for col, rows in enumerate((ref_rows[ref_y == 1], ref_rows[ref_y == 0])):
        if len(rows) == 0:
            continue
        ref = zn[rows]
        kk = min(k, len(rows))
        for i in range(0, len(query_rows), chunk):
            q = query_rows[i : i + chunk]
            sim = zn[q] @ ref.T
            sim[q[:, None] == rows[None, :]] = -np.inf  # not its own neighbour
            top = np.partition(sim, sim.shape[1] - kk, axis=1)[:, -kk:]
            finite = np.isfinite(top)
            out[i : i + len(q), col] = np.where(finite, top, 0.0).sum(1) / np.maximum(finite.sum(1), 1)
    return out


def _model() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", C=C, max_iter=2000))


def _fold_similarity(zn: np.ndarray, rows: np.ndarray, y: np.ndarray,
                     folds: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per fold, the (training, test) frames' similarity features from its training frames'
    labels alone: computed once, read by every feature set the folds compare."""
    out = []
    for train, test in folds:
        tr, te = rows[train], rows[test]
        out.append((similarity_features(zn, tr, y[train], tr), similarity_features(zn, tr, y[train], te)))
    return out


def _grouped_oof(x: np.ndarray, rows: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                 similarity: list[tuple[np.ndarray, np.ndarray]] | None = None) -> tuple[np.ndarray, float | None]:
    """(out-of-fold decision values, pooled ROC AUC) of the decided frames ``rows`` over
    ``folds`` (each event on one side); ``x`` holds every frame's fixed features, and
    ``similarity`` each fold's similarity features (from :func:`_fold_similarity`) to add."""
    from sklearn.metrics import roc_auc_score

    oof = np.full(len(y), np.nan)
    for k, (train, test) in enumerate(folds):
        x_tr, x_te = x[rows[train]], x[rows[test]]
        if similarity is not None:
            x_tr, x_te = np.hstack([x_tr, similarity[k][0]]), np.hstack([x_te, similarity[k][1]])
        oof[test] = _model().fit(x_tr, y[train]).decision_function(x_te)
    ok = ~np.isnan(oof)
    if ok.sum() < 4 or len(np.unique(y[ok])) < 2:
        return oof, None
    return oof, float(roc_auc_score(y[ok], oof[ok]))


def train_ranking(ws: Workspace) -> RankingResult | None:
    """Learn the ranking from the standing decisions and store it with every frame's rank
    score; None while there are fewer than 2 accepted or 2 rejected frames (the zero-shot
    members' order stands until then)."""
    t0 = time.perf_counter()
    labels = ws.decisions.labels()
    last_decision = ws.decisions.last_id()  # read after the labels: none it names is missing from them
    frame_ids, feats, _version = ws.embeddings.pooled(_backbone(ws))
    if len(frame_ids) == 0:
        return None
    row_of = {int(f): i for i, f in enumerate(frame_ids.tolist())}
    rows = np.array([row_of[f] for f in labels if f in row_of], dtype=np.int64)
    y = np.array([labels[int(frame_ids[r])] for r in rows], dtype=int)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos < 2 or neg < 2:
        return None
    z = _project(feats, COMPONENTS)
    members, member_names = _member_features(ws, frame_ids)
    base = np.hstack([z, members]) if members.shape[1] else z
    zn = z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-9)
    folds = grouped_folds(y, fold_groups(ws, frame_ids[rows]), FOLDS, 0)
    similarity = _fold_similarity(zn, rows, y, folds)
    oof, cv_auc = _grouped_oof(base, rows, y, folds)
    oof_sim, cv_auc_sim = _grouped_oof(base, rows, y, folds, similarity)
    uses_similarity = cv_auc is not None and cv_auc_sim is not None and cv_auc_sim > cv_auc + SIMILARITY_MARGIN
    if uses_similarity:
        oof, cv_auc = oof_sim, cv_auc_sim
    ctx = context_features(ws, frame_ids)
    with_ctx = np.hstack([base, ctx])
    oof_ctx, cv_auc_ctx = _grouped_oof(with_ctx, rows, y, folds, similarity if uses_similarity else None)
    uses_context = cv_auc is not None and cv_auc_ctx is not None and cv_auc_ctx > cv_auc + CONTEXT_MARGIN
    x_all = with_ctx if uses_context else base
    if uses_similarity:
        x_all = np.hstack([x_all, similarity_features(zn, rows, y, np.arange(len(frame_ids)))])
    if uses_context:
        oof = oof_ctx
    model = _model().fit(x_all[rows], y)
    scores = model.decision_function(x_all)
    features = [f"{z.shape[1]} principal components of the {_backbone(ws)} embeddings"] + [
        f"{n} score" for n in member_names] + (list(CONTEXT_FEATURES) if uses_context else []) + (
        [f"similarity to the {NEIGHBOURS} nearest accepted and rejected frames"] if uses_similarity else [])
    oof_by_frame = {int(frame_ids[r]): float(o) for r, o in zip(rows, oof, strict=True) if not np.isnan(o)}
    metrics = dict(cv_auc=cv_auc, cv_auc_context=cv_auc_ctx, uses_context=uses_context, features=features,
                   cv_auc_similarity=cv_auc_sim, uses_similarity=uses_similarity,
                   components=int(z.shape[1]), C=C, folds="grouped by event",
                   weak=bool(cv_auc is not None and cv_auc < WEAK_AUC and min(pos, neg) >= 5))
    before = ws.rankings.latest()
    was_weak = bool(before and (before.get("metrics") or {}).get("weak"))
    rid = ws.rankings.save(frame_ids.tolist(), scores.tolist(), oof_by_frame, len(labels), pos, neg, metrics,
                           last_decision, guard=ws.settings.review.stop_guard)
    result = RankingResult(rid, pos, neg, len(frame_ids), cv_auc, cv_auc_ctx, uses_context, features,
                           time.perf_counter() - t0)
    if result.weak and not was_weak:  # under Problems (once, until a ranking does better)
        ws.frames.add_message("warning", result.describe())
    return result
