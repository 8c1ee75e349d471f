"""Ground truth for replay evaluation: which frames hold the target.

Two forms:

- a CSV with a header: ``path,label`` (an image file, absolute or relative to the CSV, or
  its bare file name) or ``source,frame,label`` (a source's file name or path, and the frame
  index within it, for videos). Labels: positive/negative, 1/0, true/false, yes/no,
  accept/reject.
- a folder of per-image boxes with the image's stem: YOLO ``.txt`` (``class cx cy w h``,
  normalised) or Pascal VOC ``.xml``. A frame is positive when it holds a box; an image
  without a box file is a negative (YOLO's convention for background images).

``box_inside_share`` and ``crops_from_boxes`` serve crops: a crop holds an object when at
least half of the object's box lies inside it.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from triage_app.core.ingest.sources import decode_image
from triage_app.core.model.errors import InputError, SourceError

_TRUE = {"positive", "pos", "1", "true", "yes", "accept", "y", "t"}
_FALSE = {"negative", "neg", "0", "false", "no", "reject", "n", "f"}


class TruthError(InputError):
    """A ground-truth file cannot be used."""


@dataclass
class Truth:
    """Labels by image path, by file name, by (source, frame), and boxes by image stem."""

    by_path: dict[str, bool] = field(default_factory=dict)
    by_name: dict[str, bool] = field(default_factory=dict)
    by_source_frame: dict[tuple[str, int], bool] = field(default_factory=dict)
    boxes: dict[str, list[tuple[float, float, float, float]]] | None = None  # by image stem, pixels (x0, y0, x1, y1)
    yolo: dict[str, list[tuple[float, float, float, float]]] | None = None  # by stem, normalised (cx, cy, w, h)
    ambiguous_names: set[str] = field(default_factory=set)
    origin: str = ""

    def label(self, image_path: str | None, source_name: str, source_uri: str, frame_idx: int) -> bool | None:
        """The frame's label, or None when the truth says nothing about it."""
        if self.boxes is not None or self.yolo is not None:
            if image_path is None:
                return None
            stem = Path(image_path).stem
            return bool((self.boxes or {}).get(stem)) or bool((self.yolo or {}).get(stem))
        if image_path is not None:
            key = str(Path(image_path).resolve())
            if key in self.by_path:
                return self.by_path[key]
            name = Path(image_path).name
            if name in self.by_name and name not in self.ambiguous_names:
                return self.by_name[name]
        for s in (source_name, str(Path(source_uri).resolve()), Path(source_uri).name):
            if (s, frame_idx) in self.by_source_frame:
                return self.by_source_frame[(s, frame_idx)]
        return None

    def boxes_for(self, image_path: str, width: int, height: int) -> list[tuple[float, float, float, float]]:
        """The boxes of one image in pixels (empty when none or when the truth is a CSV)."""
        stem = Path(image_path).stem
        out = list((self.boxes or {}).get(stem, []))
        for cx, cy, w, h in (self.yolo or {}).get(stem, []):
            out.append(((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height))
        return out


def parse_label(text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError(f"label '{text}' is not positive/negative, 1/0, true/false, yes/no or accept/reject")


def read_truth(path: str | Path, classes: set[str] | None = None) -> Truth:
    """Read a truth CSV or a folder of YOLO/VOC box files. Raises ``TruthError`` naming the
    file (and line) that is wrong. ``classes`` keeps only boxes of those classes (YOLO ids or
    VOC names)."""
    p = Path(path)
    if p.is_dir():
        return _read_box_folder(p, classes)
    if not p.is_file():
        raise TruthError(p, "no such truth file or folder")
    return _read_csv(p)


def _read_csv(path: Path) -> Truth:
    truth = Truth(origin=str(path))
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
            if "label" not in cols or not ("path" in cols or ("source" in cols and "frame" in cols)):
                raise TruthError(path, "needs a header with path,label or source,frame,label "
                                       f"(found: {', '.join(reader.fieldnames or []) or 'nothing'})")
            for n, row in enumerate(reader, start=2):
                try:
                    label = parse_label(row[cols["label"]] or "")
                    if "path" in cols and (row[cols["path"]] or "").strip():
                        raw = row[cols["path"]].strip()
                        p = Path(raw)
                        full = (p if p.is_absolute() else path.parent / p).resolve()
                        truth.by_path[str(full)] = label
                        if p.name in truth.by_name and truth.by_name[p.name] != label:
                            truth.ambiguous_names.add(p.name)
                        truth.by_name[p.name] = label
                    else:
                        truth.by_source_frame[(row[cols["source"]].strip(), int(row[cols["frame"]]))] = label
                except (ValueError, TypeError, AttributeError, KeyError) as exc:
                    raise TruthError(path, f"line {n}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise TruthError(path, f"not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise TruthError(path, f"not a valid CSV ({exc})") from exc
    except OSError as exc:
        raise TruthError(path, f"cannot be read ({exc.strerror})") from exc
    if not (truth.by_path or truth.by_source_frame):
        raise TruthError(path, "holds no labelled row")
    return truth


def read_yolo(path: Path, classes: set[str] | None = None) -> list[tuple[float, float, float, float]]:
    boxes = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TruthError(path, f"cannot be read as text ({exc})") from exc
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) < 5:
                raise ValueError(f"expected 'class cx cy w h', got {len(parts)} fields")
            cx, cy, w, h = (float(v) for v in parts[1:5])
            if not all(np.isfinite([cx, cy, w, h])) or w <= 0 or h <= 0:
                raise ValueError("box size must be positive and finite")
        except ValueError as exc:
            raise TruthError(path, f"line {n}: {exc}") from exc
        if classes is None or parts[0] in classes:
            boxes.append((cx, cy, w, h))
    return boxes


def read_voc(path: Path, classes: set[str] | None = None) -> list[tuple[float, float, float, float]]:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise TruthError(path, f"not a readable Pascal VOC xml ({exc})") from exc
    boxes = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if box is None:
            raise TruthError(path, f"object '{name}' has no bndbox")
        try:
            x0, y0, x1, y1 = (float(box.findtext(k) or "nan") for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError as exc:
            raise TruthError(path, f"object '{name}': {exc}") from exc
        if not all(np.isfinite([x0, y0, x1, y1])) or x1 <= x0 or y1 <= y0:
            raise TruthError(path, f"object '{name}': box ({x0}, {y0}, {x1}, {y1}) is empty or not numeric")
        if classes is None or name in classes:
            boxes.append((x0, y0, x1, y1))
    return boxes


def _read_box_folder(folder: Path, classes: set[str] | None) -> Truth:
    yolo: dict[str, list[tuple[float, float, float, float]]] = {}
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    truth = Truth(boxes=boxes, yolo=yolo, origin=str(folder))
    found = 0
    for f in sorted(folder.iterdir()):
        if f.suffix.lower() == ".txt" and f.name != "classes.txt":
            yolo[f.stem] = read_yolo(f, classes)
            found += 1
        elif f.suffix.lower() == ".xml":
            boxes[f.stem] = read_voc(f, classes)
            found += 1
    if not found:
        raise TruthError(folder, "holds no YOLO .txt or Pascal VOC .xml box file")
    return truth


def box_inside_share(boxes: np.ndarray, window: tuple[float, float, float, float]) -> np.ndarray:
    """For boxes (n, 4) as (x0, y0, x1, y1), the share of each box's area inside ``window``."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = window
    iw = np.clip(np.minimum(b[:, 2], x1) - np.maximum(b[:, 0], x0), 0, None)
    ih = np.clip(np.minimum(b[:, 3], y1) - np.maximum(b[:, 1], y0), 0, None)
    area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-9)
    return iw * ih / area


def crops_from_boxes(image_path: str | Path, boxes: list[tuple[float, float, float, float]], size: int,
                     out_images: Path, out_labels: Path, min_inside: float = 0.5) -> tuple[int, int]:
    """Cut an annotated image (an orthomosaic, say) into ``size`` px crops, written as PNG with
    a YOLO file each (boxes clipped to the crop, kept when at least ``min_inside`` of the box
    lies inside). Returns (crops, positive crops)."""
    try:
        image = decode_image(Path(image_path), 1_000_000_000)
    except SourceError:
        image = None
    if image is None:
        raise TruthError(image_path, "image cannot be decoded")
    out_images.mkdir(parents=True, exist_ok=True)
    out_labels.mkdir(parents=True, exist_ok=True)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    h, w = image.shape[:2]
    n = pos = 0
    for y in range(0, h - size + 1, size):
        for x in range(0, w - size + 1, size):
            share = box_inside_share(b, (x, y, x + size, y + size))
            keep = b[share >= min_inside]
            stem = f"{Path(image_path).stem}_x{x:05d}_y{y:05d}"
            (out_images / f"{stem}.png").write_bytes(cv2.imencode(".png", image[y : y + size, x : x + size])[1].tobytes())
            lines = []
            for x0, y0, x1, y1 in keep:
                cx0, cy0 = max(x0, x) - x, max(y0, y) - y
                cx1, cy1 = min(x1, x + size) - x, min(y1, y + size) - y
                lines.append(f"0 {(cx0 + cx1) / 2 / size:.6f} {(cy0 + cy1) / 2 / size:.6f} "
                             f"{(cx1 - cx0) / size:.6f} {(cy1 - cy0) / size:.6f}")
            (out_labels / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
            n += 1
            pos += bool(lines)
    return n, pos
