"""Several flights scored at once: each source on a decoder of its own, all feeding one
inference stage, with the guarantees of one source after another: the same scores, each
frame once, a stopped run resumed, a broken source named while the others are scored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_flight
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.model.records import Sampling
from triage_app.core.model.settings import load_settings
from triage_app.core.scoring.pipeline import score_project
from triage_app.core.store import Workspace


def _project(root: Path, videos: list[Path], at_once: int) -> Workspace:
    settings = load_settings(None, overrides={"scoring": {"members": ["imagenet"], "device": "cpu", "batch": 8, "commit_every": 3,
                                                          "sources_at_once": at_once},
                                              "tiling": {"keep_long_side": 320}})
    ws = Workspace(root, settings=settings)
    for v in videos:
        ingest_source(ws, v, sampling=Sampling(every=3))
    return ws


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory, ortho: np.ndarray) -> list[Path]:
    folder = tmp_path_factory.mktemp("flights")
    # Three flights over different parts of the orthomosaic, of different lengths.
    return [write_flight(folder / f"flight{k}.mp4", np.ascontiguousarray(np.roll(ortho, 150 * k, axis=1)), frames=n,
                         size=(480, 270)) for k, n in enumerate((21, 30, 12))]


def _scores(ws: Workspace) -> dict[tuple[str, int], float]:
    names = {int(s["id"]): s["name"] for s in ws.frames.source_summaries()}
    frames = {int(f["id"]): (names[int(f["source_id"])], int(f["idx"])) for f in ws.frames.frame_rows()}
    ids, _names, mat, _extra = ws.scores.score_table()
    return {frames[int(i)]: float(mat[k, 0]) for k, i in enumerate(ids)}


def test_flights_at_once_score_as_one_after_another(tmp_path: Path, flights: list[Path]) -> None:
    with _project(tmp_path / "one", flights, 1) as ws:
        one = score_project(ws)
        one_scores = _scores(ws)
    with _project(tmp_path / "three", flights, 3) as ws:
        three = score_project(ws)
        three_scores = _scores(ws)
        raw = sqlite3.connect(ws.root / "project.db")
        assert raw.execute("SELECT count(*), count(DISTINCT frame_id) FROM scores").fetchone() == (21, 21)
    assert one.frames_scored == three.frames_scored == 21 == len(one_scores)  # 7 + 10 + 4 frames
    assert one_scores.keys() == three_scores.keys()
    assert max(abs(one_scores[k] - three_scores[k]) for k in one_scores) < 1e-5  # each frame its own picture
    assert three.frames_decoded == one.frames_decoded
    assert 0 < three.stage_busy["decode"] <= 1.0


def test_flights_at_once_resume_after_a_stop_and_name_a_broken_one(tmp_path: Path, flights: list[Path]) -> None:
    gone = tmp_path / "gone.mp4"
    gone.write_bytes(flights[1].read_bytes())
    with _project(tmp_path / "p", [flights[0], gone, flights[2]], 3) as ws:
        gone.unlink()  # moved away after it was added

        class StopLater:
            calls = 0

            def is_set(self) -> bool:
                StopLater.calls += 1
                return StopLater.calls > 4

        first = score_project(ws, cancel=StopLater())
        assert first.cancelled and first.frames_scored < 11
        second = score_project(ws)
        assert first.frames_scored + second.frames_scored == 11  # the two readable flights, every frame once
        assert any("gone.mp4" in e for e in second.errors)
        raw = sqlite3.connect(ws.root / "project.db")
        assert raw.execute("SELECT count(*), count(DISTINCT frame_id) FROM scores").fetchone() == (11, 11)
        assert any("gone.mp4" in (m["path"] or "") for m in ws.frames.message_rows())


def test_the_archive_benchmark_measures_both_ways_and_the_stages_alone(flights: list[Path]) -> None:
    from triage_app.core.evaluation.bench_archive import bench_archive

    result = bench_archive(flights, None, device="cpu", batch=8, at_once=3)
    assert result["flights"] == 3 and result["frames_sampled"] == 63  # every frame of 21 + 30 + 12
    for way in ("one_after_another", "at_once"):
        run = result[way]
        assert run["frames"] == 63 and run["realtime_x"] > 0 and run["decoded_per_scored"] >= 1.0
        assert set(run["stage_busy"]) == {"decode", "tile", "infer", "store"} and run["ratio_to_slowest_stage"] > 0
    assert result["at_once"]["sources_at_once"] == 3 and result["one_after_another"]["sources_at_once"] == 1
    assert result["decode_alone_fps"] > 0 and result["inference_alone_fps"] > 0 and result["at_once_vs_one_after_another"] > 0
