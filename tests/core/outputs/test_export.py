"""Export of decided frames: image folders that torchvision loads, manifests that match the
database, stratified seeded splits, balancing, maps, and all-or-nothing writing."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from tests.conftest import scored_project
from triage_app.cli import main
from triage_app.core.outputs.export import writer as export_mod
from triage_app.core.outputs.export.plan import Options, Selection, plan_export
from triage_app.core.outputs.export.writer import ExportError, export, safe_name
from triage_app.core.store import Workspace


def _decide(p: Workspace) -> dict[str, int]:
    """Decisions as a team makes them: two analysts, audit samples, an unsure frame, an undone
    decision, and one frame the analysts disagree on. Returns frame ids of note."""
    frames = p.frames.frame_rows()
    store = p.decisions
    rows = []
    for r in frames:
        label = "accept" if r["idx"] % 6 == 0 else "reject"
        rows.append(dict(frame_id=r["id"], label=label, reviewer="ana" if r["idx"] < 24 else "ben", seconds_spent=1.5,
                         policy="rule any", member_scores=json.dumps({"imagenet": 0.1 + r["idx"] / 100}),
                         fused_score=r["idx"] / 10, sample_kind="audit" if r["idx"] == 10 else "candidate"))
    store.record(rows)
    unsure, undone, disputed = frames[1]["id"], frames[2]["id"], frames[4]["id"]  # idx 2, 4, 8
    store.record([dict(frame_id=unsure, label="unsure", reviewer="ana", seconds_spent=1, policy="p", member_scores="{}")])
    [wrong] = store.record([dict(frame_id=undone, label="accept", reviewer="ana", seconds_spent=1, policy="p", member_scores="{}")])
    store.undo([wrong])
    store.record([dict(frame_id=disputed, label="accept", reviewer="ben", seconds_spent=1, policy="p", member_scores="{}",
                       sample_kind="second")])
    return dict(unsure=unsure, undone=undone, disputed=disputed)


@pytest.fixture
def decided(tmp_path: Path, ortho: np.ndarray) -> tuple[Path, dict[str, int]]:
    root = scored_project(tmp_path, ortho, frames=96, members=("imagenet",))
    with Workspace(root) as p:
        marks = _decide(p)
    return root, marks


def _run(root: Path, out: Path, selection: Selection | None = None, **opts):
    with Workspace(root) as p:
        return export(p, out, selection or Selection(), Options(**opts))


def _tree_hashes(root: Path) -> dict[str, str]:
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(root.rglob("*")) if f.is_file()}


def test_export_loads_back_and_matches_the_database(decided: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from torchvision.datasets import ImageFolder

    root, marks = decided
    out = tmp_path / "export"
    report = _run(root, out, formats=("imagefolder", "csv", "parquet", "coco", "crops"), split=(0.5, 0.25, 0.25))
    table = pq.read_table(out / "manifest.parquet").to_pylist()
    with (out / "manifest.csv").open(newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert len(table) == len(csv_rows) == report.rows
    assert [r["file"] for r in csv_rows] == [r["file"] for r in table]

    with Workspace(root) as p:
        frames = {r["id"]: r for r in p.frames.frame_rows()}
        source = p.frames.source_summaries()[0]
        standing = {d.frame_id: d for d in p.decisions.current()}
        scores = p.scores.frame_score_rows(list(frames))
    # 48 frames decided; the unsure one is not asked for by default, the disputed one is held back.
    assert report.rows == 46 and report.held_back == {"disputed": 1, "doubted": 0}
    exported = {r["frame_id"] for r in table}
    assert marks["unsure"] not in exported and marks["disputed"] not in exported
    assert marks["undone"] in exported  # its undone accept is gone: the first reject stands
    for r in table:
        d, f, s = standing[r["frame_id"]], frames[r["frame_id"]], scores[r["frame_id"]]["imagenet"]
        assert r["decision"] == d.label and r["class"] == {"accept": "positive", "reject": "negative"}[d.label]
        assert r["reviewer"] == d.reviewer and r["decided_at"] == d.decided_at and r["decision_id"] == d.id
        assert r["frame_index"] == f["idx"] and r["timestamp_s"] == pytest.approx(f["timestamp_s"])
        assert r["source_name"] == source["name"] and r["source_uri"] == source["uri"]
        assert r["score_imagenet"] == pytest.approx(s["score"]) and r["tile_imagenet"] == s["tile"]
        assert (r["tile_imagenet_x0"], r["tile_imagenet_y0"], r["tile_imagenet_x1"], r["tile_imagenet_y1"]) == (
            s["x0"], s["y0"], s["x1"], s["y1"])
        assert r["score_at_decision_imagenet"] == pytest.approx(json.loads(d.member_scores)["imagenet"])
        assert r["audit_sample"] == (f["idx"] == 10)
        assert r["file"] == f"{r['split']}/{r['class']}/" + Path(r["file"]).name and (out / r["file"]).is_file()
        assert (out / r["crop_file"]).is_file()
    # The CSV says the same as the Parquet file.
    for a, b in zip(csv_rows, table, strict=True):
        assert a["reviewer"] == b["reviewer"] and int(a["frame_index"]) == b["frame_index"]
        assert float(a["score_imagenet"]) == pytest.approx(b["score_imagenet"])

    # Grouped: each event (frames within half a second) lies in one split, so no split holds
    # a near duplicate of another's frame; stratified: each split holds about its share of
    # each class (16 positives, 30 negatives; split 0.5 / 0.25 / 0.25).
    events: dict[tuple[int, int], set[str]] = {}
    for r in table:
        events.setdefault((r["source_id"], int(r["timestamp_s"] // 0.5)), set()).add(r["split"])
    assert len(events) > 10 and all(len(splits) == 1 for splits in events.values())
    by = {(split, c): 0 for split in ("train", "val", "test") for c in ("positive", "negative")}
    for r in table:
        by[(r["split"], r["class"])] += 1
    for c, n in (("positive", 16), ("negative", 30)):
        for split, share in (("train", 0.5), ("val", 0.25), ("test", 0.25)):
            assert abs(by[(split, c)] - share * n) <= 3, (split, c, by)
    n_train = by[("train", "positive")] + by[("train", "negative")]

    # torchvision loads each split as it is, with the decoded frames at full size.
    ds = ImageFolder(str(out / "train"))
    assert ds.classes == ["negative", "positive"] and len(ds) == n_train
    image, target = ds[0]
    assert image.size == (480, 270) and ds.classes[target] in ("negative", "positive")
    assert len(ImageFolder(str(out / "crops" / "train"))) == n_train

    # COCO as a detector's training reads it (pycocotools): one category, the project's target;
    # each accepted frame annotated with its firing tile, each rejected frame an image without one.
    coco = json.loads((out / "coco_train.json").read_text())
    assert len(coco["images"]) == n_train and len(coco["annotations"]) == by[("train", "positive")]
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 480 and y + h <= 270 and w > 0 and h > 0
    assert all((out / im["file_name"]).is_file() for im in coco["images"])
    try:
        from pycocotools.coco import COCO
    except ImportError:
        COCO = None
    if COCO is not None:
        api = COCO(str(out / "coco_train.json"))
        with Workspace(root) as p:
            target = p.settings.target.name
        assert [c["name"] for c in api.loadCats(api.getCatIds())] == [target]
        positives = {im["id"] for im in coco["images"] if im["decision"] == "accept"}
        assert set(api.getImgIds(catIds=api.getCatIds())) == positives
        for im in api.loadImgs(api.getImgIds()):
            assert len(api.getAnnIds(imgIds=[im["id"]])) == (1 if im["decision"] == "accept" else 0)
    balance = json.loads((out / "balance.json").read_text())
    assert balance["after"]["train"] == {"negative": by[("train", "negative")], "positive": by[("train", "positive")]}


def test_same_export_twice_gives_identical_files(decided: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    root, _ = decided
    opts = dict(formats=("imagefolder", "csv", "parquet", "coco"), split=(0.6, 0.2, 0.2), seed=7)
    _run(root, tmp_path / "a", **opts)
    _run(root, tmp_path / "b", **opts)
    a, b = _tree_hashes(tmp_path / "a"), _tree_hashes(tmp_path / "b")
    assert len(a) > 40 and a == b
    # Another seed puts frames in other splits.
    _run(root, tmp_path / "c", **dict(opts, seed=8))
    assert set(_tree_hashes(tmp_path / "c")) != set(a)


def test_selection_filters(decided: tuple[Path, dict[str, int]]) -> None:
    root, marks = decided
    with Workspace(root) as p:
        only_ben = plan_export(p, Selection(reviewers=["ben"]), Options())
        assert only_ben.items and {it.decision.reviewer for it in only_ben.items} == {"ben"}
        positives = plan_export(p, Selection(labels=("accept",)), Options())
        assert {it.cls for it in positives.items} == {"positive"} and len(positives.items) == 16
        with_unsure = plan_export(p, Selection(labels=("accept", "reject", "unsure"), include_doubtful=True),
                                  Options())
        assert marks["unsure"] in {it.frame["id"] for it in with_unsure.items}
        assert marks["disputed"] in {it.frame["id"] for it in with_unsure.items}
        import datetime as dt

        future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
        assert not plan_export(p, Selection(since=future), Options()).items
        assert len(plan_export(p, Selection(until=future), Options()).items) == 46
        assert not plan_export(p, Selection(sources=[999]), Options()).items


def test_balancing_touches_the_training_split_only(decided: tuple[Path, dict[str, int]]) -> None:
    root, _ = decided
    with Workspace(root) as p:
        plain = plan_export(p, Selection(), Options())
        under = plan_export(p, Selection(), Options(balance="under"))
        over = plan_export(p, Selection(), Options(balance="over"))
    neg, pos = plain.counts()["train"]["negative"], plain.counts()["train"]["positive"]
    assert neg > pos > 0
    assert under.counts()["train"] == {"negative": pos, "positive": pos} and under.dropped_by_balance == neg - pos
    assert over.counts()["train"] == {"negative": neg, "positive": neg}
    assert sum(1 for it in over.items if it.copy) == neg - pos
    # Validation and test keep the natural mix.
    assert under.counts()["val"] == plain.counts()["val"] and over.counts()["test"] == plain.counts()["test"]
    for plan in (under, over):
        assert plan.counts()["val"] == plain.counts()["val"] and plan.counts()["test"] == plain.counts()["test"]
        assert plan.before_balance == plain.counts()


def test_names_are_sanitised_and_the_folder_is_written_whole_or_not_at_all(
        decided: tuple[Path, dict[str, int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = decided
    with Workspace(root) as p:
        p.frames.update_source(1, name="../../etc/ évil name?.mp4")
    out = tmp_path / "exp"
    _run(root, out, formats=("imagefolder", "csv"))
    files = [f for f in out.rglob("*") if f.is_file()]
    assert files and all(out in f.resolve().parents for f in files)
    names = {f.name for f in files if f.suffix == ".jpg"}
    assert all(n.startswith("s001-evil_name-f") for n in names) and len(names) == 46
    assert safe_name("..") == "source" and safe_name("a/b\\c:d") == "a_b_c_d" and len(safe_name("x" * 500)) == 60

    # An existing export is not replaced unless asked, and then only once the new one is whole.
    with pytest.raises(ExportError, match="not empty"):
        _run(root, out, formats=("csv",))
    before = _tree_hashes(out)

    calls = {"n": 0}
    real = export_mod._encode

    def disk_full(*a, **k):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(export_mod, "_encode", disk_full)
    with pytest.raises(ExportError, match="No space left on device") as err:
        _run(root, out, formats=("imagefolder", "csv"), overwrite=True)
    assert str(out) in str(err.value) and "nothing was exported" in str(err.value)
    assert _tree_hashes(out) == before  # the old export is untouched
    with pytest.raises(ExportError, match="No space left"):
        _run(root, tmp_path / "new", formats=("imagefolder",))
    assert not (tmp_path / "new").exists()
    assert sorted(x.name for x in tmp_path.iterdir() if x.name.startswith(".")) == []  # no partial folder left
    monkeypatch.undo()

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="a-file"):
        _run(root, blocker / "exp")
    _run(root, out, formats=("csv",), overwrite=True)
    assert sorted(f.name for f in out.iterdir()) == ["balance.json", "export.json", "manifest.csv"]


def test_accepted_frames_with_gps_become_map_points(decided: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    root, _ = decided
    with Workspace(root) as p:
        frames = p.frames.frame_rows()
        gps = {r["id"]: (47.0 + r["idx"] * 1e-4, 8.0 + r["idx"] * 2e-4) for r in frames if r["idx"] % 12 == 0}

        # Half of them also carry height and gimbal angles: their point is the firing tile's
        # place on the ground, ahead of an aircraft looking north at 45° down.
        oblique = {r["id"] for r in frames if r["idx"] % 24 == 0}

        def fn(conn):
            for fid, (lat, lon) in gps.items():
                extra = dict(rel_alt=100.0, gimbal_pitch=-45.0, gimbal_yaw=0.0) if fid in oblique else {}
                conn.execute(update(p.frames.frames).where(p.frames.frames.c.id == fid).values(
                    lat=lat, lon=lon, captured_at="2026-05-01T10:00:00Z", telemetry_matched=1, **extra))

        p.db.write(fn)
        accepted_gps = {d.frame_id for d in p.decisions.current() if d.label == "accept" and d.frame_id in gps}
    out = tmp_path / "geo"
    report = _run(root, out, formats=("csv", "geojson", "kml"))
    assert report.geo_points == len(accepted_gps) == 8
    fc = json.loads((out / "accepted.geojson").read_text())
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 8
    for feat in fc["features"]:
        lon, lat = feat["geometry"]["coordinates"]
        props = feat["properties"]
        fid = next(f for f in accepted_gps if frames[[r["id"] for r in frames].index(f)]["idx"] == props["frame"])
        assert (props["aircraft_lat"], props["aircraft_lon"]) == pytest.approx(gps[fid])
        if fid in oblique:
            assert props["position"].startswith("firing tile on the ground")
            north = math.radians(lat - gps[fid][0]) * 6_367_500
            east = math.radians(lon - gps[fid][1]) * 6_388_800 * math.cos(math.radians(lat))
            assert math.hypot(east, north) == pytest.approx(props["ground_distance_m"], rel=0.01)
            assert 40 < north < 250  # ahead (north), between the picture's bottom and top edges
        else:
            assert (lat, lon) == pytest.approx(gps[fid])
            assert props["position"] == "aircraft (the tile could not be placed: no height above take-off)"
        assert (out / props["thumbnail"]).is_file() and "score_imagenet" in props and props["time"]
    assert {f["properties"]["position"][:4] for f in fc["features"]} == {"airc", "firi"}
    # Places as the finds list numbers them: the points are 100 m and more apart, each its own.
    assert sorted(f["properties"]["place"] for f in fc["features"]) == list(range(1, 9))
    kml = ET.parse(out / "accepted.kml").getroot()
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    coords = [pm.find("k:Point/k:coordinates", ns).text for pm in kml.findall(".//k:Placemark", ns)]
    assert len(coords) == 8
    geo_coords = sorted(tuple(round(c, 7) for c in f["geometry"]["coordinates"]) for f in fc["features"])
    assert sorted(tuple(map(float, c.split(","))) for c in coords) == pytest.approx(geo_coords)
    # The KMZ travels whole: the same placemarks, and every thumbnail they show inside it.
    import re
    import zipfile

    with zipfile.ZipFile(out / "accepted.kmz") as z:
        names = z.namelist()
        assert names[0] == "doc.kml" and z.read("doc.kml") == (out / "accepted.kml").read_bytes()
        shown = set(re.findall(r'src="([^"]+)"', z.read("doc.kml").decode()))
        assert len(shown) == 8 and shown <= set(names)


def test_cli_export(decided: tuple[Path, dict[str, int]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = decided
    out = tmp_path / "cli"
    assert main(["export", str(root), str(out), "--format", "imagefolder,parquet", "--split", "0.8,0.1,0.1",
                 "--balance", "under", "--reviewers", "ana,ben"]) == 0
    text = capsys.readouterr().out
    m = re.search(r"exported (\d+) decided frames", text)
    train = re.search(r"train: negative (\d+) \(was (\d+)\), positive (\d+)\n", text)
    assert m and train, text
    neg, was, pos = (int(g) for g in train.groups())
    assert neg == pos and was > neg and int(m.group(1)) == 46 - (was - neg)
    assert "held back: 1 frames with an unresolved disagreement" in text
    assert main(["export", str(root), str(tmp_path / "x"), "--format", "tiff"]) == 2
    assert "unknown export format tiff" in capsys.readouterr().err
    assert main(["export", str(root), str(tmp_path / "x"), "--split", "0.5,0.5,0.5"]) == 2
    assert main(["export", str(root), str(tmp_path / "x"), "--sources", "nope"]) == 2
    assert "no source named or numbered 'nope'" in capsys.readouterr().err
    assert main(["export", str(root), str(out)]) == 3  # a folder it names cannot be used
    assert "not empty" in capsys.readouterr().err


def test_overwrite_replaces_only_an_earlier_export(decided: tuple[Path, dict[str, int]], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``--overwrite`` never deletes a project, its footage, or a folder of the user's own."""
    root, _ = decided
    project_files = _tree_hashes(root)
    # The project folder itself, and the folder that holds it (and its footage), are refused.
    for target in (root, root.parent):
        with pytest.raises(ExportError, match="holds this project"):
            _run(root, target, formats=("csv",), overwrite=True)
    assert main(["export", str(root), str(root), "--format", "csv", "--overwrite"]) == 3
    assert "holds this project" in capsys.readouterr().err
    assert _tree_hashes(root) == project_files

    # A folder of the user's notes is not an export.
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("call the pilot")
    with pytest.raises(ExportError, match="not an earlier export"):
        _run(root, notes, formats=("csv",), overwrite=True)
    # Nor is it one because somebody wrote an export.json there.
    (notes / "export.json").write_text("{}")
    with pytest.raises(ExportError, match="not an earlier export"):
        _run(root, notes, formats=("csv",), overwrite=True)
    assert (notes / "todo.txt").read_text() == "call the pilot"

    # An earlier export into which the user put something of their own is kept too.
    out = tmp_path / "exp"
    _run(root, out, formats=("csv",))
    (out / "my-notes.md").write_text("keep me")
    with pytest.raises(ExportError, match="did not write.*my-notes.md"):
        _run(root, out, formats=("csv",), overwrite=True)
    (out / "my-notes.md").unlink()

    # An export folder that holds footage of the project, or a project, is kept.
    with Workspace(root) as p:
        src_id = int(p.frames.source_summaries()[0]["id"])
        old_uri = p.frames.source(src_id)["uri"]
        p.frames.update_source(src_id, uri=str(out / "train" / "flight.mp4"))
    with pytest.raises(ExportError, match="holds footage"):
        _run(root, out, formats=("csv",), overwrite=True)
    with Workspace(root) as p:
        p.frames.update_source(src_id, uri=old_uri)
    (out / "train").mkdir(exist_ok=True)
    (out / "train" / "project.db").write_bytes(b"")
    with pytest.raises(ExportError, match="project database"):
        _run(root, out, formats=("csv",), overwrite=True)
    (out / "train" / "project.db").unlink()

    # A plain earlier export is replaced.
    report = _run(root, out, formats=("imagefolder", "csv"), overwrite=True)
    assert report.rows > 0 and (out / "manifest.csv").is_file() and (out / "train").is_dir()


def test_yolo_export_is_read_as_a_detection_dataset(decided: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    """images/<split> beside labels/<split>, as YOLO trainers find labels (the image path with
    images -> labels): the accepted frames' firing tiles as class 0 (the target), the rejected
    frames' label files empty, data.yaml naming the target."""
    import cv2

    root, _marks = decided
    out = tmp_path / "export"
    report = _run(root, out, formats=("yolo", "csv"), split=(0.5, 0.25, 0.25))
    with (out / "manifest.csv").open(newline="") as fh:
        rows = {Path(r["file"]).name: r for r in csv.DictReader(fh)}
    images = sorted((out / "yolo" / "images").rglob("*.*"))
    assert len(images) == report.rows == len(rows)
    with Workspace(root) as p:
        target = p.settings.target.name
    data = (out / "yolo" / "data.yaml").read_text()
    assert "train: images/train" in data and f"0: '{target}'" in data
    boxes = 0
    for img in images:
        label = Path(str(img).replace(f"{'/'}images{'/'}", "/labels/")).with_suffix(".txt")
        row = rows[img.name]
        assert label.is_file() and img.parent.name == row["split"]
        lines = label.read_text().split()
        if row["class"] == "negative":
            assert lines == []
            continue
        cls, cx, cy, w, h = (float(v) for v in lines)
        height, width = cv2.imread(str(img)).shape[:2]
        x0, y0, x1, y1 = (float(row[f"tile_imagenet_{k}"]) for k in ("x0", "y0", "x1", "y1"))
        assert cls == 0 and (cx, cy) == (pytest.approx((x0 + x1) / 2 / width, abs=1e-5), pytest.approx((y0 + y1) / 2 / height, abs=1e-5))
        assert (w, h) == (pytest.approx((x1 - x0) / width, abs=1e-5), pytest.approx((y1 - y0) / height, abs=1e-5))
        boxes += 1
    assert boxes == sum(r["class"] == "positive" for r in rows.values()) > 0
