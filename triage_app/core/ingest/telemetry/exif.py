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
_OFFSET_TIME_ORIGINAL = 0x9011
_OFFSET_TIME = 0x9010


def _xmp(name: str) -> re.Pattern[bytes]:
    """DJI's XMP value ``name`` in either form: an attribute (``drone-dji:Name="-90.0"``) or
    an element (``<drone-dji:Name>-90.0</drone-dji:Name>``)."""
    return re.compile(rb"drone-dji:" + name.encode() + rb'(?:="|=|>)\s*([-+]?\d+(?:\.\d+)?)')


_XMP = {
    "rel_alt": _xmp("RelativeAltitude"),
    "abs_alt": _xmp("AbsoluteAltitude"),
    "gimbal_pitch": _xmp("GimbalPitchDegree"),
    "gimbal_yaw": _xmp("GimbalYawDegree"),
    "gimbal_roll": _xmp("GimbalRollDegree"),
    "aircraft_pitch": _xmp("FlightPitchDegree"),
    "aircraft_yaw": _xmp("FlightYawDegree"),
    "aircraft_roll": _xmp("FlightRollDegree"),
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


def _offset(raw: object) -> str | None:
    """EXIF's OffsetTime* (``+02:00``), or None."""
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "ignore")
    m = re.fullmatch(r"([+-])(\d{2}):(\d{2})", str(raw or "").strip().strip("\x00"))
    if not m or int(m.group(2)) > 14 or int(m.group(3)) >= 60:
        return None
    return f"{m.group(1)}{m.group(2)}:{m.group(3)}"


def _gps_offset(local: str | None, gps: Any) -> str | None:
    """The camera clock's zone from the GPS time (UTC) written beside it: their difference,
    rounded to the quarter hour (zones are whole quarters), when it is a real zone's."""
    import datetime as dt

    if not local or not gps or not gps.get(29) or not gps.get(7):
        return None
    try:
        date = str(gps.get(29)).strip().replace(":", "-")
        h, m, sec = (_rational(v) for v in gps.get(7))
        if h is None or m is None or sec is None:
            return None
        utc = dt.datetime.fromisoformat(date) + dt.timedelta(hours=h, minutes=m, seconds=sec)
        minutes = (dt.datetime.fromisoformat(local) - utc).total_seconds() / 60
    except (TypeError, ValueError, OverflowError):
        return None
    quarter = round(minutes / 15) * 15
    if abs(quarter) > 14 * 60 or abs(minutes - quarter) > 5:
        return None
    sign = "+" if quarter >= 0 else "-"
    return f"{sign}{abs(quarter) // 60:02d}:{abs(quarter) % 60:02d}"


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
    local = _iso_time(sub.get(_DATETIME_ORIGINAL)) or _iso_time(exif.get(_DATETIME))
    zone = _offset(sub.get(_OFFSET_TIME_ORIGINAL)) or _offset(sub.get(_OFFSET_TIME)) or _gps_offset(local, gps)
    fields["captured_at"] = local + zone if local and zone else local
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
