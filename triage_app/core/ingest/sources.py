"""Where frames come from: a video file, a folder of images, or a live stream.

Each sampled frame gets a stable identity (source, index, timestamp) so its pixels can be
read again later (:class:`reader.FrameReader`) without keeping them all. A live stream cannot be
read twice, so the ingest keeps its sampled frames as files in the project.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from triage_app.core.ingest import remote, video
from triage_app.core.ingest.parallel import ordered_map
from triage_app.core.ingest.telemetry.exif import read_exif
from triage_app.core.ingest.telemetry.model import TelemetryPoint
from triage_app.core.model.errors import SourceError
from triage_app.core.model.records import Sampling

log = logging.getLogger(__name__)
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # errors only: FFmpeg and libtiff chatter would drown the user's messages

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}
# Videos the add-video dialog offers and a dropped folder adds. Not DJI's .LRF files: they are
# low-resolution copies of the clips beside them.
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".ts", ".m4v", ".mts"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".m4v", ".mts", ".ts", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
Image.MAX_IMAGE_PIXELS = None  # size is checked by us with a clear message instead


class _Sampler:
    def __init__(self, sampling: Sampling) -> None:
        self.s = sampling
        self.last_bucket = -1

    def keep(self, index: int, t: float) -> bool:
        if self.s.fps:
            bucket = int(math.floor(t * self.s.fps + 1e-6))
            if bucket > self.last_bucket:
                self.last_bucket = bucket
                return True
            return False
        return index % self.s.every == 0


@dataclass
class SourceFrame:
    """One sampled frame as it comes off a source. ``image`` is BGR uint8, or ``None``
    with ``error`` saying why it could not be decoded."""

    idx: int
    timestamp_s: float
    image: np.ndarray | None
    path: str | None = None
    error: str | None = None
    telemetry: TelemetryPoint | None = None
    size: tuple[int, int] | None = None  # (width, height) of the full picture when ``image`` may be decoded reduced


@dataclass
class SourceInfo:
    kind: str
    uri: str
    name: str
    fps: float | None = None
    frame_count: int | None = None
    width: int | None = None
    height: int | None = None
    warnings: list[str] = field(default_factory=list)


def is_stream_uri(uri: str) -> bool:
    return bool(_URL.match(uri))


def _open_capture(uri: str) -> cv2.VideoCapture:
    if not _utf8(uri):
        return _open_through_link(uri)
    cap = cv2.VideoCapture(uri, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        cap = cv2.VideoCapture(uri)
    return cap


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _open_through_link(path: str) -> cv2.VideoCapture:
    """OpenCV takes file names as UTF-8 only (a path with other bytes crashes it): open the
    file through a symbolic link with a plain name, removed again once FFmpeg holds the file."""
    folder = tempfile.mkdtemp(prefix="triage-open-")
    link = os.path.join(folder, "video" + (Path(path).suffix if _utf8(Path(path).suffix) else ""))
    try:
        os.symlink(os.fsencode(path), link)
        cap = cv2.VideoCapture(link, cv2.CAP_FFMPEG)
    except OSError as exc:
        raise SourceError(path, f"cannot be opened: its name is not UTF-8 and no link could be made ({exc.strerror})") from exc
    finally:
        if os.path.lexists(link):
            os.unlink(link)
        os.rmdir(folder)
    return cap


# ---------------------------------------------------------------------------- video
def _position_ms(cap: cv2.VideoCapture) -> float | None:
    """The presentation time of the frame last grabbed, in ms (FFmpeg's timestamp), or None."""
    ms = cap.get(cv2.CAP_PROP_POS_MSEC)
    return float(ms) if ms is not None and np.isfinite(ms) and ms >= 0 else None


class _FrameClock:
    """Seconds since the first frame, from the container's timestamps where they are usable
    (present and increasing), else ``index / fps`` from the last good one."""

    def __init__(self, fps: float, t0_ms: float | None) -> None:
        self.fps = fps
        self.t0_ms = t0_ms
        self.last: tuple[int, float] | None = None

    def time(self, index: int, ms: float | None) -> float:
        t = None if ms is None or self.t0_ms is None else (ms - self.t0_ms) / 1000.0
        if self.last is not None:
            i0, t_prev = self.last
            if t is None or t <= t_prev or (index > 0 and ms == 0):
                t = t_prev + (index - i0) / self.fps
        elif t is None or t < 0:
            t = index / self.fps
        self.last = (index, t)
        return t


class VideoSource:
    """A video file that OpenCV's FFmpeg backend reads."""

    kind = "video"

    def __init__(self, path: str | Path, planned: bool = True, threads: int = 0) -> None:
        self.path = Path(path)
        self.url: str | None = None  # where the footage lives when this file is its local copy (remote.py)
        self.planned = planned  # decode only what the sampled frames need (PyAV), where the container allows
        self.threads = threads  # decoder threads (0: FFmpeg's choice)
        self.frames_decoded = 0  # pictures decoded by the last reading, kept or not
        self._index: video.PacketIndex | None | bool = False  # not read yet
        if not self.path.exists():
            raise SourceError(self.path, "no such file")
        if self.path.is_dir():
            raise SourceError(self.path, "is a folder, not a video")
        size = self.path.stat().st_size
        if size == 0:
            raise SourceError(self.path, "file is empty (0 bytes)")
        cap = _open_capture(str(self.path))
        if not cap.isOpened():
            raise SourceError(self.path, "not a video FFmpeg can open (unknown format or damaged container)")
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(self.path, "no decodable frame (header only, or the stream data is missing)")
        self.height, self.width = first.shape[:2]
        # Frame times come from the container's timestamps (a variable-frame-rate clip is not
        # index / fps), counted from the first frame's.
        self._t0_ms = _position_ms(cap)
        # The first call to frames() goes on from this capture: opening a video and starting
        # its decoder cost as much as tens of frames (a quarter of a second for 1080p H.264).
        self._held: tuple[cv2.VideoCapture, np.ndarray] | None = (cap, first)
        if not (0 < self.fps < 1000):
            self.fps = 30.0
            self._fps_guessed = True
        else:
            self._fps_guessed = False

    def close(self) -> None:
        """Release the capture kept open for the first reading, if it was never read."""
        held, self._held = getattr(self, "_held", None), None
        if held is not None:
            held[0].release()

    def __del__(self) -> None:
        self.close()

    def info(self) -> SourceInfo:
        warnings = ["frame rate missing from the header, assumed 30 frames/s"] if self._fps_guessed else []
        return SourceInfo(
            self.kind, self.url or str(self.path.resolve()), self.path.name, self.fps, self.frame_count or None, self.width,
            self.height, warnings
        )

    def packet_index(self) -> video.PacketIndex | None:
        """The container's packets (:mod:`video`), where they place every frame and PyAV's
        picture of the first frame is OpenCV's (the reader review shows frames with): else
        ``None``, and every frame is decoded."""
        if self._index is False:
            self._index = None
            if self.planned and video.available() and _utf8(str(self.path)):
                index = video.PacketIndex.read(self.path)
                held = self._held
                first = held[1] if held is not None else None
                if index is not None and first is not None:
                    try:
                        got = next(video.PlannedDecoder(self.path, index).read([0]), None)
                    except Exception as exc:  # noqa: BLE001 - any PyAV failure: decode every frame instead
                        log.info("%s: PyAV cannot read it (%s); every frame is decoded", self.path, exc)
                        got = None
                    if got is not None and got[1] is not None and np.array_equal(got[1], first):
                        self._index = index
                    else:
                        log.info("%s: PyAV's first frame differs from OpenCV's; every frame is decoded", self.path)
        return self._index if isinstance(self._index, video.PacketIndex) else None

    def frames(self, sampling: Sampling, start_after: int = -1, only: Collection[int] | None = None) -> Iterator[SourceFrame]:
        """Sampled frames in order. Frames up to ``start_after`` are skipped cheaply, and with
        ``only`` (indices) so are the sampled frames not in it. Only what the kept frames need
        is decoded (:mod:`video`) where the container allows; ``frames_decoded`` counts it."""
        index = self.packet_index()
        if index is None:
            yield from self._frames_decoding_all(sampling, start_after, only)
            return
        self.close()
        sampler = _Sampler(sampling)
        wanted = [i for i, t in enumerate(index.times)
                  if sampler.keep(i, t) and i > start_after and (only is None or i in only)]
        decoder = video.PlannedDecoder(self.path, index, self.threads)
        self.frames_decoded = 0
        try:
            for i, image, error in decoder.read(wanted):
                self.frames_decoded = decoder.decoded
                yield SourceFrame(i, index.times[i], image, error=error)
        except video.ReadError as exc:  # the container itself fails (gone, cut short while open)
            raise SourceError(self.path, f"video can no longer be read ({exc})") from exc
        self.frames_decoded = decoder.decoded
        self.frames_read = len(index)
        self.truncated = bool(self.frame_count and self.frames_read < self.frame_count * 0.98 - 1)

    def _frames_decoding_all(self, sampling: Sampling, start_after: int = -1,
                             only: Collection[int] | None = None) -> Iterator[SourceFrame]:
        sampler = _Sampler(sampling)
        self.frames_decoded = 0
        held, self._held = self._held, None
        cap = held[0] if held is not None else _open_capture(str(self.path))
        index = -1
        clock = _FrameClock(self.fps, self._t0_ms)
        try:
            if held is not None:  # frame 0 is already decoded
                index = 0
                first = held[1]
                held = None
                clock.time(0, self._t0_ms)
                self.frames_decoded += 1
                if sampler.keep(0, 0.0) and start_after < 0 and (only is None or 0 in only):
                    yield SourceFrame(0, 0.0, first)
                del first
            while True:
                if not cap.grab():
                    break
                index += 1
                self.frames_decoded += 1
                t = clock.time(index, _position_ms(cap))
                if not sampler.keep(index, t) or index <= start_after or (only is not None and index not in only):
                    continue
                ok, image = cap.retrieve()
                if not ok or image is None:
                    yield SourceFrame(index, t, None, error="frame data could not be decoded")
                    continue
                yield SourceFrame(index, t, image)
        finally:
            cap.release()
        self.frames_read = index + 1
        if self.frame_count and self.frames_read < self.frame_count * 0.98 - 1:
            self.truncated = True
        else:
            self.truncated = False


# ---------------------------------------------------------------------------- images
@dataclass
class _ImageEntry:
    path: Path
    telemetry: TelemetryPoint | None


def image_size(path: Path) -> tuple[int, int]:
    """Width and height from the file header, without decoding the pixels."""
    with Image.open(path) as img:
        return img.size


_JPEG = {".jpg", ".jpeg"}


def decode_image(path: Path, max_pixels: int, min_long_side: int | None = None) -> np.ndarray:
    """Decode an image as BGR uint8, refusing files that are too large to decode safely.

    With ``min_long_side``, a JPEG whose half size still has a long side of at least that many
    pixels is decoded straight at half size (the decoder's scaled transform, about twice as
    fast as decoding every pixel). Coarser reductions are not used: the decoder's scaling is
    smoother than an area resize, and at 1/4 or 1/8 it shifts a blur measure by 15 to 55 %."""
    try:
        w, h = image_size(path)
    except FileNotFoundError as exc:
        raise SourceError(path, "file is gone (moved or deleted since it was added)") from exc
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise SourceError(path, f"not a readable image ({exc.__class__.__name__}: {exc})") from exc
    if w * h > max_pixels:
        raise SourceError(path, f"image is {w}x{h} pixels, over the safe limit of {max_pixels} (decompression bomb?)")
    flag = cv2.IMREAD_COLOR
    if min_long_side and Path(path).suffix.lower() in _JPEG and max(w, h) // 2 >= min_long_side:
        flag = cv2.IMREAD_REDUCED_COLOR_2
    try:
        # Decoded from memory: OpenCV's own file functions take UTF-8 names only.
        image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), flag)
    except (OSError, ValueError) as exc:
        raise SourceError(path, f"cannot be read ({exc})") from exc
    if image is None:
        # OpenCV refuses some valid files (odd TIFF layouts, non-ASCII paths): try Pillow.
        try:
            with Image.open(path) as img:
                image = cv2.cvtColor(np.asarray(img.convert("RGB")), cv2.COLOR_RGB2BGR)
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            raise SourceError(path, f"image data is corrupt or truncated ({exc})") from exc
    return image


class ImageFolderSource:
    """A folder of jpg/png/tif images (or one image), ordered by EXIF capture time when
    present, else by name."""

    kind = "images"

    def __init__(self, path: str | Path, max_pixels: int = 250_000_000, workers: int = 1,
                 min_long_side: int | None = None) -> None:
        self.path = Path(path)
        self.url: str | None = None  # where the footage lives when this folder is its local copy (remote.py)
        self.max_pixels = max_pixels
        self.workers = workers
        self.min_long_side = min_long_side  # JPEGs at half size when it keeps this long side (ingest's quality gate)
        if not self.path.exists():
            raise SourceError(self.path, "no such file or folder")
        if self.path.is_dir():
            files = [p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        else:
            files = [self.path]
        if not files:
            raise SourceError(self.path, "folder holds no jpg, png or tif images")
        entries = [_ImageEntry(p, read_exif(p)) for p in files]
        stamps = {e.path: e.telemetry.captured_at for e in entries if e.telemetry and e.telemetry.captured_at}
        timed = sorted((e for e in entries if e.path in stamps), key=lambda e: (stamps[e.path], e.path.name))
        untimed = sorted((e for e in entries if e.path not in stamps), key=lambda e: _natural(e.path.name))
        self.entries = timed + untimed
        self._t0 = capture_seconds(stamps[timed[0].path]) if timed else None

    @property
    def base(self) -> Path:
        return self.path if self.path.is_dir() else self.path.parent

    def info(self) -> SourceInfo:
        return SourceInfo(self.kind, self.url or str(self.path.resolve()), self.path.name, None, len(self.entries))

    def frames(self, sampling: Sampling, start_after: int = -1, known: dict[str, int] | None = None,
               retry: set[str] | None = None, t0: float | None = None) -> Iterator[SourceFrame]:
        """Every image (each photo is a deliberate capture, so none is sampled away), decoded
        by ``workers`` threads, in order.

        Ingesting the folder again (``known``: the stored frames' paths and indices): a still
        is known by its path, never by its place in the listing (photos added later sort
        anywhere). Known stills are skipped, except those in ``retry`` (unreadable before),
        which come again with their stored index; new ones get indices after the stored ones,
        and capture times counted from ``t0`` (the stored frames' origin) when given."""
        if known is None:
            todo = [(index, entry) for index, entry in enumerate(self.entries) if index > start_after]
        else:
            retry = retry or set()
            next_index = max(known.values(), default=-1) + 1
            todo = []
            for entry in self.entries:
                rel = str(entry.path.relative_to(self.base))
                if rel in known:
                    if rel in retry:
                        todo.append((known[rel], entry))
                    continue
                todo.append((next_index, entry))
                next_index += 1
        origin = t0 if t0 is not None else self._t0

        def decode(item: tuple[int, _ImageEntry]) -> tuple[np.ndarray, tuple[int, int] | None]:
            image = decode_image(item[1].path, self.max_pixels, self.min_long_side)
            if not self.min_long_side:
                return image, None
            w, h = image_size(item[1].path)
            # The decoder turns the picture upright (EXIF orientation); the header does not.
            return image, ((h, w) if (image.shape[0] > image.shape[1]) != (h > w) and w != h else (w, h))

        for (index, entry), decoded, error in ordered_map(decode, todo, self.workers):
            t = float(index)
            if origin is not None and entry.telemetry and entry.telemetry.captured_at:
                t = capture_seconds(entry.telemetry.captured_at) - origin
            rel = str(entry.path.relative_to(self.base))
            if error is not None:
                if not isinstance(error, SourceError):
                    raise error
                yield SourceFrame(index, t, None, path=rel, error=error.problem, telemetry=entry.telemetry)
                continue
            assert decoded is not None
            image, size = decoded
            yield SourceFrame(index, t, image, path=rel, telemetry=entry.telemetry, size=size)


def _natural(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def capture_seconds(value: str) -> float:
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return 0.0


# ---------------------------------------------------------------------------- stream
class StreamSource:
    """A live stream: anything ``cv2.VideoCapture`` opens from a URL (rtsp://, http://,
    udp://, srt://; an object store's URL is footage, see :mod:`.remote`). Frames are read
    once; the ingest keeps the sampled ones."""

    kind = "stream"

    def __init__(self, uri: str, max_frames: int = 100_000) -> None:
        self.uri = uri
        self.max_frames = max_frames
        self._target = uri
        cap = _open_capture(uri)
        if not cap.isOpened():
            raise SourceError(uri, "stream cannot be opened (wrong address, or no stream is being sent)")
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0) or None
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0) or None
        cap.release()

    def info(self) -> SourceInfo:
        return SourceInfo(self.kind, self.uri, self.uri, self.fps or None, None, self.width, self.height)

    def frames(self, sampling: Sampling, start_after: int = -1) -> Iterator[SourceFrame]:
        cap = _open_capture(self._target)
        sampler = _Sampler(sampling)
        start = time.monotonic()
        index = -1
        kept = 0
        try:
            while kept < self.max_frames and cap.grab():
                index += 1
                msec = cap.get(cv2.CAP_PROP_POS_MSEC)
                t = msec / 1000.0 if msec and msec > 0 else (index / self.fps if self.fps > 0 else time.monotonic() - start)
                if not sampler.keep(index, t) or index <= start_after:
                    continue
                ok, image = cap.retrieve()
                kept += 1
                yield SourceFrame(index, t, image if ok else None, error=None if ok else "frame data could not be decoded")
        finally:
            cap.release()


SourceReader = VideoSource | ImageFolderSource | StreamSource


def open_source(uri: str | Path, max_pixels: int = 250_000_000, stream_max_frames: int = 100_000,
                decode_workers: int = 1, min_long_side: int | None = None) -> SourceReader:
    """Open a source by what it is: a URL is a stream, a folder or image file is an
    image source (decoded by ``decode_workers`` threads, JPEGs reduced down to
    ``min_long_side`` when given), anything else is tried as a video. Raises ``SourceError``."""
    text = str(uri)
    if remote.is_object_url(text):  # a file or folder in an object store: read from this machine's copy
        reader = open_source(remote.local_copy(text, IMAGE_SUFFIXES), max_pixels, stream_max_frames, decode_workers, min_long_side)
        if not isinstance(reader, StreamSource):
            reader.url = text.rstrip("/")
        return reader
    if is_stream_uri(text):
        return StreamSource(text, stream_max_frames)
    path = Path(text)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolderSource(path, max_pixels, decode_workers, min_long_side)
    return VideoSource(path)
