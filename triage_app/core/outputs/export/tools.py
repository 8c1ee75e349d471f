"""Exports for other tools: accepted frames as annotation tasks for CVAT and Label Studio, each
with its boxes pre-drawn (the tile that fired, or the boxes drawn there before), so a person
draws tight boxes where the model pointed and the result comes back in with ``triage
annotations import``; and every exported frame as a FiftyOne dataset with its position
(FiftyOne's GeoJSON dataset type, read by ``fo.Dataset.from_dir(..., dataset_type=
fo.types.GeoJSONDataset)``)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from triage_app import __version__
from triage_app.core.ingest.telemetry.geo import ground_position
from triage_app.core.model.settings import GeoSettings
from triage_app.core.model.text import xml_safe
from triage_app.core.outputs.export.formats import class_names, link_image
from triage_app.core.outputs.export.plan import Item

#: The names the Label Studio labelling configuration gives its image and its box tool; an
#: import of its JSON-MIN export reads the boxes under the tool's name.
LS_IMAGE, LS_BOXES = "image", "label"
#: Label Studio serves local files under this path (its local-files storage, with
#: ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` set to the export folder).
LS_LOCAL = "/data/local-files/?d="


def _accepted(items: list[Item]) -> list[Item]:
    return [it for it in items if it.cls == "positive" and it.copy == 0]


def write_cvat(tmp: Path, items: list[Item], rows: dict[tuple[int, int], dict[str, Any]], target: str) -> int:
    """``cvat/images/`` (the accepted frames) and ``cvat/annotations.xml`` in the "CVAT for
    images 1.1" format CVAT imports: one ``<image>`` per frame, named as the uploaded file, with
    its boxes pre-drawn (``source="auto"``). Create a task from the images, then upload the
    annotations in that format. Returns the files written."""
    root = tmp / "cvat"
    accepted = _accepted(items)
    names = class_names(accepted, target)
    doc = ET.Element("annotations")
    ET.SubElement(doc, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(doc, "meta"), "task")
    ET.SubElement(task, "name").text = xml_safe(f"triage_app: {target}")
    ET.SubElement(task, "size").text = str(len(accepted))
    ET.SubElement(task, "mode").text = "annotation"
    labels = ET.SubElement(task, "labels")
    for n in names:
        lab = ET.SubElement(labels, "label")
        ET.SubElement(lab, "name").text = xml_safe(n)
        ET.SubElement(lab, "type").text = "rectangle"
        ET.SubElement(lab, "attributes")
    written = 0
    for i, it in enumerate(accepted):
        r = rows[(int(it.frame["id"]), 0)]
        name = Path(r["file"]).name
        link_image(tmp / r["file"], root / "images" / name)
        written += 1
        img = ET.SubElement(doc, "image", id=str(i), name=name, width=str(r["width"] or 0), height=str(r["height"] or 0))
        for label, (x0, y0, x1, y1), kind in it.target_boxes(target):
            ET.SubElement(img, "box", label=xml_safe(label), source="auto" if kind == "firing tile" else "manual",
                          occluded="0", xtl=f"{x0:.2f}", ytl=f"{y0:.2f}", xbr=f"{x1:.2f}", ybr=f"{y1:.2f}", z_order="0")
    ET.indent(doc)
    root.mkdir(parents=True, exist_ok=True)
    (root / "annotations.xml").write_bytes(b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(doc, encoding="utf-8"))
    (root / "README.txt").write_text(
        f"CVAT: create a task with the label(s) {', '.join(names)} (rectangle) from the files in images/,\n"
        "then Actions > Upload annotations > 'CVAT 1.1' with annotations.xml: the tile that fired is\n"
        "drawn on every frame. Draw tight boxes, then Export annotations > 'CVAT for images 1.1' and\n"
        "bring them back with: triage annotations import PROJECT annotations.xml\n", encoding="utf-8")
    return written + 2


def label_studio_config(names: list[str]) -> str:
    """The labelling configuration: the image and one box tool with the export's classes."""
    labels = "".join(f'    <Label value="{xml_safe(n)}"/>\n' for n in names)
    return (f'<View>\n  <Image name="{LS_IMAGE}" value="$image" zoom="true"/>\n'
            f'  <RectangleLabels name="{LS_BOXES}" toName="{LS_IMAGE}">\n{labels}  </RectangleLabels>\n</View>\n')


def write_label_studio(tmp: Path, items: list[Item], rows: dict[tuple[int, int], dict[str, Any]], target: str) -> int:
    """``label-studio/images/`` (the accepted frames), ``label-studio/config.xml`` (the labelling
    configuration) and ``label-studio/tasks.json``: one task per frame (its image, and the
    frame's identity kept in the task's data so the import finds the frame again), its boxes
    pre-drawn as a prediction in percent of the image, as Label Studio draws them. Returns
    the files written."""
    root = tmp / "label-studio"
    accepted = _accepted(items)
    names = class_names(accepted, target)
    tasks = []
    for it in accepted:
        r = rows[(int(it.frame["id"]), 0)]
        name = Path(r["file"]).name
        link_image(tmp / r["file"], root / "images" / name)
        w, h = float(r["width"] or 0), float(r["height"] or 0)
        result = []
        for k, (label, (x0, y0, x1, y1), _kind) in enumerate(it.target_boxes(target) if w > 0 and h > 0 else []):
            result.append(dict(id=f"f{r['frame_id']}b{k}", type="rectanglelabels", from_name=LS_BOXES, to_name=LS_IMAGE,
                               original_width=int(w), original_height=int(h), image_rotation=0,
                               value=dict(x=100 * x0 / w, y=100 * y0 / h, width=100 * (x1 - x0) / w,
                                          height=100 * (y1 - y0) / h, rotation=0, rectanglelabels=[label])))
        score = r.get(f"score_{it.firing_member}") if it.firing_member else None
        tasks.append(dict(
            data={LS_IMAGE: f"{LS_LOCAL}label-studio/images/{name}", "frame_id": r["frame_id"],
                  "source": r["source_name"], "frame_index": r["frame_index"], "timestamp_s": r["timestamp_s"]},
            predictions=[dict(model_version=f"triage_app {__version__}: "
                                            + ("drawn boxes" if it.drawn is not None else "tile that fired"),
                              score=score, result=result)]))
    root.mkdir(parents=True, exist_ok=True)
    (root / "tasks.json").write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    (root / "config.xml").write_text(label_studio_config(names), encoding="utf-8")
    (root / "README.txt").write_text(
        "Label Studio: start it with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and\n"
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<this export's folder>, make a project with the\n"
        "labelling configuration in config.xml, add a local-files storage for this folder, and import\n"
        "tasks.json: the tile that fired is drawn on every frame as a prediction. Draw tight boxes,\n"
        "export as JSON (or JSON-MIN) and bring them back with:\n"
        "triage annotations import PROJECT export.json\n", encoding="utf-8")
    return len(accepted) + 3


def write_fiftyone(tmp: Path, items: list[Item], rows: dict[tuple[int, int], dict[str, Any]],
                   geo: GeoSettings | None = None) -> int:
    """``fiftyone/data/`` (every exported frame) and ``fiftyone/labels.json``: a GeoJSON feature
    per frame, its point where the aircraft was (none without GPS) and, as properties, its
    decision, split, source, time, scores and, for an accepted frame the telemetry can place,
    where the tile that fired lies on the ground. FiftyOne's GeoJSON dataset type reads it
    into samples with a ``location`` GeoLocation. Returns the files written."""
    geo = geo or GeoSettings()
    root = tmp / "fiftyone"
    features = []
    for it in items:
        r = rows[(int(it.frame["id"]), 0)]
        name = Path(r["file"]).name
        link_image(tmp / r["file"], root / "data" / name)
        fr = it.frame
        props: dict[str, Any] = dict(filename=name, decision=r["decision"], label=it.cls, split=it.split,
                                     source=r["source_name"], frame_id=r["frame_id"], frame_index=r["frame_index"],
                                     timestamp_s=r["timestamp_s"], captured_at=r["captured_at"],
                                     reviewer=it.decision.reviewer, altitude_m=fr.get("rel_alt"))
        props.update({k: v for k, v in r.items() if k.startswith("score_") and not k.startswith("score_at") and v is not None})
        geometry = None
        lat, lon = fr.get("lat"), fr.get("lon")
        if lat is not None and lon is not None:
            geometry = dict(type="Point", coordinates=[float(lon), float(lat)])
            if it.cls == "positive":
                placed = ground_position(fr, it.box, geo)
                if placed.point is not None:
                    props.update(target_lat=placed.point.lat, target_lon=placed.point.lon,
                                 target_radius_m=placed.point.radius_m)
        features.append(dict(type="Feature", geometry=geometry, properties=props))
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.json").write_text(json.dumps(dict(type="FeatureCollection", features=features), indent=1),
                                      encoding="utf-8")
    return len(items) + 1
