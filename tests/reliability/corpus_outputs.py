"""Bad-input corpus: export arguments and folders, crafted frame paths, hostile names."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.reliability.corpus_harness import Ctx, case, ingest_source_in
from triage_app.core.store import Workspace


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
    assert rc == 3 and "notes.txt" in err and target.read_text() == "mine"
    return err.strip()


@case("export --overwrite onto the project")
def _(c: Ctx) -> str:
    rc, _out, err = c.cli("export", c.root, c.root, "--overwrite")
    assert rc == 3 and (c.root / "project.db").is_file()
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
