"""Boxes drawn in CVAT or Label Studio, brought back as the frames' annotations.

Reads what those tools export after people drew: CVAT's "CVAT for images 1.1" XML
(``<image name=...>`` with ``<box>``, or ``<polygon>`` / ``<polyline>`` / ``<points>`` taken as
their bounding box), Label Studio's JSON export (tasks with their ``annotations``, the latest
one not cancelled counting) and its JSON-MIN export. A frame is found again by the name
``triage export`` gave its image (``s<source>-...-f<index>``), or by the ``frame_id`` kept in
a Label Studio task. Boxes are kept in the frame's pixels, clipped to it; each frame's import
replaces what it had, and a frame annotated with no box says the annotator saw nothing to box.
Anything that is not a frame of the project is named and skipped; the rest is recorded."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from triage_app.core.model.errors import InputError
from triage_app.core.store import Workspace
from triage_app.core.store.annotations import Annotation, Box

#: The name ``triage export`` gives a frame's image: the source id, a readable part, the frame index.
_NAME = re.compile(r"^s(\d+)-.*-f(\d+)(?:-copy\d+)?\.[A-Za-z0-9]+$")


@dataclass
class ImportReport:
    file: Path
    tool: str
    frames: int = 0  # annotated frames recorded
    boxes: int = 0
    empty: int = 0  # frames annotated with no box
    skipped: list[str] = field(default_factory=list)  # what could not be used, named

    def summary(self) -> str:
        text = (f"{self.file.name}: {self.frames} frame{'s' if self.frames != 1 else ''} annotated from {self.tool} "
                f"({self.boxes} box{'es' if self.boxes != 1 else ''}; {self.empty} with none drawn)")
        if self.skipped:
            text += f"; {len(self.skipped)} skipped (first: {self.skipped[0]})"
        return text


@dataclass
class _Drawn:
    name: str
    frame_id: int | None
    annotator: str | None
    boxes: list[tuple[str, float, float, float, float]]  # label, x0, y0, x1, y1 in the image's pixels


def import_annotations(ws: Workspace, path: str | Path) -> ImportReport:
    """Read a CVAT or Label Studio export and record its boxes as the frames' annotations."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise InputError(path, "is not a text file (a CVAT XML or Label Studio JSON export was expected)") from exc
    head = text.lstrip()[:1]
    if head == "<":
        tool, drawn = "cvat", _read_cvat(path, text)
    elif head in "[{" and head:
        tool, drawn = "label-studio", _read_label_studio(path, text)
    else:
        raise InputError(path, "is neither a CVAT XML nor a Label Studio JSON export")
    report = ImportReport(path, tool)
    frames = {int(r["id"]): r for r in ws.frames.frame_rows()}
    by_name = {(int(r["source_id"]), int(r["idx"])): int(r["id"]) for r in frames.values()}
    sizes = {int(s["id"]): (s.get("width"), s.get("height")) for s in ws.frames.source_summaries()}
    chosen: dict[int, Annotation] = {}
    for d in drawn:
        fid = _frame_of(d, by_name, frames)
        if fid is None:
            report.skipped.append(f"{d.name}: not a frame of this project")
            continue
        fr = frames[fid]
        w, h = fr.get("width") or sizes.get(int(fr["source_id"]), (None, None))[0], \
            fr.get("height") or sizes.get(int(fr["source_id"]), (None, None))[1]
        boxes = []
        for label, x0, y0, x1, y1 in d.boxes:
            if w and h:
                x0, x1 = min(max(x0, 0.0), float(w)), min(max(x1, 0.0), float(w))
                y0, y1 = min(max(y0, 0.0), float(h)), min(max(y1, 0.0), float(h))
            if not label.strip():
                report.skipped.append(f"{d.name}: a box without a label")
                continue
            if x1 - x0 < 1 or y1 - y0 < 1:
                report.skipped.append(f"{d.name}: a {label} box of no area inside the frame")
                continue
            boxes.append(Box(label.strip(), x0, y0, x1, y1))
        chosen[fid] = Annotation(fid, tool, d.annotator, str(path.name), boxes=boxes)
    ws.annotations.replace(list(chosen.values()))
    report.frames = len(chosen)
    report.boxes = sum(len(a.boxes) for a in chosen.values())
    report.empty = sum(not a.boxes for a in chosen.values())
    return report


def _frame_of(d: _Drawn, by_name: dict[tuple[int, int], int], frames: dict[int, Any]) -> int | None:
    m = _NAME.match(Path(d.name).name)
    if m:
        return by_name.get((int(m.group(1)), int(m.group(2))))
    if d.frame_id is not None and d.frame_id in frames:
        return d.frame_id
    return None


# ------------------------------------------------------------------------------ CVAT
def _read_cvat(path: Path, text: str) -> list[_Drawn]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputError(path, f"is not well-formed XML ({exc})") from exc
    if root.tag != "annotations":
        raise InputError(path, f"is XML but not a CVAT export (its root is <{root.tag}>, not <annotations>)")
    if root.find("track") is not None and root.find("image") is None:
        raise InputError(path, "is a CVAT video export (tracks); export the task as 'CVAT for images 1.1'")
    out = []
    for img in root.iter("image"):
        name = img.get("name") or ""
        boxes = []
        for el in img:
            label = el.get("label") or ""
            try:
                if el.tag == "box":
                    x0, y0, x1, y1 = (float(el.get(k) or "nan") for k in ("xtl", "ytl", "xbr", "ybr"))
                    if "rotation" in el.attrib and float(el.get("rotation") or 0):
                        x0, y0, x1, y1 = _rotated_bounds(x0, y0, x1 - x0, y1 - y0, float(el.get("rotation") or 0),
                                                         centre=True)
                elif el.tag in ("polygon", "polyline", "points"):
                    pts = [tuple(float(v) for v in p.split(",")) for p in (el.get("points") or "").split(";") if p]
                    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
                    x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
                else:
                    continue
            except (ValueError, IndexError):
                raise InputError(path, f"image {name}: a <{el.tag}> whose coordinates are not numbers") from None
            if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
                raise InputError(path, f"image {name}: a <{el.tag}> without its coordinates")
            boxes.append((label, x0, y0, x1, y1))
        out.append(_Drawn(name, None, None, boxes))
    return out


# ------------------------------------------------------------------------------ Label Studio
def _read_label_studio(path: Path, text: str) -> list[_Drawn]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    tasks = data if isinstance(data, list) else [data]
    out = []
    for n, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise InputError(path, f"task {n + 1} is not a JSON object (a Label Studio export was expected)")
        if "data" in task or "annotations" in task:  # the full JSON export
            fields = task.get("data") or {}
            done = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
            if not done:
                continue  # nobody has annotated this task yet: not an annotation
            latest = max(done, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), int(a.get("id") or 0)))
            results = latest.get("result") or []
            who = latest.get("completed_by")
            annotator = str(who.get("email") or who.get("id")) if isinstance(who, dict) else (None if who is None else str(who))
        else:  # JSON-MIN: the data fields and each control's values at the top level
            fields = task
            results = [dict(type="rectanglelabels", value=v, original_width=v.get("original_width"),
                            original_height=v.get("original_height"))
                       for key, vals in task.items() if isinstance(vals, list)
                       for v in vals if isinstance(v, dict) and ("rectanglelabels" in v or "polygonlabels" in v)]
            annotator = str(task["annotator"]) if task.get("annotator") is not None else None
        image = str(fields.get("image") or "")
        name = unquote(image.split("?d=")[-1]) if image else str(fields.get("frame_id", f"task {n + 1}"))
        fid = fields.get("frame_id")
        boxes = []
        for r in results:
            if not isinstance(r, dict) or r.get("type") not in ("rectanglelabels", "polygonlabels"):
                continue
            v = r.get("value") or {}
            labels = v.get("rectanglelabels") or v.get("polygonlabels") or []
            size = (r.get("original_width") or v.get("original_width"), r.get("original_height") or v.get("original_height"))
            try:
                w, h = float(size[0]), float(size[1])  # type: ignore[arg-type]  # None: the error below
                if r["type"] == "rectanglelabels":
                    x0, y0, x1, y1 = _rotated_bounds(float(v["x"]) * w / 100, float(v["y"]) * h / 100,
                                                     float(v["width"]) * w / 100, float(v["height"]) * h / 100,
                                                     float(v.get("rotation") or 0))
                else:
                    xs = [float(p[0]) * w / 100 for p in v["points"]]
                    ys = [float(p[1]) * h / 100 for p in v["points"]]
                    x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
            except (KeyError, TypeError, ValueError, IndexError):
                raise InputError(path, f"{name}: a box without its position or the image's size "
                                       "(original_width, original_height)") from None
            boxes.append((str(labels[0]) if labels else "", x0, y0, x1, y1))
        out.append(_Drawn(name, int(fid) if isinstance(fid, int | str) and str(fid).isdigit() else None, annotator, boxes))
    return out


def _rotated_bounds(x: float, y: float, w: float, h: float, degrees: float, centre: bool = False) -> tuple[float, ...]:
    """The upright bounds of a box of size ``w`` x ``h`` at (x, y) turned by ``degrees``
    clockwise: about its top-left corner (Label Studio) or its centre (CVAT)."""
    if not degrees:
        return x, y, x + w, y + h
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    px, py = (x + w / 2, y + h / 2) if centre else (x, y)
    corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    xs = [px + (cx - px) * c - (cy - py) * s for cx, cy in corners]
    ys = [py + (cx - px) * s + (cy - py) * c for cx, cy in corners]
    return min(xs), min(ys), max(xs), max(ys)
