from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_flight
from triage_app.cli import main
from triage_app.core.store import Workspace


def test_score_prints_progress_summary_and_leaves_out_missing_members(
    tmp_path: Path, ortho: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    video = write_flight(tmp_path / "f.mp4", ortho, frames=20, size=(480, 270))
    assert main(["ingest", str(tmp_path / "p"), str(video), "--every", "2"]) == 0
    capsys.readouterr()
    assert main(["score", str(tmp_path / "p"), "--device", "cpu", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert "scored 10 frames" in out and "CPUExecutionProvider" in out and "frames/s" in out
    assert "member clip left out" in out and "offline" in out
    assert "member head left out: not trained yet" in out
    assert "candidates of 10 scored frames" in out
    assert "stages busy: decode" in out and "stage set the pace" in out
    # Scoring again has nothing left to do, and says so without failing.
    assert main(["score", str(tmp_path / "p"), "--device", "cpu"]) == 0
    assert "scored 0 frames (0 were waiting)" in capsys.readouterr().out


def test_score_of_a_missing_project_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", str(tmp_path / "nope")]) == 3  # a missing project: not a usage error
    assert "no such project folder" in capsys.readouterr().err


def test_headless_demo_builds_scores_and_names_the_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "demo"
    assert main(["demo", "--headless", "--project", str(target)]) == 0
    out = capsys.readouterr().out
    assert f"demo project: {target}" in out and "32 frames ingested" in out
    assert "candidates for review" in out and "strongest candidates" in out
    # The demo flight's telemetry (position, 80 m, camera straight down) places each find.
    assert "on the ground at 45.0" in out and "m from the aircraft)" in out
    with Workspace(target) as p:
        assert len(p.frames.frame_rows()) == 32


def test_exit_statuses_tell_the_kinds_of_failure_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A script can tell a usage error (2) from a missing or unusable input (3) and from a
    project database that cannot be used (4)."""
    from triage_app.cli import EXIT_INPUT, EXIT_STORE, EXIT_USAGE

    with pytest.raises(SystemExit) as usage:
        main(["score"])  # the project is missing from the command line
    assert usage.value.code == EXIT_USAGE == 2
    assert main(["score", str(tmp_path / "nope")]) == EXIT_INPUT == 3
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "project.db").write_bytes(b"this is not a database" * 100)
    assert main(["report", str(broken)]) == EXIT_STORE == 4
    err = capsys.readouterr().err
    assert "project.db" in err or str(broken) in err
