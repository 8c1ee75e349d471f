"""Evidence on real features: EfficientNet-Lite0 embeddings of tree crowns and bare ground
cut from the DeepForest images in ../shared/data (boxes drawn by people)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from triage_app.core.learning.label_check import label_issues, out_of_fold_probabilities
from triage_app.core.model.cards import load_cards
from triage_app.core.scoring.members.onnx_build import export_member
from triage_app.core.scoring.members.runtime import OnnxSession

AUC_BAR = 0.90          # the head must separate crowns from ground at least this well
FLIP_SHARE = 0.10       # labels flipped on purpose
FOUND_BAR = 0.60        # share of the flipped labels the check must put in the re-review queue


def _boxes(xml: Path) -> np.ndarray:
    root = ET.parse(xml).getroot()
    return np.array([[int(float(b.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax")] for b in root.iter("bndbox")])


def _patches(shared: Path, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    trees, ground = [], []
    for xml in sorted((shared / "aerial" / "deepforest").glob("*.xml")):
        img = cv2.imread(str(xml.with_suffix(".png")))
        if img is None:
            continue
        h, w = img.shape[:2]
        boxes = _boxes(xml)
        side = int(np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])) * 1.3)
        for x0, y0, x1, y1 in boxes:
            cx, cy, s = (x0 + x1) // 2, (y0 + y1) // 2, int(max(x1 - x0, y1 - y0) * 1.3)
            a, b = max(0, cx - s // 2), max(0, cy - s // 2)
            crop = img[b : b + s, a : a + s]
            if crop.shape[0] > 8 and crop.shape[1] > 8:
                trees.append(cv2.resize(crop, (224, 224), interpolation=cv2.INTER_AREA))
        covered = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in boxes:
            covered[y0:y1, x0:x1] = True
        for _ in range(4000):  # windows that touch no crown (under 5 % of their area)
            a, b = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
            if covered[b : b + side, a : a + side].mean() < 0.05:
                ground.append(cv2.resize(img[b : b + side, a : a + side], (224, 224), interpolation=cv2.INTER_AREA))
    trees_a, ground_a = np.array(trees), np.array(ground)
    take_t = rng.choice(len(trees_a), min(per_class, len(trees_a)), replace=False)
    take_g = rng.choice(len(ground_a), min(per_class, len(ground_a)), replace=False)
    x = np.concatenate([trees_a[take_t], ground_a[take_g]])
    y = np.concatenate([np.ones(len(take_t), int), np.zeros(len(take_g), int)])
    return x, y


@pytest.fixture(scope="module")
def crown_features(shared_data: Path, model_cache: Path) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    pixels, y = _patches(shared_data, 250, rng)
    exported = export_member(load_cards()["imagenet"], model_cache)
    _, emb, _peak = OnnxSession(exported.path, 224, "cpu", batch=32).run(pixels)
    assert len(y) >= 300 and 0.3 < y.mean() < 0.7, (len(y), y.mean())
    return emb, y


def test_head_learns_tree_crowns_from_real_embeddings(crown_features: tuple[np.ndarray, np.ndarray]) -> None:
    from sklearn.metrics import roc_auc_score

    x, y = crown_features
    auc = roc_auc_score(y, out_of_fold_probabilities(x, y)[:, 1])
    print(f"\ntree crowns vs ground: {len(y)} patches, cross-validated ROC AUC {auc:.3f} (bar {AUC_BAR})")
    assert auc >= AUC_BAR


def test_flipped_labels_are_found(crown_features: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = crown_features
    rng = np.random.default_rng(1)
    flipped = rng.choice(len(y), int(FLIP_SHARE * len(y)), replace=False)
    noisy = y.copy()
    noisy[flipped] = 1 - noisy[flipped]
    flagged = label_issues(noisy, out_of_fold_probabilities(x, noisy))
    found = np.isin(flipped, flagged).mean()
    precision = np.isin(flagged, flipped).mean() if len(flagged) else 0.0
    print(f"\n{len(flipped)} labels flipped of {len(y)}: {found:.0%} found (bar {FOUND_BAR:.0%}); "
          f"{len(flagged)} flagged, {precision:.0%} of them truly flipped")
    assert found >= FOUND_BAR
    assert precision >= 0.5  # the re-review queue is not flooded with good labels
    # Most doubtful first: the top of the ranking is mostly true flips.
    top = flagged[: max(1, len(flipped) // 2)]
    assert np.isin(top, flipped).mean() >= 0.7


def test_label_check_runs_in_its_own_process(monkeypatch) -> None:
    """The window runs the check on a worker thread: a pool of forked processes started from
    there can hang for ever on a lock another thread held at the fork, so the check must not
    start one, however many cores the machine has."""
    import multiprocessing

    def no_pool(*_a, **_k):
        raise AssertionError("the label check started a process pool")

    monkeypatch.setattr(multiprocessing, "Pool", no_pool)
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)  # large enough that cleanlab would use its pool by default
    probs = np.clip(np.where(y[:, None] == np.arange(2), 0.9, 0.1) + rng.normal(0, 0.05, (400, 2)), 0.01, 0.99)
    y[:5] = 1 - y[:5]  # five labels the probabilities disagree with
    probs = probs / probs.sum(1, keepdims=True)
    flagged = label_issues(y, probs).tolist()
    assert flagged and set(flagged[:3]) <= set(range(5))  # the most doubtful are labels that were flipped
