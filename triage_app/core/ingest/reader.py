"""Reading stored frames' pixels again (review, export, fine-tuning): a still or stream frame
from its file, a video frame by its stored timestamp, exactly."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from triage_app.core.ingest import remote
from triage_app.core.ingest.sources import IMAGE_SUFFIXES, _open_capture, _position_ms, decode_image
from triage_app.core.model.errors import SourceError
from triage_app.core.model.records import Frame, Source


def frame_file(source: Source, frame: Frame, project_root: Path) -> Path | None:
    """The file holding a still or stream frame (None for a video frame). The stored path must
    lie inside its source's folder (or, for a stream, the project's): projects travel between
    people, and a crafted database naming ``/etc/...`` or ``../..`` must not make review or
    export read files outside it. Raises ``SourceError`` naming the frame otherwise."""
    kind = source["kind"]
    if kind not in ("images", "stream") or not frame.get("path"):
        return None
    rel = Path(str(frame["path"]))
    uri = str(source["uri"])
    if kind == "images" and remote.is_object_url(uri):
        base_url = remote.parent(uri) if Path(uri).suffix.lower() in IMAGE_SUFFIXES else uri
        if rel.is_absolute() or rel.drive or ".." in rel.parts:
            raise SourceError(base_url, f"frame {frame.get('idx')} names {str(rel)!a}, outside its source: refused")
        return remote.local_copy(remote.join(base_url, rel.as_posix()))  # this frame alone, fetched once
    base = Path(uri) if kind == "images" else Path(project_root)
    if kind == "images" and base.suffix.lower() in IMAGE_SUFFIXES and not base.is_dir():
        base = base.parent  # a source of one image (a folder gone since ingest stays the folder in the message)
    if rel.is_absolute() or rel.drive or ".." in rel.parts:
        raise SourceError(str(base), f"frame {frame.get('idx')} names {str(rel)!a}, outside its source: refused")
    return base / rel


#: A re-read seeks this far before the frame's time, then reads on to it (further back each
#: time a seek lands past it).
SEEK_BACK_S = (0.5, 2.0, 8.0, 30.0)
#: How close a container timestamp must be to the stored time to be that frame (timestamps
#: are exact; a stored time from ``index / fps`` is within rounding of them on a steady clip).
TIME_MATCH_S = 0.002


@dataclass
class _OpenVideo:
    cap: cv2.VideoCapture
    pos: int  # index of the frame the next read returns (-1: unknown)
    t0_ms: float | None  # the first frame's timestamp
    fps: float


class FrameReader:
    """Reads the pixels of stored frames again, keeping a few videos open."""

    def __init__(self, project_root: Path, max_open: int = 4, max_pixels: int = 250_000_000) -> None:
        self.project_root = Path(project_root)
        self.max_open = max_open
        self.max_pixels = max_pixels
        self._caps: OrderedDict[str, _OpenVideo] = OrderedDict()
        self._local: dict[str, str] = {}  # object-store URL -> its local copy

    def read(self, source: Source, frame: Frame) -> np.ndarray:
        """BGR pixels of a frame; raises ``SourceError`` naming the file if gone or broken."""
        kind = source["kind"]
        if kind in ("images", "stream"):
            path = frame_file(source, frame, self.project_root)
            if path is None:
                raise SourceError(source["uri"], f"frame {frame['idx']} names no file")
            return decode_image(path, self.max_pixels)
        t = frame.get("timestamp_s")
        uri = str(source["uri"])
        if remote.is_object_url(uri):
            if uri not in self._local:
                self._local[uri] = remote.localise(uri)  # the video's copy on this machine, fetched once
            uri = self._local[uri]
        return self._read_video(uri, int(frame["idx"]), None if t is None else float(t))

    def _open(self, uri: str) -> _OpenVideo:
        if not Path(uri).is_file():
            raise SourceError(uri, "video file is gone (moved or deleted since ingest)")
        cap = _open_capture(uri)
        if not cap.isOpened():
            raise SourceError(uri, "video can no longer be opened")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return _OpenVideo(cap, 0, None, fps if 0 < fps < 1000 else 30.0)

    def _read_video(self, uri: str, idx: int, t: float | None = None) -> np.ndarray:
        """Frame ``idx`` exactly: read on from the open capture when it is a short hop ahead
        (counting frames from a known one); else seek by time to a little before the frame's
        stored timestamp (``SEEK_BACK_S``) and read on until the container's timestamp is the frame's (a seek by
        frame number lands on another frame in clips with B-frames or a variable rate); where
        that cannot be matched, read from the start."""
        v = self._caps.pop(uri, None) or self._open(uri)
        try:
            image = self._hop(v, idx) if v.pos >= 0 and 0 <= idx - v.pos <= 30 else None
            if image is None and t is not None:
                image = self._seek(v, idx, t)
            if image is None:  # no usable timestamp: count from the first frame
                v.cap.release()
                v = self._open(uri)
                image = self._hop(v, idx, limit=None)
        except BaseException:
            v.cap.release()
            raise
        self._caps[uri] = v
        while len(self._caps) > self.max_open:
            _, old = self._caps.popitem(last=False)
            old.cap.release()
        if image is None:
            raise SourceError(uri, f"frame {idx} cannot be decoded")
        return image

    @staticmethod
    def _hop(v: _OpenVideo, idx: int, limit: int | None = 30) -> np.ndarray | None:
        """Grab forward to ``idx`` from the known position ``v.pos`` (the next frame's index)."""
        while v.pos < idx and (limit is None or idx - v.pos <= limit) and v.cap.grab():
            if v.pos == 0:
                v.t0_ms = _position_ms(v.cap)
            v.pos += 1
        if v.pos != idx:
            return None
        ok, image = v.cap.read()
        if v.pos == 0:
            v.t0_ms = _position_ms(v.cap)
        v.pos += 1
        return image if ok else None

    def _seek(self, v: _OpenVideo, idx: int, t: float) -> np.ndarray | None:
        if v.t0_ms is None:  # the first frame's timestamp, which stored times count from
            if v.pos != 0:
                return None
            if not v.cap.grab():
                return None
            v.t0_ms = _position_ms(v.cap)
            v.pos = 1
            if idx == 0:
                ok, image = v.cap.retrieve()
                return image if ok else None
        if v.t0_ms is None:
            return None
        for back in SEEK_BACK_S:  # a seek may land past the frame (B-frames): try from further back
            found = self._seek_from(v, idx, t, back)
            if found is not None:
                return found
            if t - back <= 0:
                break
        return None

    @staticmethod
    def _seek_from(v: _OpenVideo, idx: int, t: float, back: float) -> np.ndarray | None:
        assert v.t0_ms is not None
        v.cap.set(cv2.CAP_PROP_POS_MSEC, max(0.0, v.t0_ms + (t - back) * 1000.0))
        v.pos = -1  # unknown until the frame is matched
        for _ in range(int(v.fps * (back + 2.0)) + 60):  # from ``back`` before, and the seek's own slack
            if not v.cap.grab():
                return None
            ms = _position_ms(v.cap)
            if ms is None:
                return None
            here = (ms - v.t0_ms) / 1000.0
            if abs(here - t) <= TIME_MATCH_S:
                ok, image = v.cap.retrieve()
                v.pos = idx + 1
                return image if ok else None
            if here > t + TIME_MATCH_S:  # passed it
                return None
        return None

    def close(self) -> None:
        for v in self._caps.values():
            v.cap.release()
        self._caps.clear()
