from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from triage_app.core.ingest.quality import BLURRED, OVER_EXPOSED, UNDER_EXPOSED, measure, relative_flags
from triage_app.core.model.settings import QualitySettings

S = QualitySettings()


def _real_images(shared: Path, folder: str) -> list[np.ndarray]:
    out = []
    for p in sorted((shared / "aerial" / folder).rglob("*")):
        if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".tif"}:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is not None:
                out.append(img)
    return out


def _degraded_copies_are_flagged(img: np.ndarray) -> None:
    good = measure(img, S)
    sigma = max(img.shape[:2]) * 0.012  # a blur about 1 % of the frame: clearly out of focus
    blurred = measure(cv2.GaussianBlur(img, (0, 0), sigma), S)
    assert blurred.flag == BLURRED and blurred.sharpness < good.sharpness
    assert measure((img * 0.08).astype(np.uint8), S).flag == UNDER_EXPOSED
    assert measure(cv2.convertScaleAbs(img, alpha=1.0, beta=200), S).flag == OVER_EXPOSED


def test_real_aerial_images_pass_and_degraded_copies_are_flagged(shared_data: Path) -> None:
    """Each real RGB still on its own, by the absolute thresholds."""
    images = _real_images(shared_data, "deepforest") + _real_images(shared_data, "sahi")
    assert len(images) >= 10
    for img in images:
        good = measure(img, S)
        assert good.flag is None and not good.grey, good
        _degraded_copies_are_flagged(img)


def test_thermal_frames_are_judged_against_their_own_flight(shared_data: Path) -> None:
    """Thermal drone frames are smooth by nature: judged against their flight's median none
    is flagged, and an out-of-focus or a washed-out frame among them still is. A thermal
    still on its own is held to the grey (lower) blur threshold."""
    thermal = _real_images(shared_data, "hit-uav")[:120]
    assert len(thermal) == 120
    reports = [measure(img, S) for img in thermal]
    assert all(r.grey for r in reports) and all(r.flag is None for r in reports), [r for r in reports if r.flag][:3]
    rows = [dict(r.as_row(), quality_note=None) for r in reports]
    blurred = measure(cv2.GaussianBlur(thermal[5], (0, 0), 640 * 0.012), S)
    washed = measure(cv2.convertScaleAbs(thermal[6], alpha=0.3, beta=200), S)
    rows += [dict(blurred.as_row(), quality_note=None), dict(washed.as_row(), quality_note=None),
             {"quality_flag": "undecodable", "sharpness": None, "quality_note": "truncated"}]
    verdicts = relative_flags(rows, S)
    assert verdicts is not None
    assert [v.flag for v in verdicts[:120]] == [None] * 120
    assert verdicts[120].flag == BLURRED and "typical" in verdicts[120].note
    assert verdicts[121].flag == OVER_EXPOSED
    assert verdicts[122].flag == "undecodable"
    # Fewer frames than a norm needs: the absolute verdicts stand.
    assert relative_flags(rows[:3], S) is None
    _degraded_copies_are_flagged(thermal[0])


def test_sharpness_is_normalised_for_resolution(ortho: np.ndarray) -> None:
    big = measure(ortho, S).sharpness
    small = measure(cv2.resize(ortho, (1024, 1024), interpolation=cv2.INTER_AREA), S).sharpness
    assert 0.5 < big / small < 2.0


def test_thresholds_are_settings(ortho: np.ndarray) -> None:
    strict = QualitySettings(blur_min_sharpness=1e9)
    assert measure(ortho, strict).flag == BLURRED
    report = measure(ortho, S)
    assert report.brightness > 0 and report.sharpness > 0


def test_ingest_measures_stills_decoded_reduced_as_it_would_in_full(tmp_path: Path, ortho: np.ndarray) -> None:
    """Ingest decodes 20-megapixel JPEGs at half size for the quality gate: the same verdicts
    and nearly the same measures as a full decode, and the frame keeps its full size (upright,
    as the decoder turns it by its EXIF orientation); a smaller still is decoded in full."""
    from PIL import Image

    from triage_app.core.ingest.footage import ingest_source
    from triage_app.core.ingest.sources import decode_image
    from triage_app.core.model.settings import load_settings
    from triage_app.core.store import Workspace

    folder = tmp_path / "survey"
    folder.mkdir()
    big = cv2.resize(ortho, (5472, 3648), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(folder / "a_sharp.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    cv2.imwrite(str(folder / "b_blurred.jpg"), cv2.GaussianBlur(big, (0, 0), 30), [cv2.IMWRITE_JPEG_QUALITY, 92])
    cv2.imwrite(str(folder / "c_dark.jpg"), (big * 0.05).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 92])
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown turned 90 degrees
    Image.fromarray(big[:, :, ::-1]).save(folder / "d_turned.jpg", quality=92, exif=exif)
    cv2.imwrite(str(folder / "e_small.jpg"), big[:1500, :2000])  # half of it under 4 x 640 px: decoded in full
    settings = load_settings(tmp_path)
    with Workspace(tmp_path / "p") as p:
        ingest_source(p, folder)
        rows = {r["path"]: r for r in p.frames.frame_rows()}
    for name, row in rows.items():
        full = decode_image(folder / name, settings.quality.max_pixels)
        ref = measure(full, settings.quality)
        assert (row["width"], row["height"]) == (full.shape[1], full.shape[0]), name
        assert row["quality_flag"] == ref.flag, name
        assert abs(row["brightness"] - ref.brightness) < 1.0, name
        assert abs(row["sharpness"] - ref.sharpness) <= 0.08 * ref.sharpness + 1.0, (name, row["sharpness"], ref.sharpness)
        if name != "e_small.jpg":
            assert row["sharpness"] != ref.sharpness  # measured on the half-size decode
    assert rows["e_small.jpg"]["sharpness"] == pytest.approx(measure(decode_image(folder / "e_small.jpg", 10**9),
                                                                     settings.quality).sharpness)
    assert (rows["d_turned.jpg"]["width"], rows["d_turned.jpg"]["height"]) == (3648, 5472)
    assert rows["b_blurred.jpg"]["quality_flag"] == BLURRED and rows["c_dark.jpg"]["quality_flag"] == UNDER_EXPOSED
    assert rows["a_sharp.jpg"]["quality_flag"] is None


def test_a_thermal_folder_ingests_unflagged_and_its_odd_frame_is_named(tmp_path: Path, shared_data: Path) -> None:
    """Ingest judges a folder of thermal stills against itself: nothing is flagged for being
    smooth, the one out-of-focus frame among them is, with its value against the folder's."""
    from triage_app.core.ingest.footage import ingest_source
    from triage_app.core.store import Workspace

    folder = tmp_path / "thermal"
    folder.mkdir()
    sources = sorted((shared_data / "aerial" / "hit-uav" / "images").glob("*.jpg"))[:30]
    for i, src in enumerate(sources):
        img = cv2.imread(str(src), cv2.IMREAD_COLOR)
        if i == 7:
            img = cv2.GaussianBlur(img, (0, 0), 8)
        cv2.imwrite(str(folder / f"T_{i:03d}.jpg"), img)
    with Workspace(tmp_path / "p") as ws:
        result = ingest_source(ws, folder)
        rows = {r["path"]: r for r in ws.frames.frame_rows()}
    assert result.frames_total == 30 and dict(result.flagged) == {"blurred": 1}
    odd = rows["T_007.jpg"]
    assert odd["quality_flag"] == "blurred" and "typical" in odd["quality_note"]
    assert all(r["quality_flag"] is None for name, r in rows.items() if name != "T_007.jpg")
