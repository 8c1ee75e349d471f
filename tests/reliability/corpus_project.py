"""Bad-input corpus: truth files, the project's own files (database, WAL, embedding cache), a full disk."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.reliability.corpus_harness import Ctx, case, digest
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.model.records import Sampling
from triage_app.core.scoring.pipeline import score_project
from triage_app.core.store import Workspace


# -- truth files for evaluate --------------------------------------------------------------
def truth_error(c: Ctx, name: str, text: str, problem: str) -> str:
    from triage_app.core.evaluation.truth import TruthError, read_truth

    path = c.tmp / name
    path.write_text(text)
    with pytest.raises(TruthError) as err:
        read_truth(path)
    assert name in str(err.value) and problem in str(err.value), str(err.value)
    return str(err.value)


@case("truth CSV without a header")
def _(c: Ctx) -> str:
    return truth_error(c, "truth.csv", "a.jpg,positive\nb.jpg,negative\n", "header")


@case("truth CSV with a label nobody can read")
def _(c: Ctx) -> str:
    return truth_error(c, "truth.csv", "path,label\na.jpg,positive\nb.jpg,maybe\n", "maybe")


@case("Pascal VOC box file that is not XML")
def _(c: Ctx) -> str:
    from triage_app.core.evaluation.truth import TruthError, read_truth

    boxes = c.tmp / "boxes"
    boxes.mkdir()
    (boxes / "a.xml").write_text("<annotation><object><name>car</name>")
    try:
        read_truth(boxes)
    except TruthError as err:
        assert "a.xml" in str(err)
        return str(err)
    raise AssertionError("a broken box file was read without a word")


# -- the project itself --------------------------------------------------------------------
@case("project.db replaced by garbage")
def _(c: Ctx) -> str:
    (c.root / "project.db").write_bytes(b"SQLite format 2\x00" + b"\x13" * 4000)
    for side in ("project.db-wal", "project.db-shm"):
        (c.root / side).unlink(missing_ok=True)
    rc, _out, err = c.cli("report", c.root)
    assert rc == 4 and "project.db" in err and "not a triage project database" in err
    return err.strip()


@case("project.db that is a folder")
def _(c: Ctx) -> str:
    other = c.tmp / "other"
    (other / "project.db").mkdir(parents=True)
    rc, _out, err = c.cli("report", other)
    assert rc == 4 and "is a folder, not a project database" in err
    return err.strip()


@case("report on a folder that is no project")
def _(c: Ctx) -> str:
    folder = c.tmp / "holiday-photos"
    folder.mkdir()
    for command in ("report", "finds", "retrain"):
        rc, _out, err = c.cli(command, folder)
        assert rc == 3 and "no triage project here" in err, (command, err)
    assert not (folder / "project.db").exists()  # nothing was created there
    return err.strip()


@case("project whose project.db was deleted")
def _(c: Ctx) -> str:
    gone = c.tmp / "gone"
    shutil.copytree(c.root, gone)
    for name in ("project.db", "project.db-wal", "project.db-shm"):
        (gone / name).unlink(missing_ok=True)
    rc, _out, err = c.cli("ingest", gone, c.video)
    assert rc == 4 and "database project.db is missing while its embeddings folder remains" in err
    assert not (gone / "project.db").exists()
    return err.strip()


@case("read-only project folder")
def _(c: Ctx) -> str:
    real_access = os.access

    def access(path, mode, *a, **k):  # as a user without write permission sees it (tests run as root)
        if mode & os.W_OK and Path(path) in (c.root, c.root / "project.db"):
            return False
        return real_access(path, mode, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "access", access)
        rc, _out, err = c.cli("report", c.root)
    assert rc == 4 and "read-only" in err and str(c.root) in err
    return err.strip()


@case("project.db-wal deleted after a kill")
def _(c: Ctx) -> str:
    import subprocess
    import sys

    before = digest(c.root)[0]
    script = (f"from triage_app.core.store import Workspace\nimport os\n"
              f"ws = Workspace({str(c.root)!r})\n"
              "ids = [r['id'] for r in ws.frames.frame_rows()]\n"
              "for f in ids:\n"
              "    ws.decisions.record([dict(frame_id=f, label='accept', reviewer='bo', seconds_spent=1, policy='p', member_scores='{}')])\n"
              "print('recorded', flush=True)\n"
              "os._exit(0)  # killed: nothing closes the database\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "recorded" in out.stdout, out.stderr
    (c.root / "project.db-wal").unlink(missing_ok=True)
    (c.root / "project.db-shm").unlink(missing_ok=True)
    after = digest(c.root)[0]
    assert after == before + 4, (before, after)
    return f"{c.root / 'project.db-wal'} deleted after a kill: all {after - before} new decisions are in project.db"


@case("embedding cache cut short")
def _(c: Ctx) -> str:
    f16 = next((c.root / "embeddings").glob("*.f16"))
    size = f16.stat().st_size
    with f16.open("r+b") as fh:
        fh.truncate(size // 2)
    rc, out, err = c.cli("retrain", c.root)
    assert "Traceback" not in err
    with Workspace(c.root) as ws:
        messages = [m["message"] for m in ws.frames.message_rows() if "embedding cache holds" in m["message"]]
        summary = score_project(ws)
        assert summary.frames_scored >= 1  # the frames that lost their rows are embedded again
        arrays, _v = ws.embeddings.newest("imagenet")
        assert set(arrays.frame_ids.tolist()) == {f["id"] for f in ws.frames.frame_rows()}
    assert messages and f16.name in messages[0]
    return messages[0]


@case("embedding cache deleted")
def _(c: Ctx) -> str:
    shutil.rmtree(c.root / "embeddings")
    with Workspace(c.root) as ws:
        summary = score_project(ws)
        assert summary.frames_scored == 4
        messages = [m["message"] for m in ws.frames.message_rows() if "embedding cache holds 0" in m["message"]]
    assert messages
    return messages[0]


@case("embedding index file cut short")
def _(c: Ctx) -> str:
    idx = next((c.root / "embeddings").glob("*.idx"))
    with idx.open("r+b") as fh:
        fh.truncate(16 + 7)  # one whole row and a torn one
    rc, out, err = c.cli("labels", c.root)
    assert "Traceback" not in err
    with Workspace(c.root) as ws:
        messages = [m["message"] for m in ws.frames.message_rows() if "embedding cache holds 1 of" in m["message"]]
    assert messages
    return messages[0]


@case("a second scorer while one is running")
def _(c: Ctx) -> str:
    from triage_app.core.store.lock import ProjectBusy

    with Workspace(c.root) as ws, ws.writing("scoring"):
        import subprocess
        import sys

        out = subprocess.run([sys.executable, "-m", "triage_app.cli", "score", str(c.root)], capture_output=True,
                             text=True, timeout=300, env=dict(os.environ))
        with Workspace(c.root) as other, pytest.raises(ProjectBusy):
            score_project(other)
    assert out.returncode == 4 and "is writing this project" in out.stderr and f"process {os.getpid()}" in out.stderr
    return out.stderr.strip()


@case("disk full during ingest")
def _(c: Ctx) -> str:
    from triage_app.core.model.errors import StoreError
    from triage_app.core.store.frames import FrameStore

    real = FrameStore.add_frames
    calls = {"n": 0}

    def full(self, rows):  # the second batch finds the disk full, as SQLite says it
        calls["n"] += 1
        if calls["n"] > 1:
            raise StoreError(f"{self.db.path}: write failed (database or disk is full)")
        return real(self, rows)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FrameStore, "add_frames", full)
        with Workspace(c.root) as ws:
            r = ingest_source(ws, c.video, sampling=Sampling(every=1), batch=4)
    assert r.error and "disk is full" in r.error and "MB free" in r.error and "frames stored are kept" in r.error
    with Workspace(c.root) as ws:
        source = ws.frames.source(r.source_id)
        assert source["status"] == "partial"  # not left "ingesting"
        again = ingest_source(ws, c.video, sampling=Sampling(every=1))  # room again: it goes on
        assert again.ok and again.frames_total == 12
    return r.error


@case("disk full during export")
def _(c: Ctx) -> str:
    import errno

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device", str(c.video))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shutil, "copyfile", full)
        mp.setattr("triage_app.core.outputs.export.writer._encode", lambda *a, **k: full())
        rc, _out, err = c.cli("export", c.root, c.tmp / "out", "--format", "imagefolder,csv")
    assert rc == 3 and "is full" in err and str(c.tmp) in err and not (c.tmp / "out").exists()
    assert not list(c.tmp.glob(".out.partial-*"))
    return err.strip()
