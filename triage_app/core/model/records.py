"""Plain typed records that travel between the layers: sources, frames, sampling, labels,
decisions and queue items. They hold data and small derived values, never a connection."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, TypedDict


class Label(StrEnum):
    """An analyst's verdict on a frame. ``accept`` means the target is there."""

    ACCEPT = "accept"
    REJECT = "reject"
    UNSURE = "unsure"

    @property
    def target(self) -> int | None:
        """1 for accept, 0 for reject, None for unsure: the label a model learns from."""
        return {Label.ACCEPT: 1, Label.REJECT: 0}.get(self)

    @classmethod
    def parse(cls, text: str | Label) -> Label:
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"label must be one of {', '.join(m.value for m in cls)}, not {text!r}") from None


LABELS = tuple(m.value for m in Label)


class Why(StrEnum):
    """Why a frame is in the review queue (recorded with its decision as ``sample_kind``)."""

    CANDIDATE = "candidate"  # the policy flags it
    AUDIT = "audit"  # a dropped frame drawn at random, shown blindly to measure recall
    UNCERTAIN = "uncertain"  # a dropped frame the ensemble is least sure about (before a head exists)
    REREVIEW = "rereview"  # the label check doubts its decision
    SECOND = "second"  # a second review of another analyst's decision
    RESOLVE = "resolve"  # reviewers disagree; the supervisor settles it


@dataclass(frozen=True)
class Sampling:
    """Which frames of a video to keep: all, every Nth, or N per second of video time."""

    every: int = 1
    fps: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"every": self.every, "fps": self.fps}

    @classmethod
    def stored(cls, text: str | None) -> Sampling:
        """The sampling a source was added with, from its stored form (``as_dict`` as JSON)."""
        data = json.loads(text or "{}")
        return cls(int(data.get("every") or 1), data.get("fps"))

    def describe(self) -> str:
        if self.fps:
            return f"{self.fps:g} frame{'' if self.fps == 1 else 's'} per second of video"
        return "every frame" if self.every == 1 else f"1 frame in {self.every}"


class Source(TypedDict, total=False):
    """A source as the store holds it: one video, folder of stills or stream (usually one
    flight), with how it was sampled and read."""

    id: int
    kind: str  # video, images, stream
    uri: str
    name: str
    added_at: str
    sampling: str  # Sampling.as_dict() as JSON (see Sampling.stored)
    fps: float | None
    frame_count: int | None
    width: int | None
    height: int | None
    telemetry_path: str | None
    telemetry_points: int
    status: str  # new, ingesting, ingested, partial, failed
    message: str | None
    # with the source summaries: its frames, flagged frames and frames with telemetry
    frames: int
    flagged: int
    telemetry_matched: int
    last_idx: int | None
    # with the sources list's overview: frames scored, candidates under the policy in force,
    # frames reviewed
    scored: int
    candidates: int
    reviewed: int


class Frame(TypedDict, total=False):
    """A sampled frame as the store holds it: where it comes from (source, index, time, the
    still's path), its telemetry, and what the quality gate measured."""

    id: int
    source_id: int
    idx: int
    timestamp_s: float
    path: str | None
    width: int | None
    height: int | None
    captured_at: str | None
    lat: float | None
    lon: float | None
    rel_alt: float | None
    abs_alt: float | None
    gimbal_pitch: float | None
    gimbal_yaw: float | None
    gimbal_roll: float | None
    aircraft_pitch: float | None
    aircraft_yaw: float | None
    aircraft_roll: float | None
    iso: float | None
    shutter_s: float | None
    fnum: float | None
    focal_35mm: float | None
    telemetry_matched: int
    brightness: float | None
    dark_fraction: float | None
    bright_fraction: float | None
    sharpness: float | None
    quality_flag: str | None
    quality_note: str | None


def _from_row(cls: Any, row: Any) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in dict(row).items() if k in names})


@dataclass
class Decision:
    """One recorded decision (the history keeps every one; undo sets ``undone_at``)."""

    id: int
    frame_id: int
    label: Label
    reviewer: str
    decided_at: str = ""
    seconds_spent: float = 0.0
    policy_id: int | None = None
    policy: str = ""
    member_scores: str = "{}"
    fused_score: float | None = None
    sample_kind: str = Why.CANDIDATE.value
    via: str = "single"
    undone_at: str | None = None

    def __post_init__(self) -> None:
        self.label = Label.parse(self.label)

    @classmethod
    def from_row(cls, row: Any) -> Decision:
        return _from_row(cls, row)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["label"] = self.label.value
        return out


@dataclass
class QueueItem:
    """A frame waiting in an analyst's queue, with why it is there."""

    frame_id: int
    source_id: int
    idx: int
    timestamp_s: float
    fused: float
    event: int = 0
    why: Why = Why.CANDIDATE
    rank: float = 0.0  # what score and learned orders sort by (highest first)
    scores: dict[str, float] = field(default_factory=dict)  # each member's score now

    @property
    def kind(self) -> str:
        """The ``sample_kind`` its decision records."""
        return self.why.value


def event_groups(frames: Sequence[Frame], gap_s: float) -> dict[int, int]:
    """Frame id -> group for anything that must keep near-duplicates together (cross-
    validation folds, export splits): frames of one source within the same window of
    ``gap_s`` seconds of capture time share a group. Consecutive frames of a flight, a
    fraction of a second apart, look alike; a model judged on one of them after learning
    from its neighbour would look better than it is."""
    width = max(float(gap_s), 1e-6)
    keys: dict[tuple[int, int], int] = {}
    out: dict[int, int] = {}
    for f in frames:
        key = (int(f["source_id"]), int(float(f["timestamp_s"]) // width))
        out[int(f["id"])] = keys.setdefault(key, len(keys))
    return out
