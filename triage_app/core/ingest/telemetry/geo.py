"""Where on the ground a point of a frame lies: for sending a search team to a find rather
than to where the aircraft was.

A pinhole camera at the aircraft's position, ``rel_alt`` metres above flat ground at the
take-off point's height, looking along the gimbal's yaw (degrees clockwise from north) and
pitch (0 level, -90 straight down), rolled by the gimbal's roll. The ray through the pixel is
followed down to the ground. The field of view comes from the frame's 35 mm-equivalent focal
length where the telemetry gives one (:func:`horizontal_fov`), else from the settings
(``geo.hfov_deg``). The estimate is as good as those assumptions: hills, a wrong height or
field of view, and rays near the horizon (small errors in pitch move the point far) all shift
it, so it is given with its distance from the aircraft and a radius (:class:`Errors`), and not
at all for rays that meet the ground farther than ``geo.max_distance_m`` or never.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

_A = 6378137.0  # WGS 84 semi-major axis, metres
_E2 = 6.69437999014e-3  # WGS 84 first eccentricity squared


@dataclass(frozen=True)
class GroundPoint:
    lat: float
    lon: float
    distance_m: float  # horizontal distance from the point below the aircraft
    bearing_deg: float  # from the aircraft, clockwise from north
    hfov_deg: float = 0.0  # the horizontal field of view used
    hfov_from: str = ""  # where it came from: the focal length, or the settings
    radius_m: float | None = None  # how far the find may be from the point (see ``locate_box``); None: unbounded


@dataclass(frozen=True)
class Located:
    """A ground point, or why there is none."""

    point: GroundPoint | None
    reason: str = ""


def _radii(lat: float) -> tuple[float, float]:
    """WGS 84 radii of curvature at a latitude: (meridian, parallel circle) in metres per radian."""
    phi = math.radians(lat)
    s2 = math.sin(phi) ** 2
    r_meridian = _A * (1 - _E2) / (1 - _E2 * s2) ** 1.5
    return r_meridian, _A / math.sqrt(1 - _E2 * s2) * math.cos(phi)


def offset_to_latlon(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    """Latitude and longitude of a point ``east_m`` and ``north_m`` from (lat, lon) on the
    WGS 84 ellipsoid (local radii of curvature: exact to centimetres over a few kilometres)."""
    r_meridian, r_parallel = _radii(lat)
    return lat + math.degrees(north_m / r_meridian), lon + math.degrees(east_m / r_parallel)


def latlon_to_offset(lat0: float, lon0: float, lat: float, lon: float) -> tuple[float, float]:
    """(east, north) metres from (lat0, lon0) to (lat, lon): :func:`offset_to_latlon` undone."""
    r_meridian, r_parallel = _radii(lat0)
    return math.radians(lon - lon0) * r_parallel, math.radians(lat - lat0) * r_meridian


_FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
_CAMERA_ASPECTS = (4 / 3, 3 / 2, 16 / 9, 17 / 9, 1.0)  # whole frames of drone cameras (photo and video)


def horizontal_fov(frame: Mapping[str, Any], default_deg: float) -> tuple[float, str]:
    """(degrees, where from) of the picture's horizontal field of view. A 35 mm-equivalent
    focal length is defined on the diagonal: a picture of aspect up to 3:2 (a photo, or video
    at the sensor's own shape) spans the equivalent width 43.3 mm x W / diagonal; a wider one
    (16:9 video) is taken as cut from a 4:3 sensor's full width (34.6 mm), as drone cameras
    record it. Without a focal length: ``default_deg`` (the settings)."""
    f35 = frame.get("focal_35mm")
    w, h = frame.get("width"), frame.get("height")
    if not f35 or f35 <= 0 or not w or not h:
        return float(default_deg), "settings"
    w, h = float(w), float(h)
    aspect = max(w, h) / min(w, h)
    if not any(abs(aspect / a - 1) < 0.03 for a in _CAMERA_ASPECTS):
        # A picture cut out of a larger one keeps its camera's focal length but not its view.
        return float(default_deg), f"settings (a {aspect:.2f}:1 picture is no camera's whole frame: cropped?)"
    if w / h > 1.55:
        width_mm = _FULL_FRAME_DIAGONAL_MM * 0.8  # the width of a 4:3 picture of that diagonal
    else:
        width_mm = _FULL_FRAME_DIAGONAL_MM * w / math.hypot(w, h)
    return math.degrees(2 * math.atan(width_mm / (2 * float(f35)))), f"{float(f35):g} mm focal length"


def ground_sampling_distance(frame: Mapping[str, Any], default_hfov_deg: float) -> float | None:
    """Metres on the ground per pixel at the picture's centre, from the height above take-off,
    the gimbal pitch (straight down when unknown) and the field of view; None without a
    height. Flat ground, as everywhere here."""
    h, w = frame.get("rel_alt"), frame.get("width")
    if h is None or not w or float(h) <= 0:
        return None
    hfov, _ = horizontal_fov(frame, default_hfov_deg)
    pitch = frame.get("gimbal_pitch")
    # Along the ray to the centre the ground is h / sin(pitch) away (not below 10 degrees).
    down = math.radians(abs(float(pitch))) if pitch is not None else math.pi / 2
    distance = float(h) / max(math.sin(down), math.sin(math.radians(10)))
    return 2 * distance * math.tan(math.radians(hfov) / 2) / float(w)


def _camera_axes(yaw: float, pitch: float, roll: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, down, forward) unit vectors of the image in east-north-up coordinates."""
    y, p = math.radians(yaw), math.radians(pitch)
    forward = np.array([math.sin(y) * math.cos(p), math.cos(y) * math.cos(p), math.sin(p)])
    right = np.array([math.cos(y), -math.sin(y), 0.0])
    up = np.cross(right, forward)
    if roll:
        r = math.radians(roll)  # clockwise as seen from behind the camera
        right, up = right * math.cos(r) - up * math.sin(r), up * math.cos(r) + right * math.sin(r)
    return right, -up, forward


@dataclass(frozen=True)
class _View:
    """A camera pose over flat ground: picture size, yaw, pitch, roll (degrees), height (m)
    and horizontal field of view (degrees)."""

    w: float
    h: float
    yaw: float
    pitch: float
    roll: float
    height: float
    hfov: float

    def ground(self, x: float, y: float) -> tuple[float, float] | None:
        """(east, north) metres from below the aircraft to where pixel (x, y) meets the ground."""
        f_px = (self.w / 2) / math.tan(math.radians(self.hfov) / 2)
        right, down, forward = _camera_axes(self.yaw, self.pitch, self.roll)
        ray = (x - self.w / 2) * right + (y - self.h / 2) * down + f_px * forward
        if ray[2] >= -1e-9:
            return None
        t = self.height / -ray[2]
        return float(t * ray[0]), float(t * ray[1])


@dataclass(frozen=True)
class Errors:
    """What the telemetry may be off by: gimbal angles (degrees), height above the ground
    (share: barometric drift and terrain), field of view (share) and position (metres)."""

    angle_deg: float = 2.0
    height_share: float = 0.1
    fov_share: float = 0.03
    position_m: float = 3.0


def locate(frame: Mapping[str, Any], x: float, y: float, hfov_deg: float, max_distance_m: float = 2000.0,
           errors: Errors | None = None, extent: tuple[float, float, float, float] | None = None) -> Located:
    """The ground point seen at pixel (x, y) of a frame whose row carries its size (``width``,
    ``height``) and telemetry (``lat``, ``lon``, ``rel_alt``, ``gimbal_pitch``, ``gimbal_yaw``
    or else ``aircraft_yaw``, ``gimbal_roll``, ``focal_35mm``); ``hfov_deg`` is the field of
    view where the frame gives no focal length. With ``errors``, the point carries how far the
    find may be from it (``radius_m``; with ``extent``, the box it lies in, counted too)."""
    need = {"lat": "no position", "lon": "no position", "rel_alt": "no height above take-off",
            "gimbal_pitch": "no gimbal pitch", "width": "no frame size", "height": "no frame size"}
    for key, why in need.items():
        if frame.get(key) is None:
            return Located(None, why)
    yaw = frame.get("gimbal_yaw")
    if yaw is None:
        yaw = frame.get("aircraft_yaw")
    if yaw is None:
        return Located(None, "no heading (gimbal or aircraft yaw)")
    h = float(frame["rel_alt"])
    if h <= 0.5:
        return Located(None, f"height above take-off {h:.1f} m: the aircraft is on or near the ground")
    hfov_deg, hfov_from = horizontal_fov(frame, hfov_deg)
    if not 1.0 <= hfov_deg < 179.0:
        return Located(None, f"field of view {hfov_deg:g}° is not a camera's")
    view = _View(float(frame["width"]), float(frame["height"]), float(yaw), float(frame["gimbal_pitch"]),
                 float(frame.get("gimbal_roll") or 0.0), h, hfov_deg)
    offset = view.ground(x, y)
    if offset is None:
        return Located(None, "the point lies at or above the horizon")
    east, north = offset
    distance = math.hypot(east, north)
    if distance > max_distance_m:
        return Located(None, f"the point is {distance:,.0f} m away, too near the horizon to place")
    lat, lon = offset_to_latlon(float(frame["lat"]), float(frame["lon"]), east, north)
    bearing = math.degrees(math.atan2(east, north)) % 360.0
    return Located(GroundPoint(lat, lon, distance, bearing, hfov_deg, hfov_from,
                               _radius(view, x, y, (east, north), errors, extent)))


def errors_from(geo: Any) -> Errors:
    """The errors the settings' ``geo`` section allows for."""
    return Errors(angle_deg=geo.angle_error_deg, height_share=geo.height_error, position_m=geo.position_error_m)


def _radius(view: _View, x: float, y: float, point: tuple[float, float], errors: Errors | None,
            extent: tuple[float, float, float, float] | None = None) -> float | None:
    """How far the find may lie from ``point``: each error of ``errors`` on its own moves the
    point some way (combined as the root of the sum of squares, with the position's own), plus
    the farthest corner of ``extent`` (the tile: the find is somewhere in it). None when an
    error would lift the ray above the horizon."""
    if errors is None:
        return None
    e = errors
    moved = [e.position_m]
    for changed in (replace(view, pitch=view.pitch + e.angle_deg), replace(view, pitch=view.pitch - e.angle_deg),
                    replace(view, yaw=view.yaw + e.angle_deg), replace(view, height=view.height * (1 + e.height_share)),
                    replace(view, hfov=view.hfov * (1 + e.fov_share))):
        other = changed.ground(x, y)
        if other is None:
            return None
        moved.append(math.hypot(other[0] - point[0], other[1] - point[1]))
    # pitch up and down move the point by different amounts: keep the larger of the two
    pitch = max(moved[1], moved[2])
    spread = math.sqrt(moved[0] ** 2 + pitch**2 + sum(m * m for m in moved[3:]))
    if extent is not None:
        corners = [view.ground(cx, cy) for cx in (extent[0], extent[2]) for cy in (extent[1], extent[3])]
        placed = [c for c in corners if c is not None]
        if len(placed) < len(corners):
            return None
        spread += max(math.hypot(c[0] - point[0], c[1] - point[1]) for c in placed)
    return spread


def locate_box(frame: Mapping[str, Any], box: tuple[float, float, float, float] | None, hfov_deg: float,
               max_distance_m: float = 2000.0, errors: Errors | None = None) -> Located:
    """The ground point at the centre of a box (x0, y0, x1, y1), or of the frame without one;
    with ``errors``, its radius counts the telemetry's errors and the box's own size (the find
    is somewhere in the tile)."""
    if box is None or any(v is None for v in box):
        if frame.get("width") is None or frame.get("height") is None:
            return Located(None, "no frame size")
        w, h = float(frame["width"]), float(frame["height"])
        box = (0.0, 0.0, w, h)
    x0, y0, x1, y1 = (float(v) for v in box)
    return locate(frame, (x0 + x1) / 2, (y0 + y1) / 2, hfov_deg, max_distance_m, errors, (x0, y0, x1, y1))


def ground_position(frame: Mapping[str, Any], box: tuple[float, float, float, float] | None, geo: Any) -> Located:
    """A find's ground position as the settings' ``geo`` section has it: the centre of its
    box, with the radius the telemetry's errors and the box allow."""
    return locate_box(frame, box, geo.hfov_deg, geo.max_distance_m, errors_from(geo))
