"""Export labelled batches with their provenance.

What is exported is the *standing* decision of each decided frame (the latest one not
undone), filtered by source, decision time, reviewer, label and policy. Frames whose
reviewers disagree and no supervisor has settled, and decisions the label check doubts,
are held back unless asked for (they would teach the next model a label nobody trusts).

Output, all under one folder that appears whole or not at all (written to a temporary
sibling folder and renamed into place):

- ``<split>/<class>/<name>``: the frames as an image-folder tree (torchvision's
  ImageFolder and FiftyOne's directory-tree importer read each split as it is). Classes:
  accept -> ``positive``, reject -> ``negative``, unsure -> ``unsure``.
- ``manifest.csv`` / ``manifest.parquet``: one row per exported file with the provenance.
- ``crops/<split>/<class>/<name>``: the firing tile with a margin around it.
- ``coco_<split>.json``, ``yolo/``: detection datasets, an accepted frame's boxes those drawn
  in an annotation tool where it was annotated, else the firing tile; rejected frames as
  background.
- ``cvat/``, ``label-studio/``: the accepted frames as annotation tasks with their boxes
  pre-drawn (``tools.py``); ``fiftyone/``: every frame with its position.
- ``accepted.geojson`` / ``accepted.kml``: the accepted frames that have GPS telemetry, as
  points, with a thumbnail under ``thumbnails/``.
- ``balance.json``: counts per split and class before and after balancing.
- ``export.json``: the selection and options used, and what was held back or skipped.

The split is stratified by class and seeded (a frame's place is decided by a hash of the
seed and its frame id), so the same selection gives the same files every time. Balancing
touches the training split only; validation and test keep the natural class mix.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from triage_app import __version__
from triage_app.core.ingest.reader import FrameReader, frame_file
from triage_app.core.model.errors import InputError, SourceError, TriageError
from triage_app.core.model.records import Label
from triage_app.core.outputs.export.formats import (
    class_names,
    coco,
    geo_points,
    manifest_columns,
    manifest_row,
    write_csv,
    write_geojson,
    write_kml,
    write_kmz,
    write_parquet,
    write_yolo,
)
from triage_app.core.outputs.export.plan import (
    CLASS_OF,
    COPYABLE,
    SPLITS,
    ExportReport,
    Item,
    Options,
    Plan,
    Selection,
    counts,
    plan_export,
)
from triage_app.core.outputs.export.tools import write_cvat, write_fiftyone, write_label_studio
from triage_app.core.store import Workspace


class ExportError(InputError):
    """The export cannot be written; nothing was left half-written."""


class ExportCancelled(TriageError):
    """The export was stopped; nothing was written."""


# ------------------------------------------------------------------------------ naming
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, limit: int = 60) -> str:
    """A file-name fragment from arbitrary text: ASCII letters, digits, ``._-`` only, no
    leading dot (no hidden files, no ``..``), at most ``limit`` characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE.sub("_", ascii_text).strip("._-")[:limit].strip("._-")
    return cleaned or "source"


def file_stem(it: Item) -> str:
    """Unique by construction: the source id and frame index identify the frame."""
    src = it.source
    base = safe_name(Path(str(src["name"])).stem if src["kind"] != "stream" else str(src["name"]))
    if src["kind"] == "images" and it.frame.get("path"):
        base = f"{base}-{safe_name(Path(str(it.frame['path'])).stem, 40)}"
    stem = f"s{int(src['id']):03d}-{base}-f{int(it.frame['idx']):06d}"
    return stem + (f"-copy{it.copy}" if it.copy else "")


def _source_image(it: Item, project_root: Path) -> Path | None:
    """The image file behind a frame, where the frame is one (copied as it is)."""
    try:
        p = frame_file(it.source, it.frame, project_root)
    except SourceError as exc:
        raise TriageError(str(exc)) from exc
    if p is None or p.suffix.lower() not in COPYABLE:
        return None
    if p.is_file() and not _is_image(p):
        raise TriageError(f"{p}: named as a frame of {it.source['name']}, but it is not an image: not copied")
    return p


def _is_image(path: Path) -> bool:
    """Whether the file is a picture by its content (its header), not only by its name."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False


# ------------------------------------------------------------------------------ writing
def _encode(image: np.ndarray, suffix: str, quality: int) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(suffix, image, params)
    if not ok:
        raise OSError(f"cannot encode an image as {suffix}")
    return buf.tobytes()


def _crop(image: np.ndarray, box: tuple[int, int, int, int] | None, margin: float) -> np.ndarray:
    h, w = image.shape[:2]
    if box is None:
        return image
    x0, y0, x1, y1 = box
    mx, my = int(round((x1 - x0) * margin)), int(round((y1 - y0) * margin))
    return image[max(0, y0 - my) : min(h, y1 + my), max(0, x0 - mx) : min(w, x1 + mx)]


def _thumb(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(1.0, size / max(h, w))
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) if s < 1 else image


def export(ws: Workspace, outdir: str | Path, selection: Selection,
           options: Options, progress: Callable[[int, int], None] | None = None,
           cancel: threading.Event | None = None) -> ExportReport:
    """Write the export to ``outdir`` atomically. Raises ``ExportError`` (naming the folder
    and the problem) when it cannot be written, leaving nothing behind."""
    out = Path(outdir).absolute()
    if out.exists() and not out.is_dir():
        raise ExportError(out, "exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not options.overwrite:
            raise ExportError(out, "folder exists and is not empty (choose another, or overwrite it)")
        check_replaceable(out, ws)
    plan = plan_export(ws, selection, options)
    if not plan.items:
        raise ExportError(out, "nothing to export: no standing decision matches the selection")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    except OSError as exc:
        raise ExportError(out.parent, f"cannot create the export there ({exc.strerror or exc})") from exc
    try:
        report = _write_all(ws, plan, tmp, out, options, progress, cancel)
        _replace(tmp, out)
    except ExportCancelled:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(out.parent).free / 1e6
            why = "over the disk quota" if exc.errno == errno.EDQUOT else "full"
            raise ExportError(out, f"the disk holding {out.parent} is {why} ({exc.strerror or exc}; {free:.0f} MB free "
                                   "once the partial export was removed); nothing was exported") from exc
        where = exc.filename or out
        raise ExportError(out, f"cannot write {where} ({exc.strerror or exc}); nothing was exported") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


# What an export writes at its top level; a folder holding anything else is not replaced.
_EXPORT_ENTRIES = re.compile(r"(train|val|test|crops|thumbnails|manifest\.csv|manifest\.parquet|coco_(train|val|test)\.json"
                             r"|accepted\.geojson|accepted\.kml|accepted\.kmz|balance\.json|export\.json|yolo|cvat|label-studio|fiftyone)")


def check_replaceable(out: Path, ws: Workspace) -> None:
    """Raise ``ExportError`` unless ``out`` is an earlier export and nothing else: its
    ``export.json`` says so, it holds only what an export writes, and neither the project nor
    any of its footage lies inside it. ``--overwrite`` replaces such a folder only."""
    out = out.resolve()
    root = ws.root.resolve()
    if out == root or out in root.parents:
        raise ExportError(out, "holds this project; an export never replaces it (choose another folder)")
    info_file = out / "export.json"
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict) or "triage_app" not in info or "rows" not in info:
        raise ExportError(out, "is not an earlier export (no export.json of one); only an export is replaced")
    strays = sorted(p.name for p in out.iterdir() if not _EXPORT_ENTRIES.fullmatch(p.name))
    if strays:
        raise ExportError(out, f"holds files an export did not write ({', '.join(strays[:3])}); it is not replaced")
    if next(out.rglob("project.db"), None) is not None:
        raise ExportError(out, "holds a project database; it is not replaced")
    for src in ws.frames.source_summaries():
        uri = str(src["uri"])
        if "://" in uri:
            continue
        path = Path(uri).resolve()
        if path == out or out in path.parents:
            raise ExportError(out, f"holds footage of this project ({path.name}); it is not replaced")


def _replace(tmp: Path, out: Path) -> None:
    """Put the finished folder in place; an old export is swapped out only after the new
    one is complete."""
    if not out.exists():
        tmp.rename(out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _write_item(ws: Workspace, plan: Plan, it: Item, reader: FrameReader, tmp: Path, options: Options, fmt: set[str],
                geo: bool) -> tuple[int, dict[str, Any]]:
    """Write one item's files (the frame, its crop, its map thumbnail); returns how many
    files were written and its manifest row. Raises TriageError when its pixels cannot be read."""
    stem = file_stem(it)
    copy_from = _source_image(it, ws.root)
    suffix = copy_from.suffix.lower() if copy_from is not None else f".{options.image_format}"
    rel = f"{it.split}/{it.cls}/{stem}{suffix}"
    accepted_original = it.decision.label is Label.ACCEPT and it.copy == 0
    need_pixels = (it.copy == 0 and ("crops" in fmt or (geo and accepted_original))) or (
        options.writes_images and copy_from is None)
    image = None
    if need_pixels or (options.writes_images and copy_from is not None and not copy_from.is_file()):
        image = reader.read(it.source, it.frame)
    written = 0
    if options.writes_images:
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if copy_from is not None:
            shutil.copyfile(copy_from, target)
        elif image is not None:
            target.write_bytes(_encode(image, suffix, options.jpeg_quality))
        written += 1
    crop_rel = thumb_rel = None
    if "crops" in fmt and image is not None:
        crop_rel = f"crops/{it.split}/{it.cls}/{stem}.{options.image_format}"
        (tmp / crop_rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / crop_rel).write_bytes(_encode(_crop(image, it.box, options.crop_margin), f".{options.image_format}",
                                             options.jpeg_quality))
        written += 1
    if geo and image is not None and accepted_original:
        thumb_rel = f"thumbnails/{stem}.jpg"
        (tmp / thumb_rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / thumb_rel).write_bytes(_encode(_thumb(image, options.thumb_size), ".jpg", 85))
        written += 1
    return written, manifest_row(it, plan.members, rel if options.writes_images else "", crop_rel, thumb_rel)


def _write_datasets(tmp: Path, fmt: set[str], kept: list[Item], by_key: dict[tuple[int, int], dict[str, Any]],
                    target: str) -> int:
    """The detection datasets and the annotation tasks; returns the files written."""
    written = 0
    if "yolo" in fmt:
        written += write_yolo(tmp, kept, by_key, target)
    if "coco" in fmt:
        names = class_names(kept, target)
        for split in SPLITS:
            (tmp / f"coco_{split}.json").write_text(json.dumps(coco(kept, by_key, split, target, names), indent=1),
                                                    encoding="utf-8")
    if "cvat" in fmt:
        written += write_cvat(tmp, kept, by_key, target)
    if "label-studio" in fmt:
        written += write_label_studio(tmp, kept, by_key, target)
    return written


def _write_all(ws: Workspace, plan: Plan, tmp: Path, out: Path, options: Options,
               progress: Callable[[int, int], None] | None, cancel: threading.Event | None) -> ExportReport:
    fmt = set(options.formats)
    geo = bool(fmt & {"geojson", "kml"})
    reader = FrameReader(ws.root)
    rows: list[dict[str, Any]] = []
    by_key: dict[tuple[int, int], dict[str, Any]] = {}
    skipped: list[str] = []
    written = 0
    total = len(plan.items)
    try:
        for n, it in enumerate(plan.items):
            if cancel is not None and cancel.is_set():
                raise ExportCancelled("export stopped; nothing was written")
            try:
                files, row = _write_item(ws, plan, it, reader, tmp, options, fmt, geo)
            except TriageError as exc:  # its pixels cannot be read: named, and the rest goes on
                skipped.append(str(exc))
                continue
            written += files
            rows.append(row)
            by_key[(int(it.frame["id"]), it.copy)] = row
            if progress:
                progress(n + 1, total)
    finally:
        reader.close()
    kept = [it for it in plan.items if (int(it.frame["id"]), it.copy) in by_key]
    cols = manifest_columns(plan.members)
    if "csv" in fmt:
        write_csv(tmp / "manifest.csv", cols, rows)
    if "parquet" in fmt:
        write_parquet(tmp / "manifest.parquet", cols, rows)
    written += _write_datasets(tmp, fmt, kept, by_key, ws.settings.target.name)
    pts: list[dict[str, Any]] = []
    if geo:
        originals = {int(it.frame["id"]): by_key[(int(it.frame["id"]), 0)] for it in kept if it.copy == 0}
        pts = geo_points([it for it in kept if it.copy == 0], originals, plan.members, ws.settings.geo)
        if "geojson" in fmt:
            write_geojson(tmp / "accepted.geojson", pts)
        if "kml" in fmt:
            write_kml(tmp / "accepted.kml", pts)
            write_kmz(tmp / "accepted.kmz", tmp / "accepted.kml", tmp, pts)
    if "fiftyone" in fmt:
        written += write_fiftyone(tmp, [it for it in kept if it.copy == 0], by_key, ws.settings.geo)
    split_counts = counts(kept)
    balance = dict(balance=options.balance, applies_to="train", before=plan.before_balance, after=split_counts,
                   dropped_by_undersampling=plan.dropped_by_balance,
                   duplicated_by_oversampling=sum(1 for it in kept if it.copy))
    (tmp / "balance.json").write_text(json.dumps(balance, indent=1, sort_keys=True), encoding="utf-8")
    info = dict(triage_app=__version__, project=str(ws.root), selection=plan.selection, options=dict(asdict(options), overwrite=None),
                rows=len(rows), held_back=plan.held_back, skipped=skipped, classes=CLASS_OF)
    (tmp / "export.json").write_text(json.dumps(info, indent=1, sort_keys=True, default=str), encoding="utf-8")
    return ExportReport(out, written, len(rows), split_counts, plan.before_balance, plan.held_back, skipped, len(pts),
                        sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()))
