"""Does a member's 8-bit model keep the ranking? Two projects over the same frames, one scored
in float and one with ``scoring.precision = "int8"``, read against a truth (a CSV, or a folder
of YOLO or VOC files, as `triage evaluate --truth` reads it):

- each zero-shot member's ROC AUC in both, their difference and its 95 % interval (paired
  bootstrap over the frames);
- the pooled embeddings' agreement (mean cosine, and its 1st percentile);
- the held-out ROC AUC of the ranking active review learns (the product's features and model:
  principal components of the embeddings and the members' scores, a class-balanced logistic
  regression), cross-validated on every frame's truth (5 folds, 3 shuffles), in both.

    python scripts/precision_check.py FLOAT_PROJECT INT8_PROJECT TRUTH
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from triage_app.core.evaluation.replay import truth_by_frame
from triage_app.core.evaluation.truth import read_truth
from triage_app.core.learning import ranker
from triage_app.core.store import Workspace

BOOTSTRAP = 2000


def _read(project: str, truth_path: str) -> dict:
    with Workspace(project, create=False) as ws:
        truth = truth_by_frame(ws, read_truth(truth_path))
        ids, names, mat, _ = ws.scores.score_table()
        backbone = ranker._backbone(ws)
        frame_ids, feats, _ = ws.embeddings.pooled(backbone)
        feats = np.asarray(feats, dtype=np.float32)
        members, member_names = ranker._member_features(ws, frame_ids)
    z = ranker._project(feats, ranker.COMPONENTS)
    return dict(ids=np.asarray(ids), names=names, scores=np.asarray(mat, dtype=float), frame_ids=np.asarray(frame_ids),
                feats=feats, x=np.hstack([z, members]) if members.shape[1] else z, truth=truth)


def _paired_auc(y: np.ndarray, a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float, float, float]:
    """(AUC of a, AUC of b, 2.5 and 97.5 percentiles of b - a over bootstrap resamples)."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(BOOTSTRAP):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(i):
            diffs.append(roc_auc_score(y[i], b[i]) - roc_auc_score(y[i], a[i]))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return roc_auc_score(y, a), roc_auc_score(y, b), float(lo), float(hi)


def _ranking_auc(x: np.ndarray, y: np.ndarray) -> list[float]:
    return [float(roc_auc_score(y, cross_val_predict(ranker._model(), x, y, method="decision_function",
                                                     cv=StratifiedKFold(5, shuffle=True, random_state=k))))
            for k in range(3)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("float_project")
    ap.add_argument("int8_project")
    ap.add_argument("truth")
    args = ap.parse_args()
    f, q = _read(args.float_project, args.truth), _read(args.int8_project, args.truth)
    if not (np.array_equal(f["ids"], q["ids"]) and np.array_equal(f["frame_ids"], q["frame_ids"])):
        print("the two projects do not hold the same frames: ingest the same sources into both")
        return 2
    y = np.array([bool(f["truth"].get(int(i))) for i in f["ids"]])
    ye = np.array([bool(f["truth"].get(int(i))) for i in f["frame_ids"]])
    print(f"{len(y)} frames, {int(y.sum())} positive")
    for j, name in enumerate(f["names"]):
        if name not in q["names"]:
            continue
        a, b = f["scores"][:, j], q["scores"][:, q["names"].index(name)]
        ok = ~(np.isnan(a) | np.isnan(b))
        if 0 < y[ok].sum() < ok.sum():
            auc_a, auc_b, lo, hi = _paired_auc(y[ok], a[ok], b[ok])
            print(f"  {name}: zero-shot ROC AUC {auc_a:.4f} float, {auc_b:.4f} int8, difference {auc_b - auc_a:+.4f} "
                  f"(95 % interval {lo:+.4f} to {hi:+.4f})")
    ea, eb = f["feats"], q["feats"]
    cos = (ea * eb).sum(1) / (np.linalg.norm(ea, axis=1) * np.linalg.norm(eb, axis=1) + 1e-12)
    print(f"  pooled embeddings: mean cosine {cos.mean():.4f}, 1st percentile {np.percentile(cos, 1):.3f}")
    if 5 <= ye.sum() <= len(ye) - 5:
        ra, rb = _ranking_auc(f["x"], ye), _ranking_auc(q["x"], ye)
        print(f"  learnt ranking, cross-validated ROC AUC: {np.mean(ra):.4f} float ({', '.join(f'{v:.4f}' for v in ra)}), "
              f"{np.mean(rb):.4f} int8 ({', '.join(f'{v:.4f}' for v in rb)}), difference {np.mean(rb) - np.mean(ra):+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
