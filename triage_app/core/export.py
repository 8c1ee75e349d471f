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
- ``coco_<split>.json``: COCO-style image list with one annotation per image (the firing
  tile's box, labelled with the decision).
- ``accepted.geojson`` / ``accepted.kml``: the accepted frames that have GPS telemetry, as
  points, with a thumbnail under ``thumbnails/``.
- ``balance.json``: counts per split and class before and after balancing.
- ``export.json``: the selection and options used, and what was held back or skipped.

The split is stratified by class and seeded (a frame's place is decided by a hash of the
seed and its frame id), so the same selection gives the same files every time. Balancing
touches the training split only; validation and test keep the natural class mix.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import threading
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sqlalchemy import select

from triage_app import __version__
from triage_app.core.agreement import RESOLVE, disagreements
from triage_app.core.errors import InputError, TriageError
from triage_app.core.fusion import normalised
from triage_app.core.label_quality import rereview_frames
from triage_app.core.members.cards import ModelCard
from triage_app.core.policy import active_policy
from triage_app.core.review import LABELS, DecisionStore
from triage_app.core.settings import Settings
from triage_app.core.sources import FrameReader
from triage_app.core.store import Project
from triage_app.core.store.scoring import ScoreStore

FORMATS = ("imagefolder", "csv", "parquet", "coco", "crops", "geojson", "kml")
DEFAULT_FORMATS = ("imagefolder", "csv", "parquet")
CLASS_OF = {"accept": "positive", "reject": "negative", "unsure": "unsure"}
SPLITS = ("train", "val", "test")
BALANCE = ("none", "under", "over")
# What torchvision's ImageFolder accepts; image sources in these formats are copied byte for byte.
COPYABLE = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


class ExportError(InputError):
    """The export cannot be written; nothing was left half-written."""


class ExportCancelled(TriageError):
    """The export was stopped; nothing was written."""


@dataclass
class Selection:
    """Which standing decisions to export. ``None`` means no restriction."""

    sources: list[int] | None = None
    reviewers: list[str] | None = None
    labels: tuple[str, ...] = ("accept", "reject")
    since: dt.datetime | None = None  # decision time, inclusive
    until: dt.datetime | None = None  # decision time, exclusive
    policies: list[int] | None = None
    include_doubtful: bool = False

    def __post_init__(self) -> None:
        bad = [label for label in self.labels if label not in LABELS]
        if bad or not self.labels:
            raise ValueError(f"labels {', '.join(bad) or '(none)'}: choose from {', '.join(LABELS)}")

    def describe(self) -> dict[str, Any]:
        out = asdict(self)
        out["labels"] = list(self.labels)
        out["since"] = self.since.isoformat() if self.since else None
        out["until"] = self.until.isoformat() if self.until else None
        return out


@dataclass
class Options:
    formats: tuple[str, ...] = DEFAULT_FORMATS
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    balance: str = "none"
    seed: int = 0
    image_format: str = "jpg"  # for frames that are not already image files: jpg or png
    jpeg_quality: int = 95
    crop_margin: float = 0.25  # of the tile's size, on each side
    thumb_size: int = 320
    overwrite: bool = False

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown:
            raise ValueError(f"unknown export format {', '.join(unknown)} (choose from {', '.join(FORMATS)})")
        if len(self.split) != 3 or any(s < 0 for s in self.split) or not 0.999 <= sum(self.split) <= 1.001:
            raise ValueError(f"split {self.split} must be three non-negative shares summing to 1 (train, val, test)")
        if self.balance not in BALANCE:
            raise ValueError(f"balance '{self.balance}' is not one of {', '.join(BALANCE)}")
        if self.image_format not in ("jpg", "png"):
            raise ValueError(f"image format '{self.image_format}' is not jpg or png")

    @property
    def writes_images(self) -> bool:
        """COCO names the image-folder files, so it brings them along."""
        return "imagefolder" in self.formats or "coco" in self.formats


@dataclass
class Item:
    """One file to export: a standing decision on a frame, with its split."""

    decision: dict[str, Any]
    frame: dict[str, Any]
    source: dict[str, Any]
    scores: dict[str, dict[str, Any]]
    firing_member: str | None
    box: tuple[int, int, int, int] | None
    split: str = "train"
    copy: int = 0  # > 0 for an oversampled duplicate
    second_review: bool = False

    @property
    def cls(self) -> str:
        return CLASS_OF[self.decision["label"]]


@dataclass
class Plan:
    items: list[Item]
    members: list[str]
    held_back: dict[str, int]
    before_balance: dict[str, dict[str, int]]
    after_balance: dict[str, dict[str, int]]
    dropped_by_balance: int = 0
    selection: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        return self.after_balance


@dataclass
class ExportReport:
    outdir: Path
    files: int
    rows: int
    counts: dict[str, dict[str, int]]
    before_balance: dict[str, dict[str, int]]
    held_back: dict[str, int]
    skipped: list[str] = field(default_factory=list)
    geo_points: int = 0
    written: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ selection
def parse_time(text: str) -> dt.datetime:
    """An ISO date or date-time; without a zone it is taken as local time."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"'{text}' is not an ISO date or date-time (for example 2026-05-01 or 2026-05-01T14:30)") from exc
    return value if value.tzinfo else value.astimezone()


def _hash_unit(seed: int, frame_id: int, salt: str = "split") -> float:
    digest = hashlib.sha256(f"{salt}:{seed}:{frame_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def firing_tile(scores: dict[str, dict[str, Any]], thresholds: dict[str, float]) -> tuple[str | None, tuple[int, int, int, int] | None]:
    """The member that fired most clearly (or came closest) among those whose score keeps a
    tile box, and that box."""
    with_box = {m: r for m, r in scores.items() if r.get("x0") is not None}
    if not with_box:
        return (max(scores, key=lambda m: scores[m]["score"]) if scores else None), None
    names = sorted(with_box)
    z = normalised(np.array([[with_box[m]["score"] for m in names]]), np.array([thresholds.get(m, 0.5) for m in names]))[0]
    best = names[int(np.argmax(z))]
    r = with_box[best]
    return best, (int(r["x0"]), int(r["y0"]), int(r["x1"]), int(r["y1"]))


def reviewers_and_policies(project: Project) -> tuple[list[str], list[int]]:
    """Everyone who decided something, and every policy a decision was made under."""
    t = DecisionStore(project).table
    with project.db.read() as conn:
        rows = conn.execute(select(t.c.reviewer, t.c.policy_id).where(t.c.undone_at.is_(None)).distinct()).all()
    return sorted({str(r[0]) for r in rows}), sorted({int(r[1]) for r in rows if r[1] is not None})


def plan_export(project: Project, cards: dict[str, ModelCard], settings: Settings, selection: Selection,
                options: Options) -> Plan:
    """What would be exported, split and balanced: the preview and the export share it."""
    store = ScoreStore(project)
    standing = DecisionStore(project).current()
    held: dict[str, int] = {"disputed": 0, "doubted": 0}
    disputed: set[int] = set()
    doubted: set[int] = set()
    if not selection.include_doubtful:
        disputed, doubted = set(disagreements(project)), rereview_frames(project)
    reviewers_of: dict[int, set[str]] = {}
    t = DecisionStore(project).table
    with project.db.read() as conn:
        for fid, reviewer, kind in conn.execute(select(t.c.frame_id, t.c.reviewer, t.c.sample_kind).where(t.c.undone_at.is_(None))):
            if kind != RESOLVE:
                reviewers_of.setdefault(int(fid), set()).add(str(reviewer))
    frames = {r["id"]: r for r in project.frame_rows()} if standing else {}
    chosen = []
    for d in standing:
        if selection.sources is not None and frames[d["frame_id"]]["source_id"] not in selection.sources:
            continue
        if d["label"] not in selection.labels:
            continue
        if selection.reviewers is not None and d["reviewer"] not in selection.reviewers:
            continue
        if selection.policies is not None and d["policy_id"] not in selection.policies:
            continue
        when = dt.datetime.fromisoformat(d["decided_at"])
        if (selection.since and when < selection.since) or (selection.until and when >= selection.until):
            continue
        fid = int(d["frame_id"])
        if fid in disputed or fid in doubted:
            held["disputed" if fid in disputed else "doubted"] += 1
            continue
        chosen.append(d)
    sources = {s["id"]: s for s in project.source_summaries()}
    score_rows = store.frame_score_rows([int(d["frame_id"]) for d in chosen])
    thresholds = active_policy(store, cards, settings).thresholds
    items = []
    for d in chosen:
        fr = frames[d["frame_id"]]
        sc = score_rows.get(int(d["frame_id"]), {})
        member, box = firing_tile(sc, thresholds)
        items.append(Item(decision=d, frame=fr, source=sources[fr["source_id"]], scores=sc, firing_member=member, box=box,
                          second_review=len(reviewers_of.get(int(d["frame_id"]), ())) > 1 or d["sample_kind"] == "second"))
    members = sorted({m for it in items for m in it.scores} | set(cards))
    _assign_splits(items, options)
    before = _counts(items)
    dropped = 0
    if options.balance != "none":
        items, dropped = _balance(items, options)
    items.sort(key=lambda it: (it.frame["source_id"], it.frame["idx"], it.copy))
    return Plan(items, members, held, before, _counts(items), dropped, selection.describe())


def _assign_splits(items: list[Item], options: Options) -> None:
    """Stratified by class: within each class, frames ranked by a seeded hash of their id
    are cut at the shares (largest remainder), so every split gets its share of each class."""
    by_class: dict[str, list[Item]] = {}
    for it in items:
        by_class.setdefault(it.cls, []).append(it)
    for group in by_class.values():
        group.sort(key=lambda it: _hash_unit(options.seed, int(it.frame["id"])))
        n = len(group)
        exact = [s * n for s in options.split]
        quota = [int(np.floor(e)) for e in exact]
        for i in sorted(range(3), key=lambda i: -(exact[i] - quota[i]))[: n - sum(quota)]:
            quota[i] += 1
        k = 0
        for split, q in zip(SPLITS, quota):
            for it in group[k : k + q]:
                it.split = split
            k += q


def _balance(items: list[Item], options: Options) -> tuple[list[Item], int]:
    rng = np.random.default_rng(options.seed)
    train = [it for it in items if it.split == "train"]
    rest = [it for it in items if it.split != "train"]
    by_class: dict[str, list[Item]] = {}
    for it in sorted(train, key=lambda it: int(it.frame["id"])):
        by_class.setdefault(it.cls, []).append(it)
    if len(by_class) < 2:
        return items, 0
    sizes = [len(g) for g in by_class.values()]
    out: list[Item] = []
    dropped = 0
    for cls in sorted(by_class):
        group = by_class[cls]
        if options.balance == "under":
            keep = sorted(rng.choice(len(group), size=min(sizes), replace=False).tolist())
            out += [group[i] for i in keep]
            dropped += len(group) - len(keep)
        else:
            out += group
            extra = max(sizes) - len(group)
            picks = rng.choice(len(group), size=extra, replace=True).tolist() if extra else []
            copies: dict[int, int] = {}
            for i in picks:
                copies[i] = copies.get(i, 0) + 1
                src = group[i]
                out.append(Item(src.decision, src.frame, src.source, src.scores, src.firing_member, src.box,
                                src.split, copies[i], src.second_review))
    return out + rest, dropped


def _counts(items: list[Item]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    for it in items:
        out[it.split][it.cls] = out[it.split].get(it.cls, 0) + 1
    return out


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
    if it.source["kind"] == "images":
        base = Path(it.source["uri"])
        p = (base if base.is_dir() else base.parent) / str(it.frame["path"])
    elif it.source["kind"] == "stream" and it.frame.get("path"):
        p = project_root / str(it.frame["path"])
    else:
        return None
    return p if p.suffix.lower() in COPYABLE else None


# ------------------------------------------------------------------------------ manifest
_FRAME_COLS = ("lat", "lon", "rel_alt", "abs_alt", "gimbal_pitch", "gimbal_yaw", "gimbal_roll", "aircraft_pitch",
               "aircraft_yaw", "aircraft_roll", "iso", "shutter_s", "fnum")


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


def _row(it: Item, members: list[str], file: str, crop: str | None, thumb: str | None) -> dict[str, Any]:
    d, fr, src = it.decision, it.frame, it.source
    at_decision = json.loads(d["member_scores"] or "{}")
    row: dict[str, Any] = dict(
        file=file, split=it.split, **{"class": it.cls}, decision=d["label"], copy=it.copy, source_id=src["id"],
        source_name=src["name"], source_uri=src["uri"], source_kind=src["kind"], frame_id=fr["id"], frame_index=fr["idx"],
        timestamp_s=fr["timestamp_s"], captured_at=fr["captured_at"], frame_path=fr["path"], width=fr["width"],
        height=fr["height"], telemetry_matched=bool(fr["telemetry_matched"]), quality_flag=fr["quality_flag"],
    )
    row.update({c: fr[c] for c in _FRAME_COLS})
    for m in members:
        s = it.scores.get(m)
        row[f"score_{m}"] = None if s is None else s["score"]
        row[f"score_at_decision_{m}"] = at_decision.get(m)
        row[f"tile_{m}"] = None if s is None else s["tile"]
        for k in ("x0", "y0", "x1", "y1"):
            row[f"tile_{m}_{k}"] = None if s is None else s[k]
    box = it.box or (None, None, None, None)
    row.update(firing_member=it.firing_member, firing_x0=box[0], firing_y0=box[1], firing_x1=box[2], firing_y1=box[3],
               fused_score_at_decision=d["fused_score"], policy_id=d["policy_id"], policy=d["policy"], reviewer=d["reviewer"],
               sample_kind=d["sample_kind"], audit_sample=d["sample_kind"] == "audit", second_review=it.second_review,
               resolved_by_supervisor=d["sample_kind"] == RESOLVE, decision_id=d["id"], decided_at=d["decided_at"],
               seconds_spent=d["seconds_spent"], decided_via=d["via"], crop_file=crop, thumbnail_file=thumb)
    return row


def _write_csv(path: Path, cols: list[tuple[str, str]], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([c for c, _ in cols])
        for r in rows:
            w.writerow(["" if r[c] is None else (int(r[c]) if t == "bool" else r[c]) for c, t in cols])


def _write_parquet(path: Path, cols: list[tuple[str, str]], rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}
    arrays = {c: pa.array([r[c] for r in rows], type=types[t]) for c, t in cols}
    pq.write_table(pa.table(arrays), path)


# ------------------------------------------------------------------------------ geo
def _geo_points(items: list[Item], rows: dict[int, dict[str, Any]], members: list[str]) -> list[dict[str, Any]]:
    pts = []
    for it in items:
        fr = it.frame
        if it.copy or it.decision["label"] != "accept" or fr["lat"] is None or fr["lon"] is None:
            continue
        r = rows[int(fr["id"])]
        props = dict(time=fr["captured_at"], timestamp_s=fr["timestamp_s"], source=it.source["name"], source_id=it.source["id"],
                     frame=fr["idx"], thumbnail=r["thumbnail_file"], image=r["file"], reviewer=it.decision["reviewer"],
                     decided_at=it.decision["decided_at"], fused_score_at_decision=it.decision["fused_score"])
        props.update({f"score_{m}": r[f"score_{m}"] for m in members if r[f"score_{m}"] is not None})
        pts.append(dict(lon=float(fr["lon"]), lat=float(fr["lat"]), alt=fr["abs_alt"], props=props))
    return pts


def _write_geojson(path: Path, pts: list[dict[str, Any]]) -> None:
    features = [dict(type="Feature", geometry=dict(type="Point", coordinates=[p["lon"], p["lat"]]), properties=p["props"])
                for p in pts]
    path.write_text(json.dumps(dict(type="FeatureCollection", features=features), indent=1), encoding="utf-8")


def _write_kml(path: Path, pts: list[dict[str, Any]]) -> None:
    ns = "http://www.opengis.net/kml/2.2"
    kml = ET.Element("kml", xmlns=ns)
    doc = ET.SubElement(kml, "Document")
    ET.SubElement(doc, "name").text = "Accepted candidates"
    for p in pts:
        pr = p["props"]
        pm = ET.SubElement(doc, "Placemark")
        ET.SubElement(pm, "name").text = f"{pr['source']} frame {pr['frame']}"
        scores = ", ".join(f"{k[6:]} {v:.3f}" for k, v in pr.items() if k.startswith("score_"))
        ET.SubElement(pm, "description").text = (f"<img src=\"{pr['thumbnail']}\" width=\"320\"/><br/>"
                                                 f"{pr['source']}, frame {pr['frame']}; scores: {scores}")
        if pr["time"]:
            ts = ET.SubElement(pm, "TimeStamp")
            ET.SubElement(ts, "when").text = str(pr["time"])
        ext = ET.SubElement(pm, "ExtendedData")
        for k, v in pr.items():
            if v is not None:
                ET.SubElement(ET.SubElement(ext, "Data", name=k), "value").text = str(v)
        pt = ET.SubElement(pm, "Point")
        ET.SubElement(pt, "coordinates").text = f"{p['lon']:.7f},{p['lat']:.7f}"
    ET.indent(kml)
    path.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(kml, encoding="utf-8"))


# ------------------------------------------------------------------------------ COCO
def _coco(items: list[Item], rows: dict[tuple[int, int], dict[str, Any]], split: str) -> dict[str, Any]:
    cats = [dict(id=i + 1, name=c) for i, c in enumerate(("positive", "negative", "unsure"))]
    cat_id = {c["name"]: c["id"] for c in cats}
    images, anns = [], []
    for it in items:
        if it.split != split:
            continue
        r = rows[(int(it.frame["id"]), it.copy)]
        iid = len(images) + 1
        images.append(dict(id=iid, file_name=r["file"], width=r["width"], height=r["height"], source=r["source_name"],
                           frame_index=r["frame_index"], timestamp_s=r["timestamp_s"], decision=r["decision"],
                           frame_id=r["frame_id"]))
        if it.box:
            x0, y0, x1, y1 = it.box
            anns.append(dict(id=len(anns) + 1, image_id=iid, category_id=cat_id[it.cls], bbox=[x0, y0, x1 - x0, y1 - y0],
                             area=(x1 - x0) * (y1 - y0), iscrowd=0,
                             attributes=dict(member=it.firing_member, score=r.get(f"score_{it.firing_member}"))))
    return dict(info=dict(description="triage_app export: firing tile per decided frame", version=__version__),
                images=images, annotations=anns, categories=cats)


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


def export(project: Project, cards: dict[str, ModelCard], settings: Settings, outdir: str | Path, selection: Selection,
           options: Options, progress: Callable[[int, int], None] | None = None,
           cancel: threading.Event | None = None) -> ExportReport:
    """Write the export to ``outdir`` atomically. Raises ``ExportError`` (naming the folder
    and the problem) when it cannot be written, leaving nothing behind."""
    out = Path(outdir).absolute()
    if out.exists() and not out.is_dir():
        raise ExportError(out, "exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not options.overwrite:
        raise ExportError(out, "folder exists and is not empty (choose another, or overwrite it)")
    plan = plan_export(project, cards, settings, selection, options)
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
        report = _write_all(project, plan, tmp, out, options, progress, cancel)
        _replace(tmp, out)
    except ExportCancelled:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        where = exc.filename or out
        raise ExportError(out, f"cannot write {where} ({exc.strerror or exc}); nothing was exported") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


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


def _write_all(project: Project, plan: Plan, tmp: Path, out: Path, options: Options,
               progress: Callable[[int, int], None] | None, cancel: threading.Event | None) -> ExportReport:
    fmt = set(options.formats)
    geo = bool(fmt & {"geojson", "kml"})
    reader = FrameReader(project.root)
    rows: list[dict[str, Any]] = []
    by_key: dict[tuple[int, int], dict[str, Any]] = {}
    skipped: list[str] = []
    written = 0
    total = len(plan.items)
    try:
        for n, it in enumerate(plan.items):
            if cancel is not None and cancel.is_set():
                raise ExportCancelled("export stopped; nothing was written")
            stem = file_stem(it)
            copy_from = _source_image(it, project.root)
            suffix = copy_from.suffix.lower() if copy_from is not None else f".{options.image_format}"
            rel = f"{it.split}/{it.cls}/{stem}{suffix}"
            need_pixels = (it.copy == 0 and ("crops" in fmt or (geo and it.decision["label"] == "accept"))) or (
                options.writes_images and copy_from is None)
            image = None
            if need_pixels or (options.writes_images and copy_from is not None and not copy_from.is_file()):
                try:
                    image = reader.read(it.source, it.frame)
                except TriageError as exc:
                    skipped.append(str(exc))
                    continue
            if options.writes_images:
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if copy_from is not None:
                    shutil.copyfile(copy_from, target)
                else:
                    target.write_bytes(_encode(image, suffix, options.jpeg_quality))
                written += 1
            crop_rel = thumb_rel = None
            if "crops" in fmt and image is not None:
                crop_rel = f"crops/{it.split}/{it.cls}/{stem}.{options.image_format}"
                (tmp / crop_rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / crop_rel).write_bytes(_encode(_crop(image, it.box, options.crop_margin), f".{options.image_format}",
                                                     options.jpeg_quality))
                written += 1
            if geo and image is not None and it.decision["label"] == "accept" and it.copy == 0:
                thumb_rel = f"thumbnails/{stem}.jpg"
                (tmp / thumb_rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / thumb_rel).write_bytes(_encode(_thumb(image, options.thumb_size), ".jpg", 85))
                written += 1
            row = _row(it, plan.members, rel if options.writes_images else "", crop_rel, thumb_rel)
            rows.append(row)
            by_key[(int(it.frame["id"]), it.copy)] = row
            if progress:
                progress(n + 1, total)
    finally:
        reader.close()
    kept = [it for it in plan.items if (int(it.frame["id"]), it.copy) in by_key]
    cols = manifest_columns(plan.members)
    if "csv" in fmt:
        _write_csv(tmp / "manifest.csv", cols, rows)
    if "parquet" in fmt:
        _write_parquet(tmp / "manifest.parquet", cols, rows)
    if "coco" in fmt:
        for split in SPLITS:
            (tmp / f"coco_{split}.json").write_text(json.dumps(_coco(kept, by_key, split), indent=1), encoding="utf-8")
    pts: list[dict[str, Any]] = []
    if geo:
        originals = {int(it.frame["id"]): by_key[(int(it.frame["id"]), 0)] for it in kept if it.copy == 0}
        pts = _geo_points([it for it in kept if it.copy == 0], originals, plan.members)
        if "geojson" in fmt:
            _write_geojson(tmp / "accepted.geojson", pts)
        if "kml" in fmt:
            _write_kml(tmp / "accepted.kml", pts)
    counts = _counts(kept)
    balance = dict(balance=options.balance, applies_to="train", before=plan.before_balance, after=counts,
                   dropped_by_undersampling=plan.dropped_by_balance,
                   duplicated_by_oversampling=sum(1 for it in kept if it.copy))
    (tmp / "balance.json").write_text(json.dumps(balance, indent=1, sort_keys=True), encoding="utf-8")
    info = dict(triage_app=__version__, project=str(project.root), selection=plan.selection, options=dict(asdict(options), overwrite=None),
                rows=len(rows), held_back=plan.held_back, skipped=skipped, classes=CLASS_OF)
    (tmp / "export.json").write_text(json.dumps(info, indent=1, sort_keys=True, default=str), encoding="utf-8")
    return ExportReport(out, written, len(rows), counts, plan.before_balance, plan.held_back, skipped, len(pts),
                        sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()))
