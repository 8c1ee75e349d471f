"""Ingest: read a source's sampled frames, gate their quality, match telemetry, and
record them in the project. Re-running an ingest resumes after the last stored frame."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2

from triage_app.core.ingest import quality, remote
from triage_app.core.ingest.parallel import default_workers
from triage_app.core.ingest.sources import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    SourceFrame,
    VideoSource,
    capture_seconds,
    is_stream_uri,
    open_source,
)
from triage_app.core.ingest.telemetry import Telemetry, find_sidecar_srt, parse_srt
from triage_app.core.ingest.telemetry.model import TelemetryPoint
from triage_app.core.model.errors import SourceError, StoreError, TelemetryParseError
from triage_app.core.model.records import Sampling
from triage_app.core.store import Workspace

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int | None], None]


class CancelToken(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class IngestResult:
    """What one source's ingest did, for the summary line and the GUI."""

    uri: str
    source_id: int | None = None
    name: str = ""
    frames_new: int = 0
    frames_total: int = 0
    flagged: Counter[str] = field(default_factory=Counter)
    telemetry_path: str | None = None
    telemetry_matched: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    cancelled: bool = False
    incomplete: bool = False
    changes: list[str] = field(default_factory=list)  # what ingesting again changed in frames stored before

    @property
    def ok(self) -> bool:
        return self.error is None


def _telemetry_for(source_kind: str, uri: str, explicit: Path | None, result: IngestResult) -> Telemetry | None:
    path = explicit
    if path is None and source_kind == "video":
        path = find_sidecar_srt(Path(uri))
    if path is None:
        return None
    result.telemetry_path = str(path)
    try:
        telemetry = parse_srt(path)
    except TelemetryParseError as exc:
        result.warnings.append(f"telemetry not used: {exc}")
        return None
    result.warnings.extend(telemetry.warnings)
    return telemetry


def _frame_row(
    source_id: int, frame: SourceFrame, report: quality.QualityReport, telemetry: Telemetry | None, tolerance: float
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "source_id": source_id,
        "idx": frame.idx,
        "timestamp_s": frame.timestamp_s,
        "path": frame.path,
        "telemetry_matched": 0,
        "quality_note": None,
    }
    if frame.size is not None:
        row["width"], row["height"] = frame.size
    elif frame.image is not None:
        row["height"], row["width"] = frame.image.shape[:2]
    point = frame.telemetry
    if telemetry is not None:
        point = telemetry.at(frame.timestamp_s, tolerance) or point
    if point is not None:
        row.update(point.as_row())
        row["telemetry_matched"] = 1
    row.update(report.as_row())
    if frame.error:
        row["quality_note"] = frame.error
    for k in ("brightness", "dark_fraction", "bright_fraction", "sharpness"):
        if row[k] != row[k]:  # NaN is stored as NULL
            row[k] = None
    return row


def ingest_source(
    ws: Workspace,
    uri: str | Path,
    telemetry_path: Path | None = None,
    sampling: Sampling | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    batch: int = 32,
    wait_s: float = 0.0,
) -> IngestResult:
    """Ingest one source. Never raises for bad input: the problem is in ``result.error``
    (nothing usable) or ``result.warnings`` (some frames or telemetry unusable), and is
    recorded in the project's messages. Raises ``ProjectBusy`` when another run is writing
    the project."""
    settings = ws.settings
    sampling = sampling or Sampling(settings.ingest.every, settings.ingest.fps)
    result = IngestResult(uri=str(uri))
    try:
        # Ingest only measures the pictures, at the quality gate's analysis size: a still whose
        # half size is still four times that is decoded at half size (its blur measure moves by
        # a few per cent). Scoring and review read every still again in full.
        source = open_source(uri, settings.quality.max_pixels, settings.ingest.stream_max_frames,
                             default_workers(settings.scoring.decode_workers), 4 * settings.quality.analysis_size)
    except SourceError as exc:
        result.error = str(exc)
        ws.frames.add_message("error", str(exc), path=str(uri))
        return result
    info = source.info()
    result.name = info.name
    with ws.writing(f"the ingest of {info.name}", wait_s=wait_s):  # one writer of frames at a time
        sampling_key = sampling.as_dict() if source.kind != "images" else {}
        source_id, _created = ws.frames.add_source(source.kind, info.uri, info.name, sampling_key)
        result.source_id = source_id
        telemetry = _telemetry_for(source.kind, info.uri, telemetry_path, result)
        if source.kind != "images":
            _rematch_telemetry(ws, source_id, telemetry, result.telemetry_path, settings.ingest.telemetry_tolerance_s, result)
        ws.frames.update_source(
            source_id,
            fps=info.fps,
            frame_count=info.frame_count,
            width=info.width,
            height=info.height,
            telemetry_path=result.telemetry_path,
            telemetry_points=len(telemetry.points) if telemetry else 0,
            status="ingesting",
        )
        result.warnings.extend(info.warnings)
        try:
            _read_frames(ws, source, info, source_id, sampling, telemetry, result, progress, cancel, batch)
            _conclude(ws, source, info, source_id, result)
        except StoreError as exc:
            # Nothing more can be stored (the disk is full, most often): one message, the frames
            # stored so far kept, the source marked as partly read so that ingesting it again
            # once there is room goes on where it stopped.
            free = _free_mb(ws.root)
            result.error = (f"{exc}; {ws.root} has {free:.0f} MB free: ingest of {info.name} stopped, the "
                            f"{result.frames_new} frames stored are kept (add it again once there is room)")
            result.incomplete = True
            try:
                ws.frames.update_source(source_id, status="partial", message=result.error)
            except StoreError:
                pass
    return result


def _free_mb(folder: Path) -> float:
    import shutil

    try:
        return shutil.disk_usage(folder).free / 1e6
    except OSError:
        return float("nan")


def _read_frames(ws: Workspace, source: Any, info: Any, source_id: int, sampling: Sampling, telemetry: Telemetry | None,
                 result: IngestResult, progress: ProgressFn | None, cancel: CancelToken | None, batch: int) -> None:
    """Read the source's sampled frames after those already stored, gate and record them."""
    settings = ws.settings
    existing = ws.frames.frame_indices(source_id)
    start_after = max(existing) if existing else -1
    total = None
    if info.frame_count:
        total = info.frame_count if source.kind == "images" else expected_frames(info.frame_count, info.fps, sampling)
    rows: list[dict[str, Any]] = []
    retried: list[dict[str, Any]] = []
    done = len(existing)
    stream_dir = ws.frames.stream_dir(source_id) if source.kind == "stream" else None
    frames_of = source.frames(sampling, start_after=start_after)
    if source.kind == "images" and existing:
        # Stills are known by path: photos added since sort anywhere in the listing, and
        # those that could not be read before (permissions, a copy still running) are tried again.
        known, failed, first = ws.frames.stored_stills(source_id)
        origin = _iso_seconds(first) if first else None
        frames_of = source.frames(sampling, known=known, retry=failed, t0=origin)
        done = len(known) - len(failed)

    def flush() -> None:
        if rows:
            fresh = [r for r in rows if r["idx"] not in existing]
            again = [r for r in rows if r["idx"] in existing]
            result.frames_new += ws.frames.add_frames(fresh)
            if again:
                ws.frames.update_frames(again)
                retried.extend(again)
            rows.clear()

    try:
        for frame in frames_of:
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                break
            if frame.image is None:
                report = quality.undecodable()
                where = frame.path or f"frame {frame.idx}"
                result.warnings.append(f"{info.uri}: {where}: {frame.error}")
            else:
                report = quality.measure(frame.image, settings.quality)
            if stream_dir is not None and frame.image is not None:
                frame.path = _keep_stream_frame(ws, stream_dir, frame)
            rows.append(_frame_row(source_id, frame, report, telemetry, settings.ingest.telemetry_tolerance_s))
            done += 1
            if len(rows) >= batch:
                flush()
            if progress is not None:
                progress(done, total)
        flush()
    except StoreError:
        raise  # the project cannot store frames (a full disk): said once, by the caller
    except Exception as exc:  # a decoder that blows up mid-file: keep what was read
        flush()
        log.exception("ingest of %s stopped", info.uri)
        result.warnings.append(f"{info.uri}: reading stopped early ({exc})")
        result.incomplete = True
    if retried:
        fixed = [r for r in retried if r.get("quality_flag") != quality.UNDECODABLE]
        still = len(retried) - len(fixed)
        result.changes.append(f"{len(fixed)} of the {len(retried)} stills that could not be read before were read now"
                              + (f"; {still} still cannot be" if still else ""))


def _iso_seconds(text: str) -> float | None:
    try:
        return capture_seconds(text)
    except ValueError:
        return None


def _rematch_telemetry(ws: Workspace, source_id: int, telemetry: Telemetry | None, telemetry_path: str | None,
                       tolerance: float, result: IngestResult) -> None:
    """Ingesting a video again with telemetry (a file named at last, or another one): the
    frames stored before are matched to it again, and what changed is said."""
    stored = ws.frames.frame_times(source_id)
    if not stored or telemetry is None:
        return
    before = next(s for s in ws.frames.source_summaries() if s["id"] == source_id)["telemetry_matched"]
    rows = []
    for idx, t in stored:
        point = telemetry.at(t, tolerance)
        row: dict[str, Any] = {"source_id": source_id, "idx": idx}
        if point is not None:
            row.update(point.as_row(), telemetry_matched=1)
        else:
            row.update({k: None for k in TelemetryPoint.field_names()}, telemetry_matched=0)
        rows.append(row)
    ws.frames.update_frames(rows)
    after = sum(1 for r in rows if r["telemetry_matched"])
    if after != before:
        result.changes.append(f"telemetry from {telemetry_path} matched again: {after} of {len(rows)} frames stored "
                              f"before (was {before})")


def _keep_stream_frame(ws: Workspace, stream_dir: Path, frame: SourceFrame) -> str:
    """A live stream cannot be read twice: its frame is kept in the project. Returns its
    path relative to the project."""
    assert frame.image is not None
    stream_dir.mkdir(parents=True, exist_ok=True)
    target = stream_dir / f"{frame.idx:08d}.jpg"
    ok, buf = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if ok:  # written by Python: OpenCV's own writer takes UTF-8 names only
        target.write_bytes(buf.tobytes())
    return str(target.relative_to(ws.root))


def _judge_against_source(ws: Workspace, source_id: int) -> None:
    """Flag the source's frames against its own norm (see :func:`quality.relative_flags`)."""
    rows = ws.frames.frame_rows(source_id)
    verdicts = quality.relative_flags(rows, ws.settings.quality)  # type: ignore[arg-type]
    if verdicts is None:
        return
    changed = {int(r["id"]): (v.flag, v.note) for r, v in zip(rows, verdicts, strict=True)
               if (v.flag, v.note) != (r.get("quality_flag"), r.get("quality_note")) and v.flag != quality.UNDECODABLE}
    ws.frames.set_quality_flags(changed)


def _conclude(ws: Workspace, source: Any, info: Any, source_id: int, result: IngestResult) -> None:
    """The source's flags against its own norm, its counts, status and messages once its
    frames are read."""
    _judge_against_source(ws, source_id)
    if getattr(source, "truncated", False):
        result.incomplete = True
        result.warnings.append(
            f"{info.uri}: video ends after {getattr(source, 'frames_read', '?')} of the "
            f"{info.frame_count} frames its header announces (truncated file?)"
        )
    summary = next(s for s in ws.frames.source_summaries() if s["id"] == source_id)
    result.frames_total = summary["frames"]
    result.telemetry_matched = summary["telemetry_matched"]
    result.flagged = Counter(ws.frames.flag_counts(source_id))
    if result.frames_total == 0:
        result.error = f"{info.uri}: no frame could be read"
    status = "failed" if result.error else ("partial" if result.cancelled or result.incomplete else "ingested")
    ws.frames.update_source(source_id, status=status, message="; ".join(result.warnings[:5]) or result.error)
    for w in result.warnings:
        ws.frames.add_message("warning", w, path=info.uri, source_id=source_id)
    for c in result.changes:
        ws.frames.add_message("info", c, path=info.uri, source_id=source_id)
    if result.error:
        ws.frames.add_message("error", result.error, path=info.uri, source_id=source_id)


def expected_frames(frame_count: int, fps: float | None, sampling: Sampling) -> int:
    """Frames a sampling keeps of a video of ``frame_count`` frames at ``fps``."""
    if sampling.fps and fps:
        return max(1, int(frame_count / fps * sampling.fps))
    return max(1, -(-frame_count // sampling.every))


@dataclass
class FootageProbe:
    """What a video or stream is, before it is added: for choosing how densely to sample it."""

    uri: str
    name: str
    kind: str  # video, stream
    fps: float | None = None
    frame_count: int | None = None
    width: int | None = None
    height: int | None = None
    telemetry: str | None = None  # the DJI .SRT found beside a video
    error: str | None = None  # why it cannot be read (it is then reported when added)
    in_project: list[str] = field(default_factory=list)  # how it was sampled when added before

    @property
    def duration_s(self) -> float | None:
        return self.frame_count / self.fps if self.frame_count and self.fps else None

    def frames_kept(self, sampling: Sampling) -> int | None:
        """Frames this sampling keeps (None where the length is not known: a stream)."""
        return expected_frames(self.frame_count, self.fps, sampling) if self.frame_count else None


def probe_footage(uri: str | Path, ws: Workspace | None = None) -> FootageProbe:
    """Read a video's header and first frame (never its whole length); a stream is not
    opened, since connecting to one can take long. Never raises: the problem is in ``error``."""
    text = str(uri)
    if remote.is_object_url(text):  # not fetched just to describe it: the ingest fetches it once
        probe = FootageProbe(text, text.rstrip("/").rsplit("/", 1)[-1], "video")
    elif is_stream_uri(text):
        probe = FootageProbe(text, text, "stream")
    else:
        probe = FootageProbe(text, Path(text).name, "video")
        try:
            source = VideoSource(text)
        except SourceError as exc:
            probe.error = str(exc)
        else:
            info = source.info()
            source.close()
            probe.uri, probe.fps, probe.frame_count = info.uri, info.fps, info.frame_count
            probe.width, probe.height = info.width, info.height
            srt = find_sidecar_srt(Path(text))
            probe.telemetry = str(srt) if srt else None
    if ws is not None:
        for row in ws.frames.source_summaries():
            if row["uri"] == probe.uri and row["kind"] in ("video", "stream"):
                probe.in_project.append(Sampling.stored(row["sampling"]).describe())
    return probe


@dataclass
class DroppedFootage:
    """What a set of dropped files and folders holds, sorted for adding."""

    videos: list[str] = field(default_factory=list)  # to sample (the add-footage dialog)
    image_sources: list[str] = field(default_factory=list)  # folders of stills, and single stills
    ignored: list[str] = field(default_factory=list)  # neither footage nor a folder holding any


def sort_dropped(paths: list[str | Path]) -> DroppedFootage:
    """Videos, image sources and the rest among dropped paths. A folder adds its videos (a
    camera card's DCIM folder: clips with their .SRT files) and, if it holds stills, itself as
    a folder of images; its subfolders are not searched."""
    out = DroppedFootage()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            entries = sorted(e for e in p.iterdir() if e.is_file())
            videos = [str(e) for e in entries if e.suffix.lower() in VIDEO_SUFFIXES]
            out.videos.extend(videos)
            if any(e.suffix.lower() in IMAGE_SUFFIXES for e in entries):
                out.image_sources.append(str(p))
            elif not videos:
                out.ignored.append(str(p))
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            out.videos.append(str(p))
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            out.image_sources.append(str(p))
        else:
            out.ignored.append(str(p))
    return out
