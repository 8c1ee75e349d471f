"""DJI .SRT subtitle telemetry.

DJI aircraft write one subtitle cue per video frame (newer models) or per second (older
ones). At least five text layouts exist; this parser reads the fields wherever they appear
instead of matching one layout:

* bracketed ``[key: value]`` pairs (``latitude``, ``longitude``/``longtitude``,
  ``rel_alt``, ``abs_alt``, ``altitude``, ``iso``, ``shutter``, ``fnum``, ``gb_pitch``...);
* comma lists (``F/5.6, SS 400, ISO 100, GPS (lon, lat, sats), H 17.3m, G.PRY (p, r, y)``);
* the oldest ``GPS(lon,lat,sats) BAROMETER:1.9`` / ``Hb:1.9`` lines.

Anything malformed raises :class:`TelemetryParseError` naming the file; a cue that is
broken inside an otherwise good file is skipped and listed in ``Telemetry.warnings``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import stat
from collections import Counter
from dataclasses import replace
from pathlib import Path

from triage_app.core.ingest.telemetry.model import Telemetry, TelemetryPoint
from triage_app.core.model.errors import TelemetryParseError

MAX_SRT_BYTES = 256 * 1024 * 1024

_TIMING = re.compile(
    r"(\d{1,2}):(\d{1,2}):(\d{1,2})[,.](\d{1,3})\s*-->\s*(\d{1,2}):(\d{1,2}):(\d{1,2})[,.](\d{1,3})"
)
_DATE = re.compile(
    r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})[ T]+(\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d{1,6})(?:,(\d{3}))?)?"
)
# Every pattern here runs in time linear in the text it reads (a file may hold anything): a
# key starts only where no key letter precedes it and is at most 64 letters long, and no
# bracket scan runs past the next opening bracket.
_NUM = r"[-+]?\d+(?:\.\d+)?"
# A bracketed value written with a decimal comma (``[latitude: 45,037854]``, a localised
# export): the comma is read as the decimal point, and the file's warnings say so.
_KV_NUM = r"[-+]?\d+(?:\.\d+|,\d+(?=\s*\]))?"
_KV = re.compile(r"(?<![A-Za-z_.])([A-Za-z][A-Za-z_.]{0,63})\s*:\s*(F?)(" + _KV_NUM + r"(?:/" + _NUM + r")?|N/A)", re.I)
_COMMA_DECIMAL = re.compile(r":\s*[-+]?\d+,\d+(?=\s*\])")
_TAG = re.compile(r"<[^<>]*>")
_GPS = re.compile(r"GPS\s*\(([^()]*)\)", re.I)
_BARO_PAREN = re.compile(r"BAROMETER\s*\(\s*(" + _NUM + r")", re.I)
_PRY = re.compile(r"\b([FG])\.PRY\s*\(([^()]*)\)", re.I)
#: A cue longer than this is no telemetry (real ones are a few hundred characters).
MAX_CUE_CHARS = 8192
_HEIGHT = re.compile(r"(?:^|[\s,])H\s+(" + _NUM + r")\s*m\b")
_SS = re.compile(r"\bSS\s+(" + _NUM + r"(?:/" + _NUM + r")?)")
_ISO_WORD = re.compile(r"\bISO\s+(\d+(?:\.\d+)?)")
_FSLASH = re.compile(r"\bF/(" + _NUM + r")")

_KEY_ALIASES = {
    "latitude": "lat",
    "lat": "lat",
    "longitude": "lon",
    "longtitude": "lon",
    "lon": "lon",
    "rel_alt": "rel_alt",
    "barometer": "rel_alt",
    "hb": "rel_alt",
    "abs_alt": "abs_alt",
    "altitude": "abs_alt",
    "iso": "iso",
    "shutter": "shutter",
    "tv": "shutter",
    "fnum": "fnum",
    "ir": "fnum",
    "focal_len": "focal_35mm",
    "gb_pitch": "gimbal_pitch",
    "gb_yaw": "gimbal_yaw",
    "gb_roll": "gimbal_roll",
}


def find_sidecar_srt(video: Path) -> Path | None:
    """The telemetry file beside a video with the same stem (``DJI_0001.SRT``), if any."""
    for suffix in (".SRT", ".srt", ".Srt"):
        candidate = video.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def parse_srt(path: str | Path) -> Telemetry:
    """Parse a DJI .SRT file. Raises ``TelemetryParseError`` naming the file."""
    path = Path(path)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise TelemetryParseError(path, "is a folder, not a telemetry file (name the .SRT file itself)")
        if not stat.S_ISREG(st.st_mode):
            raise TelemetryParseError(path, "is not a regular file (a device or a pipe), not a telemetry file")
        if st.st_size > MAX_SRT_BYTES:
            raise TelemetryParseError(path, f"file is {st.st_size} bytes, larger than any real telemetry file")
        with path.open("rb") as fh:
            data = fh.read(MAX_SRT_BYTES + 1)  # never more, whatever the file claims
    except OSError as exc:
        raise TelemetryParseError(path, f"cannot be read ({exc.strerror or exc})") from exc
    return parse_srt_bytes(data, str(path))


def parse_srt_bytes(data: bytes, name: str) -> Telemetry:
    """Parse the bytes of a .SRT file; ``name`` is used in messages."""
    if not data.strip():
        raise TelemetryParseError(name, "file is empty")
    if b"\x00" in data[:4096]:
        raise TelemetryParseError(name, "binary data, not a subtitle (.SRT) text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return parse_srt_text(text, name)


def _f(value: str) -> float | None:
    try:
        out = float(value.replace(",", "."))
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _fraction(value: str) -> float | None:
    if "/" in value:
        num, _, den = value.partition("/")
        n, d = _f(num), _f(den)
        if n is None or not d:
            return None
        return n / d
    return _f(value)


def _shutter(value: str) -> float | None:
    """Exposure time in seconds: ``1/8000.0`` as written, a bare ``400`` means 1/400 s."""
    if "/" in value:
        return _fraction(value)
    v = _f(value)
    if v is None or v <= 0:
        return None
    return 1.0 / v if v >= 1 else v


def _fnum(value: str) -> float | None:
    v = _f(value)
    if v is None or v <= 0:
        return None
    return v / 100.0 if v >= 100 else v  # newer firmware writes f/2.8 as 280


def _focal(value: str) -> float | None:
    """DJI writes the 35 mm-equivalent focal length either in millimetres with a decimal
    point (``24.00``) or in tenths of a millimetre as an integer (``240``, ``280``)."""
    v = _f(value)
    if v is None or v <= 0:
        return None
    return v if "." in value else v / 10.0


def _clock_seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")[:3]) / 1000.0


def _date(text: str) -> tuple[str | None, float | None]:
    """ISO string and seconds-since-epoch-ish (for relative timing) of a cue's date."""
    m = _DATE.search(text)
    if not m:
        return None, None
    y, mo, d, h, mi, s, frac, micro_part = m.groups()
    try:
        yi, moi, di, hi, mii, si = int(y), int(mo), int(d), int(h), int(mi), int(s)
    except ValueError:
        return None, None
    if not (1 <= moi <= 12 and 1 <= di <= 31 and hi < 24 and mii < 60 and si < 61):
        return None, None
    # ``10:28:08,438,904``: milliseconds, then microseconds, each after a comma.
    micro = int(frac) * 1000 + int(micro_part) if micro_part and frac and len(frac) == 3 else \
        int((frac or "0").ljust(6, "0")[:6])
    iso = f"{yi:04d}-{moi:02d}-{di:02d}T{hi:02d}:{mii:02d}:{si:02d}.{micro:06d}"
    try:  # the real calendar (a flight across midnight at the end of February is 1 s, not 3 days)
        day = dt.date(yi, moi, di).toordinal()
    except ValueError:  # 31 April and the like
        return None, None
    return iso, day * 86400.0 + hi * 3600 + mii * 60 + min(si, 59) + micro / 1e6


def _triple(body: str) -> list[str]:
    return [part.strip().rstrip("°").strip() for part in body.split(",")]


def _parse_gps(body: str, fields: dict[str, float | None]) -> None:
    parts = _triple(body)
    if len(parts) < 2:
        return
    if any(p.upper() == "N/A" for p in parts[:2]):
        fields["lat"] = None
        fields["lon"] = None
        return
    a, b = _f(parts[0]), _f(parts[1])
    if a is None or b is None:
        return
    third = parts[2] if len(parts) > 2 else ""
    if third.upper().endswith("M") or "." in third:
        # Newer layout: GPS(lat, lon, altitude[M]).
        lat, lon = a, b
        alt = _f(third.rstrip("Mm"))
        # Matrice 300 writes GPS(lat,lon,0.0M) on every cue while its barometer climbs: an
        # altitude of exactly zero there is a placeholder, not a height.
        fields.setdefault("abs_alt", alt if alt else None)
    else:
        # Older layout: GPS(lon, lat, satellites).
        lon, lat = a, b
    if abs(lat) > 90 and abs(lon) <= 90:
        lat, lon = lon, lat
    fields["lat"], fields["lon"] = lat, lon


_VALUE_READERS = {"shutter": ("shutter_s", _shutter), "fnum": ("fnum", _fnum), "focal_35mm": ("focal_35mm", _focal)}


def _parse_fields(text: str) -> dict[str, float | None]:
    """Every telemetry field found in one cue's text. A key present with value ``None``
    means the aircraft wrote the field but had no value (``N/A``)."""
    fields: dict[str, float | None] = {}
    for key, _prefix, value in _KV.findall(text):
        name = _KEY_ALIASES.get(key.lower())
        if name is None or name in fields:
            continue
        if value.upper() == "N/A":
            fields[name] = None
        elif name in _VALUE_READERS:
            column, read = _VALUE_READERS[name]
            fields[column] = read(value)
        else:
            fields[name] = _f(value)
    for m in _GPS.finditer(text):
        _parse_gps(m.group(1), fields)
        break
    _parse_loose_fields(text, fields)
    lat, lon = fields.get("lat"), fields.get("lon")
    if lat is not None and lon is not None and (abs(lat) > 90 or abs(lon) > 180):
        fields["lat"] = fields["lon"] = None
    elif lat == 0 and lon == 0:
        fields["lat"] = fields["lon"] = None  # "no fix" as some aircraft write it
    return fields


def _parse_loose_fields(text: str, fields: dict[str, float | None]) -> None:
    """The fields older formats write without ``key: value`` pairs (``H 12.3m``, ``SS 1/500``,
    ``ISO 100``, ``F/2.8``, ``G.PRY (p, r, y)``), where no pair gave them."""
    if "rel_alt" not in fields:
        for rx in (_BARO_PAREN, _HEIGHT):
            m = rx.search(text)
            if m:
                fields["rel_alt"] = _f(m.group(1))
                break
    if "shutter_s" not in fields and (m := _SS.search(text)):
        fields["shutter_s"] = _shutter(m.group(1))
    if "iso" not in fields and (m := _ISO_WORD.search(text)):
        fields["iso"] = _f(m.group(1))
    if "fnum" not in fields and (m := _FSLASH.search(text)):
        fields["fnum"] = _fnum(m.group(1))
    for m in _PRY.finditer(text):
        prefix = "gimbal" if m.group(1).upper() == "G" else "aircraft"
        parts = [_f(p) for p in _triple(m.group(2))]
        if len(parts) == 3:
            fields[f"{prefix}_pitch"], fields[f"{prefix}_roll"], fields[f"{prefix}_yaw"] = parts


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """Cues as (first line number, non-empty lines)."""
    out: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            if current:
                out.append((start, current))
                current = []
            continue
        if not current:
            start = number
        current.append(line)
    if current:
        out.append((start, current))
    return out


Cue = tuple[int, float | None, str | None, float | None, dict[str, float | None]]


def _read_cues(text: str) -> tuple[list[Cue], list[int]]:
    """(cues as (line, time, ISO date, date seconds, fields), lines of cues too long to read)."""
    cues: list[Cue] = []
    too_long: list[int] = []
    for line_no, lines in _blocks(text):
        joined = " ".join(lines)
        if len(joined) > MAX_CUE_CHARS:
            too_long.append(line_no)
            continue
        joined = _TAG.sub(" ", joined)
        timing = _TIMING.search(joined)
        t = _clock_seconds(*timing.groups()[:4]) if timing else None
        iso, abs_s = _date(joined)
        body = _TIMING.sub(" ", joined) if timing else joined
        fields = _parse_fields(body)
        if t is None and iso is None and not fields:
            continue  # a stray line such as a lone cue number
        cues.append((line_no, t, iso, abs_s, fields))
    return cues, too_long


def parse_srt_text(text: str, name: str = "<srt>") -> Telemetry:
    """Parse the text of a DJI .SRT file; ``name`` is used in messages."""
    cues, too_long = _read_cues(text)
    warnings: list[str] = []
    if too_long:
        warnings.append(f"{name}: {len(too_long)} cue(s) of more than {MAX_CUE_CHARS} characters skipped (no telemetry "
                        f"is that long), from line {too_long[0]}")
    if not cues:
        raise TelemetryParseError(name, "no subtitle cues with telemetry found" + (f" ({warnings[0]})" if warnings else ""))
    commas = len(_COMMA_DECIMAL.findall(text))
    if commas:
        warnings.append(f"{name}: {commas} value(s) written with a decimal comma (such as 45,037854) read as decimals")

    timed = sum(1 for c in cues if c[1] is not None)
    dated = [c for c in cues if c[3] is not None]
    if timed == 0 and not dated:
        raise TelemetryParseError(name, "cues carry neither a time range nor a date, cannot match frames")

    # A cue without the position that most cues carry was cut short (a truncated file).
    key_counts = Counter(k for c in cues for k in c[4])
    common = {k for k in ("lat", "lon") if key_counts[k] >= 0.5 * len(cues)}
    points: list[TelemetryPoint] = []
    origin = dated[0][3] if dated else None
    no_fix = 0
    truncated: list[str] = []
    untimed = 0
    for line_no, t, iso, abs_s, fields in cues:
        missing = common - fields.keys()
        if missing:
            truncated.append(f"line {line_no} (missing {', '.join(sorted(missing))})")
            continue
        if t is None:
            if timed == 0 and abs_s is not None and origin is not None:
                t = abs_s - origin
            else:
                untimed += 1
                continue
        if "lat" in fields and fields.get("lat") is None:
            no_fix += 1
        known = {k: v for k, v in fields.items() if k in TelemetryPoint.field_names()}
        points.append(TelemetryPoint(t=t, captured_at=iso, **known))
    if truncated:
        shown = "; ".join(truncated[:3]) + (f" and {len(truncated) - 3} more" if len(truncated) > 3 else "")
        warnings.append(f"{name}: {len(truncated)} cue(s) cut short and skipped: {shown}")
    if untimed:
        warnings.append(f"{name}: {untimed} cue(s) without a time range skipped")
    if no_fix:
        warnings.append(f"{name}: {no_fix} of {len(points)} cue(s) have no GPS fix (N/A)")
    if not points:
        raise TelemetryParseError(name, "no usable telemetry cue: " + "; ".join(warnings or ["all cues malformed"]))
    points = _plausible(_spread_repeated_seconds(points, name, warnings) if timed == 0 else points, name, warnings)
    times = [p.t for p in points]
    if any(b < a for a, b in zip(times, times[1:], strict=False)):
        warnings.append(f"{name}: cue times go backwards; cues were re-ordered by time")
    return Telemetry(path=name, points=points, warnings=warnings)


def _spread_repeated_seconds(points: list[TelemetryPoint], name: str, warnings: list[str]) -> list[TelemetryPoint]:
    """Cues timed only by a wall clock of whole seconds, several in one second (DJI writes
    no cue times in some files): the cues of one second are spread evenly up to the next
    second written, so that no two share a time and no second is left empty."""
    times = [p.t for p in points]
    if len(times) < 3 or any(t != round(t) for t in times) or len(set(times)) == len(times):
        return points
    out = list(points)
    steps = [b - a for a, b in zip(sorted(set(times)), sorted(set(times))[1:], strict=False)]
    step = min(steps) if steps else 1.0
    i, spread = 0, 0
    while i < len(times):
        j = i
        while j + 1 < len(times) and times[j + 1] == times[i]:
            j += 1
        n = j - i + 1
        if n > 1:
            end = times[j + 1] if j + 1 < len(times) and times[j + 1] > times[i] else times[i] + step * n
            width = (end - times[i]) / n
            for k in range(n):
                out[i + k] = replace(points[i + k], t=times[i] + k * width)
            spread += n
        i = j + 1
    if spread:
        warnings.append(f"{name}: {spread} cue(s) timed only by a whole-second clock shared a second; spread evenly "
                        "within it")
    return out


#: Highest altitude above sea level a drone flight can report (the highest terrain and a
#: drone's service ceiling above it): beyond it the value was written in the wrong unit.
MAX_ABS_ALT_M = 9000.0


def _plausible(points: list[TelemetryPoint], name: str, warnings: list[str]) -> list[TelemetryPoint]:
    """Guards for values some aircraft are known to write in another unit (no file of them
    at hand, so judged by plausibility): an altitude ten times too large (DJI FPV's
    ``[altitude: ...]`` in decimetres) and gimbal angles in radians (some Mavic Air 2 files)."""
    alt = [p.abs_alt for p in points if p.abs_alt is not None]
    pairs = [(p.abs_alt, p.rel_alt) for p in points if p.abs_alt is not None and p.rel_alt is not None]
    tenfold = False
    if len(pairs) >= 10:
        a_range = max(a for a, _ in pairs) - min(a for a, _ in pairs)
        r_range = max(r for _, r in pairs) - min(r for _, r in pairs)
        tenfold = r_range >= 5.0 and 7.0 <= a_range / r_range <= 13.0  # climbs ten times faster than the barometer
    if not tenfold and alt and sorted(alt)[len(alt) // 2] > MAX_ABS_ALT_M:
        tenfold = True
    if tenfold:
        points = [replace(p, abs_alt=p.abs_alt / 10.0) if p.abs_alt is not None else p for p in points]
        warnings.append(f"{name}: the altitude reads ten times too large (in decimetres, as DJI FPV writes it); "
                        "divided by 10")
    pitch = [p.gimbal_pitch for p in points if p.gimbal_pitch is not None]
    yaw = [p.gimbal_yaw for p in points if p.gimbal_yaw is not None]
    if len(pitch) >= 10 and len(yaw) >= 10:
        small = max(abs(v) for v in pitch) <= math.pi / 2 + 0.01 and max(abs(v) for v in yaw) <= math.pi + 0.01
        # A real flight whose yaw stays within 3 degrees of north and whose camera never tilts
        # past 1.6 degrees is all but impossible; angles that small that still vary are radians.
        moving = (max(yaw) - min(yaw)) > 0.2 or max(abs(v) for v in pitch) > 0.5
        if small and moving:
            deg = 180.0 / math.pi

            def to_degrees(p: TelemetryPoint) -> TelemetryPoint:
                return replace(p, **{k: getattr(p, k) * deg for k in ("gimbal_pitch", "gimbal_yaw", "gimbal_roll")
                                     if getattr(p, k) is not None})

            points = [to_degrees(p) for p in points]
            warnings.append(f"{name}: the gimbal angles are in radians (as some Mavic Air 2 files write them); "
                            "converted to degrees")
    return points
