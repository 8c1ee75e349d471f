"""`triage bench` on a machine that lacks what a benchmark needs says what is missing, in one
line, and exits non-zero without a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from triage_app.cli import main


def test_bench_without_ffmpeg_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "ffmpeg" else real_which(name, *a, **k))
    code = main(["bench", "pipeline", "--seconds", "2", "--workdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("error: flight-2s-gop1s.mp4: cannot be made: ffmpeg is not installed")
    assert "apt-get install ffmpeg" in err and "--input" in err
    assert "Traceback" not in err
    assert not any(tmp_path.glob("*.mp4"))  # nothing half-made left behind
