"""The store on both of its databases: a project folder (SQLite) and a team store
(PostgreSQL URL plus shared folder). The same footage, the same scripted decisions and the
same learning give the same records on both; leases keep analysts apart on both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, write_flight
from triage_app.core.model.errors import NoProjectError, StoreError, StoreUnavailable, StoreVersionError
from triage_app.core.store import SCHEMA_VERSION, Workspace

SETTINGS = '[scoring]\nmembers = ["imagenet", "head"]\ndevice = "cpu"\n[review]\nevent_gap_s = 0.5\nsecond_review_share = 0.0\n'


def _fill(where: str, video: Path, second: bool = False) -> dict:
    """Ingest, score, review 16 frames by a script (one undone), learn (with ``second``: review
    6 more and learn again), and read everything back."""
    from triage_app.core.ingest.footage import ingest_source
    from triage_app.core.learning.loop import learn
    from triage_app.core.model.records import Sampling
    from triage_app.core.review.audit import refresh_audit
    from triage_app.core.review.progress import review_progress
    from triage_app.core.review.session import ReviewSession
    from triage_app.core.scoring.pipeline import score_project

    with Workspace(where) as ws:
        (ws.root / "settings.toml").write_text(SETTINGS)
    with Workspace(where) as ws:
        ingest_source(ws, video, sampling=Sampling(every=2))
        score_project(ws)
        refresh_audit(ws)
        marks = ws.change_marks()
        s = ReviewSession(ws, reviewer="ana")
        frames = {f["id"]: f for f in ws.frames.frame_rows()}
        for _ in range(16):
            c = s.current
            s.decide("accept" if frames[c.frame_id]["idx"] % 6 == 0 else "reject")
        assert ws.change_marks() != marks
        assert s.undo() == 1
        s.close()
        learned = learn(ws)
        if second:  # more decisions under that ranking, and a second one
            s = ReviewSession(ws, reviewer="ana")
            for _ in range(6):
                c = s.current
                s.decide("accept" if frames[c.frame_id]["idx"] % 6 == 0 else "reject")
            s.close()
            learn(ws)
        made = ws.rankings.forecasts_made()
        ids, names, mat, _ = ws.scores.score_table()
        ranked = ws.rankings.rank_scores()
        head = ws.heads.latest()
        progress = review_progress(ws)
        return dict(
            frames=[(f["idx"], f["timestamp_s"], f["width"], f["brightness"]) for f in ws.frames.frame_rows()],
            sources=[(s_["name"], s_["frames"]) for s_ in ws.frames.source_summaries()],
            scores={n: mat[:, j] for j, n in enumerate(names)},
            decisions=sorted((d.frame_id, d.label.value, d.reviewer) for d in ws.decisions.current()),
            undone=len(ws.decisions.history()),
            ranking=dict(zip(ranked.frame_ids.tolist(), ranked.scores.tolist(), strict=True)),
            head=(head["n_pos"], head["n_neg"], np.asarray(head["coef"]).tolist()),
            learned=learned.ranking is not None,
            progress=(progress.reviewed, progress.found, progress.left),
            draws=len(ws.rankings.audit_draws()),
            forecasts=made.frame_ids.tolist(),
            forecast_scores=made.scores,
        )


def test_the_same_work_gives_the_same_records_on_both_stores(tmp_path: Path, ortho: np.ndarray, pg_database) -> None:
    video = write_flight(tmp_path / "f.mp4", ortho, frames=48, size=(480, 270))
    url = pg_database()
    Workspace(url, shared=tmp_path / "shared").close()
    on_sqlite = _fill(str(tmp_path / "folder"), video, second=True)
    on_pg = _fill(url, video, second=True)
    for key in ("frames", "sources", "decisions", "undone", "head", "learned", "progress", "draws", "forecasts"):
        assert on_sqlite[key] == on_pg[key], key
    # The six frames decided under the first ranking have forecasts, less one decided and taken
    # back before it was learnt, where the queue offers it again.
    assert on_sqlite["decisions"] and on_sqlite["learned"] and 5 <= len(on_sqlite["forecasts"]) <= 6
    np.testing.assert_allclose(on_pg["forecast_scores"], on_sqlite["forecast_scores"], atol=1e-6)
    for member, col in on_sqlite["scores"].items():
        np.testing.assert_allclose(on_pg["scores"][member], col, atol=1e-9, err_msg=member)
    assert on_sqlite["ranking"].keys() == on_pg["ranking"].keys()
    np.testing.assert_allclose(list(on_pg["ranking"].values()), list(on_sqlite["ranking"].values()), atol=1e-6)
    # The team's embedding cache and settings are in its shared folder.
    assert (tmp_path / "shared" / "embeddings").is_dir() and (tmp_path / "shared" / "settings.toml").is_file()


def test_a_team_store_url_is_checked_before_use(tmp_path: Path, pg_database, pg_admin) -> None:
    url = pg_database()
    with pytest.raises(StoreError, match="holds a password.*pgpass"):
        Workspace(url.replace("postgres@", "postgres:secret@"), shared=tmp_path)
    with pytest.raises(NoProjectError, match="team init"):
        Workspace(url)  # no shared folder given and none recorded: nothing is created
    with pg_admin.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM pg_database WHERE datname = %s",
                                    (url.rsplit("/", 1)[1],)).scalar() == 1
    other = pg_database()
    from sqlalchemy import create_engine

    engine = create_engine(other.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match="not a triage project database.*invoices"):
        Workspace(other, shared=tmp_path / "s")
    newer = pg_database()
    Workspace(newer, shared=tmp_path / "n").close()
    engine = create_engine(newer.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE triage_schema SET version = {SCHEMA_VERSION + 1}")
    engine.dispose()
    with pytest.raises(StoreVersionError, match="newer triage_app"):
        Workspace(newer)


def test_a_team_store_migration_keeps_a_copy_of_every_table(tmp_path: Path, pg_database,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import text

    from triage_app.core.store import db as dbmod
    from triage_app.core.store.migrations import MIGRATIONS

    url = pg_database()
    with Workspace(url, shared=tmp_path / "s") as ws:
        sid, _ = ws.frames.add_source("video", "/x.mp4", "x.mp4", {})
        assert ws.frames.add_frames([{"source_id": sid, "idx": i, "timestamp_s": i / 10} for i in range(20)]) == 20
        assert ws.frames.add_frames([{"source_id": sid, "idx": i, "timestamp_s": i / 10} for i in range(25)]) == 5

    def step(conn) -> None:
        conn.execute(text("ALTER TABLE frames ADD COLUMN extra DOUBLE PRECISION"))

    monkeypatch.setattr(dbmod, "MIGRATIONS", [*MIGRATIONS, step])
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Workspace(url) as ws:
        assert ws.db.version == SCHEMA_VERSION + 1 and "extra" in ws.frames.frames.c
        schema = ws.db.backup_schema
        assert schema is not None and schema.startswith(f"triage_backup_v{SCHEMA_VERSION}_")
        with ws.db.read() as conn:
            assert conn.exec_driver_sql(f'SELECT count(*) FROM "{schema}".frames').scalar() == 25
            assert conn.exec_driver_sql(f'SELECT max(version) FROM "{schema}".triage_schema').scalar() == SCHEMA_VERSION


def _queued(ws: Workspace, n: int = 30) -> list[int]:
    sid, _ = ws.frames.add_source("video", "/x.mp4", "x.mp4", {})
    ws.frames.add_frames([{"source_id": sid, "idx": i, "timestamp_s": float(i)} for i in range(n)])
    return [f["id"] for f in ws.frames.frame_rows()]


def test_leases_keep_reviewers_apart_and_expire(project_at) -> None:
    where = project_at()
    with Workspace(where) as a, Workspace(where) as b:
        ids = _queued(a)
        got_a = a.leases.take("a1", "ana", ids, 3)
        got_b = b.leases.take("b1", "ben", ids, 3)
        assert got_a == ids[:3] and got_b == ids[3:6]
        # The same reviewer in another window (or after a crash) is not kept out.
        assert a.leases.take("a2", "ana", ids, 1) == ids[:1]
        assert set(b.leases.held_by_others("ben")) == set(ids[:3])
        # A decided frame is never leased again, unless for another look.
        a.decisions.record([dict(frame_id=ids[6], label="accept", reviewer="ana", seconds_spent=1.0, policy="p",
                                 member_scores="{}")])
        assert b.leases.take("b1", "ben", ids[6:8], 1) == [ids[7]]
        assert b.leases.take("b1", "ben", ids[6:8], 1, second=[ids[6]]) == [ids[6]]  # a second reviewer
        assert a.leases.take("a9", "ana", [ids[6]], 1, second=[ids[6]]) == []  # never to its first reviewer
        # A holder that stops renewing gives its frames back once the lease expires.
        b.leases.take("b2", "ben", ids[10:12], 2, lease_s=3.0)
        assert a.leases.take("a3", "ana", ids[10:12], 2) == []
        time.sleep(3.2)
        assert a.leases.take("a3", "ana", ids[10:12], 2) == ids[10:12]


def test_undo_takes_back_only_ones_own_decisions(project_at) -> None:
    where = project_at()
    with Workspace(where) as ws:
        ids = _queued(ws, 4)
        row = dict(label="accept", seconds_spent=1.0, policy="p", member_scores="{}")
        mine = ws.decisions.record([dict(row, frame_id=ids[0], reviewer="ana")])
        theirs = ws.decisions.record([dict(row, frame_id=ids[1], reviewer="ben")])
        assert ws.decisions.undo(mine + theirs, reviewer="ana") == 1
        assert {d.frame_id for d in ws.decisions.current()} == {ids[1]}


def test_two_analysts_review_one_project_without_meeting(project_at) -> None:
    """Two review sessions at once (two reviewers), deciding in turn: no frame is shown to
    both, none is decided twice, and together they decide every frame."""
    from triage_app.core.review.session import ReviewSession

    where = project_at()
    with Workspace(where) as setup:
        ids = _queued(setup, 40)
        setup.scores.replace_member_scores("imagenet", setup.scores.model_version("imagenet", "onnx", "k"), ids,
                                           [0.5] * len(ids))
    with Workspace(where) as wa, Workspace(where) as wb:
        for ws in (wa, wb):
            ws.settings.review.second_review_share = 0.0
        sa, sb = ReviewSession(wa, reviewer="ana"), ReviewSession(wb, reviewer="ben")
        seen: list[tuple[str, int]] = []
        for _ in range(40):
            for name, s in (("ana", sa), ("ben", sb)):
                other = sb if s is sa else sa
                if s.current is None:
                    continue
                assert other.current is None or s.current.frame_id != other.current.frame_id
                seen.append((name, s.current.frame_id))
                s.decide("reject")
            if sa.current is None and sb.current is None:
                break
        decided = [d.frame_id for d in wa.decisions.history()]
        assert len(decided) == len(set(decided)) == 40
        assert {n for n, _ in seen} == {"ana", "ben"} and sa.others_took + sb.others_took > 0
        sa.close()
        sb.close()


def test_a_killed_analysts_frame_returns_to_the_pool(project_at, tmp_path: Path) -> None:
    where = project_at()
    with Workspace(where) as ws:
        ids = _queued(ws, 5)
    code = ("import sys, time\nfrom triage_app.core.store import Workspace\n"
            "ws = Workspace(sys.argv[1])\nprint(ws.leases.take('dead', 'cleo', [int(a) for a in sys.argv[2:]], 1, "
            "lease_s=8.0), flush=True)\ntime.sleep(60)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, "-c", code, where, *map(str, ids)], stdout=subprocess.PIPE, text=True,
                             env=env)
    assert child.stdout is not None
    assert json.loads(child.stdout.readline()) == [ids[0]]
    taken = time.monotonic()
    child.send_signal(signal.SIGKILL)
    child.wait()
    with Workspace(where) as ws:
        assert ws.leases.take("alive", "dan", ids, 1) == [ids[1]]  # still held by the dead process
        time.sleep(max(0.0, 8.3 - (time.monotonic() - taken)))
        assert ws.leases.take("alive", "dan", ids, 1) == [ids[0]]


def test_leases_taken_at_once_never_overlap(project_at) -> None:
    """Eight reviewers asking for frames at the same moment, over and over: no frame is held
    by two of them at any time."""
    where = project_at()
    with Workspace(where) as ws:
        ids = _queued(ws, 200)
    held: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    with Workspace(where) as ws:
        barrier = threading.Barrier(8)

        def analyst(k: int) -> None:
            try:
                barrier.wait()
                for _ in range(10):
                    held[f"r{k}"] = ws.leases.take(f"h{k}", f"r{k}", ids, 5)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=analyst, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    every = [f for frames in held.values() for f in frames]
    assert len(every) == 40 and len(set(every)) == 40


def test_a_decision_waits_out_a_database_outage(tmp_path: Path, pg_database, pg_admin) -> None:
    """The team database stops taking connections mid-review: the decision is not lost and not
    acknowledged; it stays on screen, the message says why, and it is sent once the database
    is back."""
    from triage_app.core.review.session import ReviewSession

    url = pg_database()
    name = url.rsplit("/", 1)[1]
    with Workspace(url, shared=tmp_path / "s") as ws:
        ids = _queued(ws, 6)
        ws.scores.replace_member_scores("imagenet", ws.scores.model_version("imagenet", "onnx", "k"), ids, [0.5] * 6)
    with Workspace(url) as ws:
        s = ReviewSession(ws, reviewer="ana")
        on_screen = s.current.frame_id
        with pg_admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            with pytest.raises(StoreUnavailable, match="cannot reach the team database"):
                s.decide("accept")
            assert s.pending is not None and s.current.frame_id == on_screen
            with pytest.raises(StoreUnavailable):
                s.decide("reject")  # the waiting one goes first
            with pytest.raises(StoreUnavailable):
                s.send_pending()
        finally:
            with pg_admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        sent = s.send_pending()
        assert len(sent) == 1 and s.pending is None and s.current.frame_id != on_screen
        assert [(d.frame_id, d.label.value) for d in ws.decisions.current()] == [(on_screen, "accept")]
        s.close()


def test_roles_are_enforced_by_the_database(tmp_path: Path, pg_database, capsys: pytest.CaptureFixture[str]) -> None:
    """`triage team init` makes the roles: an analyst decides (signed as themselves) and takes
    back only their own; a resolution, a policy, another's signature are refused by the server;
    a supervisor may set the policy and resolve."""
    from triage_app.cli import main

    url = pg_database()
    suffix = url.rsplit("_", 1)[1]
    ana, ben, sam = f"ana_{suffix}", f"ben_{suffix}", f"sam_{suffix}"
    assert main(["team", "init", url, "--shared", str(tmp_path / "s"), "--analyst", ana, "--analyst", ben,
                 "--supervisor", sam]) == 0
    out = capsys.readouterr().out
    assert f"analysts: {ana}, {ben}" in out and f"supervisors: {sam}" in out
    with Workspace(url) as owner:
        ids = _queued(owner, 4)
        assert owner.role == "supervisor"  # the database's owner
    as_user = {u: url.replace("postgres@", f"{u}@", 1) for u in (ana, ben, sam)}
    row = dict(label="accept", seconds_spent=1.0, policy="p", member_scores="{}")
    try:
        with Workspace(as_user[ana]) as a:
            assert a.settings.review.reviewer == ana  # decisions are signed by the database user
            assert a.role == "analyst"
            mine = a.decisions.record([dict(row, frame_id=ids[0], reviewer=ana)])
            for bad in (dict(row, frame_id=ids[1], reviewer=ben), dict(row, frame_id=ids[1], reviewer=ana,
                                                                       sample_kind="resolve")):
                with pytest.raises(StoreError, match=f"{ana} may not do this.*row-level security"):
                    a.decisions.record([bad])
            with pytest.raises(StoreError, match="permission denied for table policies"):
                a.policies.save("any", {"imagenet": 0.1}, ana)
            assert a.leases.take("h", ana, ids, 1) == [ids[1]]
            # An analyst's learning replaces the ranking, recording the forecasts of the frames
            # decided under the one it replaces.
            a.rankings.save(ids, [0.5] * len(ids), {}, 0, 0, 0, {}, last_decision=0)
            a.rankings.save(ids, [0.7] * len(ids), {}, 1, 1, 0, {}, last_decision=max(mine))
            made = a.rankings.forecasts_made()
            assert made.frame_ids.tolist() == [ids[0]] and made.scores.tolist() == [0.5]
        with Workspace(as_user[ben]) as b:
            assert b.decisions.undo(mine) == 0  # another's decision: the server shows ben no row to change
        with Workspace(as_user[sam]) as s:
            assert s.role == "supervisor"
            s.policies.save("any", {"imagenet": 0.1}, sam)
            s.decisions.record([dict(row, frame_id=ids[0], reviewer=sam, sample_kind="resolve")])
        with Workspace(as_user[ana]) as a:
            assert a.decisions.undo(mine) == 1
            assert a.policies.current()["created_by"] == sam
    finally:
        from triage_app.core.store.roles import role_names

        with Workspace(url) as owner:
            groups = role_names(owner.db)

        def drop(conn) -> None:  # roles are the server's, not the database's: leave none behind
            for r in (ana, ben, sam, *groups.values()):
                conn.exec_driver_sql(f'DROP OWNED BY "{r}"')
                conn.exec_driver_sql(f'DROP ROLE "{r}"')

        with Workspace(url) as owner:
            owner.db.write(drop)


def test_store_copy_moves_a_project_there_and_back(tmp_path: Path, ortho: np.ndarray, pg_database,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from triage_app.cli import main
    from triage_app.core.store.copy import combined, table_digests

    video = write_flight(tmp_path / "f.mp4", ortho, frames=48, size=(480, 270))
    folder = tmp_path / "folder"
    _fill(str(folder), video)
    url = pg_database()
    assert main(["store", "copy", str(folder), url]) == 2  # a team store needs its shared folder
    assert main(["store", "copy", str(folder), url, "--shared", str(tmp_path / "shared")]) == 0
    out = capsys.readouterr().out
    assert "every table's rows and content hash match" in out and "decisions: 16" in out
    assert main(["store", "copy", str(folder), url, "--shared", str(tmp_path / "shared")]) == 4
    assert "already holds a project" in capsys.readouterr().err
    back = tmp_path / "back"
    assert main(["store", "copy", url, str(back)]) == 0
    with Workspace(folder) as a, Workspace(url) as b, Workspace(back) as c:
        digests = [combined(table_digests(w.db)) for w in (a, b, c)]
        assert digests[0] == digests[1] == digests[2]
        assert len(c.decisions.history()) == len(c.decisions.current()) == 15  # 16 made, one undone
        # The copy goes on working: new rows get new keys, the embedding cache is there.
        c.decisions.record([dict(frame_id=c.frames.frame_rows()[-1]["id"], label="reject", reviewer="x",
                                 seconds_spent=1.0, policy="p", member_scores="{}")])
        b.decisions.record([dict(frame_id=b.frames.frame_rows()[-1]["id"], label="reject", reviewer="x",
                                 seconds_spent=1.0, policy="p", member_scores="{}")])
        assert max(d.id for d in b.decisions.history()) == 17
        pooled = [w.embeddings.pooled("imagenet")[0] for w in (a, b)]
        np.testing.assert_array_equal(pooled[0], pooled[1])
