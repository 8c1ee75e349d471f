"""Decodes frames ahead of the analyst on one worker thread (which owns the FrameReader)
and keeps the most recent ones, so the next candidate is usually on screen at once.

Where scoring kept a review picture of the frame (:mod:`triage_app.core.ingest.pictures`),
that is what is read: a few milliseconds, whatever order the frames come in, where a video
frame out of order costs a seek. Such a picture says the frame's full size (:func:`full_size`)
so outlines land where they belong, and an ``exact`` loader decodes the frame itself to put in
its place."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

from triage_app.core.ingest.pictures import ReviewPictures
from triage_app.gui.review.frame_canvas import FULL_SIZE

log = logging.getLogger(__name__)


class _Load(QRunnable):
    def __init__(self, loader: "FrameLoader", frame_id: int) -> None:
        super().__init__()
        self.loader, self.frame_id = loader, frame_id

    def run(self) -> None:
        self.loader._load(self.frame_id)


def to_qimage(bgr: np.ndarray) -> QImage:
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class FrameLoader(QObject):
    frame_did_load = Signal(int, QImage)  # frame id, picture
    frame_did_fail = Signal(int, str)

    def __init__(self, ws: Any, capacity: int = 32, thumb_size: int = 0, exact: bool = False) -> None:
        """``exact``: always the frame as decoded from the footage, never a kept picture."""
        super().__init__()
        from triage_app.core.ingest.reader import FrameReader  # OpenCV loads with the first project

        self.ws = ws
        self.reader = FrameReader(ws.root)
        self.capacity = capacity
        self.thumb_size = thumb_size
        self.exact = exact
        self.pictures = ReviewPictures(ws.root, ws.settings.review.picture_px)
        self._cache: OrderedDict[int, QImage] = OrderedDict()
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        # One Qt-managed thread: it owns the FrameReader (its open videos) alone.
        self._pool = QThreadPool()
        self._pool.setMaxThreadCount(1)
        self._closed = False
        self._sources: dict[int, dict[str, Any]] = {}

    def cached(self, frame_id: int) -> QImage | None:
        with self._lock:
            img = self._cache.get(frame_id)
            if img is not None:
                self._cache.move_to_end(frame_id)
            return img

    def busy(self) -> bool:
        """Whether frames asked for are still being decoded."""
        with self._lock:
            return bool(self._pending)

    def request(self, frame_ids: list[int]) -> None:
        """Load these frames (in this order) unless cached or already on the way."""
        for fid in frame_ids:
            with self._lock:
                if fid in self._cache or fid in self._pending:
                    continue
                self._pending.add(fid)
            if not self._closed:
                self._pool.start(_Load(self, fid))

    def replace(self, frame_ids: list[int]) -> None:
        """Load these frames instead of any still waiting (one being decoded finishes)."""
        self._pool.clear()
        with self._lock:
            self._pending.clear()
        self.request(frame_ids)

    def _load(self, frame_id: int) -> None:
        if self._closed:
            return
        with self._lock:
            if frame_id not in self._pending:
                return  # replaced by others meanwhile
        try:
            frame = self.ws.frames.frame(frame_id)
            kept = None if self.exact else self.pictures.get(frame)
            if kept is not None:
                bgr = kept
            else:
                source = self._sources.get(frame["source_id"])
                if source is None:
                    source = self._sources[frame["source_id"]] = self.ws.frames.source(frame["source_id"])
                bgr = self.reader.read(source, frame)
                if self.pictures.enabled and not self.pictures.has(frame):
                    self.pictures.put(frame, bgr)  # the next time it is quick
            shape = bgr.shape[:2]
            if self.thumb_size:
                h, w = bgr.shape[:2]
                s = self.thumb_size / max(h, w)
                if s < 1.0:
                    bgr = cv2.resize(bgr, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
            image = to_qimage(bgr)
            if kept is not None and not self.thumb_size:  # a kept picture says the frame's size
                image.setText(FULL_SIZE, f"{frame.get('width') or shape[1]}x{frame.get('height') or shape[0]}")
        except Exception as exc:  # noqa: BLE001 - shown on screen, logged
            log.warning("frame %s cannot be shown: %s", frame_id, exc)
            with self._lock:
                self._pending.discard(frame_id)
            self.frame_did_fail.emit(frame_id, str(exc))
            return
        with self._lock:
            self._pending.discard(frame_id)
            self._cache[frame_id] = image
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        self.frame_did_load.emit(frame_id, image)

    def close(self) -> None:
        self._closed = True
        self._pool.clear()
        self._pool.waitForDone(10000)
        self.reader.close()
