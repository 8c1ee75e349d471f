"""The second bad-input corpus: what a careless, hurried or hostile user does to a project.

Every case starts from a copy of one small real project (a flight ingested, scored and with
four decisions recorded) and checks what the user would: a message naming the file and the
problem, the rest of the work carrying on, and the recorded decisions unchanged (their count
and a hash of their content, after every case). The cases are in ``corpus_*.py``, by what
they break. With the first corpus (``test_bad_inputs.py``) more than sixty kinds of bad input
are covered."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_flight
from tests.reliability import corpus_footage, corpus_outputs, corpus_project, corpus_telemetry  # noqa: F401 (register)
from tests.reliability.corpus_harness import CASES, Ctx, digest
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.model.records import Sampling
from triage_app.core.scoring.pipeline import score_project
from triage_app.core.store import Workspace


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, ortho: np.ndarray, model_cache: Path) -> tuple[Path, Path]:
    """(a scored project with four decisions, its flight video)."""
    tmp = tmp_path_factory.mktemp("corpus-base")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRIAGE_SETTINGS", str(tmp / "user-settings.toml"))
        mp.setenv("TRIAGE_CACHE_DIR", str(model_cache))
        video = write_flight(tmp / "flight.mp4", ortho, frames=12)
        root = tmp / "project"
        root.mkdir()
        (root / "settings.toml").write_text('[scoring]\nmembers = ["imagenet"]\ndevice = "cpu"\n')
        with Workspace(root) as ws:
            ingest_source(ws, video, sampling=Sampling(every=3))
            score_project(ws)
            ws.decisions.record([dict(frame_id=r["id"], label="accept" if i % 2 else "reject", reviewer="ana",
                                      seconds_spent=1, policy="p", member_scores="{}")
                                 for i, r in enumerate(ws.frames.frame_rows())])
    return root, video




@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_input_is_named_and_nothing_recorded_is_lost(name: str, base: tuple[Path, Path], tmp_path: Path,
                                                          ortho: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "project"
    shutil.copytree(base[0], root)
    before = digest(root)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    message = CASES[name](Ctx(root, scratch, base[1], ortho, capsys))
    assert message and message.strip(), name
    if (root / "project.db").is_file() and name != "project.db replaced by garbage":
        count, content = digest(root)
        assert count >= before[0], f"{name}: a recorded decision was lost"
        assert digest(root, before[0])[1] == before[1], f"{name}: a recorded decision changed"
    with capsys.disabled():
        print(f"  {name}: {message.splitlines()[0][:150]}")


def test_the_two_corpora_cover_more_than_sixty_kinds_of_bad_input() -> None:
    from tests.reliability import test_bad_inputs

    first = test_bad_inputs.FIRST_CORPUS_KINDS
    assert len(CASES) + first >= 60, (len(CASES), first)
