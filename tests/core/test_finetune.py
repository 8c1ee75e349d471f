"""Fine-tuning the backbone's last blocks, compared with the head on the same folds."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from triage_app.core.finetune import finetune_comparison
from triage_app.core.ingest import ingest_source
from triage_app.core.members.cards import load_cards
from triage_app.core.pipeline import score_project
from triage_app.core.review import DecisionStore
from triage_app.core.settings import load_settings
from triage_app.core.store import Project


def test_finetuning_learns_and_is_compared_with_the_head(tmp_path: Path, ortho: np.ndarray, shared_data: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Forest crops (accepted) against harbour crops (rejected), real images."""
    harbour = cv2.imread(str(shared_data / "aerial/sahi/boats.jpg"), cv2.IMREAD_COLOR)
    folder = tmp_path / "crops"
    folder.mkdir()
    for i in range(24):
        y, x = 600 + (i // 6) * 160, 600 + (i % 6) * 160
        cv2.imwrite(str(folder / f"forest_{i:02d}.png"), ortho[y : y + 128, x : x + 128])
        hy, hx = (i // 6) * 200, 200 + (i % 6) * 250
        cv2.imwrite(str(folder / f"harbour_{i:02d}.png"), harbour[hy : hy + 128, hx : hx + 128])
    root = tmp_path / "p"
    root.mkdir()
    (root / "settings.toml").write_text('[scoring]\nmembers = ["imagenet"]\ndevice = "cpu"\n')
    settings = load_settings(root)
    with Project(root) as p:
        ingest_source(p, folder, settings)
        score_project(p, settings)
        DecisionStore(p).record([dict(frame_id=f["id"], label="accept" if f["path"].startswith("forest") else "reject",
                                      reviewer="t", seconds_spent=1, policy="p", member_scores="{}")
                                 for f in p.frame_rows() if f["quality_flag"] is None])
        r = finetune_comparison(p, load_cards(settings.models_dir), settings, blocks=1, epochs=3, folds=3)
    print(r)
    assert r.frames == r.positives + r.negatives >= 40 and r.folds == 3 and r.device == "cpu"
    # An easy task: both learn it; the fine-tuned net from 3 epochs on 30 frames per fold.
    assert r.cv_auc_finetuned >= 0.9 and r.cv_auc_head >= 0.9
    assert r.favoured in ("fine-tuned backbone", "head on cached embeddings")
    assert (r.favoured == "fine-tuned backbone") == (r.cv_auc_finetuned > r.cv_auc_head + 0.02)
