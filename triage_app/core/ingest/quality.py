"""The quality gate: frames too dark, too bright, blurred or undecodable are flagged with the
measured value and the reason, and stay listed. They are still scored and reviewed unless
``quality.gate_scoring`` says otherwise: a flag is a warning, never a silent drop.

Each frame is measured on its own (:func:`measure`). Once a source is read, its frames are
judged against the source itself (:func:`relative_flags`): what is normal for a thermal or a
night flight (smooth, dark) is abnormal for a sunny RGB one, so a frame is flagged when it
stands far from its own flight's median. A source of a few frames has no norm of its own and
keeps the absolute verdicts, grey (thermal) pictures being allowed less texture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from triage_app.core.model.settings import QualitySettings

UNDER_EXPOSED = "under_exposed"
OVER_EXPOSED = "over_exposed"
BLURRED = "blurred"
UNDECODABLE = "undecodable"
REASONS = (UNDECODABLE, UNDER_EXPOSED, OVER_EXPOSED, BLURRED)


@dataclass(frozen=True)
class QualityReport:
    """Measured values of one frame and the flag they lead to (``None`` when usable)."""

    brightness: float  # mean luminance, 0-255
    dark_fraction: float  # share of pixels at 0-8
    bright_fraction: float  # share of pixels at 247-255
    sharpness: float  # variance of the Laplacian at the analysis size
    flag: str | None
    grey: bool = False  # one channel, or three equal ones (thermal, night black-and-white)

    def as_row(self) -> dict[str, object]:
        return {
            "brightness": self.brightness,
            "dark_fraction": self.dark_fraction,
            "bright_fraction": self.bright_fraction,
            "sharpness": self.sharpness,
            "quality_flag": self.flag,
        }


def analysis_gray(image: np.ndarray, size: int) -> np.ndarray:
    """Grey copy scaled so its long side is ``size`` pixels (area interpolation)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape[:2]
    scale = size / max(h, w)
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return gray


def is_grey(image: np.ndarray) -> bool:
    """One channel, or three that agree (a thermal picture stored as colour JPEG)."""
    if image.ndim == 2 or image.shape[2] == 1:
        return True
    step = max(1, min(image.shape[:2]) // 64)
    sample = image[::step, ::step].astype(np.int16)
    return int(np.abs(sample[..., 0] - sample[..., 1]).max()) <= 2 and int(np.abs(sample[..., 1] - sample[..., 2]).max()) <= 2


def measure(image: np.ndarray, settings: QualitySettings) -> QualityReport:
    """Measure a decoded BGR (or grey) frame and give its absolute verdict.

    Blur is the variance of the Laplacian on a copy whose long side is
    ``settings.analysis_size``: computing it at one fixed scale makes a 4K and a 720p
    picture of the same scene give comparable numbers.
    """
    gray = analysis_gray(image, settings.analysis_size)
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    total = max(hist.sum(), 1.0)
    brightness = float((hist * np.arange(256)).sum() / total)
    dark = float(hist[:9].sum() / total)
    bright = float(hist[247:].sum() / total)
    sharpness = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    grey = is_grey(image)
    blur_floor = settings.blur_min_sharpness * (settings.grey_blur_factor if grey else 1.0)
    flag: str | None = None
    if brightness < settings.under_exposed_mean or dark >= settings.clipped_fraction:
        flag = UNDER_EXPOSED
    elif brightness > settings.over_exposed_mean or bright >= settings.clipped_fraction:
        flag = OVER_EXPOSED
    elif sharpness < blur_floor:
        flag = BLURRED
    return QualityReport(brightness, dark, bright, sharpness, flag, grey)


def undecodable() -> QualityReport:
    """The report of a frame whose pixels could not be decoded."""
    return QualityReport(float("nan"), float("nan"), float("nan"), float("nan"), UNDECODABLE)


@dataclass(frozen=True)
class Verdict:
    flag: str | None
    note: str | None  # the measured value against the source's norm, in words


def relative_flags(rows: Sequence[dict[str, Any]], settings: QualitySettings) -> list[Verdict] | None:
    """Each frame's verdict against its own source: ``rows`` are the source's frames with
    their measures (``brightness``, ``dark_fraction``, ``bright_fraction``, ``sharpness``,
    ``quality_flag``). None when the source has too few decodable frames to have a norm (the
    absolute verdicts stand); undecodable frames stay undecodable."""
    measured = [r for r in rows if r.get("quality_flag") != UNDECODABLE and r.get("sharpness") is not None]
    if len(measured) < settings.relative_min_frames:
        return None
    med_sharp = float(np.median([r["sharpness"] for r in measured]))
    med_bright = float(np.median([r["brightness"] for r in measured]))
    med_dark = float(np.median([r["dark_fraction"] for r in measured]))
    med_white = float(np.median([r["bright_fraction"] for r in measured]))
    # The flight's norm only ever relaxes the absolute thresholds: a frame is flagged when it
    # is poor by any standard and also poor for its own flight (a thermal or a night flight
    # is smooth and dark throughout, and none of its frames is the worse for it).
    dark_floor = min(settings.dark_relative * med_bright, settings.under_exposed_mean)
    bright_ceiling = max(med_bright + settings.bright_relative * (255.0 - med_bright), settings.over_exposed_mean)
    blur_floor = min(settings.blur_relative * med_sharp, settings.blur_min_sharpness)
    clipped = settings.clipped_fraction
    out = []
    for r in rows:
        if r.get("quality_flag") == UNDECODABLE or r.get("sharpness") is None:
            out.append(Verdict(UNDECODABLE, r.get("quality_note")))
        elif r["brightness"] < dark_floor or (r["dark_fraction"] >= clipped and med_dark < clipped / 2):
            out.append(Verdict(UNDER_EXPOSED, f"brightness {r['brightness']:.0f} against this source's typical {med_bright:.0f}"))
        elif r["brightness"] > bright_ceiling or (r["bright_fraction"] >= clipped and med_white < clipped / 2):
            out.append(Verdict(OVER_EXPOSED, f"brightness {r['brightness']:.0f} against this source's typical {med_bright:.0f}"))
        elif r["sharpness"] < blur_floor:
            out.append(Verdict(BLURRED, f"sharpness {r['sharpness']:.1f} against this source's typical {med_sharp:.1f}"))
        else:
            out.append(Verdict(None, None))
    return out
