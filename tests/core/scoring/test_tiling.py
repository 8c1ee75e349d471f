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
