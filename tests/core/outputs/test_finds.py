from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from tests.conftest import scored_project
from triage_app.cli import main
from triage_app.core.outputs.finds import finds, finds_csv, finds_geojson
from triage_app.core.store import Workspace


def test_finds_are_the_standing_accepts_newest_first_placed_where_the_telemetry_allows(
        tmp_path: Path, ortho: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    root = scored_project(tmp_path, ortho, members=("imagenet",))
    with Workspace(root) as p:
        rows = p.frames.frame_rows()
        a, b, c, d = (r["id"] for r in rows[:4])

        def telemetry(conn):  # a: full telemetry; b: a position only; c, d: nothing
            conn.execute(update(p.frames.frames).where(p.frames.frames.c.id == a).values(
                lat=45.0, lon=7.0, rel_alt=100.0, gimbal_pitch=-45.0, gimbal_yaw=90.0))
            conn.execute(update(p.frames.frames).where(p.frames.frames.c.id == b).values(lat=45.1, lon=7.1))

        p.db.write(telemetry)
        store = p.decisions

        def decide(fid: int, label: str, who: str = "ana") -> int:
            return store.record([dict(frame_id=fid, label=label, reviewer=who, seconds_spent=1.0, policy="p",
                                      member_scores="{}")])[0]

        decide(a, "accept")
        decide(b, "accept", "ben")
        decide(c, "reject")
        store.undo([decide(d, "accept")])  # taken back: not a find
        decide(c, "accept")  # decided again: its standing decision counts
        found = finds(p)
    assert [f.frame_id for f in found] == [c, b, a]  # newest decision first
    by = {f.frame_id: f for f in found}
    assert by[a].placed == "ground" and by[a].distance_m is not None and 60 < by[a].distance_m < 200
    assert by[a].lon > 7.0 and abs(by[a].lat - 45.0) < 0.002  # ahead, to the east
    assert (by[b].placed, by[b].lat, by[b].lon) == ("aircraft", 45.1, 7.1) and "height" in by[b].note
    assert (by[c].placed, by[c].lat) == ("none", None) and by[b].reviewer == "ben"
    assert [f.place for f in found] == [None, 1, 2]  # 45.1° and 45.0° are no single place
    table = list(csv.DictReader(io.StringIO(finds_csv(found))))
    assert [int(r["frame_id"]) for r in table] == [c, b, a] and table[1]["placed"] == "aircraft"
    geo = json.loads(finds_geojson(found))
    assert len(geo["features"]) == 2  # the find with no position has no point
    assert geo["features"][1]["geometry"]["coordinates"] == [by[a].lon, by[a].lat]

    # The same from a terminal.
    assert main(["finds", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3 finds at 2 places, newest first") and "m from the aircraft" in out and "no position" in out
    assert main(["finds", str(root), "--csv", "--geojson", str(tmp_path / "f.geojson")]) == 0
    captured = capsys.readouterr()
    assert captured.out == finds_csv(found) and "wrote 2 finds" in captured.err
    assert json.loads((tmp_path / "f.geojson").read_text()) == geo
    assert main(["finds", str(root), "--gpx", str(tmp_path / "f.gpx")]) == 0
    assert "wrote 2 places" in capsys.readouterr().err
    import xml.etree.ElementTree as ET

    ns = {"g": "http://www.topografix.com/GPX/1/1"}
    wpts = ET.parse(tmp_path / "f.gpx").getroot().findall("g:wpt", ns)
    assert [w.find("g:name", ns).text for w in wpts] == ["Place 1", "Place 2"]
    assert float(wpts[1].get("lat")) == pytest.approx(by[a].lat) and float(wpts[1].get("lon")) == pytest.approx(by[a].lon)
    assert "within" in wpts[1].find("g:desc", ns).text and "aircraft" in wpts[0].find("g:desc", ns).text
    assert main(["finds", str(tmp_path / "nope")]) == 3


def test_finds_whose_ground_discs_overlap_are_one_place() -> None:
    from triage_app.core.ingest.telemetry.geo import offset_to_latlon
    from triage_app.core.outputs.finds import Find, group_places

    def find(fid: int, east: float, north: float, radius: float | None, placed: str = "ground") -> Find:
        lat, lon = offset_to_latlon(45.0, 7.0, east, north)
        return Find(fid, "t", "ana", "f.mp4", fid, 0.0, None, lat, lon, placed, 10.0, radius, "")

    items = [
        find(1, 0, 0, 20),  # newest
        find(2, 30, 0, 15),  # 30 m away, 20 + 15 >= 30: same place as 1
        find(3, 60, 0, 20),  # 30 m from 2 (15 + 20 >= 30): the chain makes it the same place too
        find(4, 500, 0, 20),  # far away: a place of its own
        find(5, 0, 5, None, placed="aircraft"),  # at the aircraft, no radius: its own place
        Find(6, "t", "ana", "f.mp4", 6, 0.0, None, None, None, "none", None, None, "no position"),
        find(7, 545, 0, 20),  # 45 m from 4 (20 + 20 < 45): not the same place
    ]
    assert group_places(items) == 4
    assert [f.place for f in items] == [1, 1, 1, 2, 3, None, 4]
    assert group_places([]) == 0


def test_a_position_names_the_finds_it_overlaps_nearest_first() -> None:
    from triage_app.core.ingest.telemetry.geo import offset_to_latlon
    from triage_app.core.outputs.finds import Find, near

    def find(fid: int, east: float, radius: float | None, placed: str = "ground") -> Find:
        lat, lon = offset_to_latlon(45.0, 7.0, east, 0.0)
        return Find(fid, "t", "ana", "f.mp4", fid, 0.0, None, lat, lon, placed, 10.0, radius, "", place=fid)

    items = [find(1, 40, 15), find(2, 20, 10), find(3, 100, 20), find(4, 5, None, placed="aircraft"), find(5, 0, 10)]
    assert [f.frame_id for f in near(items, 45.0, 7.0, 30.0)] == [5, 2, 1]  # 3 is 100 m off; 4 has no disc
    assert [f.frame_id for f in near(items, 45.0, 7.0, 30.0, exclude=5)] == [2, 1]
    assert near(items, 45.0, 7.0, 5.0) == [items[4]]  # 20 m to find 2 > 5 + 10


def test_gpx_times_are_utc_and_a_camera_clock_without_a_zone_is_not_passed_off_as_one() -> None:
    from lxml import etree

    from triage_app.core.outputs.finds import Find, finds_gpx, group_places

    items = [Find(1, "t", "ana", "f.mp4", 1, 0.0, "2024-05-01T10:30:02+02:00", 45.0, 7.0, "aircraft", None, None, ""),
             Find(2, "t", "bob", "g.mp4", 2, 0.0, "2024-05-01T10:30:02", 46.0, 8.0, "aircraft", None, None, "")]
    group_places(items)
    doc = etree.fromstring(finds_gpx(items).encode())
    ns = {"g": "http://www.topografix.com/GPX/1/1"}
    wpts = doc.findall("g:wpt", ns)
    assert len(wpts) == 2
    times = [w.findtext("g:time", namespaces=ns) for w in wpts]
    assert times == ["2024-05-01T08:30:02Z", None]
    assert "camera clock, zone unknown" in wpts[1].findtext("g:desc", namespaces=ns)


def test_finds_write_gpx_to_standard_output_and_a_closed_pipe_is_no_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    from lxml import etree

    from tests.conftest import REPO

    root = tmp_path / "p"
    with Workspace(root) as ws:  # an empty project: no finds, a valid empty GPX
        ws.frames.source_summaries()
    out = subprocess.run([sys.executable, "-m", "triage_app", "finds", str(root), "--gpx", "-"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0 and etree.fromstring(out.stdout.encode()).tag.endswith("gpx")
    assert not (REPO / "-").exists() and not (root / "-").exists()
    piped = subprocess.run(f"{sys.executable} -m triage_app finds {root} --csv | head -c 1", shell=True, cwd=REPO,
                           capture_output=True, text=True)
    assert "Traceback" not in piped.stderr


def test_an_analyst_says_what_a_find_is_and_every_output_carries_it(tmp_path: Path, ortho: np.ndarray,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from lxml import etree

    from triage_app.core.outputs.finds import finds_gpx

    root = scored_project(tmp_path, ortho, members=("imagenet",))
    with Workspace(root) as p:
        a, b = (r["id"] for r in p.frames.frame_rows()[:2])
        p.decisions.record([dict(frame_id=a, label="accept", reviewer="ana", seconds_spent=1.0, policy="p", member_scores="{}")])
    assert main(["note", str(root), str(a), "--what", "person", "--text", "waving, by the red car"]) == 0
    assert capsys.readouterr().out.startswith(f"frame {a} (frame 0 of source 1): person: waving, by the red car")
    assert main(["note", str(root), str(b), "--what", "debris"]) == 0
    assert "(not a find yet: the frame is not accepted)" in capsys.readouterr().out
    assert main(["note", str(root), str(a)]) == 0  # without --what or --text: what stands
    assert "person: waving, by the red car (by " in capsys.readouterr().out
    assert main(["finds", str(root)]) == 0
    assert "— person: waving, by the red car" in capsys.readouterr().out
    with Workspace(root) as p:
        found = finds(p)
    assert [(f.frame_id, f.what, f.remark) for f in found] == [(a, "person", "waving, by the red car")]
    row = next(csv.DictReader(io.StringIO(finds_csv(found))))
    assert (row["what"], row["remark"]) == ("person", "waving, by the red car")
    found[0].lat, found[0].lon, found[0].place = 45.0, 7.0, 1  # a place, for the GPX
    wpt = etree.fromstring(finds_gpx(found).encode()).find("{http://www.topografix.com/GPX/1/1}wpt")
    tags = [etree.QName(e).localname for e in wpt]
    assert tags == ["name", "desc", "sym", "type"]  # in GPX 1.1's order
    assert wpt[3].text == "person" and wpt[1].text.endswith("; person: waving, by the red car")
    # Taken away again; a frame that does not exist is named.
    assert main(["note", str(root), str(a), "--what", "", "--text", ""]) == 0
    assert "note taken away" in capsys.readouterr().out
    with Workspace(root) as p:
        assert p.notes.of_frames() == {b: p.notes.of_frames([b])[b]} and p.notes.of_frames([b])[b].what == "debris"
    assert main(["note", str(root), "99999", "--what", "x"]) == 3
    assert "has no frame 99999" in capsys.readouterr().err


def test_gps_software_reads_the_places_with_utc_times_and_what_was_found() -> None:
    import datetime as dt

    import gpxpy

    from triage_app.core.outputs.finds import Find, finds_gpx, group_places

    items = [Find(1, "t", "ana", "f.mp4", 12, 3.0, "2024-05-01T10:30:02+02:00", 45.0, 7.0, "ground", 40.0, 12.0, "",
                  what="person", remark="waving"),
             Find(2, "t", "bob", "g.mp4", 2, 0.0, "2024-05-01T10:31:00", 46.0, 8.0, "aircraft", None, None, "no height")]
    group_places(items)
    gpx = gpxpy.parse(finds_gpx(items))
    assert [(w.name, round(w.latitude, 6), round(w.longitude, 6)) for w in gpx.waypoints] == [("Place 1", 45.0, 7.0),
                                                                                             ("Place 2", 46.0, 8.0)]
    first, second = gpx.waypoints
    assert first.time == dt.datetime(2024, 5, 1, 8, 30, 2, tzinfo=dt.timezone.utc) and first.type == "person"
    assert "person: waving" in first.description and second.time is None  # a clock without a zone is no UTC time
