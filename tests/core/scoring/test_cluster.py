"""Scoring on a real local Ray cluster (a head and a second node, one CPU each): the same
scores and embeddings as a local run, and every frame scored exactly once when a worker is
killed in the middle of the run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_flight
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.model.records import Sampling
from triage_app.core.model.settings import load_settings
from triage_app.core.scoring.cluster import ClusterError, plan_workers, score_on_cluster, work_units
from triage_app.core.scoring.pipeline import score_project
from triage_app.core.store import Workspace
from triage_app.core.store.embeddings import load_embeddings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_cluster(model_cache: Path) -> Iterator[str]:
    """A head node and one more node on this machine, as `ray start` makes them."""
    pytest.importorskip("ray", reason='Ray is not installed: pip install "triage_app[cluster]"')
    ray_cli = shutil.which("ray")
    if ray_cli is None:
        pytest.skip("the ray command is not on PATH")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    cache = tempfile.mkdtemp(prefix="triage-cluster-cache-")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", TRIAGE_CACHE_DIR=cache)
    common = ["--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"]
    subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}", *common],
                   check=True, env=env, timeout=180, capture_output=True)
    address = f"127.0.0.1:{port}"
    try:
        subprocess.run([ray_cli, "start", f"--address={address}", *common], check=True, env=env, timeout=180, capture_output=True)
        yield address
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, timeout=120, capture_output=True)
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)


def _project(root: Path, footage: list[Path], unit_frames: int, as_urls: bool = False) -> Workspace:
    root.mkdir()
    ws = Workspace(root, settings=load_settings(root, overrides={
        # fp32 named: on the CPU ``auto`` scores a new project in 8 bits where the CPU can, on a
        # cluster's workers in fp32
        "scoring": {"members": ["imagenet"], "device": "cpu", "batch": 8, "cluster_unit_frames": unit_frames,
                    "cluster_cpus_per_worker": 1, "precision": "fp32"},
        "tiling": {"keep_long_side": 320}}))
    for f in footage:
        ingest_source(ws, f.as_uri() if as_urls else f, sampling=Sampling(every=2) if f.suffix == ".mp4" else Sampling())
    return ws


def _footage(tmp_path: Path, ortho: np.ndarray) -> list[Path]:
    video = write_flight(tmp_path / "flight.mp4", ortho, frames=48, size=(640, 360))
    stills = tmp_path / "stills"
    stills.mkdir()
    import cv2

    for i in range(6):
        cv2.imwrite(str(stills / f"DJI_{i:04d}.jpg"), np.ascontiguousarray(ortho[900 + 40 * i : 1260 + 40 * i, 700:1340]))
    return [video, stills]


def _scores(ws: Workspace) -> dict[tuple[int, int], tuple[float, int, int]]:
    ids, _names, mat, _extra = ws.scores.score_table()
    out = {}
    for fid in ids.tolist():
        f = ws.frames.frame(int(fid))
        row = ws.scores.frame_scores(int(fid))[0]
        out[(int(f["source_id"]), int(f["idx"]))] = (row["score"], row["tile"], row["tiles"])
    return out


def _embeddings(ws: Workspace) -> dict[str, dict[tuple[int, int, int], np.ndarray]]:
    by_set = {}
    for meta in ws.embeddings.sets():
        arr = load_embeddings(ws.root, meta["file"], meta["dim"], meta["rows_committed"])
        keyed = {}
        for fid, tile, vec in zip(arr.frame_ids.tolist(), arr.tiles.tolist(), arr.vectors, strict=True):
            f = ws.frames.frame(int(fid))
            key = (int(f["source_id"]), int(f["idx"]), int(tile))
            assert key not in keyed, f"{meta['member']}: frame {key[:2]} tile {tile} cached twice"
            keyed[key] = np.asarray(vec)
        by_set[meta["member"]] = keyed
    return by_set


def test_work_units_keep_a_source_together_and_cut_long_ones() -> None:
    frames = [{"id": i, "source_id": 1 if i < 10 else 2, "idx": i} for i in range(14)]
    units = work_units(frames, 4)  # type: ignore[arg-type]
    assert [[f["id"] for f in u.frames] for u in units] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [10, 11, 12, 13]]
    assert [u.source_id for u in units] == [1, 1, 1, 2]


def test_units_spread_a_short_job_over_every_worker_and_cap_a_long_one() -> None:
    from triage_app.core.scoring.cluster import unit_size

    assert unit_size(180, 2, 256) == 23  # about four units per worker
    assert unit_size(1_000_000, 8, 256) == 256
    assert unit_size(20, 4, 256) == 8 and unit_size(20, 4, 5) == 5


def test_plan_takes_one_worker_per_gpu_or_per_cpus_of_each_node() -> None:
    nodes = [{"Alive": True, "Resources": {"CPU": 16.0, "GPU": 2.0}}, {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 2.0}}]
    plan = plan_workers({"CPU": 24.0, "GPU": 4.0}, nodes, "auto", None, 4)
    assert (plan.workers, plan.device, plan.gpus) == (4, "cuda", 1.0)
    plan = plan_workers({"CPU": 24.0}, [{"Alive": True, "Resources": {"CPU": 16.0}}, {"Alive": True, "Resources": {"CPU": 8.0}},
                                        {"Alive": False, "Resources": {"CPU": 64.0}}], "auto", None, 4)
    assert (plan.workers, plan.device, plan.cpus, plan.threads) == (6, "cpu", 4.0, 4)
    assert plan_workers({"CPU": 2.0}, [{"Alive": True, "Resources": {"CPU": 1.0}}] * 2, "cpu", None, 4).workers == 2
    with pytest.raises(ClusterError, match="no GPU"):
        plan_workers({"CPU": 2.0}, [{"Alive": True, "Resources": {"CPU": 2.0}}], "cuda", None, 4)


def test_cluster_scores_equal_a_local_run_bit_for_bit(tmp_path: Path, ortho: np.ndarray, ray_cluster: str) -> None:
    """The cluster's project reads its footage by object-store URL (``file://`` through fsspec,
    as ``s3://`` would be): each worker fetches its own copies."""
    footage = _footage(tmp_path, ortho)
    local = _project(tmp_path / "local", footage, unit_frames=5)
    on_cluster = _project(tmp_path / "cluster", footage, unit_frames=5, as_urls=True)
    try:
        done = score_project(local)
        started: list[dict] = []
        summary = score_on_cluster(on_cluster, ray_cluster, on_started=started.extend)
        assert done.frames_scored == summary.frames_scored == 30 and not summary.errors
        assert summary.provider == "CPUExecutionProvider" and summary.cluster["workers"] == 2
        # one worker on each node; the 24 video frames in units of 5 (5 units), the 6 stills in 2
        assert len({w["node"] for w in started}) == summary.cluster["nodes"] == 2 and summary.cluster["units"] == 7
        assert not any(w["torch_loaded"] for w in started)  # the members came as ONNX files, not as model code
        assert sum(summary.cluster["frames_per_worker"].values()) == 30
        assert _scores(on_cluster) == _scores(local)
        mine, theirs = _embeddings(on_cluster), _embeddings(local)
        assert mine.keys() == theirs.keys() == {"imagenet", "imagenet:pooled"}
        for name in mine:
            assert mine[name].keys() == theirs[name].keys()
            assert all(np.array_equal(mine[name][k], theirs[name][k]) for k in mine[name]), name
        # Nothing is left: a second run on the cluster scores nothing again.
        assert score_on_cluster(on_cluster, ray_cluster).frames_scored == 0
    finally:
        local.close()
        on_cluster.close()


def test_a_killed_worker_has_its_unit_scored_elsewhere_and_no_frame_twice(tmp_path: Path, ortho: np.ndarray,
                                                                          ray_cluster: str) -> None:
    footage = _footage(tmp_path, ortho)
    ws = _project(tmp_path / "p", footage, unit_frames=2)
    killed: list[int] = []
    pids: list[int] = []

    def kill_one(done: int, total: int | None) -> None:
        if not killed and done >= 4:
            os.kill(pids[0], signal.SIGKILL)  # a worker process dies mid-run, its units in flight
            killed.append(pids[0])
            time.sleep(0.5)

    try:
        summary = score_on_cluster(ws, ray_cluster, progress=kill_one, on_started=lambda ws_: pids.extend(w["pid"] for w in ws_))
        assert killed and summary.cluster["retried_units"] >= 1
        assert summary.frames_scored == 30 and not summary.errors
        assert len(_scores(ws)) == 30 and len(ws.scores.score_table()[0]) == 30
        emb = _embeddings(ws)  # raises where a frame's tile was cached twice
        assert len({k[:2] for k in emb["imagenet:pooled"]}) == 30
    finally:
        ws.close()


def test_a_cancelled_run_keeps_what_it_committed_and_the_next_scores_the_rest(tmp_path: Path, ortho: np.ndarray,
                                                                             ray_cluster: str) -> None:
    ws = _project(tmp_path / "p", _footage(tmp_path, ortho), unit_frames=2)
    stop = threading.Event()
    try:
        first = score_on_cluster(ws, ray_cluster, progress=lambda done, total: stop.set() if done >= 4 else None, cancel=stop)
        assert first.cancelled and 4 <= first.frames_scored < 30
        assert len(ws.scores.score_table()[0]) == first.frames_scored
        second = score_on_cluster(ws, ray_cluster)
        assert second.frames_pending == 30 - first.frames_scored and first.frames_scored + second.frames_scored == 30
        emb = _embeddings(ws)  # raises where a frame's tile was cached twice
        assert len({k[:2] for k in emb["imagenet:pooled"]}) == 30 and len(ws.scores.score_table()[0]) == 30
    finally:
        ws.close()


def test_footage_a_worker_cannot_read_is_named_and_the_rest_scored(tmp_path: Path, ortho: np.ndarray, ray_cluster: str) -> None:
    video, stills = _footage(tmp_path, ortho)
    ws = _project(tmp_path / "p", [video, stills], unit_frames=8)
    stills.rename(tmp_path / "moved")  # not where the workers look for it
    try:
        summary = score_on_cluster(ws, ray_cluster)
        assert summary.frames_scored == 24
        named = [e for e in summary.errors if str(stills) in e]
        assert named and all(e.startswith("on ") and " pid " in e for e in named), summary.errors
        assert len(named) == 6 and all("file is gone" in e for e in named)
        assert len(ws.scores.pending_frames({"imagenet": 1})) == 6  # left for a run that can read them
    finally:
        ws.close()


def test_without_a_cluster_the_message_names_the_address(tmp_path: Path, ortho: np.ndarray) -> None:
    pytest.importorskip("ray", reason='Ray is not installed: pip install "triage_app[cluster]"')
    ws = _project(tmp_path / "p", _footage(tmp_path, ortho)[1:], unit_frames=4)
    try:
        with pytest.raises(ClusterError, match=r"no Ray cluster at 127\.0\.0\.1:9: nothing answers there"):
            score_on_cluster(ws, "127.0.0.1:9")
        with pytest.raises(ClusterError, match="is not HOST:PORT"):
            score_on_cluster(ws, "headnode")
    finally:
        ws.close()


def test_bench_scores_one_input_both_ways_and_checks_they_agree(tmp_path: Path, ortho: np.ndarray, ray_cluster: str) -> None:
    from triage_app.core.evaluation.bench_cluster import bench_cluster

    video = write_flight(tmp_path / "bench.mp4", ortho, frames=16, size=(480, 270))
    result = bench_cluster(video, None, ray_cluster, device="cpu", batch=8, members=["imagenet"])
    assert result["frames"] == result["cluster_frames"] == 16 and result["same_scores"] is True and not result["errors"]
    assert result["workers"] == result["nodes"] == 2 and result["local_fps"] > 0 and result["cluster_fps"] > 0
    assert result["ratio"] == pytest.approx(result["cluster_fps"] / result["local_fps"], rel=0.05)
