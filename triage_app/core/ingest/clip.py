"""The seconds of video around a frame, for an analyst to play and scrub: is that a person
moving or a rock? A few frames a second, from the container's timestamps, decoded as few
others as their pictures need (:class:`~.video.PlannedDecoder`), shrunk for the screen."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import cv2
import numpy as np

from triage_app.core.ingest import remote, video
from triage_app.core.model.errors import SourceError


@dataclass
class Clip:
    times: list[float]  # seconds in the video (from its first frame), in order
    images: list[np.ndarray]  # BGR
    centre: int  # the position of the frame asked about


def clip_around(uri: str, t: float, before_s: float = 2.0, after_s: float = 2.0, fps: float = 10.0,
                max_side: int = 960) -> Clip:
    """The frames from ``before_s`` before ``t`` to ``after_s`` after it, about ``fps`` a second
    (every frame of a slower video), the one nearest ``t`` among them; each shrunk to a long
    side of at most ``max_side``. Raises ``SourceError`` naming the video."""
    path = remote.localise(uri)
    index = video.PacketIndex.read(path) if video.available() else None
    if index is None or not index.times:
        raise SourceError(uri, "gives no frame timestamps to play around a frame (its container has none usable)")
    times = index.times
    lo = bisect.bisect_left(times, t - before_s)
    hi = bisect.bisect_right(times, t + after_s)
    span = list(range(lo, hi))
    if not span:
        raise SourceError(uri, f"has no frame near {t:.2f} s")
    step = max(1, round(len(span) / max(1.0, (before_s + after_s) * fps)))
    centre = min(span, key=lambda i: abs(times[i] - t))
    wanted = sorted(set(span[::step]) | {centre})
    got: dict[int, np.ndarray] = {}
    try:
        for i, image, _why in video.PlannedDecoder(path, index).read(wanted):
            if image is not None:
                got[i] = _shrink(image, max_side)
    except video.ReadError as exc:
        raise SourceError(uri, f"cannot be decoded around {t:.2f} s ({exc})") from exc
    order = [i for i in wanted if i in got]
    if not order:
        raise SourceError(uri, f"no frame around {t:.2f} s could be decoded")
    return Clip([times[i] for i in order], [got[i] for i in order], order.index(centre) if centre in got else 0)


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
