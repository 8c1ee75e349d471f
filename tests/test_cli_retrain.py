from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from triage_app.cli import main
from triage_app.core.ingest import ingest_source
from triage_app.core.pipeline import score_project
from triage_app.core.review import DecisionStore
from triage_app.core.settings import load_settings
from triage_app.core.sources import Sampling
from triage_app.core.store import Project
from tests.conftest import write_flight


def test_retrain_needs_labels_then_trains_and_rescores(tmp_path: Path, ortho: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    video = write_flight(tmp_path / "f.mp4", ortho, frames=24, size=(480, 270))
    root = tmp_path / "p"
    root.mkdir()
    (root / "settings.toml").write_text('[scoring]\nmembers = ["imagenet", "head"]\ndevice = "cpu"\n')
    with Project(root) as p:
        settings = load_settings(root)
        ingest_source(p, video, settings, sampling=Sampling(every=2))
        score_project(p, settings)
    assert main(["retrain", str(root)]) == 2
    assert "needs at least 2 accepted and 2 rejected" in capsys.readouterr().err
    with Project(root) as p:
        DecisionStore(p).record([dict(frame_id=r["id"], label="accept" if r["idx"] < 12 else "reject", reviewer="t",
                                      seconds_spent=1.0, policy="p", member_scores="{}") for r in p.frame_rows()])
    assert main(["retrain", str(root)]) == 0
    out = capsys.readouterr().out
    assert "trained on 6 accepted and 6 rejected frames" in out and "re-scored 12 frames" in out
    with Project(root) as p:
        from triage_app.core.store.scoring import ScoreStore

        head = ScoreStore(p).latest_head()
        assert head["n_pos"] == 6 and head["metrics"]["cv_auc"] is not None
