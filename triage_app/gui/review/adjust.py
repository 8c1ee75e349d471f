"""Picture adjustments for the analyst's eye: brightness, contrast and an automatic stretch of
the frame's own range (thermal and night frames are flat and dark by nature). They change
only what is shown, never the footage, the scores or what is exported; they stay from one
frame to the next until reset."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PySide6.QtGui import QImage

#: Each brightness step is a gamma of this (below 1 lifts the shadows most, keeps white white).
GAMMA_STEP = 0.8
#: Each contrast step multiplies the distance from mid grey by this.
CONTRAST_STEP = 1.25
#: The automatic stretch maps these percentiles of the frame's luminance to black and white.
STRETCH_PERCENTILES = (1.0, 99.0)
STEPS = 6  # at most this many steps either way


@dataclass(frozen=True)
class Adjustment:
    brightness: int = 0  # steps: + brighter, - darker
    contrast: int = 0  # steps: + more, - less
    stretch: bool = False  # the frame's own 1st-99th percentile over the full range

    @property
    def identity(self) -> bool:
        return self == Adjustment()

    def step(self, brightness: int = 0, contrast: int = 0) -> Adjustment:
        return replace(self, brightness=int(np.clip(self.brightness + brightness, -STEPS, STEPS)),
                       contrast=int(np.clip(self.contrast + contrast, -STEPS, STEPS)))

    def toggled_stretch(self) -> Adjustment:
        return replace(self, stretch=not self.stretch)

    def describe(self) -> str:
        """In words, for the line under the picture ("" when the picture is as captured)."""
        parts = []
        if self.stretch:
            parts.append("auto-contrast")
        if self.brightness:
            parts.append(f"brightness {self.brightness:+d}")
        if self.contrast:
            parts.append(f"contrast {self.contrast:+d}")
        return ", ".join(parts)


def lookup_table(a: Adjustment, low: float = 0.0, high: float = 255.0) -> np.ndarray:
    """The 256-entry map of every channel value: stretch ``low``..``high`` to the full range,
    then contrast around mid grey, then brightness as a gamma."""
    v = np.arange(256, dtype=np.float64)
    if a.stretch and high > low:
        v = (v - low) / (high - low) * 255.0
    v = np.clip(v, 0.0, 255.0)
    if a.contrast:
        v = np.clip((v - 127.5) * CONTRAST_STEP ** a.contrast + 127.5, 0.0, 255.0)
    if a.brightness:
        v = 255.0 * (v / 255.0) ** (GAMMA_STEP ** a.brightness)
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


def image_pixels(image: QImage) -> np.ndarray:
    """The picture as an (height, width, 3) uint8 copy."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, line = rgb.height(), rgb.width(), rgb.bytesPerLine()
    raw = np.frombuffer(rgb.constBits(), dtype=np.uint8, count=line * h).reshape(h, line)
    return raw[:, : w * 3].reshape(h, w, 3).copy()


def adjusted(image: QImage, a: Adjustment) -> QImage:
    """A copy of ``image`` as the adjustment shows it (the image itself when there is none)."""
    if a.identity or image.isNull():
        return image
    import cv2  # OpenCV's table lookup: a 4K frame in milliseconds, on the window's thread

    px = image_pixels(image)
    low, high = 0.0, 255.0
    if a.stretch:
        luma = cv2.cvtColor(np.ascontiguousarray(px[::4, ::4]), cv2.COLOR_RGB2GRAY)
        share = np.cumsum(np.bincount(luma.ravel(), minlength=256)) / luma.size  # a histogram: no sort
        low, high = (float(np.searchsorted(share, q / 100.0)) for q in STRETCH_PERCENTILES)
    out = cv2.LUT(px, lookup_table(a, low, high))
    h, w = out.shape[:2]
    return QImage(out.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
