"""Bad-input corpus: odd stills, ingesting again, settings and tables."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.reliability.corpus_harness import Ctx, case, ingest_source_in, srt_text
from triage_app.core.model.errors import TriageError
from triage_app.core.store import Workspace


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
    assert rc == 3 and "settings.toml" in err
    return err.strip()


@case("settings.toml with an unknown key")
def _(c: Ctx) -> str:
    (c.root / "settings.toml").write_text('[review]\nreveiwer = "ana"\n')
    rc, _out, err = c.cli("report", c.root)
    assert rc == 3 and "settings.toml" in err and "reveiwer" in err
    return err.strip()


@case("settings.toml with a value of the wrong kind")
def _(c: Ctx) -> str:
    (c.root / "settings.toml").write_text('[review]\ntarget_recall = "high"\n')
    rc, _out, err = c.cli("report", c.root)
    assert rc == 3 and "target_recall" in err
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
    assert rc == 3 and "unknown target 'kayak'" in err
    with Workspace(c.root) as ws:
        assert ws.target.name != "kayak"
    return err.strip()
