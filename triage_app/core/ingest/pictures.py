"""Review-sized pictures of the scored frames, kept in the project.

Review offers frames out of capture order (the most likely first), and reading a video frame
out of order means seeking to a keyframe and decoding forward to it: a tenth to half a second
for 1080p H.264 on a small machine, the whole of the wait between a key and the next picture.
Scoring decodes every sampled frame anyway, so it keeps a JPEG of each at screen size
(``review.picture_px`` on the long side) beside the project; review shows it at once and puts
the exact decoded frame in its place a moment later, when the analyst stays on the frame or
zooms in. Frames scored before, or on a cluster, get theirs from :func:`make_pictures`, which
reads each source once in capture order.

The pictures are a cache: a missing or broken one is made again from the footage, and the
footage, the scores and the exports never read them."""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: The project's folder of pictures, one subfolder per source.
PICTURES_DIR = "pictures"
#: JPEG quality of a kept picture (the exact frame replaces it on screen within a moment).
QUALITY = 88


class ReviewPictures:
    """The kept pictures of one project (``long_side`` pixels at most; 0 keeps none)."""

    def __init__(self, root: Path, long_side: int) -> None:
        self.root = Path(root) / PICTURES_DIR
        self.long_side = int(long_side)

    @property
    def enabled(self) -> bool:
        return self.long_side > 0

    def path(self, frame: dict[str, Any]) -> Path:
        return self.root / str(int(frame["source_id"])) / f"{int(frame['id'])}.jpg"

    def has(self, frame: dict[str, Any]) -> bool:
        return self.enabled and self.path(frame).is_file()

    def put(self, frame: dict[str, Any], image: np.ndarray) -> bool:
        """Keep the picture of ``frame`` (BGR, as decoded); False (logged) where it cannot be
        written: the picture is a convenience, never a reason to stop scoring."""
        if not self.enabled:
            return False
        h, w = image.shape[:2]
        s = self.long_side / max(h, w)
        if s < 1.0:
            image = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        if not ok:
            return False
        path = self.path(frame)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data.tobytes())
            os.replace(tmp, path)  # a reader never sees half a file
        except OSError as exc:
            log.warning("%s: cannot keep the frame's review picture (%s)", path, exc.strerror or exc)
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass  # its folder could not be made: there is nothing to take away
            return False
        return True

    def get(self, frame: dict[str, Any]) -> np.ndarray | None:
        """The kept picture of ``frame`` (BGR), or None where there is none or it does not
        match the frame (a broken file, another frame's shape): the caller decodes the frame."""
        if not self.enabled:
            return None
        path = self.path(frame)
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError:
            return None
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            log.info("%s: unreadable review picture, the frame is decoded instead", path)
            return None
        w, h = frame.get("width"), frame.get("height")
        if not (w and h):
            return None  # the outlines could not be placed on it
        if abs(image.shape[1] / image.shape[0] - w / h) > 0.02 * (w / h) + 2.0 / image.shape[0]:
            log.info("%s: review picture of another shape than its frame (%sx%s), ignored", path, w, h)
            return None
        return image


class PictureWriter:
    """Keeps pictures on a thread of its own, so that scoring never waits on a JPEG: while the
    writer is behind (a fast GPU, a slow disk), the frames offered are passed over and review
    makes their pictures later (:func:`make_pictures`)."""

    def __init__(self, pictures: ReviewPictures, backlog: int = 8) -> None:
        self.pictures = pictures
        self.kept = 0
        self.passed_over = 0
        self._queue: queue.Queue[tuple[dict[str, Any], np.ndarray] | None] = queue.Queue(backlog)
        self._thread = threading.Thread(target=self._run, name="review-pictures", daemon=True)
        self._thread.start()

    def offer(self, frame: dict[str, Any], image: np.ndarray) -> None:
        """Keep this frame's picture unless the writer is behind (``image`` is not changed after)."""
        try:
            self._queue.put_nowait((frame, image))
        except queue.Full:
            self.passed_over += 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.pictures.put(*item):
                self.kept += 1

    def close(self) -> None:
        """Keep what was offered, then stop."""
        self._queue.put(None)
        self._thread.join(timeout=60)
        if self.passed_over:
            log.info("review pictures: %d kept, %d passed over while scoring outran the writer (made when review "
                     "opens)", self.kept, self.passed_over)


def pictures_of(ws: Any) -> ReviewPictures:
    """The project's kept pictures, as its settings size them."""
    return ReviewPictures(ws.root, ws.settings.review.picture_px)


def make_pictures(ws: Any, frame_ids: Iterable[int] | None = None, cancel: Callable[[], bool] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> int:
    """Make the missing pictures of these frames (default: every frame not yet decided),
    reading each source once in capture order. Returns how many were made; a source that
    cannot be read is logged and the others go on."""
    from triage_app.core.model.errors import SourceError

    pictures = pictures_of(ws)
    if not pictures.enabled:
        return 0
    if frame_ids is None:
        decided = ws.decisions.decided_frames()
        rows = [f for f in ws.frames.frame_rows() if int(f["id"]) not in decided]
    else:
        rows = list(ws.frames.frames_by_id(list(frame_ids)).values())
    by_source: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for f in rows:
        if not pictures.has(f):
            by_source[int(f["source_id"])].append(f)
    made, total = 0, sum(len(v) for v in by_source.values())
    stopped = cancel or (lambda: False)
    for source_id, frames in by_source.items():
        source = ws.frames.source(source_id)
        try:
            for f, image in _decoded(ws, source, frames, stopped):
                if pictures.put(f, image):
                    made += 1
                    if progress:
                        progress(made, total)
        except (SourceError, OSError) as exc:
            log.warning("%s: review pictures not made (%s)", source["uri"], exc)
        if stopped():
            break
    return made


def _decoded(ws: Any, source: Any, frames: list[Any], stopped: Callable[[], bool]) -> Iterator[tuple[Any, np.ndarray]]:
    """These frames of one source, decoded in capture order (a video: only what they need)."""
    from triage_app.core.ingest import remote
    from triage_app.core.ingest.reader import frame_file
    from triage_app.core.ingest.sources import VideoSource, decode_image
    from triage_app.core.model.records import Sampling

    if source["kind"] == "video":
        wanted = {int(f["idx"]): f for f in frames}
        video = VideoSource(remote.localise(source["uri"]))
        try:
            for item in video.frames(Sampling.stored(source["sampling"]), start_after=min(wanted) - 1, only=set(wanted)):
                f = wanted.pop(item.idx, None)
                if f is not None and item.image is not None:
                    yield f, item.image
                if not wanted or stopped():
                    return
        finally:
            video.close()
        return
    for f in sorted(frames, key=lambda r: int(r["idx"])):
        if stopped():
            return
        path = frame_file(source, f, ws.root)
        if path is not None:
            yield f, decode_image(path, ws.settings.quality.max_pixels)
