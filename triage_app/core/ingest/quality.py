"""The quality gate: frames too dark, too bright, blurred or undecodable are flagged with
the measured value, kept out of scoring by default, and stay listed with their reason."""

from __future__ import annotations

from dataclasses import dataclass

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


def measure(image: np.ndarray, settings: QualitySettings) -> QualityReport:
    """Measure a decoded BGR (or grey) frame and decide its flag.

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
    flag: str | None = None
    if brightness < settings.under_exposed_mean or dark >= settings.clipped_fraction:
        flag = UNDER_EXPOSED
    elif brightness > settings.over_exposed_mean or bright >= settings.clipped_fraction:
        flag = OVER_EXPOSED
    elif sharpness < settings.blur_min_sharpness:
        flag = BLURRED
    return QualityReport(brightness, dark, bright, sharpness, flag)


def undecodable() -> QualityReport:
    """The report of a frame whose pixels could not be decoded."""
    return QualityReport(float("nan"), float("nan"), float("nan"), float("nan"), UNDECODABLE)
