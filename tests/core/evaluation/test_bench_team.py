"""``triage bench team``: analysts' processes review one project at once; the bench counts
what must never happen (a frame given to two, a decision lost) from the store itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from triage_app.cli import main


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_bench_team_reports_throughput_and_no_double_assignment(kind: str, tmp_path: Path, request,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "bench") if kind == "sqlite" else request.getfixturevalue("pg_database")()
    assert main(["bench", "team", "--store", store, "--analysts", "1,3", "--seconds", "3", "--frames", "400",
                 "--shared", str(tmp_path / "shared"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["store"] == kind and [r["analysts"] for r in result["runs"]] == [1, 3]
    for run in result["runs"]:
        assert run["decisions"] > 0 and run["failed_analysts"] == 0
        assert run["double_assignments"] == 0 and run["lost_decisions"] == 0
        assert run["lease_wait_p95_ms"] >= run["lease_wait_p50_ms"] > 0
    # Three analysts in the same order meet: the later ones skip the frames the first holds.
    assert result["runs"][1]["skipped_held_by_others"] > 0
    # A project the bench did not make is never cleared.
    assert main(["bench", "team", "--store", str(tmp_path / "other"), "--analysts", "1", "--seconds", "1",
                 "--frames", "10"]) == 0
    from triage_app.core.store import Workspace

    with Workspace(tmp_path / "mine") as ws:
        sid, _ = ws.frames.add_source("video", "/x.mp4", "x.mp4", {})
        ws.frames.add_frames([{"source_id": sid, "idx": 0, "timestamp_s": 0.0}])
    capsys.readouterr()
    assert main(["bench", "team", "--store", str(tmp_path / "mine"), "--analysts", "1", "--seconds", "1"]) == 4
    assert "did not make" in capsys.readouterr().err
