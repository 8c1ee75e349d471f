"""Crash test: the app is killed with SIGKILL at random moments while scoring runs and an
analyst reviews. After every kill, each decision the app acknowledged is in the database,
the database passes ``PRAGMA integrity_check``, and scoring resumes without scoring any frame
twice. Prints the tally. Run with ``pytest -m reliability -s``; ``RELIABILITY_KILLS`` sets
how many kills (default 50)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, write_flight

pytestmark = pytest.mark.reliability


def _committed_tiles(root: Path) -> tuple[int, int]:
    """(committed embedding rows, duplicated (frame, tile) pairs among them) over every set."""
    db = sqlite3.connect(root / "project.db")
    sets = db.execute("SELECT file, rows_committed FROM embedding_sets").fetchall()
    db.close()
    rows = dups = 0
    for file, committed in sets:
        idx = np.fromfile(root / "embeddings" / f"{file}.idx", dtype=np.int64, count=committed * 2).reshape(-1, 2)
        pairs = {tuple(p) for p in idx.tolist()}
        rows += committed
        dups += committed - len(pairs)
    return rows, dups


def test_kill_at_random_moments_loses_nothing(tmp_path: Path, ortho: np.ndarray, model_cache: Path) -> None:
    from triage_app.core.ingest.footage import ingest_source
    from triage_app.core.store import Workspace

    kills = int(os.environ.get("RELIABILITY_KILLS", "50"))
    root = tmp_path / "p"
    root.mkdir()
    (root / "settings.toml").write_text('[scoring]\nmembers = ["imagenet"]\ndevice = "cpu"\ncommit_every = 4\nbatch = 8\n'
                                        '[review]\nsecond_review_share = 0.0\n')
    video = write_flight(tmp_path / "long.mp4", ortho, frames=2400, size=(320, 240), step=7)
    with Workspace(root) as p:
        ingest_source(p, video)
        p.policies.save("any", {"imagenet": 0.0}, created_by="test")  # every scored frame is a candidate
        frames = p.frames.frame_count()  # flagged frames are scored too

    from triage_app.core.model.cards import load_cards
    from triage_app.core.scoring.members.onnx_build import export_member

    export_member(load_cards()["imagenet"], model_cache)  # the children find the model ready, as users do
    rng = random.Random(7)
    acked: dict[int, int] = {}
    tally = dict(kills=0, kills_while_scoring=0, acknowledged=0, found=0, undo_acks=0, integrity_ok=0, duplicate_tiles=0,
                 finished_runs=0)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for k in range(kills):
        child = subprocess.Popen([sys.executable, "-m", "tests.reliability.crash_child", str(root), str(k)], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        time.sleep(rng.uniform(0.5, 5.0))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        tally["kills"] += 1
        for line in out.splitlines():
            parts = line.split()
            if parts[:1] == ["ACK"]:
                acked[int(parts[1])] = int(parts[2])
            elif parts[:1] == ["UNDO"]:
                tally["undo_acks"] += 1
            elif parts[:1] == ["DONE"]:
                tally["finished_runs"] += 1
        db = sqlite3.connect(root / "project.db")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tally["integrity_ok"] += 1
        stored = dict(db.execute("SELECT id, frame_id FROM decisions").fetchall())
        scored_now = db.execute("SELECT count(DISTINCT frame_id) FROM scores").fetchone()[0]
        tally["kills_while_scoring"] += scored_now < frames
        db.close()
        missing = {i: f for i, f in acked.items() if stored.get(i) != f}
        assert not missing, f"kill {k}: acknowledged decisions lost: {sorted(missing)[:10]}"
        _, dups = _committed_tiles(root)
        assert dups == 0, f"kill {k}: {dups} tiles committed twice"

    # Scoring resumes where it stopped: a last run scores only what is left, once.
    with Workspace(root) as p:
        store = p.scores
        done_before = len(set(store.score_table()[0].tolist()))
        from triage_app.core.scoring.pipeline import score_project

        summary = score_project(p)
        done_after = len(set(store.score_table()[0].tolist()))
    rows, dups = _committed_tiles(root)
    tally.update(acknowledged=len(acked), found=len(acked), duplicate_tiles=dups, frames=frames,
                 scored_before_last_run=done_before, scored_in_last_run=summary.frames_scored, scored=done_after,
                 embedding_rows=rows)
    print("\ncrash test tally:", ", ".join(f"{k} {v}" for k, v in tally.items()))
    assert done_after == frames and summary.frames_scored == frames - done_before and dups == 0
    assert tally["kills"] == kills and len(acked) > 0


def test_kill_a_team_at_random_moments_loses_nothing(tmp_path: Path, ortho: np.ndarray, model_cache: Path,
                                                     pg_database) -> None:
    """The same on a team store: three analysts' processes at once (one of them scoring too),
    all killed with SIGKILL at random moments. After every kill each acknowledged decision is
    in PostgreSQL, no frame stands decided by two analysts, no tile is cached twice; then
    scoring resumes without scoring any frame twice. ``RELIABILITY_TEAM_KILLS`` rounds (20)."""
    from triage_app.core.ingest.footage import ingest_source
    from triage_app.core.model.cards import load_cards
    from triage_app.core.scoring.members.onnx_build import export_member
    from triage_app.core.scoring.pipeline import score_project
    from triage_app.core.store import Workspace

    rounds = int(os.environ.get("RELIABILITY_TEAM_KILLS", "20"))
    url = pg_database()
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "settings.toml").write_text('[scoring]\nmembers = ["imagenet"]\ndevice = "cpu"\ncommit_every = 4\n'
                                          'batch = 8\n[review]\nsecond_review_share = 0.0\n')
    video = write_flight(tmp_path / "long.mp4", ortho, frames=1600, size=(320, 240), step=7)
    with Workspace(url, shared=shared) as p:
        ingest_source(p, video)
        p.policies.save("any", {"imagenet": 0.0}, created_by="test")
        frames = p.frames.frame_count()
    export_member(load_cards()["imagenet"], model_cache)
    rng = random.Random(11)
    acked: dict[int, int] = {}
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    tally = dict(rounds=0, processes_killed=0, acknowledged=0, double_decided=0, duplicate_tiles=0)
    for k in range(rounds):
        kids = [subprocess.Popen([sys.executable, "-m", "tests.reliability.crash_child", url, str(k * 3 + j), name,
                                  "score" if j == 0 else "noscore"], cwd=REPO, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, env=env, text=True)
                for j, name in enumerate(("ana", "ben", "cleo"))]
        time.sleep(rng.uniform(5.0, 12.0))  # the three start in about 4 s on two cores
        for child in kids:
            child.send_signal(signal.SIGKILL)
        for child in kids:
            out, _ = child.communicate()
            for line in out.splitlines():
                parts = line.split()
                if parts[:1] == ["ACK"]:
                    acked[int(parts[1])] = int(parts[2])
        tally["rounds"] += 1
        tally["processes_killed"] += len(kids)
        with Workspace(url) as p:
            stored = {i: f for i, (f, _r, _undone) in p.decisions.recorded().items()}
            by: dict[int, set[str]] = {}
            for d in p.decisions.history():
                by.setdefault(d.frame_id, set()).add(d.reviewer)
            sets = [(s["file"], s["rows_committed"]) for s in p.embeddings.sets()]
        missing = {i: f for i, f in acked.items() if stored.get(i) != f}
        assert not missing, f"round {k}: acknowledged decisions lost: {sorted(missing)[:10]}"
        twice = [f for f, names in by.items() if len(names) > 1]
        tally["double_decided"] += len(twice)
        tally["duplicate_tiles"] += sum(committed - len({tuple(r) for r in np.fromfile(
            shared / "embeddings" / f"{file}.idx", dtype=np.int64, count=committed * 2).reshape(-1, 2).tolist()})
            for file, committed in sets)
        assert not twice, f"round {k}: frames decided by two analysts: {twice[:10]}"
        for file, committed in sets:
            idx = np.fromfile(shared / "embeddings" / f"{file}.idx", dtype=np.int64, count=committed * 2).reshape(-1, 2)
            dups = committed - len({tuple(r) for r in idx.tolist()})
            assert dups == 0, f"round {k}: {dups} tiles committed twice"
    with Workspace(url) as p:
        before = len(set(p.scores.score_table()[0].tolist()))
        summary = score_project(p)
        after = len(set(p.scores.score_table()[0].tolist()))
    tally.update(acknowledged=len(acked), frames=frames, scored_before_last_run=before,
                 scored_in_last_run=summary.frames_scored)
    print("\nteam crash test tally:", ", ".join(f"{k} {v}" for k, v in tally.items()))
    assert after == frames and summary.frames_scored == frames - before and len(acked) > 0
