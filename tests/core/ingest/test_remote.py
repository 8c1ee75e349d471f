"""Footage added by an object-store URL (here ``file://``, which fsspec reads through the same
calls as ``s3://`` or ``gs://``): the project keeps the URL, every machine reads its own copy,
a still is fetched alone when one frame is wanted, and a store that cannot be read is named."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import write_flight
from triage_app.core.ingest import remote
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.ingest.reader import FrameReader
from triage_app.core.model.records import Sampling
from triage_app.core.model.settings import load_settings
from triage_app.core.scoring.pipeline import score_project
from triage_app.core.store import Workspace


@pytest.fixture
def footage(tmp_path: Path, ortho: np.ndarray) -> tuple[Path, Path]:
    stills = tmp_path / "bucket" / "survey"
    stills.mkdir(parents=True)
    for i in range(5):
        cv2.imwrite(str(stills / f"DJI_{i:04d}.jpg"), np.ascontiguousarray(ortho[900 + 40 * i : 1260 + 40 * i, 700:1340]))
    (stills / "notes.txt").write_text("not footage")
    video = write_flight(tmp_path / "bucket" / "flight.mp4", ortho, frames=20, size=(480, 270))
    return stills, video


def _ws(root: Path) -> Workspace:
    return Workspace(root, settings=load_settings(None, overrides={"scoring": {"members": ["imagenet"], "device": "cpu", "batch": 8}}))


def _by_frame(ws: Workspace) -> dict[tuple[int, int], float]:
    ids, _names, mat, _extra = ws.scores.score_table()
    return {(int(ws.frames.frame(int(i))["source_id"]), int(ws.frames.frame(int(i))["idx"])): float(row[0])
            for i, row in zip(ids.tolist(), mat, strict=True)}


def test_a_url_source_is_kept_as_its_url_and_scores_as_the_files_do(tmp_path: Path, footage: tuple[Path, Path],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    stills, video = footage
    by_path, by_url = _ws(tmp_path / "paths"), _ws(tmp_path / "urls")
    monkeypatch.setattr(remote, "cache_root", lambda: tmp_path / "ingest-machine")
    try:
        for f, every in ((stills, 1), (video, 2)):
            ingest_source(by_path, f, sampling=Sampling(every=every))
            assert ingest_source(by_url, f.as_uri(), sampling=Sampling(every=every)).ok
        sources = by_url.frames.source_summaries()
        assert [s["uri"] for s in sources] == [stills.as_uri(), video.as_uri()]
        assert [s["name"] for s in sources] == ["survey", "flight.mp4"]
        assert [s["frames"] for s in sources] == [s["frames"] for s in by_path.frames.source_summaries()] == [5, 10]
        # Another machine (its own cache folder) scores the URL project: the same scores.
        monkeypatch.setattr(remote, "cache_root", lambda: tmp_path / "other-machine")
        assert score_project(by_path).frames_scored == score_project(by_url).frames_scored == 15
        assert _by_frame(by_url) == _by_frame(by_path)
        copies = sorted(p.name for p in (tmp_path / "other-machine").rglob("*") if p.is_file() and not p.name.startswith("."))
        assert copies == ["DJI_0000.jpg", "DJI_0001.jpg", "DJI_0002.jpg", "DJI_0003.jpg", "DJI_0004.jpg", "flight.mp4"]
    finally:
        by_path.close()
        by_url.close()


def test_one_frame_wanted_fetches_that_still_alone_and_a_replaced_object_again(tmp_path: Path, footage: tuple[Path, Path],
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    stills, video = footage
    ws = _ws(tmp_path / "p")
    monkeypatch.setattr(remote, "cache_root", lambda: tmp_path / "ingest-machine")
    try:
        ingest_source(ws, stills.as_uri())
        ingest_source(ws, video.as_uri(), sampling=Sampling(every=2))
        monkeypatch.setattr(remote, "cache_root", lambda: tmp_path / "reviewer")
        src_stills, src_video = (ws.frames.source(int(s["id"])) for s in ws.frames.source_summaries())
        frames = ws.frames.frame_rows(int(src_stills["id"]))
        reader = FrameReader(ws.root)
        image = reader.read(src_stills, frames[2])
        assert np.array_equal(image, cv2.imread(str(stills / "DJI_0002.jpg")))
        fetched = [p.name for p in (tmp_path / "reviewer").rglob("*.jpg")]
        assert fetched == ["DJI_0002.jpg"]  # not the whole folder
        vframe = ws.frames.frame_rows(int(src_video["id"]))[3]
        first = reader.read(src_video, vframe)
        local = FrameReader(ws.root).read(dict(src_video, uri=str(video)), vframe)  # type: ignore[arg-type]
        assert np.array_equal(first, local)
        # The object is replaced in the store: the next read fetches it again.
        cv2.imwrite(str(stills / "DJI_0002.jpg"), np.zeros((360, 640, 3), np.uint8))
        os.utime(stills / "DJI_0002.jpg", (time.time() + 5, time.time() + 5))
        assert FrameReader(ws.root).read(src_stills, frames[2]).max() == 0
    finally:
        ws.close()


def test_a_store_that_cannot_be_read_is_named(tmp_path: Path, footage: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    stills, _video = footage
    ws = _ws(tmp_path / "p")
    monkeypatch.setattr(remote, "cache_root", lambda: tmp_path / "ingest-machine")
    try:
        try:
            import s3fs  # noqa: F401
        except ImportError:
            result = ingest_source(ws, "s3://survey-bucket/flight-07.mp4")
            assert result.error and "s3://survey-bucket/flight-07.mp4" in result.error and "pip install s3fs" in result.error
        missing = (tmp_path / "bucket" / "gone.mp4").as_uri()
        result = ingest_source(ws, missing)
        assert result.error == f"{missing}: not found in the object store (moved or deleted?)"
        # A still removed from the store after ingest: named when scoring, the others scored.
        ingest_source(ws, stills.as_uri())
        monkeypatch.setattr(remote, "cache_root", lambda: tmp_path / "scoring-machine")
        os.remove(stills / "DJI_0003.jpg")
        summary = score_project(ws)
        assert summary.frames_scored == 4
        assert any((stills / "DJI_0003.jpg").as_uri() in e and "not found" in e for e in summary.errors)
    finally:
        ws.close()
