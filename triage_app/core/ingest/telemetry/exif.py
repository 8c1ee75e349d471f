"""Position, capture time and gimbal angle from a photo's EXIF (and DJI's XMP)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from triage_app.core.ingest.telemetry.model import TelemetryPoint

log = logging.getLogger(__name__)

_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132
_XMP = {
    "rel_alt": re.compile(rb'drone-dji:RelativeAltitude="?\s*([-+]?\d+(?:\.\d+)?)'),
    "abs_alt": re.compile(rb'drone-dji:AbsoluteAltitude="?\s*([-+]?\d+(?:\.\d+)?)'),
    "gimbal_pitch": re.compile(rb'drone-dji:GimbalPitchDegree="?\s*([-+]?\d+(?:\.\d+)?)'),
    "gimbal_yaw": re.compile(rb'drone-dji:GimbalYawDegree="?\s*([-+]?\d+(?:\.\d+)?)'),
    "gimbal_roll": re.compile(rb'drone-dji:GimbalRollDegree="?\s*([-+]?\d+(?:\.\d+)?)'),
    "aircraft_pitch": re.compile(rb'drone-dji:FlightPitchDegree="?\s*([-+]?\d+(?:\.\d+)?)'),
    "aircraft_yaw": re.compile(rb'drone-dji:FlightYawDegree="?\s*([-+]?\d+(?:\.\d+)?)'),
    "aircraft_roll": re.compile(rb'drone-dji:FlightRollDegree="?\s*([-+]?\d+(?:\.\d+)?)'),
}


def _rational(value: Any) -> float | None:
    if isinstance(value, tuple):
        value = value[0] if value else None
    if value is None:
        return None
    try:
        return float(value)  # PIL's IFDRational converts
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _dms(values: Any, ref: object) -> float | None:
    try:
        d, m, s = (_rational(v) for v in values)
    except (TypeError, ValueError):
        return None
    if d is None or m is None or s is None:
        return None
    out = d + m / 60.0 + s / 3600.0
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "ignore")
    if str(ref).strip().upper() in {"S", "W"}:
        out = -out
    return out


def _iso_time(raw: object) -> str | None:
    if not isinstance(raw, str):
        return None
    m = re.match(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})", raw.strip())
    if not m:
        return None
    y, mo, d, h, mi, s = m.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}"


def read_exif(path: str | Path) -> TelemetryPoint | None:
    """Telemetry of one photo, or ``None`` if it has none. Never raises on bad metadata."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            gps = exif.get_ifd(_GPS_IFD) if exif else {}
            sub = exif.get_ifd(_EXIF_IFD) if exif else {}
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        log.debug("no EXIF in %s: %s", path, exc)
        return None
    fields: dict[str, float | str | None] = {}
    fields["captured_at"] = _iso_time(sub.get(_DATETIME_ORIGINAL)) or _iso_time(exif.get(_DATETIME))
    fields["iso"] = _rational(sub.get(0x8827))
    fields["shutter_s"] = _rational(sub.get(0x829A))
    fields["fnum"] = _rational(sub.get(0x829D))
    f35 = _rational(sub.get(0xA405))  # FocalLengthIn35mmFilm
    fields["focal_35mm"] = f35 if f35 and f35 > 0 else None
    if gps:
        lat = _dms(gps.get(2), gps.get(1)) if gps.get(2) else None
        lon = _dms(gps.get(4), gps.get(3)) if gps.get(4) else None
        if lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180 and (lat or lon):
            fields["lat"], fields["lon"] = lat, lon
        alt = _rational(gps.get(6))
        if alt is not None:
            ref = gps.get(5)
            below = ref in (1, b"\x01")
            fields["abs_alt"] = -alt if below else alt
    try:
        with path.open("rb") as fh:
            head = fh.read(256 * 1024)
    except OSError:
        head = b""
    for name, rx in _XMP.items():
        m = rx.search(head)
        if m:
            try:
                fields[name] = float(m.group(1))
            except ValueError:
                pass
    if not any(v is not None for v in fields.values()):
        return None
    return TelemetryPoint(t=0.0, **fields)  # type: ignore[arg-type]
