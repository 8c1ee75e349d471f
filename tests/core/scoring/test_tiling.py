from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage_app.core.scoring.tiling import cut_tiles, tile_grid


@settings(max_examples=200, deadline=None)
@given(
    w=st.integers(1, 3000), h=st.integers(1, 3000), size=st.sampled_from([32, 224, 256]),
    overlap=st.floats(0, 0.8), downscale=st.floats(0.1, 1.0),
)
def test_tiles_cover_every_pixel_and_stay_inside(w: int, h: int, size: int, overlap: float, downscale: float) -> None:
    tiles = tile_grid(w, h, size, overlap, downscale, whole_frame=False)
    covered_x = np.zeros(w, bool)
    covered_y = np.zeros(h, bool)
    for t in tiles:
        assert 0 <= t.x0 < t.x1 <= w and 0 <= t.y0 < t.y1 <= h
        covered_x[t.x0 : t.x1] = True
        covered_y[t.y0 : t.y1] = True
    # The grid is a product of x and y windows, so covering both axes covers every pixel.
    assert covered_x.all() and covered_y.all()
    xs = sorted({(t.x0, t.x1) for t in tiles})
    assert len(tiles) == len(xs) * len({(t.y0, t.y1) for t in tiles})


def test_overlap_and_downscale() -> None:
    tiles = tile_grid(1920, 1080, 224, overlap=0.25, downscale=1.0, whole_frame=True)
    assert tiles[0].whole_frame and tiles[0].box == (0, 0, 1920, 1080)
    grid = tiles[1:]
    row = sorted({t.x0 for t in grid})
    assert row[1] - row[0] == 168  # stride = 224 * (1 - 0.25)
    assert max(t.x1 for t in grid) == 1920
    half = tile_grid(1920, 1080, 224, overlap=0.25, downscale=0.5, whole_frame=False)
    assert len(half) < len(grid) and all(t.x1 - t.x0 == 448 for t in half)


def test_cut_tiles_gives_model_sized_pixels() -> None:
    img = np.random.default_rng(0).integers(0, 255, (300, 500, 3), dtype=np.uint8)
    tiles = tile_grid(500, 300, 224, 0.2, 1.0)
    out = cut_tiles(img, tiles, 224)
    assert out.shape == (len(tiles), 224, 224, 3)
    t = tiles[1]
    assert np.array_equal(out[1], img[t.y0 : t.y1, t.x0 : t.x1])
    with pytest.raises(ValueError):
        tile_grid(0, 10, 224)


@pytest.mark.parametrize("width,height,downscale", [(1920, 1080, 0.5), (1000, 700, 0.37), (4000, 3000, 0.25), (300, 200, 0.5)])
def test_shrinking_once_gives_the_pixels_of_shrinking_each_window(width: int, height: int, downscale: float) -> None:
    """The fast path (one resize per frame) shows the model what resizing each window shows."""
    rng = np.random.default_rng(1)
    # A smooth picture with detail, like terrain: noise blurred, plus sharp small objects.
    img = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 3)
    img[rng.integers(0, height, 50), rng.integers(0, width, 50)] = 255
    tiles = tile_grid(width, height, 224, 0.2, downscale)
    fast = cut_tiles(img, tiles, 224, downscale)
    slow = cut_tiles(img, tiles, 224)
    assert fast.shape == slow.shape
    diff = np.abs(fast.astype(np.int16) - slow.astype(np.int16))
    for k in range(len(tiles)):
        assert diff[k].mean() < 1.5, (k, tiles[k], diff[k].mean())


def test_the_tiling_scale_follows_the_ground_sampling_distance() -> None:
    """A person (0.5 m) from 100 m in a 640-pixel thermal frame with a 50° view spans three pixels: the frame
    is never shrunk. A car (2 m) from 30 m in a 4000-pixel photo spans about 150: it may be
    shrunk until it spans the target's pixels, not further than the floor."""
    from triage_app.core.ingest.telemetry.geo import ground_sampling_distance
    from triage_app.core.model.settings import TilingSettings
    from triage_app.core.scoring.tiling import tiling_scale

    t = TilingSettings()
    thermal = {"rel_alt": 100.0, "gimbal_pitch": -90.0, "width": 640, "height": 512}
    gsd = ground_sampling_distance(thermal, 50.0)
    assert gsd == pytest.approx(2 * 100 * np.tan(np.radians(25)) / 640)
    scale, why = tiling_scale(thermal, 0.5, t, 50.0, 224)
    assert scale == 1.0 and "0.5 m target spans 3 px at 14.6 cm/px" in why
    photo = {"rel_alt": 30.0, "gimbal_pitch": -90.0, "width": 4000, "height": 3000}
    scale, why = tiling_scale(photo, 2.0, t, 84.0, 224)
    car_px = 2.0 / ground_sampling_distance(photo, 84.0)
    assert scale == pytest.approx(t.target_pixels / car_px) and 0.2 < scale < 0.3
    assert tiling_scale(photo, 40.0, t, 84.0, 224)[0] == t.min_downscale  # a large target: the floor
    # An oblique view sees the ground further away: coarser pixels, less shrinking.
    oblique = dict(photo, gimbal_pitch=-30.0)
    assert tiling_scale(oblique, 2.0, t, 84.0, 224)[0] > scale
    # No height (or the telemetry switched off): a large frame is shrunk towards a long side of
    # keep_long_side, never past downscale; a small one (a thermal camera's) not at all.
    assert tiling_scale({"width": 4000, "height": 3000}, 2.0, t, 84.0, 224)[0] == t.downscale
    assert tiling_scale({"width": 1920, "height": 1080}, 2.0, t, 84.0, 224)[0] == pytest.approx(1024 / 1920)
    scale, why = tiling_scale({"width": 640, "height": 512}, 0.5, t, 84.0, 224)
    assert scale == 1.0 and "640-pixel frame is not shrunk" in why
    assert tiling_scale(photo, 2.0, TilingSettings(from_telemetry=False), 84.0, 224)[0] == t.downscale
    assert tiling_scale({}, 2.0, t, 84.0, 224) == (t.downscale, "no height in the telemetry: the settings' downscale")
