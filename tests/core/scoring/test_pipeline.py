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
from triage_app.core.store.embeddings import EmbeddingWriter, load_embeddings


@pytest.fixture
def project(tmp_path: Path, ortho: np.ndarray) -> Workspace:
    video = write_flight(tmp_path / "f.mp4", ortho, frames=40, size=(640, 360))
    p = Workspace(tmp_path / "proj")
    ingest_source(p, video, sampling=Sampling(every=2))
    yield p
    p.close()


def _settings(p: Workspace, tile_workers: int = 1):
    s = load_settings(p.root, overrides={"scoring": {"members": ["imagenet", "head"], "device": "cpu", "batch": 8,
                                                     "commit_every": 3, "tile_workers": tile_workers},
                                         "review": {"event_gap_s": 0.5},
                                         # 640x360 frames shrunk as larger ones are: three tiles each.
                                         "tiling": {"keep_long_side": 320}})
    return s


@pytest.mark.parametrize("tile_workers", [1, 3])
def test_scores_every_frame_with_tile_and_embeddings(project: Workspace, tile_workers: int) -> None:
    project.settings = _settings(project, tile_workers)
    summary = score_project(project)
    assert summary.frames_scored == 20 and summary.provider == "CPUExecutionProvider"
    assert "head" in summary.unavailable and summary.members == ["imagenet"]
    store = project.scores
    ids, names, mat, extra = store.score_table()
    assert names == ["imagenet"] and len(ids) == 20 and np.all((mat >= 0) & (mat <= 1))
    row = store.frame_scores(int(ids[0]))[0]
    # 640x360 at downscale 0.5 -> 320x180: 2 grid tiles + the whole frame.
    assert row["tiles"] == 3 and 0 <= row["tile"] < 3 and row["x1"] > row["x0"]
    sets = {s["member"]: s for s in project.embeddings.sets()}
    emb_set = sets["imagenet"]
    arrays = load_embeddings(project.root, emb_set["file"], emb_set["dim"], emb_set["rows_committed"])
    assert arrays.vectors.shape == (60, 1280) and arrays.vectors.dtype == np.float16
    assert sorted(set(arrays.frame_ids.tolist())) == sorted(ids.tolist())
    pooled = sets["imagenet:pooled"]
    p_arr = load_embeddings(project.root, pooled["file"], pooled["dim"], pooled["rows_committed"])
    # A frame's features: the mean over its tiles of their cell-averaged maps (1280), and the max
    # over its tiles of their peaks (the strongest cells of the last map, 1280, which no tile's
    # average reaches, and of two finer ones, 40 + 112).
    assert p_arr.vectors.shape == (20, 1280 + 1432) and (p_arr.tiles == -1).all()
    by_frame = {int(f): k for k, f in enumerate(p_arr.frame_ids)}
    tiles_of = arrays.frame_ids == int(ids[0])
    pooled_row = p_arr.vectors[by_frame[int(ids[0])]].astype(np.float32)
    mean_of_tiles = arrays.vectors[tiles_of].astype(np.float32).mean(axis=0)
    max_of_averages = arrays.vectors[tiles_of].astype(np.float32).max(axis=0)
    assert np.abs(pooled_row[:1280] - mean_of_tiles).max() < 0.02 * max(1.0, float(np.abs(mean_of_tiles).max()))
    peaks = pooled_row[1280:2560]
    assert (peaks >= max_of_averages - 1e-2).all() and (peaks > max_of_averages + 0.1).mean() > 0.5
    # Nothing is left: a second run scores no frame again.
    assert score_project(project).frames_scored == 0


@pytest.mark.parametrize("tile_workers", [1, 3])
def test_stopped_run_resumes_without_scoring_a_frame_twice(project: Workspace, tile_workers: int) -> None:
    project.settings = _settings(project, tile_workers)

    class StopLater:
        calls = 0

        def is_set(self) -> bool:
            StopLater.calls += 1
            return StopLater.calls > 8

    first = score_project(project, cancel=StopLater())
    assert first.cancelled and 0 < first.frames_scored < 20
    second = score_project(project)
    assert first.frames_scored + second.frames_scored == 20
    raw = sqlite3.connect(project.root / "project.db")
    assert raw.execute("SELECT count(*), count(DISTINCT frame_id) FROM scores").fetchone() == (20, 20)
    runs = raw.execute("SELECT status, frames_scored FROM scoring_runs ORDER BY id").fetchall()
    assert runs == [("cancelled", first.frames_scored), ("done", second.frames_scored)]
    sets = {s["member"]: s for s in project.embeddings.sets()}
    for member, rows in (("imagenet", 60), ("imagenet:pooled", 20)):
        s = sets[member]
        arrays = load_embeddings(project.root, s["file"], s["dim"], s["rows_committed"])
        pairs = list(zip(arrays.frame_ids.tolist(), arrays.tiles.tolist(), strict=True))
        assert len(pairs) == len(set(pairs)) == rows


def test_uncommitted_embedding_rows_are_dropped(tmp_path: Path) -> None:
    w = EmbeddingWriter(tmp_path, "m", 4, 0)
    w.append(np.array([1, 1]), np.array([0, 1]), np.ones((2, 4)))
    committed = w.flush()
    w.append(np.array([2]), np.array([0]), np.ones((1, 4)))  # written, never committed (crash)
    w.flush()
    w.close()
    w2 = EmbeddingWriter(tmp_path, "m", 4, committed)
    assert w2.rows == 2
    w2.close()
    arrays = load_embeddings(tmp_path, "m", 4, committed)
    assert arrays.frame_ids.tolist() == [1, 1] and (tmp_path / "embeddings" / "m.f16").stat().st_size == 16


def test_retrained_head_rescores_from_cache_and_matches_the_pipeline(project: Workspace) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from triage_app.core.learning.head import retrain

    project.settings = _settings(project)
    score_project(project)
    rows = project.frames.frame_rows()
    # Decisions: any labels will do to check the plumbing (every other frame accepted).
    project.decisions.record([dict(frame_id=r["id"], label="accept" if r["idx"] % 4 == 0 else "reject",
                                        reviewer="t", seconds_spent=1.0, policy="p", member_scores="{}") for r in rows])
    result = retrain(project)
    assert (result.positives, result.negatives) == (10, 10) and result.rescored == 20 and result.cv_folds == 5
    store = project.scores
    ids, names, mat, _ = store.score_table()
    assert names == ["head", "imagenet"] and not np.isnan(mat).any()
    # The same model fitted by hand on the cached features it chose gives the same scores.
    fids, feats, _ = project.embeddings.pooled("imagenet")
    if result.features_used == "whole_frame":
        feats = project.embeddings.whole_frame("imagenet", fids)
    x = np.asarray(feats, np.float32)
    y = np.array([1 if next(r for r in rows if r["id"] == f)["idx"] % 4 == 0 else 0 for f in fids])
    sc = StandardScaler().fit(x)
    ref = LogisticRegression(class_weight="balanced", max_iter=2000).fit(sc.transform(x), y).predict_proba(sc.transform(x))[:, 1]
    by_id = dict(zip(fids.tolist(), ref, strict=True))
    assert np.allclose(mat[:, 0], [by_id[int(f)] for f in ids], atol=1e-3)
    # New frames get the head's score from the live pipeline: the same number as the cache path.
    raw = sqlite3.connect(project.root / "project.db")
    cached = dict(raw.execute("SELECT frame_id, score FROM scores WHERE member='head'").fetchall())
    raw.execute("DELETE FROM scores WHERE member='head'")
    raw.commit()
    summary = score_project(project)
    assert summary.members == ["imagenet", "head"] and summary.frames_scored == 20
    live = dict(raw.execute("SELECT frame_id, score FROM scores WHERE member='head'").fetchall())
    assert live.keys() == cached.keys()
    assert max(abs(live[k] - cached[k]) for k in live) < 5e-3  # float16 cache vs float32 live


def test_flagged_frames_are_scored_unless_the_gate_keeps_them_out(tmp_path: Path, ortho: np.ndarray) -> None:
    """A frame the quality gate flags may still hold the target: by default it is scored
    (and so reviewed and counted) with its flag kept; ``quality.gate_scoring`` keeps it out."""
    dark = (ortho * 0.03).astype(np.uint8)
    video = write_flight(tmp_path / "dark.mp4", dark, frames=6)
    for gate, scored in ((True, 0), (False, 6)):
        with Workspace(tmp_path / f"p{gate}") as p:
            res = ingest_source(p, video)
            assert res.flagged["under_exposed"] == 6  # six frames are too few for a norm of their own
            p.settings = _settings(p)
            p.settings.quality.gate_scoring = gate
            summary = score_project(p)
            assert summary.frames_pending == scored and summary.frames_scored == scored
            assert {r["quality_flag"] for r in p.frames.frame_rows()} == {"under_exposed"}


def test_fixed_batches_are_filled_across_frames_and_stages_report_their_load(project: Workspace) -> None:
    """With the fixed batch shapes a GPU session uses, 20 frames of 3 tiles (60 tiles) take 8
    calls of 8 tiles, not one padded call per frame; the summary says which stage worked most."""
    from triage_app.core.scoring.pipeline import build_ensemble

    project.settings = _settings(project)
    ens = build_ensemble(project)
    session = ens.backbones[0].session
    session.fixed_batch = True
    seen: list[int] = []
    raw_run = session.session.run
    session.session.run = lambda names, feed: seen.append(len(next(iter(feed.values())))) or raw_run(names, feed)
    summary = score_project(project, ensemble=ens)
    assert summary.frames_scored == 20 and seen == [8] * 8
    assert summary.batch_fill == pytest.approx(60 / 64)
    assert set(summary.stage_busy) == {"decode", "tile", "infer", "store"}
    assert all(0 < v <= 1.05 for v in summary.stage_busy.values()), summary.stage_busy
    # The same scores as frame-by-frame runs give (the plain CPU path, no padding).
    store = project.scores
    ids, _, batched, _ = store.score_table()
    raw = sqlite3.connect(project.root / "project.db")
    raw.execute("DELETE FROM scores")
    raw.commit()
    project.settings = load_settings(project.root, overrides={"scoring": {"members": ["imagenet"], "device": "cpu",
                                                                          "batch": 3, "tile_workers": 1},
                                                              "tiling": {"keep_long_side": 320}})
    score_project(project)
    ids2, _, alone, _ = store.score_table()
    assert ids.tolist() == ids2.tolist() and np.abs(batched - alone).max() < 1e-5


def test_still_images_decode_in_parallel_in_order_and_a_broken_one_is_named(tmp_path: Path, ortho: np.ndarray) -> None:
    """A photo survey: several threads decode the stills, frames keep their order and scores
    (the same as one thread gives), and a file damaged after ingest is named while the rest
    is scored."""
    import cv2

    folder = tmp_path / "survey"
    folder.mkdir()
    for k in range(9):
        cv2.imwrite(str(folder / f"DJI_{k:04d}.JPG"), ortho[150 * k : 150 * k + 400, 100 * k : 100 * k + 600])
    scores = {}
    for workers in (1, 3):
        with Workspace(tmp_path / f"p{workers}") as p:
            ingest_source(p, folder)
            if workers == 3:
                (folder / "DJI_0004.JPG").write_bytes(b"\xff\xd8 not a jpeg any more")
            p.settings = load_settings(p.root, overrides={"scoring": {"members": ["imagenet"], "device": "cpu", "batch": 8,
                                                             "decode_workers": workers},
                                                 "quality": {"gate_scoring": False}})
            summary = score_project(p)
            raw = sqlite3.connect(p.root / "project.db")
            scores[workers] = dict(raw.execute(
                "SELECT f.path, s.score FROM scores s JOIN frames f ON f.id = s.frame_id").fetchall())
            if workers == 1:
                assert summary.frames_scored == 9 and not summary.errors
            else:
                assert summary.frames_scored == 8
                assert any("DJI_0004.JPG" in e for e in summary.errors), summary.errors
    assert "DJI_0004.JPG" not in scores[3] and len(scores[3]) == 8
    assert all(abs(scores[3][k] - scores[1][k]) < 1e-6 for k in scores[3])
