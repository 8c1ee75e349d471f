"""Concurrency: several runs on one project at once, some killed. Two scorers, a scorer
beside an analyst deciding (as the window does), an ingest and an export, in rounds, with a
random one killed each round. After every round the database passes its integrity check,
every decision acknowledged is there, no (frame, tile) embedding is committed twice, and at
the end every frame's embedding is its own: the vectors equal those of the same frames
scored alone in a fresh project. Prints the tally. ``RELIABILITY_ROUNDS`` sets the rounds
(default 6)."""

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
from tests.reliability.test_crash import _committed_tiles

pytestmark = pytest.mark.reliability

SETTINGS = '[scoring]\nmembers = ["imagenet"]\ndevice = "cpu"\ncommit_every = 2\nbatch = 8\n[review]\nsecond_review_share = 0.0\n'


def _triage(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "triage_app.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def _vectors(root: Path) -> dict[tuple[str, int, int], np.ndarray]:
    """(source name, frame index, tile) -> the committed embedding of the newest imagenet set."""
    from triage_app.core.store import Workspace

    with Workspace(root) as ws:
        arrays, _v = ws.embeddings.newest("imagenet")
        names = {s["id"]: s["name"] for s in ws.frames.source_summaries()}
        idx_of = {f["id"]: (names[f["source_id"]], f["idx"]) for f in ws.frames.frame_rows()}
        out = {}
        for f, t, v in zip(arrays.frame_ids.tolist(), arrays.tiles.tolist(), arrays.vectors, strict=True):
            out[(*idx_of[f], t)] = np.asarray(v, np.float32)
        return out


def test_concurrent_writers_readers_and_kills_corrupt_nothing(tmp_path: Path, ortho: np.ndarray, model_cache: Path) -> None:
    from triage_app.core.ingest.footage import ingest_source
    from triage_app.core.model.cards import load_cards
    from triage_app.core.review.session import ReviewSession
    from triage_app.core.scoring.members.onnx_build import export_member
    from triage_app.core.scoring.pipeline import score_project
    from triage_app.core.store import Workspace

    rounds = int(os.environ.get("RELIABILITY_ROUNDS", "6"))
    export_member(load_cards()["imagenet"], model_cache)
    videos = [write_flight(tmp_path / f"flight{k}.mp4", ortho, frames=120, size=(320, 240), step=9 + k) for k in range(rounds)]
    root = tmp_path / "p"
    root.mkdir()
    (root / "settings.toml").write_text(SETTINGS)
    with Workspace(root) as ws:
        ingest_source(ws, videos[0])
        ws.policies.save("any", {"imagenet": 0.0}, created_by="test")
    rng = random.Random(3)
    acked: list[int] = []
    busy_said = killed = 0
    for r in range(rounds):
        procs = {"scorer A": _triage("score", str(root)), "scorer B": _triage("score", str(root))}
        if r + 1 < rounds:
            procs["ingest"] = _triage("ingest", str(root), str(videos[r + 1]))
        procs["export"] = _triage("export", str(root), str(tmp_path / f"export{r}"), "--format", "csv")
        # The analyst decides in this process meanwhile, as the window does.
        with Workspace(root) as ws:
            session = ReviewSession(ws, reviewer="ana")
            deadline = time.monotonic() + rng.uniform(1.0, 6.0)
            while time.monotonic() < deadline:
                if session.current is None:
                    session.refresh()
                    time.sleep(0.2)
                    continue
                acked += session.decide("accept" if rng.random() < 0.3 else "reject")
        victim = rng.choice(sorted(procs))
        if procs[victim].poll() is None:
            os.kill(procs[victim].pid, signal.SIGKILL)
            killed += 1
        for name, p in procs.items():
            out, err = p.communicate(timeout=600)
            assert "Traceback" not in err, (name, err)
            busy_said += "is writing this project" in err
        db = sqlite3.connect(root / "project.db")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0] for row in db.execute("SELECT id FROM decisions")}
        db.close()
        assert set(acked) <= stored, f"round {r}: acknowledged decisions lost"
        rows, dups = _committed_tiles(root)
        assert dups == 0, f"round {r}: {dups} (frame, tile) embeddings committed twice"
    with Workspace(root) as ws:  # what is left is scored once, alone
        score_project(ws)
        frames = ws.frames.frame_count()
    # Every frame's embedding is its own: the same frames of the first flight scored alone.
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "settings.toml").write_text(SETTINGS)
    with Workspace(alone) as ws:
        ingest_source(ws, videos[0])
        score_project(ws)
    mine, ref = _vectors(root), _vectors(alone)
    shared = [k for k in ref if k in mine]
    assert len(shared) == len(ref)
    worst = max(float(np.max(np.abs(mine[k] - ref[k]))) for k in shared)
    print(f"\nconcurrency: {rounds} rounds, {killed} runs killed, a second writer refused {busy_said} times, "
          f"{len(acked)} decisions acknowledged and kept, {frames} frames, {len(shared)} tile embeddings "
          f"of the first flight equal to those scored alone (largest difference {worst:.2e})")
    assert worst < 1e-2
