from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.core.review.test_queue import make_scored_project
from triage_app.cli import main
from triage_app.core.model.settings import load_settings
from triage_app.core.review.session import ReviewSession
from triage_app.core.store import Workspace

KEYS = {"frames", "candidates", "reviewed", "accepted", "audit_sampled", "audit_positives", "recall_estimate",
        "recall_ci_low", "recall_ci_high", "workload_fraction", "policy"}


def test_policy_preview_save_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(3)
    truth = rng.random(400) < 0.1
    scores = np.clip(np.where(truth, rng.normal(0.7, 0.15, 400), rng.normal(0.2, 0.15, 400)), 0, 1).tolist()
    root = tmp_path / "p"
    with make_scored_project(root, scores) as p:
        (root / "settings.toml").write_text('[review]\nreviewer = "sam"\naudit_share = 0.3\norder = "time"\n')
        p.settings = load_settings(root)
        s = ReviewSession(p)
        frame_idx = {r["id"]: r["idx"] for r in p.frames.frame_rows()}
        while s.current is not None:  # an oracle analyst reviews every candidate
            s.decide("accept" if truth[frame_idx[s.current.frame_id]] else "reject")
    assert main(["policy", str(root), "--target-recall", "0.9", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "people review" in out and "estimated recall" in out and "dry run: nothing saved" in out
    assert main(["policy", str(root), "--target-recall", "0.9", "--rule", "any"]) == 0
    out = capsys.readouterr().out
    assert "saved as policy 1" in out and "sampled for the blind audit" in out
    assert main(["report", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert KEYS <= data.keys() and data["policy"]["id"] == 1 and data["frames"] == 400
    assert 0 < data["workload_fraction"] <= 1
    # The analysts' queue now holds the blind audit samples too; review them by oracle.
    with Workspace(root) as p:
        p.settings = load_settings(root)
        s = ReviewSession(p)
        kinds = {c.kind for c in s.queue.items}
        assert "audit" in kinds
        frame_idx = {r["id"]: r["idx"] for r in p.frames.frame_rows()}
        while s.current is not None:
            s.decide("accept" if truth[frame_idx[s.current.frame_id]] else "reject")
    assert main(["report", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["audit_sampled"] > 0 and data["reviewed"] == data["candidates"]
    assert data["recall_ci_low"] <= data["recall_estimate"] <= data["recall_ci_high"]
    assert main(["report", str(root)]) == 0
    assert "measured recall" in capsys.readouterr().out


def test_policy_assurance_trades_work_for_certainty_and_is_stored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import re


    rng = np.random.default_rng(4)
    truth = rng.random(400) < 0.15
    scores = np.clip(np.where(truth, rng.normal(0.7, 0.15, 400), rng.normal(0.2, 0.15, 400)), 0, 1).tolist()
    root = tmp_path / "p"
    with make_scored_project(root, scores):
        (root / "settings.toml").write_text('[review]\naudit_share = 0.3\norder = "time"\n')
    assert main(["policy", str(root), "--target-recall", "0.9"]) == 0  # a first policy starts the blind audit
    with Workspace(root) as p:
        p.settings = load_settings(root)
        s = ReviewSession(p)
        frame_idx = {r["id"]: r["idx"] for r in p.frames.frame_rows()}
        while s.current is not None:  # candidates and audit samples, by oracle
            s.decide("accept" if truth[frame_idx[s.current.frame_id]] else "reject")
    capsys.readouterr()
    work, notes = {}, {}
    for c in ("0.95", "0.5"):
        assert main(["policy", str(root), "--target-recall", "0.9", "--confidence", c, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert f"at {float(c):.0%} confidence" in out
        work[c] = int(re.search(r"people review (\d+) of", out).group(1))
        notes[c] = "too few labels" in out
    # About 200 decisions: not enough for a strict guarantee, enough for the point estimate.
    assert notes["0.95"] and not notes["0.5"]
    assert work["0.5"] < work["0.95"]
    assert main(["policy", str(root), "--target-recall", "0.9", "--confidence", "0.5"]) == 0
    capsys.readouterr()
    with Workspace(root) as p:
        saved = p.policies.current()
    assert saved["confidence"] == 0.5 and saved["target_recall"] == 0.9
    assert main(["policy", str(root), "--target-recall", "0.9", "--confidence", "1.2", "--dry-run"]) == 2
    assert "confidence" in capsys.readouterr().err
