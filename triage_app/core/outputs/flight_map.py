"""What the map tab draws, on a metric plane (east and north metres from the first position):
each flight's track, the ground each frame saw (its footprint, where the telemetry allows),
the finds with their radii and place numbers, and every frame's aircraft position (for the
frame on screen). It needs no map tiles: a base map is for a machine online, this works in
the field."""

from __future__ import annotations

from dataclasses import dataclass, field

from triage_app.core.ingest.telemetry.geo import latlon_to_offset, locate
from triage_app.core.outputs.finds import Find
from triage_app.core.store import Workspace


@dataclass
class MapFind:
    frame_id: int
    x: float
    y: float
    radius_m: float | None
    place: int | None
    label: str  # "source frame N", and what the analyst said it is


@dataclass
class FlightMap:
    origin: tuple[float, float] | None  # (lat, lon) of (0, 0); None: no frame has a position
    tracks: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # source name -> positions in capture order
    footprints: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # frame id -> ground corners
    positions: dict[int, tuple[float, float]] = field(default_factory=dict)  # frame id -> the aircraft's position
    finds: list[MapFind] = field(default_factory=list)
    without_position: int = 0  # frames with no position at all

    def extent(self) -> tuple[float, float, float, float] | None:
        """(west, south, east, north) metres around everything drawn."""
        xs = [p[0] for t in self.tracks.values() for p in t] + [f.x for f in self.finds]
        ys = [p[1] for t in self.tracks.values() for p in t] + [f.y for f in self.finds]
        for corners in self.footprints.values():
            xs += [c[0] for c in corners]
            ys += [c[1] for c in corners]
        if not xs:
            return None
        return min(xs), min(ys), max(xs), max(ys)


def flight_map(ws: Workspace, finds: list[Find], max_footprints: int = 1500) -> FlightMap:
    """The map of the project's frames and of ``finds`` (:func:`~.finds.finds`). At most
    ``max_footprints`` footprints are drawn, spread evenly over the frames (a survey of
    10,000 frames would hide the track under them)."""
    frames = [f for f in ws.frames.frame_rows() if f.get("lat") is not None and f.get("lon") is not None]
    out = FlightMap(None)
    out.without_position = ws.frames.frame_count() - len(frames)
    if not frames:
        return out
    lat0, lon0 = float(frames[0]["lat"] or 0.0), float(frames[0]["lon"] or 0.0)
    out.origin = (lat0, lon0)
    names = {int(s["id"]): str(s["name"]) for s in ws.frames.source_summaries()}
    hfov, reach = ws.settings.geo.hfov_deg, ws.settings.geo.max_distance_m
    step = max(1, len(frames) // max_footprints)
    for k, f in enumerate(sorted(frames, key=lambda f: (f["source_id"], f.get("timestamp_s") or 0.0, f["idx"]))):
        xy = latlon_to_offset(lat0, lon0, float(f["lat"] or 0.0), float(f["lon"] or 0.0))
        out.positions[int(f["id"])] = xy
        out.tracks.setdefault(names.get(int(f["source_id"]), str(f["source_id"])), []).append(xy)
        if k % step == 0 and f.get("width") and f.get("height"):
            w, h = float(f["width"] or 0), float(f["height"] or 0)
            corners = [locate(f, x, y, hfov, reach).point for x, y in ((0, 0), (w, 0), (w, h), (0, h))]
            if all(c is not None for c in corners):
                out.footprints[int(f["id"])] = [latlon_to_offset(lat0, lon0, c.lat, c.lon) for c in corners if c is not None]
    for find in finds:
        if find.lat is None or find.lon is None:
            continue
        x, y = latlon_to_offset(lat0, lon0, find.lat, find.lon)
        said = ": ".join(t for t in (find.what, find.remark) if t)
        out.finds.append(MapFind(find.frame_id, x, y, find.radius_m if find.placed == "ground" else None, find.place,
                                 f"{find.source} frame {find.frame}" + (f" ({said})" if said else "")))
    return out
