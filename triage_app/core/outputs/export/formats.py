"""The files of an export besides the images: the manifest (CSV and Parquet, one column
list for both), GeoJSON and KML points of accepted frames with GPS, and COCO-style JSON."""

from __future__ import annotations

import csv
import html
import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, cast

from triage_app import __version__
from triage_app.core.ingest.telemetry.geo import ground_position
from triage_app.core.model.records import Label, Why
from triage_app.core.model.settings import GeoSettings
from triage_app.core.model.text import utc_time, xml_safe
from triage_app.core.outputs.export.plan import Item
from triage_app.core.outputs.finds import place_numbers

RESOLVE = Why.RESOLVE.value

_FRAME_COLS = ("lat", "lon", "rel_alt", "abs_alt", "gimbal_pitch", "gimbal_yaw", "gimbal_roll", "aircraft_pitch",
               "aircraft_yaw", "aircraft_roll", "iso", "shutter_s", "fnum", "focal_35mm")


def manifest_columns(members: list[str]) -> list[tuple[str, str]]:
    """(name, type) of every manifest column; type is int, float, str or bool."""
    cols = [("file", "str"), ("split", "str"), ("class", "str"), ("decision", "str"), ("copy", "int"),
            ("source_id", "int"), ("source_name", "str"), ("source_uri", "str"), ("source_kind", "str"),
            ("frame_id", "int"), ("frame_index", "int"), ("timestamp_s", "float"), ("captured_at", "str"),
            ("frame_path", "str"), ("width", "int"), ("height", "int"), ("telemetry_matched", "bool"),
            ("quality_flag", "str")]
    cols += [(c, "float") for c in _FRAME_COLS]
    for m in members:
        cols += [(f"score_{m}", "float"), (f"score_at_decision_{m}", "float"), (f"tile_{m}", "int"),
                 (f"tile_{m}_x0", "int"), (f"tile_{m}_y0", "int"), (f"tile_{m}_x1", "int"), (f"tile_{m}_y1", "int")]
    cols += [("firing_member", "str"), ("firing_x0", "int"), ("firing_y0", "int"), ("firing_x1", "int"), ("firing_y1", "int"),
             ("fused_score_at_decision", "float"), ("policy_id", "int"), ("policy", "str"), ("reviewer", "str"),
             ("sample_kind", "str"), ("audit_sample", "bool"), ("second_review", "bool"), ("resolved_by_supervisor", "bool"),
             ("decision_id", "int"), ("decided_at", "str"), ("seconds_spent", "float"), ("decided_via", "str"),
             ("crop_file", "str"), ("thumbnail_file", "str")]
    return cols


def manifest_row(it: Item, members: list[str], file: str, crop: str | None, thumb: str | None) -> dict[str, Any]:
    d, fr, src = it.decision, it.frame, it.source
    at_decision = json.loads(d.member_scores or "{}")
    row: dict[str, Any] = dict(
        file=file, split=it.split, **{"class": it.cls}, decision=d.label.value, copy=it.copy, source_id=src["id"],
        source_name=src["name"], source_uri=src["uri"], source_kind=src["kind"], frame_id=fr["id"], frame_index=fr["idx"],
        timestamp_s=fr["timestamp_s"], captured_at=fr["captured_at"], frame_path=fr["path"], width=fr["width"],
        height=fr["height"], telemetry_matched=bool(fr["telemetry_matched"]), quality_flag=fr["quality_flag"],
    )
    row.update({c: fr.get(c) for c in _FRAME_COLS})
    for m in members:
        s = it.scores.get(m)
        row[f"score_{m}"] = None if s is None else s["score"]
        row[f"score_at_decision_{m}"] = at_decision.get(m)
        row[f"tile_{m}"] = None if s is None else s["tile"]
        for k in ("x0", "y0", "x1", "y1"):
            row[f"tile_{m}_{k}"] = None if s is None else s[k]
    box = it.box or (None, None, None, None)
    row.update(firing_member=it.firing_member, firing_x0=box[0], firing_y0=box[1], firing_x1=box[2], firing_y1=box[3],
               fused_score_at_decision=d.fused_score, policy_id=d.policy_id, policy=d.policy, reviewer=d.reviewer,
               sample_kind=d.sample_kind, audit_sample=d.sample_kind == Why.AUDIT.value, second_review=it.second_review,
               resolved_by_supervisor=d.sample_kind == RESOLVE, decision_id=d.id, decided_at=d.decided_at,
               seconds_spent=d.seconds_spent, decided_via=d.via, crop_file=crop, thumbnail_file=thumb)
    return row


def write_csv(path: Path, cols: list[tuple[str, str]], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([c for c, _ in cols])
        for r in rows:
            w.writerow(["" if r[c] is None else (int(r[c]) if t == "bool" else r[c]) for c, t in cols])


def write_parquet(path: Path, cols: list[tuple[str, str]], rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}
    arrays = {c: pa.array([r[c] for r in rows], type=types[t]) for c, t in cols}
    pq.write_table(pa.table(arrays), path)


# ------------------------------------------------------------------------------ geo
def geo_points(items: list[Item], rows: dict[int, dict[str, Any]], members: list[str],
               geo: GeoSettings | None = None) -> list[dict[str, Any]]:
    """A map point per accepted frame with a position: where its firing tile lies on the ground
    when the telemetry allows (``core/ingest/telemetry/geo.py``), else where the aircraft was; ``position``
    says which, and the aircraft's own position is kept beside."""
    geo = geo or GeoSettings()
    pts = []
    for it in items:
        fr = it.frame
        if it.copy or it.decision.label is not Label.ACCEPT or fr["lat"] is None or fr["lon"] is None:
            continue
        r = rows[int(fr["id"])]
        props = dict(time=fr["captured_at"], timestamp_s=fr["timestamp_s"], source=it.source["name"], source_id=it.source["id"],
                     frame=fr["idx"], thumbnail=r["thumbnail_file"], image=r["file"], reviewer=it.decision.reviewer,
                     decided_at=it.decision.decided_at, fused_score_at_decision=it.decision.fused_score,
                     aircraft_lat=float(fr["lat"]), aircraft_lon=float(fr["lon"]))
        placed = ground_position(fr, it.box, geo)
        if placed.point is not None:
            lat, lon = placed.point.lat, placed.point.lon
            props.update(position="firing tile on the ground (estimated, flat ground assumed)",
                         ground_distance_m=round(placed.point.distance_m, 1),
                         bearing_from_aircraft_deg=round(placed.point.bearing_deg, 1),
                         field_of_view_deg=round(placed.point.hfov_deg, 1), field_of_view_from=placed.point.hfov_from,
                         radius_m=None if placed.point.radius_m is None else round(placed.point.radius_m, 1))
        else:
            lat, lon = float(fr["lat"]), float(fr["lon"])
            props.update(position=f"aircraft (the tile could not be placed: {placed.reason})")
        props.update({f"score_{m}": r[f"score_{m}"] for m in members if r[f"score_{m}"] is not None})
        pts.append(dict(lon=lon, lat=lat, alt=fr["abs_alt"], props=props))
    # Places, as the finds list numbers them: overlapping ground discs are one place, the
    # newest decision naming it first.
    props_of = [cast(dict[str, Any], p["props"]) for p in pts]
    order = sorted(range(len(pts)), key=lambda i: str(props_of[i]["decided_at"]), reverse=True)
    numbers = place_numbers([(cast(float, pts[i]["lat"]), cast(float, pts[i]["lon"]), props_of[i].get("radius_m")) for i in order])
    for i, n in zip(order, numbers, strict=True):
        props_of[i]["place"] = n
    return pts


def write_geojson(path: Path, pts: list[dict[str, Any]]) -> None:
    features = [dict(type="Feature", geometry=dict(type="Point", coordinates=[p["lon"], p["lat"]]), properties=p["props"])
                for p in pts]
    path.write_text(json.dumps(dict(type="FeatureCollection", features=features), indent=1), encoding="utf-8")


def write_kmz(path: Path, kml: Path, root: Path, pts: list[dict[str, Any]]) -> None:
    """``accepted.kmz``: the KML with its thumbnails inside, so it opens whole wherever it is
    sent (a KML refers to its thumbnails by a path beside it, which breaks once it travels)."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(kml, "doc.kml")  # Google Earth reads the first .kml of the archive
        for thumb in sorted({str(p["props"]["thumbnail"]) for p in pts if p["props"].get("thumbnail")}):
            if (root / thumb).is_file():
                z.write(root / thumb, thumb, compress_type=zipfile.ZIP_STORED)


def write_kml(path: Path, pts: list[dict[str, Any]]) -> None:
    """Placemarks with a thumbnail in the description. Every text from the project (source
    names, paths, reviewers) is made XML-safe, and the description's HTML carries it escaped:
    a folder named ``<img onerror=...>`` shows as text in Google Earth, never as markup."""
    ns = "http://www.opengis.net/kml/2.2"
    kml = ET.Element("kml", xmlns=ns)
    doc = ET.SubElement(kml, "Document")
    ET.SubElement(doc, "name").text = "Accepted candidates"
    for p in pts:
        pr = p["props"]
        pm = ET.SubElement(doc, "Placemark")
        ET.SubElement(pm, "name").text = xml_safe(f"{pr['source']} frame {pr['frame']}")
        scores = ", ".join(f"{k[6:]} {v:.3f}" for k, v in pr.items() if k.startswith("score_"))
        thumb, source = html.escape(xml_safe(pr["thumbnail"]), quote=True), html.escape(xml_safe(pr["source"]))
        ET.SubElement(pm, "description").text = (f"<img src=\"{thumb}\" width=\"320\"/><br/>"
                                                 f"{source}, frame {pr['frame']}; scores: {html.escape(xml_safe(scores))}")
        if (when := utc_time(pr["time"])) is not None:  # a camera clock without a zone stays in ExtendedData only
            ts = ET.SubElement(pm, "TimeStamp")
            ET.SubElement(ts, "when").text = when
        ext = ET.SubElement(pm, "ExtendedData")
        for k, v in pr.items():
            if v is not None:
                ET.SubElement(ET.SubElement(ext, "Data", name=xml_safe(k)), "value").text = xml_safe(v)
        pt = ET.SubElement(pm, "Point")
        ET.SubElement(pt, "coordinates").text = f"{p['lon']:.7f},{p['lat']:.7f}"
    ET.indent(kml)
    path.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(kml, encoding="utf-8"))


# ------------------------------------------------------------------------------ YOLO
def class_names(items: list[Item], target: str) -> list[str]:
    """The classes a detector trained on the export learns: the project's target first, then
    any other label drawn in an annotation tool, in name order."""
    drawn = {label for it in items for label, _box, kind in it.target_boxes(target) if kind == "drawn"}
    return [target] + sorted(drawn - {target})


def write_yolo(tmp: Path, items: list[Item], rows: dict[tuple[int, int], dict[str, Any]], target: str) -> int:
    """A YOLO detection dataset under ``yolo/``, as Ultralytics and other YOLO trainers read
    it: ``images/<split>/`` beside ``labels/<split>/`` (one ``.txt`` per image: ``class cx cy
    w h``, normalised, for each box of an accepted frame: the boxes drawn in an annotation tool
    where it was annotated, else the tile that fired; empty for a rejected frame, a
    background image) and ``data.yaml`` naming the classes, the project's target first. The
    images are hard links to the image-folder copies where the disk allows (else copies).
    Unsure frames are left out. Returns the files written."""
    root = tmp / "yolo"
    names = class_names(items, target)
    index = {n: i for i, n in enumerate(names)}
    written = 0
    for it in items:
        if it.cls not in ("positive", "negative"):
            continue
        r = rows[(int(it.frame["id"]), it.copy)]
        name = Path(r["file"]).name
        link_image(tmp / r["file"], root / "images" / it.split / name)
        label = root / "labels" / it.split / (Path(name).stem + ".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        w, h = float(r["width"] or 0), float(r["height"] or 0)
        for cls, (x0, y0, x1, y1), _kind in it.target_boxes(target) if w > 0 and h > 0 else []:
            lines.append(f"{index[cls]} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}\n")
        label.write_text("".join(lines), encoding="utf-8")
        written += 2
    listed = "".join(f"  {i}: '{n.replace(chr(39), chr(39) * 2)}'\n" for i, n in enumerate(names))
    (root / "data.yaml").write_text(
        "# triage_app export: accepted frames boxed with the boxes drawn in an annotation tool where they\n"
        "# were annotated, else with the tile that fired (a region a person confirmed holds the target,\n"
        "# not a tight box); rejected frames are background images.\n"
        f"path: .\ntrain: images/train\nval: images/val\ntest: images/test\nnames:\n{listed}",
        encoding="utf-8")
    return written + 1


def link_image(src: Path, dst: Path) -> None:
    """``dst`` the same file as ``src``: a hard link where the disk allows, else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


# ------------------------------------------------------------------------------ COCO
def coco(items: list[Item], rows: dict[tuple[int, int], dict[str, Any]], split: str, target: str = "target",
         names: list[str] | None = None) -> dict[str, Any]:
    """COCO detection JSON for one split, as a detector's training reads it: the project's
    target (and any other label drawn in an annotation tool) as categories; an accepted frame's
    boxes are its annotations: those drawn in an annotation tool where it was annotated
    (``attributes.box`` "drawn"), else the tile that fired (``attributes.box`` "firing tile": a
    region the model fired on and a person confirmed holds the target, not a box drawn tight
    around it); a rejected frame is an image without annotations (background). Unsure frames
    are left out (neither target nor background); ``info`` counts them."""
    names = names or [target]
    cats = [dict(id=i + 1, name=n, supercategory="target") for i, n in enumerate(names)]
    cat_id = {n: i + 1 for i, n in enumerate(names)}
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    unsure = 0
    for it in items:
        if it.split != split:
            continue
        if it.cls not in ("positive", "negative"):
            unsure += 1
            continue
        r = rows[(int(it.frame["id"]), it.copy)]
        iid = len(images) + 1
        images.append(dict(id=iid, file_name=r["file"], width=r["width"], height=r["height"], source=r["source_name"],
                           frame_index=r["frame_index"], timestamp_s=r["timestamp_s"], decision=r["decision"],
                           frame_id=r["frame_id"]))
        for label, (x0, y0, x1, y1), kind in it.target_boxes(target):
            attributes: dict[str, Any] = dict(box=kind)
            if kind == "drawn" and it.drawn is not None:
                attributes.update(tool=it.drawn.tool, annotator=it.drawn.annotator)
            else:
                attributes.update(member=it.firing_member, score=r.get(f"score_{it.firing_member}"))
            anns.append(dict(id=len(anns) + 1, image_id=iid, category_id=cat_id.get(label, 1),
                             bbox=[x0, y0, x1 - x0, y1 - y0], area=(x1 - x0) * (y1 - y0), iscrowd=0, attributes=attributes))
    info = dict(description=f"triage_app export: frames decided for '{target}'; accepted frames annotated with the "
                            "boxes drawn in an annotation tool where they were, else the tile that fired; rejected "
                            "frames as background", version=__version__, unsure_left_out=unsure)
    return dict(info=info, images=images, annotations=anns, categories=cats)
