"""Held-out check of the members, deployed ones included: the ROC AUC of each member's stored
scores on the frames no one has decided, against a truth (a CSV, or a folder of YOLO or VOC
files, read as `triage evaluate --truth` reads it).

    python scripts/heldout_auc.py PROJECT TRUTH
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

from triage_app.core.evaluation.replay import truth_by_frame
from triage_app.core.evaluation.truth import read_truth
from triage_app.core.store import Workspace


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("project")
    ap.add_argument("truth")
    args = ap.parse_args()
    with Workspace(args.project, create=False) as p:
        truth = truth_by_frame(p, read_truth(args.truth))
        decided = set(p.decisions.labels())
        ids, names, mat, _ = p.scores.score_table()
    keep = np.array([int(f) not in decided and truth.get(int(f)) is not None for f in ids], dtype=bool)
    y = np.array([bool(truth.get(int(f))) for f in ids], dtype=bool)[keep]
    print(f"{int(keep.sum())} undecided frames with a truth, {int(y.sum())} positive")
    if 0 < y.sum() < len(y):
        for j, name in enumerate(names):
            col = mat[keep, j]
            ok = ~np.isnan(col)
            print(f"  {name:>10}: ROC AUC {roc_auc_score(y[ok], col[ok]):.3f} on {int(ok.sum())} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
