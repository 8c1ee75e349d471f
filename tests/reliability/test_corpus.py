"""The second bad-input corpus: what a careless, hurried or hostile user does to a project.

Every case starts from a copy of one small real project (a flight ingested, scored and with
four decisions recorded) and checks what the user would: a message naming the file and the
problem, the rest of the work carrying on, and the recorded decisions unchanged (their count
and a hash of their content, after every case). With the first corpus
(``test_bad_inputs.py``) more than sixty kinds of bad input are covered."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import write_flight
from triage_app.cli import main
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.ingest.telemetry.srt import parse_srt, parse_srt_text
from triage_app.core.model.errors import TelemetryParseError, TriageError
from triage_app.core.model.records import Sampling
from triage_app.core.scoring.pipeline import score_project
from triage_app.core.store import Workspace

SRT_CUE = ("{n}\n00:00:{s:02d},000 --> 00:00:{s:02d},900\n<font size=\"28\">FrameCnt: {n}, DiffTime: 1000ms\n"
           "2024-05-01 10:00:{s:02d}.000\n[iso: 100] [shutter: 1/1000.0] [fnum: 280] [ev: 0] [latitude: {lat}] "
           "[longitude: {lon}] [rel_alt: 50.000 abs_alt: 300.000] </font>\n\n")


def srt_text(cues: int = 12, lat: str = "45.037854", lon: str = "7.654321") -> str:
    return "".join(SRT_CUE.format(n=i + 1, s=i, lat=lat, lon=lon) for i in range(cues))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, ortho: np.ndarray, model_cache: Path) -> tuple[Path, Path]:
    """(a scored project with four decisions, its flight video)."""
    tmp = tmp_path_factory.mktemp("corpus-base")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRIAGE_SETTINGS", str(tmp / "user-settings.toml"))
        mp.setenv("TRIAGE_CACHE_DIR", str(model_cache))
        video = write_flight(tmp / "flight.mp4", ortho, frames=12)
        root = tmp / "project"
        root.mkdir()
        (root / "settings.toml").write_text('[scoring]\nmembers = ["imagenet"]\ndevice = "cpu"\n')
        with Workspace(root) as ws:
            ingest_source(ws, video, sampling=Sampling(every=3))
            score_project(ws)
            ws.decisions.record([dict(frame_id=r["id"], label="accept" if i % 2 else "reject", reviewer="ana",
                                      seconds_spent=1, policy="p", member_scores="{}")
                                 for i, r in enumerate(ws.frames.frame_rows())])
    return root, video


@dataclass
class Ctx:
    root: Path  # a copy of the project, this case's own
    tmp: Path
    video: Path  # the good flight
    ortho: np.ndarray
    capsys: pytest.CaptureFixture[str]

    def cli(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = self.capsys.readouterr()
        return rc, out, err

    def photo(self, path: Path, size: tuple[int, int] = (160, 120), **save: object) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        crop = self.ortho[900:900 + size[1], 900:900 + size[0], ::-1]
        Image.fromarray(np.ascontiguousarray(crop)).save(path, **save)
        return path


def digest(root: Path) -> tuple[int, str]:
    """(count, hash) of the recorded decisions."""
    db = sqlite3.connect(root / "project.db")
    try:
        rows = db.execute("SELECT id, frame_id, label, reviewer, decided_at FROM decisions ORDER BY id").fetchall()
    finally:
        db.close()
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


CASES: dict[str, Callable[[Ctx], str]] = {}


def case(name: str) -> Callable[[Callable[[Ctx], str]], Callable[[Ctx], str]]:
    def put(fn: Callable[[Ctx], str]) -> Callable[[Ctx], str]:
        CASES[name] = fn
        return fn
    return put


def srt_error(c: Ctx, name: str, data: bytes | str, problem: str) -> str:
    path = c.tmp / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    with pytest.raises(TelemetryParseError) as err:
        parse_srt(path)
    assert name in str(err.value) and problem in str(err.value), str(err.value)
    return str(err.value)


# -- telemetry -----------------------------------------------------------------------------
@case("SRT of zero bytes")
def _(c: Ctx) -> str:
    return srt_error(c, "empty.SRT", b"", "file is empty")


@case("SRT of binary data")
def _(c: Ctx) -> str:
    return srt_error(c, "binary.SRT", b"\x00\x01\x02" * 1000, "binary data")


@case("SRT of cue numbers only")
def _(c: Ctx) -> str:
    return srt_error(c, "numbers.SRT", "1\n\n2\n\n3\n", "no subtitle cues with telemetry")


@case("SRT whose cues carry no time")
def _(c: Ctx) -> str:
    return srt_error(c, "untimed.SRT", "[latitude: 45.0] [longitude: 7.0]\n\n[latitude: 45.1] [longitude: 7.1]\n",
                     "neither a time range nor a date")


@case("telemetry /dev/zero")
def _(c: Ctx) -> str:
    with pytest.raises(TelemetryParseError, match="not a regular file") as err:
        parse_srt("/dev/zero")
    r = ingest_source_in(c, c.video, telemetry=Path("/dev/zero"))
    assert r.ok and any("/dev/zero" in w and "not a regular file" in w for w in r.warnings)
    return str(err.value)


@case("telemetry pointing at a folder")
def _(c: Ctx) -> str:
    with pytest.raises(TelemetryParseError, match="is a folder") as err:
        parse_srt(c.tmp)
    return str(err.value)


@case("SRT larger than any real one")
def _(c: Ctx) -> str:
    big = c.tmp / "huge.SRT"
    with big.open("wb") as fh:
        fh.truncate(300 * 1024 * 1024)  # sparse: nothing is written
    with pytest.raises(TelemetryParseError, match="larger than any real telemetry file") as err:
        parse_srt(big)
    assert "huge.SRT" in str(err.value)
    return str(err.value)


@case("SRT with decimal commas")
def _(c: Ctx) -> str:
    t = parse_srt_text(srt_text(lat="45,037854", lon="7,654321"), "comma.SRT")
    assert t.points[0].lat == pytest.approx(45.037854) and t.points[0].lon == pytest.approx(7.654321)
    warning = next(w for w in t.warnings if "decimal comma" in w)
    assert "comma.SRT" in warning
    return warning


@case("SRT with a 120 kB line")
def _(c: Ctx) -> str:
    text = srt_text(3) + "4\n00:00:04,000 --> 00:00:04,900\n" + "latitudes" * 14_000 + "\n\n"
    t0 = time.perf_counter()
    t = parse_srt_text(text, "long.SRT")
    seconds = time.perf_counter() - t0
    assert seconds < 2.0, seconds  # was 40 s for a 40 kB line before every pattern was made linear
    assert len(t.points) == 3
    return next(w for w in t.warnings if "characters skipped" in w)


@case("SRT in Latin-1 with an unreadable value")
def _(c: Ctx) -> str:
    text = srt_text(3).replace("[iso: 100]", "[iso: abc] [note: caf\xe9]")
    t = parse_srt_text(text.encode("latin-1").decode("latin-1"), "latin.SRT")
    assert len(t.points) == 3 and t.points[0].iso is None
    return f"latin.SRT: {len(t.points)} cues read, the unreadable ISO left empty"


@case("SRT whose times go backwards")
def _(c: Ctx) -> str:
    cues = srt_text(4).split("\n\n")
    t = parse_srt_text("\n\n".join([cues[2], cues[0], cues[1], cues[3]]) + "\n\n", "backwards.SRT")
    assert [p.t for p in t.points] == sorted(p.t for p in t.points)
    return next(w for w in t.warnings if "backwards" in w)


@case("SRT with positions off the globe")
def _(c: Ctx) -> str:
    t = parse_srt_text(srt_text(3, lat="145.0", lon="400.0"), "offglobe.SRT")
    assert all(p.lat is None and p.lon is None for p in t.points)
    return "offglobe.SRT: latitudes past 90 and longitudes past 180 are not stored"


@case("SRT of another flight")
def _(c: Ctx) -> str:
    srt = c.tmp / "other.SRT"
    srt.write_text(srt_text(12).replace("00:00:", "01:30:"))  # an hour and a half later
    r = ingest_source_in(c, c.video, telemetry=srt)
    assert r.ok and r.telemetry_matched == 0
    return f"{srt}: matched {r.telemetry_matched} of {r.frames_total} frames (its times lie past the video's end)"


def ingest_source_in(c: Ctx, uri: Path | str, telemetry: Path | None = None, every: int = 3):
    with Workspace(c.root) as ws:
        return ingest_source(ws, uri, telemetry, sampling=Sampling(every=every))


# -- stills --------------------------------------------------------------------------------
def folder_case(c: Ctx, make: Callable[[Path], str], flag: str | None, note: str | None = None) -> str:
    """A folder with one good photo and one odd file; the odd one named with the problem
    (flag and note), the good one ingested."""
    folder = c.tmp / "photos"
    c.photo(folder / "good.jpg")
    name = make(folder)
    r = ingest_source_in(c, folder)
    with Workspace(c.root) as ws:
        rows = {f["path"]: f for f in ws.frames.frame_rows(r.source_id)}
    assert rows["good.jpg"]["quality_flag"] is None, rows["good.jpg"]
    if flag is None:
        assert rows[name]["quality_flag"] in (None, "under_exposed", "over_exposed", "blurred"), rows[name]
        return f"{name}: read ({rows[name]['width']}x{rows[name]['height']})"
    assert rows[name]["quality_flag"] == flag, rows[name]
    message = next(w for w in r.warnings if name in w)
    if note:
        assert note in message, message
    return message


@case("zero-byte JPEG")
def _(c: Ctx) -> str:
    return folder_case(c, lambda f: (f / "empty.jpg").write_bytes(b"") and "empty.jpg" or "empty.jpg", "undecodable")


@case("text file named .png")
def _(c: Ctx) -> str:
    return folder_case(c, lambda f: ((f / "notes.png").write_text("not a picture\n" * 50), "notes.png")[1], "undecodable")


@case("JPEG cut in half")
def _(c: Ctx) -> str:
    def make(f: Path) -> str:
        whole = c.photo(c.tmp / "whole.jpg", (400, 300), quality=90).read_bytes()
        (f / "half.jpg").write_bytes(whole[: len(whole) // 2])
        return "half.jpg"
    return folder_case(c, make, "undecodable", "half.jpg")


@case("PNG named .jpg")
def _(c: Ctx) -> str:
    return folder_case(c, lambda f: (c.photo(f / "really_png.jpg", format="PNG"), "really_png.jpg")[1], None)


@case("one-pixel image")
def _(c: Ctx) -> str:
    return folder_case(c, lambda f: (Image.new("RGB", (1, 1), (90, 90, 90)).save(f / "dot.png"), "dot.png")[1], None)


@case("10000 x 2 pixel strip")
def _(c: Ctx) -> str:
    return folder_case(c, lambda f: (Image.new("RGB", (10000, 2), (90, 120, 90)).save(f / "strip.png"), "strip.png")[1], None)


@case("16-bit greyscale PNG")
def _(c: Ctx) -> str:
    def make(f: Path) -> str:
        Image.fromarray((np.random.default_rng(0).random((120, 160)) * 65535).astype(np.uint16)).save(f / "deep.png")
        return "deep.png"
    return folder_case(c, make, None)


@case("CMYK JPEG")
def _(c: Ctx) -> str:
    def make(f: Path) -> str:
        Image.fromarray(np.ascontiguousarray(c.ortho[900:1020, 900:1060, ::-1])).convert("CMYK").save(f / "cmyk.jpg")
        return "cmyk.jpg"
    return folder_case(c, make, None)


@case("PNG with transparency")
def _(c: Ctx) -> str:
    def make(f: Path) -> str:
        Image.fromarray(np.ascontiguousarray(c.ortho[900:1020, 900:1060, ::-1])).convert("RGBA").save(f / "alpha.png")
        return "alpha.png"
    return folder_case(c, make, None)


@case("dangling link named .jpg")
def _(c: Ctx) -> str:
    def make(f: Path) -> str:
        os.symlink(c.tmp / "nowhere.jpg", f / "gone.jpg")
        return "gone.jpg"
    folder = c.tmp / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    c.photo(folder / "good.jpg")
    make(folder)
    r = ingest_source_in(c, folder)
    assert r.ok and r.frames_total >= 1
    return f"{folder / 'gone.jpg'}: a link to nothing is not a photo; {r.frames_total} frame(s) ingested"


@case("folder named .jpg inside a photo folder")
def _(c: Ctx) -> str:
    folder = c.tmp / "photos"
    (folder / "album.jpg").mkdir(parents=True)
    c.photo(folder / "good.jpg")
    r = ingest_source_in(c, folder)
    assert r.ok and r.frames_total == 1
    return f"{folder / 'album.jpg'}: a folder is not a photo; 1 frame ingested"


@case("EXIF with nonsense GPS")
def _(c: Ctx) -> str:
    def make(f: Path) -> str:
        img = Image.fromarray(np.ascontiguousarray(c.ortho[900:1020, 900:1060, ::-1]))
        exif = Image.Exif()
        exif[0x8825] = {1: "Q", 2: (999.0, 0.0, 0.0), 3: "Z", 4: (720.0, 0.0, 0.0)}
        img.save(f / "badgps.jpg", exif=exif)
        return "badgps.jpg"
    msg = folder_case(c, make, None)
    with Workspace(c.root) as ws:
        row = next(r for r in ws.frames.frame_rows() if r["path"] == "badgps.jpg")
    assert row["lat"] is None or abs(row["lat"]) <= 90
    return msg + "; no position off the globe stored"


# -- re-ingest -----------------------------------------------------------------------------
@case("photos added to a folder after its ingest")
def _(c: Ctx) -> str:
    folder = c.tmp / "survey"
    for n in (2, 3):
        c.photo(folder / f"IMG_{n:04d}.jpg")
    first = ingest_source_in(c, folder)
    assert first.frames_total == 2
    for n in (1, 4):
        c.photo(folder / f"IMG_{n:04d}.jpg")
    again = ingest_source_in(c, folder)
    with Workspace(c.root) as ws:
        paths = sorted(f["path"] for f in ws.frames.frame_rows(again.source_id))
    assert paths == ["IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg", "IMG_0004.jpg"], paths
    assert again.frames_new == 2 and again.frames_total == 4
    return f"{folder}: ingested again, 2 new photos (IMG_0001, IMG_0004), each photo once"


@case("a photo unreadable at first, mended later")
def _(c: Ctx) -> str:
    folder = c.tmp / "survey"
    c.photo(folder / "a.jpg")
    (folder / "b.jpg").write_bytes(b"\xff\xd8 still copying")
    first = ingest_source_in(c, folder)
    assert first.flagged.get("undecodable") == 1
    c.photo(folder / "b.jpg")  # the copy finished
    again = ingest_source_in(c, folder)
    with Workspace(c.root) as ws:
        row = next(f for f in ws.frames.frame_rows(again.source_id) if f["path"] == "b.jpg")
    assert row["quality_flag"] is None and row["width"] == 160
    assert again.frames_total == 2 and again.frames_new == 0
    return next(x for x in again.changes if "could not be read before were read now" in x)


@case("telemetry named wrongly, then rightly")
def _(c: Ctx) -> str:
    video = c.tmp / "DJI_0007.mp4"
    shutil.copy(c.video, video)
    first = ingest_source_in(c, video, telemetry=c.tmp)  # a folder, by mistake
    assert first.telemetry_matched == 0
    srt = c.tmp / "right.SRT"
    srt.write_text(srt_text(12))
    again = ingest_source_in(c, video, telemetry=srt)
    assert again.telemetry_matched == again.frames_total == 4
    with Workspace(c.root) as ws:
        assert all(f["lat"] == pytest.approx(45.037854) for f in ws.frames.frame_rows(again.source_id))
    return next(x for x in again.changes if "matched again" in x)


# -- settings and tables -------------------------------------------------------------------
@case("settings.toml that is not TOML")
def _(c: Ctx) -> str:
    (c.root / "settings.toml").write_text("[scoring\nmembers = imagenet\n")
    rc, _out, err = c.cli("report", c.root)
    assert rc == 2 and "settings.toml" in err
    return err.strip()


@case("settings.toml with an unknown key")
def _(c: Ctx) -> str:
    (c.root / "settings.toml").write_text('[review]\nreveiwer = "ana"\n')
    rc, _out, err = c.cli("report", c.root)
    assert rc == 2 and "settings.toml" in err and "reveiwer" in err
    return err.strip()


@case("settings.toml with a value of the wrong kind")
def _(c: Ctx) -> str:
    (c.root / "settings.toml").write_text('[review]\ntarget_recall = "high"\n')
    rc, _out, err = c.cli("report", c.root)
    assert rc == 2 and "target_recall" in err
    return err.strip()


@case("targets.toml naming classes ImageNet lacks")
def _(c: Ctx) -> str:
    user = Path(os.environ["TRIAGE_SETTINGS"]).parent / "targets.toml"
    from triage_app.core.model import targets

    bad = c.tmp / "targets.toml"
    bad.write_text('[ufo]\nimagenet_classes = ["flying saucer"]\n')
    with pytest.raises(TriageError, match="not ImageNet's: flying saucer") as err:
        targets.load_targets(user_file=bad)
    assert not user.exists() or user != bad
    return str(err.value)


@case("a target nobody defined")
def _(c: Ctx) -> str:
    rc, _out, err = c.cli("target", c.root, "kayak")
    assert rc == 2 and "unknown target 'kayak'" in err
    with Workspace(c.root) as ws:
        assert ws.target.name != "kayak"
    return err.strip()


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
    assert rc == 2 and "project.db" in err and "not a triage project database" in err
    return err.strip()


@case("project.db that is a folder")
def _(c: Ctx) -> str:
    other = c.tmp / "other"
    (other / "project.db").mkdir(parents=True)
    rc, _out, err = c.cli("report", other)
    assert rc == 2 and "is a folder, not a project database" in err
    return err.strip()


@case("report on a folder that is no project")
def _(c: Ctx) -> str:
    folder = c.tmp / "holiday-photos"
    folder.mkdir()
    for command in ("report", "finds", "retrain"):
        rc, _out, err = c.cli(command, folder)
        assert rc == 2 and "no triage project here" in err, (command, err)
    assert not (folder / "project.db").exists()  # nothing was created there
    return err.strip()


@case("project whose project.db was deleted")
def _(c: Ctx) -> str:
    gone = c.tmp / "gone"
    shutil.copytree(c.root, gone)
    for name in ("project.db", "project.db-wal", "project.db-shm"):
        (gone / name).unlink(missing_ok=True)
    rc, _out, err = c.cli("ingest", gone, c.video)
    assert rc == 2 and "database project.db is missing while its embeddings folder remains" in err
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
    assert rc == 2 and "read-only" in err and str(c.root) in err
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
    assert out.returncode == 2 and "is writing this project" in out.stderr and f"process {os.getpid()}" in out.stderr
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
    assert rc == 2 and "is full" in err and str(c.tmp) in err and not (c.tmp / "out").exists()
    assert not list(c.tmp.glob(".out.partial-*"))
    return err.strip()


# -- export --------------------------------------------------------------------------------
@case("export --policies that are not numbers")
def _(c: Ctx) -> str:
    rc, _out, err = c.cli("export", c.root, c.tmp / "out", "--policies", "abc")
    assert rc == 2 and "policy ids are numbers" in err and not (c.tmp / "out").exists()
    return err.strip()


@case("export --split that is not numbers")
def _(c: Ctx) -> str:
    rc, _out, err = c.cli("export", c.root, c.tmp / "out", "--split", "most,some")
    assert rc == 2 and "Traceback" not in err and "--split" in err and not (c.tmp / "out").exists()
    return err.strip()


@case("export into a file")
def _(c: Ctx) -> str:
    target = c.tmp / "notes.txt"
    target.write_text("mine")
    rc, _out, err = c.cli("export", c.root, target)
    assert rc == 2 and "notes.txt" in err and target.read_text() == "mine"
    return err.strip()


@case("export --overwrite onto the project")
def _(c: Ctx) -> str:
    rc, _out, err = c.cli("export", c.root, c.root, "--overwrite")
    assert rc == 2 and (c.root / "project.db").is_file()
    return err.strip()


def crafted(c: Ctx, path: str) -> tuple[int, str, str]:
    """A project of stills whose database names ``path`` for an accepted frame."""
    folder = c.tmp / "stills"
    c.photo(folder / "a.jpg")
    r = ingest_source_in(c, folder)
    db = sqlite3.connect(c.root / "project.db")
    db.execute("UPDATE frames SET path = ? WHERE source_id = ?", (path, r.source_id))
    fid = db.execute("SELECT id FROM frames WHERE source_id = ?", (r.source_id,)).fetchone()[0]
    db.commit()
    db.close()
    with Workspace(c.root) as ws:
        ws.decisions.record([dict(frame_id=fid, label="accept", reviewer="ana", seconds_spent=1, policy="p",
                                  member_scores="{}")])
    return c.cli("export", c.root, c.tmp / "export", "--format", "imagefolder,csv")


@case("crafted frame path climbing out of its folder")
def _(c: Ctx) -> str:
    secret = c.tmp / "secret.png"
    secret.write_text("password=hunter2")
    rc, out, err = crafted(c, "../secret.png")
    copied = [p for p in (c.tmp / "export").rglob("*") if p.is_file() and b"hunter2" in p.read_bytes()]
    assert not copied and "outside its source: refused" in out + err
    return next(line for line in (out + err).splitlines() if "outside its source" in line).strip()


@case("crafted absolute frame path")
def _(c: Ctx) -> str:
    rc, out, err = crafted(c, "/etc/hostname.png")
    assert "outside its source: refused" in out + err
    return next(line for line in (out + err).splitlines() if "outside its source" in line).strip()


@case("a text file named .png where a frame was")
def _(c: Ctx) -> str:
    folder = c.tmp / "stills"
    rc, out, err = crafted(c, "a.png")
    (folder / "a.png").write_text("password=hunter2")
    rc, out, err = c.cli("export", c.root, c.tmp / "export2", "--format", "imagefolder,csv")
    copied = [p for p in (c.tmp / "export2").rglob("*") if p.is_file() and b"hunter2" in p.read_bytes()]
    assert not copied and "not an image: not copied" in out + err
    return next(line for line in (out + err).splitlines() if "not an image" in line).strip()


# -- hostile names -------------------------------------------------------------------------
HOSTILE = "<img src=x onerror=alert(1)> \x07\x1b[31mred\x1b[0m & \"quotes\""


def hostile_project(c: Ctx) -> Path:
    """Stills in a folder with a hostile name, placed on the ground, one accepted."""
    folder = c.tmp / HOSTILE.replace("/", "_")
    c.photo(folder / "a.jpg")
    r = ingest_source_in(c, folder)
    db = sqlite3.connect(c.root / "project.db")
    db.execute("UPDATE frames SET lat = 45.0, lon = 7.0, rel_alt = 50.0, gimbal_pitch = -90 WHERE source_id = ?",
               (r.source_id,))
    fid = db.execute("SELECT id FROM frames WHERE source_id = ?", (r.source_id,)).fetchone()[0]
    db.commit()
    db.close()
    with Workspace(c.root) as ws:
        ws.decisions.record([dict(frame_id=fid, label="accept", reviewer="ana\x1b[2J", seconds_spent=1, policy="p",
                                  member_scores="{}")])
    return folder


@case("source named with HTML and control characters, exported as KML")
def _(c: Ctx) -> str:
    from lxml import etree

    hostile_project(c)
    rc, out, err = c.cli("export", c.root, c.tmp / "kml", "--format", "kml,csv")
    assert rc == 0, err
    kml = next((c.tmp / "kml").rglob("*.kml"))
    doc = etree.parse(str(kml))  # a real, strict parser: raises on anything that is not XML
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    desc = " ".join(doc.xpath("//k:description/text()", namespaces=ns))
    assert "<img src=x onerror" not in desc and "&lt;img src=x onerror" in desc  # shown as text, not markup
    return f"{kml}: valid XML; the hostile name is escaped text in the description"


@case("finds with a hostile name, saved as GPX")
def _(c: Ctx) -> str:
    from lxml import etree

    hostile_project(c)
    gpx = c.tmp / "places.gpx"
    rc, out, err = c.cli("finds", c.root, "--gpx", gpx)
    assert rc == 0, err
    doc = etree.parse(str(gpx))
    assert doc.getroot().tag.endswith("gpx") and "\x1b" not in gpx.read_text()
    return f"{gpx}: valid XML with the hostile reviewer and source names made safe"


@case("names with terminal escape codes printed by ingest and finds")
def _(c: Ctx) -> str:
    folder = hostile_project(c)
    rc, out, err = c.cli("finds", c.root)
    assert "\x1b" not in out and "\x07" not in out and "\\x1b" in out
    rc, out2, err2 = c.cli("ingest", c.root, folder)
    assert "\x1b" not in out2 + err2 and "\\x1b[31m" in out2
    return next(line for line in out2.splitlines() if "\\x1b" in line).strip()


@case("stream URL with a newline in it")
def _(c: Ctx) -> str:
    rc, out, err = c.cli("ingest", c.root, "rtsp://camera.invalid/live\n\x1b[2Jgone")
    assert rc == 2 or "FAILED" in out
    assert "\x1b[2J" not in out + err
    return next(line for line in (out + err).splitlines() if "rtsp://" in line).strip()


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_input_is_named_and_nothing_recorded_is_lost(name: str, base: tuple[Path, Path], tmp_path: Path,
                                                          ortho: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "project"
    shutil.copytree(base[0], root)
    before = digest(root)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    message = CASES[name](Ctx(root, scratch, base[1], ortho, capsys))
    assert message and message.strip(), name
    if (root / "project.db").is_file() and name != "project.db replaced by garbage":
        count, content = digest(root)
        assert count >= before[0], f"{name}: a recorded decision was lost"
        assert digest_prefix(root, before[0]) == before[1], f"{name}: a recorded decision changed"
    with capsys.disabled():
        print(f"  {name}: {message.splitlines()[0][:150]}")


def digest_prefix(root: Path, n: int) -> str:
    db = sqlite3.connect(root / "project.db")
    try:
        rows = db.execute("SELECT id, frame_id, label, reviewer, decided_at FROM decisions ORDER BY id LIMIT ?", (n,)).fetchall()
    finally:
        db.close()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_the_two_corpora_cover_more_than_sixty_kinds_of_bad_input() -> None:
    from tests.reliability import test_bad_inputs

    first = test_bad_inputs.FIRST_CORPUS_KINDS
    assert len(CASES) + first >= 60, (len(CASES), first)
