"""The exact frame behind a review picture, and the pictures that are missing.

Review shows a candidate's kept picture at once (:mod:`triage_app.core.ingest.pictures`);
once the analyst stays on it a moment, or zooms in, the frame itself is decoded from the
footage on a thread of its own and put in its place (``exact_did_load``). A quick run of
rejections never pays for those decodes: a new candidate drops the one still waiting.

Frames that have no picture yet (scored before pictures were kept, or on a cluster) get one
from a background thread that reads each source once in capture order, so a project opened
from an earlier version is quick from its first minutes on."""

from __future__ import annotations

import logging
import threading
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QImage

from triage_app.core.ingest.pictures import make_pictures
from triage_app.gui.review.frame_canvas import is_picture
from triage_app.gui.review.frame_loader import FrameLoader

log = logging.getLogger(__name__)

#: How long the analyst stays on a candidate before its exact frame is decoded (milliseconds).
DWELL_MS = 250


class ExactFrames(QObject):
    exact_did_load = Signal(int, QImage)  # frame id, the frame as decoded from the footage

    def __init__(self, ws: Any) -> None:
        super().__init__()
        self.ws = ws
        self.loader = FrameLoader(ws, capacity=4, exact=True)
        self.loader.frame_did_load.connect(self.exact_did_load)
        self._waiting: int | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DWELL_MS)
        self._timer.timeout.connect(self.now)
        self._stop = threading.Event()
        self._backfill: threading.Thread | None = None

    def shown(self, frame_id: int, image: QImage | None) -> None:
        """``image`` of ``frame_id`` is on screen: where it is a kept picture, the exact frame
        follows after the dwell (from the cache at once when it is there)."""
        self._timer.stop()
        self._waiting = None
        if image is None or not is_picture(image):
            return
        exact = self.loader.cached(frame_id)
        if exact is not None:
            self.exact_did_load.emit(frame_id, exact)
            return
        self._waiting = frame_id
        self._timer.start()

    def now(self) -> None:
        """Decode the waiting frame now (the analyst zooms in)."""
        self._timer.stop()
        if self._waiting is not None:
            self.loader.replace([self._waiting])
            self._waiting = None

    def make_missing(self, frame_ids: list[int]) -> None:
        """Make the pictures these frames lack, on a background thread (one at a time)."""
        if not self.loader.pictures.enabled or (self._backfill is not None and self._backfill.is_alive()):
            return
        missing = list(frame_ids)  # those that have one are passed over
        if not missing:
            return

        def run() -> None:
            try:
                made = make_pictures(self.ws, missing, cancel=self._stop.is_set)
                if made:
                    log.info("made %d review pictures of frames that had none", made)
            except Exception:  # noqa: BLE001 - a convenience: review decodes the frames itself meanwhile
                log.exception("review pictures could not be made")

        self._backfill = threading.Thread(target=run, name="review-pictures", daemon=True)
        self._backfill.start()

    def close(self) -> None:
        self._timer.stop()
        self._stop.set()
        if self._backfill is not None:
            self._backfill.join(timeout=10)
        self.loader.close()
