"""How a frame's tiles are pooled for the ranking, on a labelled set as
``../shared/tools/make_triage_set.py`` writes it (``truth.csv`` with ``path,label`` beside
``images/``): each tile's last feature map averaged over its cells, then the mean and the max
over the frame's tiles (before export version 2); the mean of the averages and the max over
tiles of each tile's strongest cells in its last map (version 2); and, the product's, also of
its strongest cells in the two finer maps (version 3).

For each pooling: the held-out ROC AUC of the ranking's model (principal components, a
class-balanced logistic regression; 5 folds, 3 shuffles) and a stripped-down active-learning
order (a random seed of 20 frames, then batches of 25 ranked by a model refitted each time;
3 seeds): the share of frames shown when 90 / 95 / 98 % of the positives had been.

    python scripts/pooling_check.py SET_DIR [--features FILE.npz]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from triage_app.core.learning import ranker
from triage_app.core.model.cards import load_cards
from triage_app.core.model.settings import TilingSettings
from triage_app.core.scoring.members.onnx_build import _imagenet_backbone, _pooled
from triage_app.core.scoring.tiling import frame_tiles


def extract(root: Path) -> dict[str, np.ndarray]:
    """Per frame: mean and max over tiles of the cell-averaged last maps, max over tiles of the
    cell-wise maxima of the last map and of the finer ones; and the truth."""
    import cv2
    import torch

    card = load_cards()["imagenet"]
    _net, feature_maps, _fc = _imagenet_backbone(card)
    mean = torch.tensor(card.mean).view(1, 3, 1, 1)
    inv = 1 / torch.tensor(card.std).view(1, 3, 1, 1)
    tiling = TilingSettings()
    with open(root / "truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    avg_mean, avg_max, cell_max, finer_max, y = [], [], [], [], []
    t0 = time.perf_counter()
    with torch.no_grad():
        for i, r in enumerate(rows):
            image = cv2.imread(str(root / r["path"]))
            _, pixels = frame_tiles(image, [card.input_size], tiling.overlap, 1.0, tiling.whole_frame)
            x = torch.from_numpy(pixels[card.input_size]).permute(0, 3, 1, 2)[:, [2, 1, 0]].float()
            avg, peak = _pooled(feature_maps((x - mean) * inv))  # the member's own outputs, per tile
            channels = avg.shape[1]
            avg_mean.append(avg.mean(0).numpy())
            avg_max.append(avg.amax(0).numpy())
            cell_max.append(peak[:, :channels].amax(0).numpy())
            finer_max.append(peak[:, channels:].amax(0).numpy())
            y.append(r["label"] == "positive")
            if i % 250 == 0:
                print(f"  {i} of {len(rows)} frames, {time.perf_counter() - t0:.0f} s", flush=True)
    return dict(avg_mean=np.array(avg_mean), avg_max=np.array(avg_max), cell_max=np.array(cell_max),
                finer_max=np.array(finer_max), y=np.array(y))


def _components(f: np.ndarray) -> np.ndarray:
    x = (f - f.mean(0)) / (f.std(0) + 1e-6)
    return PCA(ranker.COMPONENTS, random_state=0).fit_transform(x)


def _order_shares(x: np.ndarray, y: np.ndarray, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    n = len(y)
    order = [int(i) for i in rng.choice(n, 20, replace=False)]
    while len(order) < n:
        shown = np.array(order)
        s = ranker._model().fit(x[shown], y[shown]).decision_function(x) if y[shown].sum() >= 2 else rng.random(n)
        s[shown] = -np.inf
        order += [int(i) for i in np.argsort(-s)[:25] if np.isfinite(s[i])]
    found = np.cumsum(y[order]) / y.sum()
    return [float((np.argmax(found >= r) + 1) / n) for r in (0.90, 0.95, 0.98)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("set_dir", type=Path)
    ap.add_argument("--features", type=Path, help="read (or write, the first time) the pooled features here")
    args = ap.parse_args()
    if args.features is not None and args.features.is_file():
        d = dict(np.load(args.features))
    else:
        d = extract(args.set_dir)
        if args.features is not None:
            np.savez(args.features, **d)
    y = d["y"].astype(int)
    print(f"{len(y)} frames, {int(y.sum())} positive")
    poolings = {"mean and max over tiles of the averaged maps (before version 2)": np.hstack([d["avg_mean"], d["avg_max"]]),
                "mean of the averaged maps, max of the last map's cells (version 2)": np.hstack([d["avg_mean"], d["cell_max"]])}
    if "finer_max" in d:
        poolings["and max of the finer maps' cells (the product's, version 3)"] = np.hstack([d["avg_mean"], d["cell_max"],
                                                                                             d["finer_max"]])
    for name, feats in poolings.items():
        x = _components(feats)
        aucs = [roc_auc_score(y, cross_val_predict(ranker._model(), x, y, method="decision_function",
                                                   cv=StratifiedKFold(5, shuffle=True, random_state=k)))
                for k in range(3)]
        shares = np.array([_order_shares(x, y, s) for s in range(3)])
        print(f"  {name}: cross-validated ROC AUC {np.mean(aucs):.4f}; shown at 90 / 95 / 98 %: "
              + " / ".join(f"{100 * v:.1f}" for v in shares.mean(0)) + " % (mean of 3 seeds; "
              + "; ".join("/".join(f"{100 * v:.1f}" for v in r) for r in shares) + ")", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
