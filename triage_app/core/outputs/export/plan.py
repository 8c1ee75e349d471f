"""What an export holds: the standing decisions chosen by the selection, split (stratified,
seeded) and balanced. The preview and the export share this plan; ``export`` writes it."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triage_app.core.model.policy import firing_tile
from triage_app.core.model.records import LABELS, Decision, Frame, Source, Why, event_groups
from triage_app.core.review.agreement import disagreements
from triage_app.core.store import Workspace
from triage_app.core.store.annotations import Annotation

FORMATS = ("imagefolder", "csv", "parquet", "coco", "yolo", "crops", "geojson", "kml", "cvat", "label-studio", "fiftyone")
DEFAULT_FORMATS = ("imagefolder", "csv", "parquet")
CLASS_OF = {"accept": "positive", "reject": "negative", "unsure": "unsure"}
SPLITS = ("train", "val", "test")
BALANCE = ("none", "under", "over")
# What torchvision's ImageFolder accepts; image sources in these formats are copied byte for byte.
COPYABLE = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


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
        """COCO names the image-folder files, and the other dataset formats link them, so they
        bring them along."""
        return bool({"imagefolder", "coco", "yolo", "cvat", "label-studio", "fiftyone"} & set(self.formats))


@dataclass
class Item:
    """One file to export: a standing decision on a frame, with its split."""

    decision: Decision
    frame: Frame
    source: Source
    scores: dict[str, dict[str, Any]]
    firing_member: str | None
    box: tuple[int, int, int, int] | None
    split: str = "train"
    copy: int = 0  # > 0 for an oversampled duplicate
    second_review: bool = False
    drawn: Annotation | None = None  # boxes drawn in an annotation tool and imported (None: never annotated)

    @property
    def cls(self) -> str:
        return CLASS_OF[self.decision.label.value]

    def target_boxes(self, target: str) -> list[tuple[str, tuple[float, float, float, float], str]]:
        """(label, (x0, y0, x1, y1), kind) of what a detector should learn on this frame: an
        accepted frame's drawn boxes where it was annotated (kind "drawn"; none when the
        annotator boxed nothing), else the tile that fired (kind "firing tile"); nothing on
        a rejected or unsure frame (background, or left out)."""
        if self.cls != "positive":
            return []
        if self.drawn is not None:
            return [(b.label, (b.x0, b.y0, b.x1, b.y1), "drawn") for b in self.drawn.boxes]
        if not self.box:
            return []
        x0, y0, x1, y1 = self.box
        return [(target, (float(x0), float(y0), float(x1), float(y1)), "firing tile")]


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


def plan_export(ws: Workspace, selection: Selection, options: Options) -> Plan:
    """What would be exported, split and balanced: the preview and the export share it."""
    history = ws.decisions.history()  # one read gives the standing decisions and who decided each frame
    latest: dict[int, Decision] = {}
    reviewers_of: dict[int, set[str]] = {}
    for d in history:
        latest[d.frame_id] = d
        if d.sample_kind != Why.RESOLVE.value:
            reviewers_of.setdefault(d.frame_id, set()).add(d.reviewer)
    standing = list(latest.values())
    held: dict[str, int] = {"disputed": 0, "doubted": 0}
    disputed: set[int] = set()
    doubted: set[int] = set()
    if not selection.include_doubtful:
        disputed, doubted = set(disagreements(ws)), ws.decisions.doubted_frames()
    frames = {r["id"]: r for r in ws.frames.frame_rows()} if standing else {}
    chosen = []
    for d in standing:
        if selection.sources is not None and frames[d.frame_id]["source_id"] not in selection.sources:
            continue
        if d.label.value not in selection.labels:
            continue
        if selection.reviewers is not None and d.reviewer not in selection.reviewers:
            continue
        if selection.policies is not None and d.policy_id not in selection.policies:
            continue
        when = dt.datetime.fromisoformat(d.decided_at)
        if (selection.since and when < selection.since) or (selection.until and when >= selection.until):
            continue
        if d.frame_id in disputed or d.frame_id in doubted:
            held["disputed" if d.frame_id in disputed else "doubted"] += 1
            continue
        chosen.append(d)
    sources = {s["id"]: s for s in ws.frames.source_summaries()}
    score_rows = ws.scores.frame_score_rows([d.frame_id for d in chosen])
    thresholds = ws.policy().thresholds
    items = []
    for d in chosen:
        fr = frames[d.frame_id]
        sc = score_rows.get(d.frame_id, {})
        member, box = firing_tile(sc, thresholds)
        items.append(Item(decision=d, frame=fr, source=sources[fr["source_id"]], scores=sc, firing_member=member, box=box,
                          second_review=len(reviewers_of.get(d.frame_id, ())) > 1 or d.sample_kind == Why.SECOND.value))
    drawn = ws.annotations.of_frames([d.frame_id for d in chosen]) if chosen else {}
    for it in items:
        it.drawn = drawn.get(int(it.frame["id"]))
    members = sorted({m for it in items for m in it.scores} | set(ws.cards))
    _assign_splits(items, options, ws.settings.review.event_gap_s)
    before = counts(items)
    dropped = 0
    if options.balance != "none":
        items, dropped = _balance(items, options)
    items.sort(key=lambda it: (it.frame["source_id"], it.frame["idx"], it.copy))
    return Plan(items, members, held, before, counts(items), dropped, selection.describe())


def _assign_splits(items: list[Item], options: Options, gap_s: float) -> None:
    """Each event (the frames of one source within ``gap_s`` seconds: near duplicates) goes
    whole to one split, so no split holds the neighbour of a frame in another. Events, in the
    order of a seeded hash, each join the split furthest below its share of the event's
    classes, so every split gets about its share of each class."""
    groups = event_groups([it.frame for it in items], gap_s)
    by_group: dict[int, list[Item]] = {}
    for it in items:
        by_group.setdefault(groups[int(it.frame["id"])], []).append(it)
    totals: dict[str, int] = {}
    for it in items:
        totals[it.cls] = totals.get(it.cls, 0) + 1
    filled = {split: dict.fromkeys(totals, 0) for split in SPLITS}
    order = sorted(by_group, key=lambda g: (_hash_unit(options.seed, min(int(it.frame["id"]) for it in by_group[g])), g))
    for g in order:
        members = by_group[g]
        classes: dict[str, int] = {}
        for it in members:
            classes[it.cls] = classes.get(it.cls, 0) + 1

        def deficit(k: int, classes: dict[str, int] = classes) -> float:
            split, share = SPLITS[k], options.split[k]
            if share <= 0:
                return -np.inf
            return sum(n * (share * totals[c] - filled[split][c]) / totals[c] for c, n in classes.items())

        best = max(range(len(SPLITS)), key=lambda k: (deficit(k), -k))
        for it in members:
            it.split = SPLITS[best]
        for c, n in classes.items():
            filled[SPLITS[best]][c] += n


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
                                src.split, copies[i], src.second_review, src.drawn))
    return out + rest, dropped


def counts(items: list[Item]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    for it in items:
        out[it.split][it.cls] = out[it.split].get(it.cls, 0) + 1
    return out
