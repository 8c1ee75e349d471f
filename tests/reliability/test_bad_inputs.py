"""The bad-input corpus: every case gets a clear message naming the file, the session carries
on (a good source beside it is still ingested and scored), and nothing recorded is lost.

Small cases are written here; the big ones (a decompression bomb, long paths) are made by
the test. The test prints how many cases it tried."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import write_flight
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.model.errors import TriageError
from triage_app.core.model.records import Sampling
from triage_app.core.scoring.pipeline import score_project
from triage_app.core.store import Workspace
from triage_app.core.store.db import SCHEMA_VERSION

FIRST_CORPUS_KINDS = 11  # the cases below; test_corpus.py holds the rest


@pytest.fixture
def corpus(tmp_path: Path, ortho: np.ndarray, shared_data: Path) -> dict[str, Path]:
    good = write_flight(tmp_path / "good.mp4", ortho, frames=12)
    data = good.read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    c: dict[str, Path] = {}
    c["zero-byte video"] = bad / "zero.mp4"
    c["zero-byte video"].write_bytes(b"")
    c["truncated video"] = bad / "truncated.mp4"
    c["truncated video"].write_bytes(data[: len(data) // 3])
    c["header-only video"] = bad / "header.mp4"
    c["header-only video"].write_bytes(data[:1024])
    c["text with a video name"] = bad / "notes.mov"
    c["text with a video name"].write_text("meeting notes, not a video\n" * 100)
    c["random bytes with a video name"] = bad / "noise.mkv"
    c["random bytes with a video name"].write_bytes(np.random.default_rng(0).bytes(50_000))
    folder = bad / "photos"
    folder.mkdir()
    Image.fromarray(ortho[900:1100, 900:1100, ::-1]).save(folder / "ok.png")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00junk" * 200)
    Image.new("L", (30000, 30000)).save(folder / "bomb.png")  # 900 Mpx, a few hundred kB on disk
    c["folder with a corrupt image and a decompression bomb"] = folder
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9-\xff"))  # a Latin-1 folder name: not UTF-8
    odd.mkdir()
    shutil.copy(good, odd / "flight.mp4")
    c["non-UTF-8 path"] = odd / "flight.mp4"
    deep = tmp_path.joinpath(*["d" * 200] * 15)
    deep.mkdir(parents=True)
    shutil.copy(good, deep / "flight.mp4")
    c["very long path (3000+ characters)"] = deep / "flight.mp4"
    c["malformed SRT"] = bad / "DJI_0001.mp4"
    shutil.copy(good, c["malformed SRT"])
    shutil.copy(shared_data / "telemetry" / "juanirache" / "broken_empty2.SRT", bad / "DJI_0001.SRT")
    c["good"] = good
    return c


def _decisions(root: Path) -> list[tuple]:
    db = sqlite3.connect(root / "project.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT id, frame_id, label FROM decisions ORDER BY id").fetchall()
    finally:
        db.close()


def test_every_bad_input_is_named_and_nothing_recorded_is_lost(corpus: dict[str, Path], tmp_path: Path,
                                                              model_cache: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "settings.toml").write_text('[scoring]\nmembers = ["imagenet"]\ndevice = "cpu"\n')
    with Workspace(root) as p:
        ingest_source(p, corpus["good"], sampling=Sampling(every=3))
        score_project(p)
        p.decisions.record([dict(frame_id=r["id"], label="accept", reviewer="ana", seconds_spent=1, policy="p",
                                      member_scores="{}") for r in p.frames.frame_rows()])
    recorded = _decisions(root)
    assert len(recorded) == 4
    tried = 0

    def check(case: str, action: Callable[[Workspace], str]) -> None:
        nonlocal tried
        with Workspace(root) as p:
            message = action(p)
        assert message, case
        assert _decisions(root)[: len(recorded)] == recorded, f"{case}: a recorded decision changed"
        print(f"  {case}: {message[:140]}")
        tried += 1

    def ingest_fails(case: str, name: str) -> Callable[[Workspace], str]:
        def act(p: Workspace) -> str:
            r = ingest_source(p, corpus[case])
            assert r.error and name in r.error, (case, r.error)
            return r.error
        return act

    for case, name in (("zero-byte video", "zero.mp4"), ("truncated video", "truncated.mp4"),
                       ("header-only video", "header.mp4"), ("text with a video name", "notes.mov"),
                       ("random bytes with a video name", "noise.mkv")):
        check(case, ingest_fails(case, name))

    def folder(p: Workspace) -> str:
        r = ingest_source(p, corpus["folder with a corrupt image and a decompression bomb"])
        flags = {f["path"]: (f["quality_flag"], f["quality_note"]) for f in p.frames.frame_rows(r.source_id)}
        assert flags["ok.png"][0] is None
        assert flags["corrupt.jpg"][0] == "undecodable" and flags["bomb.png"][0] == "undecodable"
        assert "safe limit" in flags["bomb.png"][1]
        assert any("corrupt.jpg" in w for w in r.warnings) and any("bomb.png" in w for w in r.warnings)
        return "; ".join(r.warnings)
    check("folder with a corrupt image and a decompression bomb", folder)

    def odd_path(p: Workspace) -> str:
        r = ingest_source(p, corpus["non-UTF-8 path"], sampling=Sampling(every=3))
        assert r.ok and r.frames_total == 4
        source = p.frames.source(r.source_id)
        assert source["uri"] == str(corpus["non-UTF-8 path"])  # the very same file, not a look-alike
        s = score_project(p)
        assert not s.errors
        with p.db.read() as conn:
            scored = {int(row[0]) for row in conn.exec_driver_sql("SELECT frame_id FROM scores")}
        assert {f["id"] for f in p.frames.frame_rows(r.source_id)} <= scored
        return f"ingested and scored 4 frames from {source['uri']!a}"
    check("non-UTF-8 path", odd_path)

    def long_path(p: Workspace) -> str:
        r = ingest_source(p, corpus["very long path (3000+ characters)"], sampling=Sampling(every=3))
        assert r.ok and r.frames_total == 4
        return f"ingested 4 frames from a path of {len(str(corpus['very long path (3000+ characters)']))} characters"
    check("very long path (3000+ characters)", long_path)

    def srt(p: Workspace) -> str:
        r = ingest_source(p, corpus["malformed SRT"], sampling=Sampling(every=3))
        assert r.ok and r.frames_total == 4 and any("DJI_0001.SRT" in w for w in r.warnings)
        return next(w for w in r.warnings if "DJI_0001.SRT" in w)
    check("malformed SRT", srt)

    def bad_onnx(p: Workspace) -> str:
        # A damaged model file in the cache is exported again; scoring goes on.
        for f in (model_cache / "onnx").glob("imagenet-*.onnx"):
            f.write_bytes(b"this is not an ONNX file")
        with pytest.raises(TriageError, match="not a usable ONNX model") as err:
            from triage_app.core.scoring.members.runtime import OnnxSession

            OnnxSession(next((model_cache / "onnx").glob("imagenet-*.onnx")), 224)
        p.db.write(lambda conn: conn.exec_driver_sql("DELETE FROM scores"))
        s = score_project(p)
        assert s.frames_scored > 0 and "imagenet" in s.members
        return str(err.value) + " (then exported again and scored)"
    check("ONNX file that is not ONNX", bad_onnx)

    newer = tmp_path / "newer"
    shutil.copytree(root, newer)
    raw = sqlite3.connect(newer / "project.db")
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    raw.commit()
    raw.close()
    before = (newer / "project.db").read_bytes()

    def newer_db(_p: Workspace) -> str:
        with pytest.raises(TriageError, match="made by a newer triage_app") as err:
            Workspace(newer)
        assert str(newer / "project.db") in str(err.value) and (newer / "project.db").read_bytes() == before
        return str(err.value)
    check("database from a newer version", newer_db)
    print(f"bad-input corpus: {tried} cases tried, each named, {len(recorded)} recorded decisions intact")
    assert tried == FIRST_CORPUS_KINDS


def test_a_project_of_the_first_schema_opens_with_its_data_and_a_backup(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from triage_app.core.store.migrations import MIGRATIONS

    path = tmp_path / "project.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # exactly what the first release wrote
        MIGRATIONS[0](conn)
        conn.exec_driver_sql("PRAGMA user_version = 1")
        conn.exec_driver_sql("INSERT INTO sources (id, kind, uri, name, added_at, sampling) VALUES "
                             "(1, 'video', '/data/f.mp4', 'f.mp4', '2025-01-01T00:00:00', '{}')")
        for i in range(50):
            conn.exec_driver_sql("INSERT INTO frames (source_id, idx, timestamp_s, lat, lon, quality_flag) VALUES "
                                 f"(1, {i}, {i / 10}, 47.{i:02d}, 8.5, {'NULL' if i % 7 else repr('blurred')})")
        conn.exec_driver_sql("INSERT INTO messages (created_at, level, message) VALUES ('t', 'warning', 'kept')")
    engine.dispose()
    with Workspace(tmp_path) as p:
        assert p.db.version == SCHEMA_VERSION
        frames = p.frames.frame_rows()
        assert len(frames) == 50 and frames[49]["lat"] == pytest.approx(47.49) and frames[7]["quality_flag"] == "blurred"
        assert p.frames.source(1)["uri"] == "/data/f.mp4" and p.frames.message_rows()[0]["message"] == "kept"
        backup = p.db.backup_path
        # The current schema works on it: a decision on a migrated frame.
        p.decisions.record([dict(frame_id=frames[0]["id"], label="accept", reviewer="a", seconds_spent=1,
                                      policy="p", member_scores="{}")])
    assert backup is not None and backup.parent == tmp_path and ".v1-" in backup.name
    old = sqlite3.connect(backup)
    assert old.execute("PRAGMA user_version").fetchone()[0] == 1
    assert old.execute("SELECT count(*) FROM frames").fetchone()[0] == 50
