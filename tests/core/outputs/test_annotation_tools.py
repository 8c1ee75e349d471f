"""The round trip through annotation tools: accepted frames out to CVAT and Label Studio with
the tile that fired pre-drawn, the boxes people draw there back in as the frames' annotations,
and the training formats (COCO, YOLO) built from them; and the FiftyOne dataset with each
frame's position."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from lxml import etree
from sqlalchemy import update

from tests.conftest import scored_project
from tests.core.outputs.test_export import _decide
from triage_app.cli import main
from triage_app.core.model.errors import InputError
from triage_app.core.outputs.annotation_import import import_annotations
from triage_app.core.outputs.export.plan import Options, Selection
from triage_app.core.outputs.export.writer import export
from triage_app.core.store import Workspace


@pytest.fixture
def decided(tmp_path: Path, ortho: np.ndarray) -> Path:
    root = scored_project(tmp_path, ortho, frames=96, members=("imagenet",))
    with Workspace(root) as p:
        _decide(p)
    return root


def _export(root: Path, out: Path, *formats: str) -> None:
    with Workspace(root) as p:
        export(p, out, Selection(), Options(formats=("csv", *formats), overwrite=True))


def _manifest(out: Path) -> dict[str, dict[str, str]]:
    with (out / "manifest.csv").open(newline="") as fh:
        return {Path(r["file"]).name: r for r in csv.DictReader(fh)}


def _firing(row: dict[str, str]) -> tuple[float, ...]:
    return tuple(float(row[f"firing_{k}"]) for k in ("x0", "y0", "x1", "y1"))


def test_accepted_frames_go_to_cvat_with_the_firing_tile_and_drawn_boxes_come_back(decided: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _export(decided, out, "cvat")
    rows = _manifest(out)
    accepted = {n for n, r in rows.items() if r["class"] == "positive"}
    doc = etree.parse(str(out / "cvat" / "annotations.xml")).getroot()
    with Workspace(decided) as p:
        target = p.settings.target.name
    assert doc.findtext("version") == "1.1"
    assert [lab.findtext("name") for lab in doc.iterfind("meta/task/labels/label")] == [target]
    images = doc.findall("image")
    assert {i.get("name") for i in images} == accepted and len(accepted) > 3
    for img in images:  # each named as its uploaded file, its size, the tile that fired drawn on it
        name = img.get("name")
        assert (out / "cvat" / "images" / name).read_bytes() == (out / rows[name]["file"]).read_bytes()
        assert (int(img.get("width")), int(img.get("height"))) == (int(rows[name]["width"]), int(rows[name]["height"]))
        [box] = img.findall("box")
        assert box.get("label") == target and box.get("source") == "auto"
        assert tuple(float(box.get(k)) for k in ("xtl", "ytl", "xbr", "ybr")) == pytest.approx(_firing(rows[name]))

    # In CVAT people tighten the boxes, add one, outline another as a polygon, clear one frame,
    # and CVAT exports the task as "CVAT for images 1.1" (it keeps the file names).
    names = sorted(accepted)
    tight, two, poly, cleared = names[0], names[1], names[2], names[3]
    for img in images:
        box = img.find("box")
        if img.get("name") == tight:
            box.set("xtl", "10.5"), box.set("ytl", "20"), box.set("xbr", "60"), box.set("ybr", "45.25")
            box.set("source", "manual")
        elif img.get("name") == two:
            extra = copy.deepcopy(box)
            extra.set("label", "trailer"), extra.set("xtl", "100"), extra.set("ytl", "100"), extra.set("xbr", "130"),
            extra.set("ybr", "9999")  # past the frame's edge: clipped to it
            img.append(extra)
        elif img.get("name") == poly:
            img.remove(box)
            etree.SubElement(img, "polygon", label=target, points="5,7;40,9;30,50", occluded="0", z_order="0")
        elif img.get("name") == cleared:
            img.remove(box)
    back = tmp_path / "cvat_export.xml"
    etree.ElementTree(doc).write(str(back), xml_declaration=True, encoding="utf-8")
    with Workspace(decided) as p:
        report = import_annotations(p, back)
        drawn = p.annotations.of_frames()
    assert (report.tool, report.frames, report.empty, report.skipped) == ("cvat", len(accepted), 1, [])
    by_name = {n: drawn[int(rows[n]["frame_id"])] for n in accepted}
    assert [(b.label, b.x0, b.y0, b.x1, b.y1) for b in by_name[tight].boxes] == [(target, 10.5, 20, 60, 45.25)]
    assert [b.label for b in by_name[two].boxes] == [target, "trailer"]
    assert by_name[two].boxes[1].y1 == float(rows[two]["height"])
    assert [(b.x0, b.y0, b.x1, b.y1) for b in by_name[poly].boxes] == [(5, 7, 40, 50)]
    assert by_name[cleared].boxes == [] and all(a.tool == "cvat" for a in drawn.values())

    # The training formats now carry the drawn boxes: COCO as pycocotools reads it, YOLO's labels.
    from pycocotools.coco import COCO

    out2 = tmp_path / "out2"
    _export(decided, out2, "coco", "yolo", "cvat")
    anns: dict[str, list[tuple[str, list[float], str]]] = {}
    for split in ("train", "val", "test"):
        c = COCO(str(out2 / f"coco_{split}.json"))
        assert [c.cats[k]["name"] for k in sorted(c.cats)] == [target, "trailer"]
        for a in c.dataset["annotations"]:
            anns.setdefault(Path(c.imgs[a["image_id"]]["file_name"]).name, []).append(
                (c.cats[a["category_id"]]["name"], a["bbox"], a["attributes"]["box"]))
    assert anns[tight] == [(target, [10.5, 20, 49.5, 25.25], "drawn")]
    assert [a[0] for a in anns[two]] == [target, "trailer"] and cleared not in anns
    # Frames whose pre-drawn tile nobody changed come back as it was: the annotator let it stand.
    untouched = [n for n in names[4:] if n in anns]
    for n in untouched:
        x0, y0, x1, y1 = _firing(rows[n])
        assert anns[n] == [(target, pytest.approx([x0, y0, x1 - x0, y1 - y0]), "drawn")]
    assert untouched
    yolo_dir = out2 / "yolo"
    assert "0: '" + target + "'" in (yolo_dir / "data.yaml").read_text() and "1: 'trailer'" in (yolo_dir / "data.yaml").read_text()
    split = rows[two]["split"]
    lines = (yolo_dir / "labels" / split / (Path(two).stem + ".txt")).read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == ["0", "1"]
    assert (yolo_dir / "labels" / rows[cleared]["split"] / (Path(cleared).stem + ".txt")).read_text() == ""
    # ... and a second round in CVAT starts from them: drawn boxes go out as drawn (manual).
    again = {i.get("name"): i for i in etree.parse(str(out2 / "cvat" / "annotations.xml")).getroot().iterfind("image")}
    assert [(b.get("source"), float(b.get("xtl"))) for b in again[tight].findall("box")] == [("manual", 10.5)]
    assert again[cleared].findall("box") == []


def test_label_studio_tasks_carry_the_tile_as_a_prediction_and_its_exports_come_back(decided: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _export(decided, out, "label-studio")
    rows = _manifest(out)
    accepted = {n for n, r in rows.items() if r["class"] == "positive"}
    tasks = json.loads((out / "label-studio" / "tasks.json").read_text())
    config = etree.fromstring((out / "label-studio" / "config.xml").read_bytes())
    with Workspace(decided) as p:
        target = p.settings.target.name
    assert config.find("Image").get("name") == "image" and config.find("RectangleLabels").get("toName") == "image"
    assert [lab.get("value") for lab in config.iterfind("RectangleLabels/Label")] == [target]
    assert len(tasks) == len(accepted)
    for t in tasks:  # the image under the local-files path, the frame's identity, the tile in percent
        name = t["data"]["image"].split("?d=")[1]
        assert (out / name).read_bytes() == (out / rows[Path(name).name]["file"]).read_bytes()
        row = rows[Path(name).name]
        assert t["data"]["frame_id"] == int(row["frame_id"])
        [r] = t["predictions"][0]["result"]
        w, h = int(row["width"]), int(row["height"])
        v = r["value"]
        assert (r["from_name"], r["to_name"], r["type"], r["original_width"], r["original_height"]) == (
            config.find("RectangleLabels").get("name"), "image", "rectanglelabels", w, h)
        x0, y0, x1, y1 = _firing(row)
        assert (v["x"], v["y"], v["width"], v["height"]) == pytest.approx((100 * x0 / w, 100 * y0 / h, 100 * (x1 - x0) / w,
                                                                          100 * (y1 - y0) / h))
        assert v["rectanglelabels"] == [target]

    # Label Studio's JSON export after annotation: people accepted the prediction on one task,
    # drew a rotated box on another, cancelled a third (skipped: not an annotation), redrew a
    # fourth twice (the later one counts); the rest were never opened.
    exported = []
    for n, t in enumerate(tasks):
        pred = t["predictions"][0]["result"]
        row = rows[Path(t["data"]["image"]).name]
        w, h = int(row["width"]), int(row["height"])
        anns = []
        if n == 0:
            anns = [dict(id=1, completed_by=dict(id=7, email="ana@example.org"), result=pred, was_cancelled=False,
                         created_at="2026-11-30T10:00:00Z", updated_at="2026-11-30T10:00:00Z")]
        elif n == 1:
            box = dict(pred[0], value=dict(x=50.0, y=50.0, width=10.0, height=20.0, rotation=90, rectanglelabels=[target]))
            anns = [dict(id=2, completed_by=7, result=[box], was_cancelled=False, created_at="2026-11-30T10:01:00Z")]
        elif n == 2:
            anns = [dict(id=3, completed_by=7, result=[], was_cancelled=True, created_at="2026-11-30T10:02:00Z")]
        elif n == 3:
            first = dict(pred[0], value=dict(pred[0]["value"], x=1.0))
            later = dict(pred[0], value=dict(x=20.0, y=10.0, width=5.0, height=5.0, rotation=0, rectanglelabels=[target]))
            anns = [dict(id=5, completed_by=8, result=[later], was_cancelled=False, updated_at="2026-11-30T11:00:00Z"),
                    dict(id=4, completed_by=7, result=[first], was_cancelled=False, updated_at="2026-11-30T10:03:00Z")]
        exported.append(dict(id=n + 1, data=t["data"], annotations=anns, predictions=t["predictions"]))
        if n == 1:
            rotated = (w * 0.5 - h * 0.2, h * 0.5, w * 0.5, h * 0.5 + w * 0.1)  # turned 90° clockwise about its top left
        if n == 3:
            later_px = (0.2 * w, 0.1 * h, 0.25 * w, 0.15 * h)
    f = tmp_path / "project-1-at-2026-11-30.json"
    f.write_text(json.dumps(exported))
    with Workspace(decided) as p:
        report = import_annotations(p, f)
        drawn = p.annotations.of_frames()
    assert (report.tool, report.frames, report.skipped) == ("label-studio", 3, [])
    fid = [t["data"]["frame_id"] for t in tasks]
    assert set(drawn) == {fid[0], fid[1], fid[3]}
    x0, y0, x1, y1 = _firing(rows[Path(tasks[0]["data"]["image"]).name])
    [b] = drawn[fid[0]].boxes
    assert (b.label, b.x0, b.y0, b.x1, b.y1) == (target, pytest.approx(x0), pytest.approx(y0), pytest.approx(x1), pytest.approx(y1))
    assert drawn[fid[0]].annotator == "ana@example.org"
    assert [(b.x0, b.y0, b.x1, b.y1) for b in drawn[fid[1]].boxes] == [pytest.approx(rotated)]
    assert [(b.x0, b.y0, b.x1, b.y1) for b in drawn[fid[3]].boxes] == [pytest.approx(later_px)]
    assert drawn[fid[3]].annotator == "8"

    # JSON-MIN, the flat export: the data fields and the box tool's values at the top level.
    row = rows[Path(tasks[4]["data"]["image"]).name]
    w, h = int(row["width"]), int(row["height"])
    mini = [dict(tasks[4]["data"], id=5, annotator="ben", label=[dict(x=10.0, y=20.0, width=30.0, height=40.0, rotation=0,
                                                                          rectanglelabels=["person"], original_width=w,
                                                                          original_height=h)])]
    f2 = tmp_path / "min.json"
    f2.write_text(json.dumps(mini))
    with Workspace(decided) as p:
        assert import_annotations(p, f2).frames == 1
        [b] = p.annotations.of_frames([fid[4]])[fid[4]].boxes
    assert (b.label, b.x0, b.y0, b.x1, b.y1) == ("person", pytest.approx(0.1 * w), pytest.approx(0.2 * h),
                                                 pytest.approx(0.4 * w), pytest.approx(0.6 * h))


def test_an_import_names_what_it_cannot_use_and_records_the_rest(decided: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    _export(decided, out, "cvat")
    doc = etree.parse(str(out / "cvat" / "annotations.xml")).getroot()
    stranger = etree.SubElement(doc, "image", id="999", name="holiday.jpg", width="10", height="10")
    etree.SubElement(stranger, "box", label="x", xtl="1", ytl="1", xbr="5", ybr="5")
    good = tmp_path / "good.xml"
    etree.ElementTree(doc).write(str(good))
    broken = tmp_path / "broken.xml"
    broken.write_text("<annotations><image name='a.jpg'><box label='x' xtl='1'")
    not_cvat = tmp_path / "other.xml"
    not_cvat.write_text("<kml/>")
    with Workspace(decided) as p:
        for bad, says in ((broken, "not well-formed XML"), (not_cvat, "not a CVAT export")):
            with pytest.raises(InputError, match=says) as err:
                import_annotations(p, bad)
            assert str(bad) in str(err.value)
        assert p.annotations.of_frames() == {}
    rc = main(["annotations", "import", str(decided), str(broken), str(good)])
    captured = capsys.readouterr()
    assert rc == 0 and "broken.xml: is not well-formed XML" in captured.err
    assert "1 skipped (first: holiday.jpg: not a frame of this project)" in captured.out
    with Workspace(decided) as p:
        assert len(p.annotations.of_frames()) == len(doc.findall("image")) - 1
    assert main(["annotations", "list", str(decided), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed and all(r["tool"] == "cvat" and r["file"] == "good.xml" and len(r["boxes"]) == 1 for r in listed)
    assert main(["annotations", "import", str(decided), str(not_cvat)]) == 1


def test_fiftyone_dataset_has_every_frame_with_its_position(decided: Path, tmp_path: Path) -> None:
    with Workspace(decided) as p:
        frames = p.frames.frame_rows()
        gps = {r["id"]: (47.0 + r["idx"] * 1e-4, 8.0 + r["idx"] * 2e-4) for r in frames if r["idx"] % 4 == 0}

        def fn(conn):
            for fid, (lat, lon) in gps.items():
                conn.execute(update(p.frames.frames).where(p.frames.frames.c.id == fid).values(
                    lat=lat, lon=lon, rel_alt=80.0, gimbal_pitch=-90.0, gimbal_yaw=0.0, telemetry_matched=1))

        p.db.write(fn)
    out = tmp_path / "out"
    _export(decided, out, "fiftyone")
    rows = _manifest(out)
    fc = json.loads((out / "fiftyone" / "labels.json").read_text())
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == len(rows)
    placed = 0
    for feat in fc["features"]:
        props = feat["properties"]
        row = rows[props["filename"]]
        assert (out / "fiftyone" / "data" / props["filename"]).read_bytes() == (out / row["file"]).read_bytes()
        assert (props["label"], props["frame_id"], props["split"]) == (row["class"], int(row["frame_id"]), row["split"])
        fid = int(row["frame_id"])
        if fid in gps:
            assert feat["geometry"]["type"] == "Point"
            assert feat["geometry"]["coordinates"] == pytest.approx([gps[fid][1], gps[fid][0]])
            if row["class"] == "positive":  # looking straight down from 80 m: the tile lies within metres
                assert abs(props["target_lat"] - gps[fid][0]) < 5e-4 and abs(props["target_lon"] - gps[fid][1]) < 5e-4
                placed += 1
        else:
            assert feat["geometry"] is None
    assert placed > 0
    try:  # FiftyOne's own reader, where it is installed (it needs no database to read the files)
        from fiftyone.utils.geojson import GeoJSONDatasetImporter
    except ImportError:
        return
    importer = GeoJSONDatasetImporter(str(out / "fiftyone"))
    importer.setup()
    samples = list(importer)
    assert len(samples) == len(rows)
    located = [s for s in samples if s["location"] is not None]
    assert len(located) == sum(int(r["frame_id"]) in gps for r in rows.values())
