from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from triage_app.core.quality import BLURRED, OVER_EXPOSED, UNDER_EXPOSED, measure
from triage_app.core.settings import QualitySettings

S = QualitySettings()


def _real_images(shared: Path) -> list[np.ndarray]:
    out = []
    for p in sorted((shared / "aerial").rglob("*")):
        if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".tif"}:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is not None:
                out.append(img)
    return out


def test_real_aerial_images_pass_and_degraded_copies_are_flagged(shared_data: Path) -> None:
    images = _real_images(shared_data)
    assert len(images) >= 10
    for img in images:
        good = measure(img, S)
        assert good.flag is None, good
        sigma = max(img.shape[:2]) * 0.012  # a blur about 1 % of the frame: clearly out of focus
        blurred = measure(cv2.GaussianBlur(img, (0, 0), sigma), S)
        assert blurred.flag == BLURRED and blurred.sharpness < good.sharpness
        assert measure((img * 0.08).astype(np.uint8), S).flag == UNDER_EXPOSED
        assert measure(cv2.convertScaleAbs(img, alpha=1.0, beta=200), S).flag == OVER_EXPOSED


def test_sharpness_is_normalised_for_resolution(ortho: np.ndarray) -> None:
    big = measure(ortho, S).sharpness
    small = measure(cv2.resize(ortho, (1024, 1024), interpolation=cv2.INTER_AREA), S).sharpness
    assert 0.5 < big / small < 2.0


def test_thresholds_are_settings(ortho: np.ndarray) -> None:
    strict = QualitySettings(blur_min_sharpness=1e9)
    assert measure(ortho, strict).flag == BLURRED
    report = measure(ortho, S)
    assert report.brightness > 0 and report.sharpness > 0
