from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from triage_app.core.model.errors import StoreError, StoreVersionError
from triage_app.core.store import SCHEMA_VERSION, Workspace
from triage_app.core.store import db as dbmod
from triage_app.core.store.migrations import MIGRATIONS


def test_new_project_is_wal_with_foreign_keys_and_version(tmp_path: Path) -> None:
    with Workspace(tmp_path / "p") as project:
        with project.db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        sid, created = project.frames.add_source("video", "/x.mp4", "x.mp4", {"every": 1})
        assert created and project.frames.add_source("video", "/x.mp4", "x.mp4", {"every": 1}) == (sid, False)
        with pytest.raises(StoreError, match="FOREIGN KEY"):
            project.frames.add_frames([{"source_id": sid + 100, "idx": 0, "timestamp_s": 0.0}])
    raw = sqlite3.connect(tmp_path / "p" / "project.db")
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "project.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE keep (x)")
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    before = path.read_bytes()
    with pytest.raises(StoreVersionError, match=str(path)):
        Workspace(tmp_path)
    assert path.read_bytes() == before


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "project.db").write_text("this is not a database\n" * 100)
    with pytest.raises(StoreError, match="not a triage project database"):
        Workspace(tmp_path)


def test_migration_keeps_data_and_makes_a_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Workspace(tmp_path) as project:
        sid, _ = project.frames.add_source("video", "/x.mp4", "x.mp4", {})
        project.frames.add_frames([{"source_id": sid, "idx": i, "timestamp_s": i / 10} for i in range(20)])
    # A later version adds a step; opening the project must run it once, after a backup.
    calls: list[int] = []

    def step(conn) -> None:
        calls.append(1)
        conn.execute(text("ALTER TABLE frames ADD COLUMN extra REAL"))

    monkeypatch.setattr(dbmod, "MIGRATIONS", [*MIGRATIONS, step])
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Workspace(tmp_path) as project:
        assert project.db.version == SCHEMA_VERSION + 1
        assert len(project.frames.frame_rows()) == 20 and "extra" in project.frames.frames.c
        backup = project.db.backup_path
    assert backup is not None and backup.exists()
    old = sqlite3.connect(backup)
    assert old.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert old.execute("SELECT count(*) FROM frames").fetchone()[0] == 20
    with Workspace(tmp_path):
        pass
    assert calls == [1]


def test_failed_migration_step_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Workspace(tmp_path):
        pass

    def bad(conn) -> None:
        conn.execute(text("CREATE TABLE half (x)"))
        raise RuntimeError("boom")

    monkeypatch.setattr(dbmod, "MIGRATIONS", [*MIGRATIONS, bad])
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(RuntimeError):
        Workspace(tmp_path)
    raw = sqlite3.connect(tmp_path / "project.db")
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert raw.execute("SELECT count(*) FROM sqlite_master WHERE name='half'").fetchone()[0] == 0


def test_writer_and_readers_never_see_locked(project_at) -> None:
    """A scoring-like writer, a second process-like writer and GUI-like readers at once, on
    both stores."""
    errors: list[BaseException] = []
    where = project_at()
    with Workspace(where) as project, Workspace(where) as other:
        sid, _ = project.frames.add_source("video", "/x.mp4", "x.mp4", {})
        sid2, _ = other.frames.add_source("video", "/y.mp4", "y.mp4", {})
        stop = threading.Event()

        def writer(p: Workspace, source: int) -> None:
            try:
                for i in range(0, 400, 4):
                    p.frames.add_frames([{"source_id": source, "idx": i + k, "timestamp_s": 0.0} for k in range(4)])
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        def reader() -> None:
            try:
                while not stop.is_set():
                    project.frames.source_summaries()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(project, sid)), threading.Thread(target=writer, args=(other, sid2))]
        readers = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads + readers:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        for t in readers:
            t.join()
        assert not errors, errors
        counts = {s["id"]: s["frames"] for s in project.frames.source_summaries()}
        assert counts == {sid: 400, sid2: 400}


def _older_project(root: Path, version: int, *statements: str) -> None:
    """A project database as schema ``version`` left it, holding what ``statements`` insert."""
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{root / 'project.db'}")
    with engine.begin() as conn:
        for step in MIGRATIONS[:version]:
            step(conn)
        conn.exec_driver_sql(f"PRAGMA user_version = {version}")
        for sql in statements:
            conn.exec_driver_sql(sql)
    engine.dispose()


def test_policies_set_before_the_assurance_existed_read_as_strict(tmp_path: Path) -> None:

    _older_project(tmp_path, 6, "INSERT INTO policies (created_at, created_by, rule, thresholds, target_recall) VALUES "
                                "('2026-01-01T00:00:00', 'sam', 'any', '{\"imagenet\": 0.2}', 0.9)")
    with Workspace(tmp_path) as p:
        old = p.policies.current()
        assert old["target_recall"] == 0.9 and old["confidence"] == 0.95 and old["thresholds"] == {"imagenet": 0.2}
        p.policies.save("any", {"imagenet": 0.1}, "sam", target_recall=0.9, confidence=0.8)
        assert p.policies.current()["confidence"] == 0.8


def test_frames_of_an_older_project_gain_a_focal_length_left_empty(tmp_path: Path) -> None:
    _older_project(tmp_path, 7, "INSERT INTO sources (kind, uri, name, added_at, sampling) VALUES "
                                "('video', '/f.mp4', 'f.mp4', '2026-01-01T00:00:00', '{}')",
                   "INSERT INTO frames (source_id, idx, timestamp_s, lat, lon) VALUES (1, 0, 0.0, 45.0, 7.0)")
    with Workspace(tmp_path) as p:
        old = p.frames.frame_rows()[0]
        assert old["lat"] == 45.0 and old["focal_35mm"] is None
        p.frames.add_frames([{"source_id": 1, "idx": 1, "timestamp_s": 1.0, "focal_35mm": 24.0}])
        assert [r["focal_35mm"] for r in p.frames.frame_rows()] == [None, 24.0]


def test_a_project_learnt_before_the_guard_keeps_the_ranking_before_as_its_reference(tmp_path: Path) -> None:
    """Schema 13 kept each frame's score under the ranking before the latest; migrated, that
    ranking is the latest's reference, and the next learning keeps the scores it replaces."""
    ranking = ("INSERT INTO rankings (created_at, decisions, positives, negatives, metrics, last_decision) VALUES "
               "('2026-01-01T00:00:00', {0}, 2, {1}, '{{}}', NULL)")
    _older_project(tmp_path, 13, "INSERT INTO sources (kind, uri, name, added_at, sampling) VALUES "
                                 "('video', '/f.mp4', 'f.mp4', '2026-01-01T00:00:00', '{}')",
                   "INSERT INTO frames (source_id, idx, timestamp_s) VALUES (1, 0, 0.0), (1, 1, 1.0)",
                   ranking.format(25, 23), ranking.format(50, 48),
                   "INSERT INTO rank_scores (frame_id, ranking_id, score, oof, previous) VALUES (1, 2, 0.5, NULL, 0.1), "
                   "(2, 2, -1.0, NULL, -2.0)")
    with Workspace(tmp_path) as p:
        assert p.rankings.previous() == {"id": 1, "decisions": 25, "last_decision": None}
        assert p.rankings.rank_scores().previous.tolist() == [0.1, -2.0]
        p.rankings.save([1, 2], [0.7, -3.0], {}, 75, 3, 72, {}, None, guard=25)
        assert p.rankings.previous()["id"] == 2  # learnt from 25 decisions fewer
        assert p.rankings.rank_scores().previous.tolist() == [0.5, -1.0]
