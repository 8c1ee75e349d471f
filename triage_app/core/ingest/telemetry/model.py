"""Telemetry records and time matching."""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class TelemetryPoint:
    """One telemetry sample. ``t`` is seconds from the start of the video; every other
    field is ``None`` when the file does not carry it."""

    t: float
    captured_at: str | None = None  # ISO 8601 wall-clock time as the aircraft wrote it
    lat: float | None = None
    lon: float | None = None
    rel_alt: float | None = None  # metres above the take-off point
    abs_alt: float | None = None  # metres above sea level (as reported)
    gimbal_pitch: float | None = None
    gimbal_yaw: float | None = None
    gimbal_roll: float | None = None
    aircraft_pitch: float | None = None
    aircraft_yaw: float | None = None
    aircraft_roll: float | None = None
    iso: float | None = None
    shutter_s: float | None = None
    fnum: float | None = None
    focal_35mm: float | None = None  # 35 mm-equivalent focal length of the camera, mm

    def as_row(self) -> dict[str, object]:
        """The fields stored with a frame (all but ``t``)."""
        row = asdict(self)
        row.pop("t")
        return row

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "t"]


@dataclass
class Telemetry:
    """The parsed telemetry of one file, sorted by time, with what was wrong with it."""

    path: str
    points: list[TelemetryPoint]
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.points.sort(key=lambda p: p.t)
        self._times = [p.t for p in self.points]

    @property
    def has_position(self) -> bool:
        return any(p.lat is not None for p in self.points)

    def at(self, t: float, tolerance: float = 2.0) -> TelemetryPoint | None:
        """The sample nearest to time ``t`` (seconds), or ``None`` if none is within
        ``tolerance`` seconds."""
        if not self._times:
            return None
        i = bisect.bisect_right(self._times, t)
        best: TelemetryPoint | None = None
        best_d = float("inf")
        for j in (i - 1, i):
            if 0 <= j < len(self._times):
                d = abs(self._times[j] - t)
                # A cue covers [start, next start): prefer the one that has started.
                if (
                    j == i - 1
                    and j + 1 < len(self._times)
                    and self._times[j + 1] - self._times[j] <= tolerance
                ):
                    d = 0.0
                if d < best_d:
                    best, best_d = self.points[j], d
        return best if best_d <= tolerance else None
