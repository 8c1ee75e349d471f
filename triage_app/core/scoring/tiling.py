"""Overlapping tiles at a model's input size.

Small things seen from high up vanish when a whole 4K frame is squeezed to 224 px, so a
frame is cut into overlapping tiles (after an optional downscale); every pixel of the frame
lies in at least one tile, and each tile keeps its box in the frame's own pixel coordinates
so a score can be shown where it came from. Tile 0 is optionally the whole frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from triage_app.core.ingest.telemetry.geo import ground_sampling_distance
from triage_app.core.model.settings import TilingSettings


@dataclass(frozen=True)
class Tile:
    """A tile's box ``(x0, y0, x1, y1)`` in original frame pixels (x1, y1 exclusive)."""

    index: int
    x0: int
    y0: int
    x1: int
    y1: int
    whole_frame: bool = False

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)


def _starts(length: int, size: int, stride: int) -> list[int]:
    """Window starts along one axis so windows of ``size`` cover ``[0, length)``."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def tile_grid(
    width: int, height: int, size: int, overlap: float = 0.2, downscale: float = 1.0, whole_frame: bool = True
) -> list[Tile]:
    """The tiles of a ``width`` x ``height`` frame for a model whose input is ``size`` px.

    The frame is first scaled by ``downscale`` (<= 1); windows of ``size`` px then overlap
    by ``overlap`` (a fraction of ``size``). Boxes are returned in original pixels.
    """
    return list(_grid(width, height, size, overlap, downscale, whole_frame))


@lru_cache(maxsize=64)
def _grid(width: int, height: int, size: int, overlap: float, downscale: float, whole_frame: bool) -> tuple[Tile, ...]:
    """The grid, computed once per frame size (every frame of a flight shares it)."""
    if width <= 0 or height <= 0 or size <= 0:
        raise ValueError("frame and tile sizes must be positive")
    if not 0.0 <= overlap < 1.0:
        raise ValueError("overlap must be in [0, 1)")
    scale = min(1.0, max(downscale, 1e-6))
    sw, sh = max(1, round(width * scale)), max(1, round(height * scale))
    stride = max(1, int(round(size * (1.0 - overlap))))
    tiles: list[Tile] = []
    if whole_frame:
        tiles.append(Tile(0, 0, 0, width, height, whole_frame=True))
    inv = 1.0 / scale
    for y in _starts(sh, size, stride):
        for x in _starts(sw, size, stride):
            x0, y0 = int(np.floor(x * inv)), int(np.floor(y * inv))
            # A window that reaches the scaled edge reaches the frame's edge.
            x1 = width if x + size >= sw else min(width, int(np.ceil((x + size) * inv)))
            y1 = height if y + size >= sh else min(height, int(np.ceil((y + size) * inv)))
            tiles.append(Tile(len(tiles), x0, y0, x1, y1))
    return tuple(tiles)


def cut_tiles(image: np.ndarray, tiles: list[Tile], size: int, downscale: float = 1.0) -> np.ndarray:
    """Pixels of each tile resized to ``size`` x ``size``: an array (n, size, size, C), uint8.

    With the ``downscale`` the grid was made with, the frame is shrunk once and each window is
    a plain copy out of the shrunk frame (the same pixels as shrinking each window on its own,
    at a fraction of the cost: one area resize per frame instead of one per tile)."""
    out = np.empty((len(tiles), size, size, image.shape[2]), dtype=np.uint8)
    h, w = image.shape[:2]
    scale = min(1.0, max(downscale, 1e-6))
    small = None
    if scale < 1.0:
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    for i, t in enumerate(tiles):
        if small is not None:
            sh, sw = small.shape[:2]
            if t.whole_frame and (t.x0, t.y0, t.x1, t.y1) == (0, 0, w, h):
                out[i] = _resized(small, size)
                continue
            xs, ys = int(round(t.x0 * sw / w)), int(round(t.y0 * sh / h))
            if xs + size <= sw and ys + size <= sh and abs((t.x1 - t.x0) * sw / w - size) <= 1.0:
                out[i] = small[ys : ys + size, xs : xs + size]
                continue
        out[i] = _resized(image[t.y0 : t.y1, t.x0 : t.x1], size)
    return out


def _resized(crop: np.ndarray, size: int) -> np.ndarray:
    if crop.shape[0] == size and crop.shape[1] == size:
        return crop
    shrinking = crop.shape[0] > size or crop.shape[1] > size
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def frame_tiles(image: np.ndarray, sizes: list[int], overlap: float, downscale: float,
                whole_frame: bool) -> tuple[list[Tile], dict[int, np.ndarray]]:
    """One grid for every member of a frame, and its pixels at each member's input size.

    The grid is laid out for the largest input size, so every member scores the same boxes
    (tile ``i`` means one place in the frame whichever member fired); a member with a smaller
    input sees each box resized to its size."""
    h, w = image.shape[:2]
    tiles = tile_grid(w, h, max(sizes), overlap, downscale, whole_frame)
    return tiles, {s: cut_tiles(image, tiles, s, downscale) for s in sizes}


def tiling_scale(frame: Mapping[str, Any], target_size_m: float, tiling: TilingSettings, default_hfov_deg: float,
                 input_size: int) -> tuple[float, str]:
    """(scale, why) to cut a frame's tiles at: where the telemetry gives the ground sampling
    distance, the scale at which the target spans ``tiling.target_pixels`` in a tile of
    ``input_size`` (a tile of the shrunk frame is that many pixels), between
    ``tiling.min_downscale`` and 1 (a frame is never enlarged); else frames are shrunk to a long
    side of ``tiling.keep_long_side``, no further than ``tiling.downscale``."""
    if tiling.from_telemetry:
        gsd = ground_sampling_distance(frame, default_hfov_deg)
        if gsd is not None and gsd > 0:
            target_px = target_size_m / gsd  # across, at full resolution
            scale = min(1.0, max(tiling.min_downscale, tiling.target_pixels / target_px))
            return scale, f"a {target_size_m:g} m target spans {target_px:.0f} px at {gsd * 100:.1f} cm/px"
    # No height: how large the target is in pixels is unknown, so a frame is shrunk only as far
    # as needed to bring its long side to ``keep_long_side``, never below ``downscale``. A small
    # frame (a 640-pixel thermal camera) keeps every pixel its sensor gave the target.
    long_side = max(int(frame.get("width") or 0), int(frame.get("height") or 0))
    if long_side and long_side <= tiling.keep_long_side:
        return 1.0, f"no height in the telemetry; a {long_side}-pixel frame is not shrunk"
    if long_side:
        scale = min(1.0, max(tiling.downscale, tiling.keep_long_side / long_side))
        return scale, f"no height in the telemetry; a {long_side}-pixel frame shrunk to {round(long_side * scale)} pixels"
    return tiling.downscale, "no height in the telemetry: the settings' downscale"
