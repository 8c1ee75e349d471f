"""Fine-tuning the backbone's last blocks, compared with the head on the same folds."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from triage_app.cli import main
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.learning.finetune import FinetuneCancelled, finetune_comparison, recall_threshold, retire_finetuned
from triage_app.core.model.cards import load_card, load_cards
from triage_app.core.model.settings import Settings, load_settings
from triage_app.core.scoring.pipeline import build_ensemble, default_members, score_project
from triage_app.core.store import Workspace


def _forest_vs_harbour(tmp_path: Path, ortho: np.ndarray, shared_data: Path) -> tuple[Path, Settings]:
    """A scored project of forest crops (accepted) and harbour crops (rejected), real images."""
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
    # Crops of 128 px shrunk as 1080p frames are (the head's AUC on them unshrunk is about 0.83).
    (root / "settings.toml").write_text('[scoring]\nmembers = ["imagenet"]\ndevice = "cpu"\n[tiling]\nkeep_long_side = 64\n')
    settings = load_settings(root)
    with Workspace(root) as p:
        ingest_source(p, folder)
        score_project(p)
        p.decisions.record([dict(frame_id=f["id"], label="accept" if f["path"].startswith("forest") else "reject",
                                      reviewer="t", seconds_spent=1, policy="p", member_scores="{}")
                                 for f in p.frames.frame_rows() if f["quality_flag"] is None])
    return root, settings


def test_finetuning_learns_and_is_compared_with_the_head(tmp_path: Path, ortho: np.ndarray, shared_data: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    root, settings = _forest_vs_harbour(tmp_path, ortho, shared_data)
    with Workspace(root) as p:
        r = finetune_comparison(p, blocks=1, epochs=3, folds=3)
    print(r)
    assert r.frames == r.positives + r.negatives >= 40 and r.folds == 3 and r.device == "cpu"
    # An easy task: both learn it; the fine-tuned net from 3 epochs on 30 frames per fold.
    assert r.cv_auc_finetuned >= 0.9 and r.cv_auc_head >= 0.9
    assert r.favoured in ("fine-tuned backbone", "head on cached embeddings")
    assert (r.favoured == "fine-tuned backbone") == (r.cv_auc_finetuned > r.cv_auc_head + 0.02)
    assert not r.deployed and not (root / "models").exists()  # comparing alone deploys nothing


def test_deployed_finetuned_member_scores_every_frame_and_can_be_retired(tmp_path: Path, ortho: np.ndarray,
                                                                        shared_data: Path) -> None:
    root, settings = _forest_vs_harbour(tmp_path, ortho, shared_data)
    with Workspace(root) as p:
        store = p.scores
        ids_before, names_before, _, _ = store.score_table()
        assert names_before == ["imagenet"]
        r = finetune_comparison(p, blocks=1, epochs=3, folds=3,
                                deploy="always")
        # The member and its weights live in the project; its card loads and joins the ensemble.
        card_path = Path(r.deployed)
        assert card_path == root / "models" / "finetuned.toml"
        card = load_card(card_path)
        assert card.kind == "finetuned" and card.threshold == r.threshold and 0.01 <= r.threshold <= 0.99
        assert (root / "models" / card.weights).is_file()
        assert "finetuned" in load_cards(settings.models_dir, root)
        assert default_members(p) == ["imagenet", "finetuned"]
        # Every scored frame now has its score, and it separates the two classes.
        ids, names, mat, _ = store.score_table()
        assert names == ["finetuned", "imagenet"] and list(ids) == list(ids_before)
        assert r.rescored == len(ids) and not np.isnan(mat).any()
        labels = {f["id"]: f["path"].startswith("forest") for f in p.frames.frame_rows()}
        y = np.array([labels[int(f)] for f in ids])
        assert roc_auc_score(y, mat[:, 0]) >= 0.95
        # Its threshold keeps the recall target on the out-of-fold scores, so under it the
        # member itself passes nearly all accepted frames (it was trained on them).
        assert r.target_recall == 0.95 and (mat[y, 0] >= r.threshold).mean() >= 0.9
        # The ONNX export was checked against PyTorch.
        metas = [json.loads(m.read_text()) for m in (settings.cache_dir / "onnx").glob("finetuned-*.json")]
        assert metas and all(m["max_abs_diff"] < 1e-3 for m in metas)
        # A normal scoring run finds nothing left to score with it (never a frame twice).
        again = score_project(p)
        assert "finetuned" in again.members and again.frames_pending == 0
        # Broken weights: the member is left out with a message naming the file; the rest carries on.
        (root / "models" / card.weights).write_bytes(b"not a state dict")
        ens = build_ensemble(p)
        assert ens.names == ["imagenet"] and card.weights in ens.unavailable["finetuned"]
        # Retired: out of the ensemble and of the score table, files kept aside.
        assert retire_finetuned(p)
        assert not card_path.exists() and list((root / "models" / "retired").glob("finetuned*.toml"))
        assert default_members(p) == ["imagenet"]
        assert store.score_table()[1] == ["imagenet"]
        assert not retire_finetuned(p)


def test_cli_finetune_reports_and_deploys_only_when_favoured(tmp_path: Path, ortho: np.ndarray, shared_data: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    root, settings = _forest_vs_harbour(tmp_path, ortho, shared_data)
    # Stopped part-way through (the window's Cancel): nothing is deployed.
    stop = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int | None) -> None:
        seen.append(done)
        if done > 48:  # past reading the 48 frames: the first epoch of the first fold
            stop.set()

    with Workspace(root) as p, pytest.raises(FinetuneCancelled, match="nothing was deployed"):
        finetune_comparison(p, blocks=0, epochs=50, folds=2,
                            deploy="always", progress=progress, cancel=stop)
    assert max(seen) < 60 and not (root / "models").exists()  # stopped in the first fold
    assert main(["finetune", str(root), "--blocks", "0", "--epochs", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    favoured = out["favoured"] == "fine-tuned backbone"
    assert bool(out["deployed"]) == favoured == (root / "models" / "finetuned.toml").is_file()
    assert main(["finetune", str(root), "--retire"]) == 0
    assert ("retired" if favoured else "no fine-tuned member") in capsys.readouterr().out


def test_recall_threshold_keeps_the_target_share_of_positives() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(400)
    positive = rng.random(400) < 0.3
    for target in (0.8, 0.95, 1.0):
        t = recall_threshold(scores, positive, target)
        assert (scores[positive] >= t).mean() >= target
        # and no higher threshold would do: the next positive score up loses the target
        above = np.sort(scores[positive])[np.sort(scores[positive]) > t]
        if len(above) and t < 0.99:
            assert (scores[positive] >= above[0]).mean() < target
