"""The finds: every frame whose standing decision is *accept*, newest first, with where the
firing tile lies on the ground (``core/ingest/telemetry/geo.py``) or, failing that, where the aircraft was.
For whoever coordinates the people on the ground while analysts are still reviewing."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from triage_app.core.ingest.telemetry.geo import ground_position, latlon_to_offset
from triage_app.core.model.policy import firing_tile
from triage_app.core.model.records import Label
from triage_app.core.model.text import utc_time, xml_safe
from triage_app.core.store import Workspace


@dataclass
class Find:
    frame_id: int
    decided_at: str
    reviewer: str
    source: str
    frame: int
    timestamp_s: float
    captured_at: str | None
    lat: float | None  # the find's position: on the ground where it could be placed, else the aircraft's
    lon: float | None
    placed: str  # "ground", "aircraft" or "none"
    distance_m: float | None  # from the point below the aircraft, when placed on the ground
    radius_m: float | None  # how far the find may be from its position (telemetry errors and the tile's size)
    note: str  # why it was not placed on the ground, if it was not
    place: int | None = None  # finds whose ground discs overlap share a place (1 = the newest); None: no position
    what: str = ""  # the analyst's class for what was found ("person", "vehicle", ...)
    remark: str = ""  # the analyst's note on it


def accepted_count(ws: Workspace) -> int:
    """How many finds there are (:func:`finds` without building them)."""
    return sum(1 for d in ws.decisions.current() if d.label is Label.ACCEPT)


def finds(ws: Workspace) -> list[Find]:
    """Accepted frames, newest decision first."""
    accepted = [d for d in ws.decisions.current() if d.label is Label.ACCEPT]
    if not accepted:
        return []
    accepted.sort(key=lambda d: (d.decided_at, d.id), reverse=True)
    thresholds = ws.policy().thresholds
    scores = ws.scores.frame_score_rows([d.frame_id for d in accepted])
    sources = {s["id"]: s for s in ws.frames.source_summaries()}
    frames = ws.frames.frames_by_id([d.frame_id for d in accepted])
    notes = ws.notes.of_frames([d.frame_id for d in accepted])
    out = []
    geo = ws.settings.geo
    for d in accepted:
        fr = frames[d.frame_id]
        _member, box = firing_tile(scores.get(d.frame_id, {}), thresholds)
        placed = ground_position(fr, box, geo)
        lat: float | None
        lon: float | None
        if placed.point is not None:
            p = placed.point
            lat, lon, how, dist, radius, note = p.lat, p.lon, "ground", p.distance_m, p.radius_m, ""
        elif fr.get("lat") is not None:
            lat, lon, how, dist, radius, note = fr["lat"], fr["lon"], "aircraft", None, None, placed.reason
        else:
            lat, lon, how, dist, radius, note = None, None, "none", None, None, "no position for this frame"
        said = notes.get(d.frame_id)
        out.append(Find(d.frame_id, d.decided_at, d.reviewer, sources[fr["source_id"]]["name"],
                        int(fr["idx"]), float(fr["timestamp_s"]), fr.get("captured_at"), lat, lon, how, dist, radius,
                        note, what=said.what if said else "", remark=said.note if said else ""))
    group_places(out)
    return out


def near(items: list[Find], lat: float, lon: float, radius_m: float, exclude: int | None = None) -> list[Find]:
    """The finds placed on the ground whose discs overlap the disc (lat, lon, radius_m), nearest
    first; ``exclude``: a frame id left out (the frame itself)."""
    hits = []
    for f in items:
        if f.placed != "ground" or f.radius_m is None or f.lat is None or f.lon is None or f.frame_id == exclude:
            continue
        gap = math.hypot(*latlon_to_offset(lat, lon, f.lat, f.lon))
        if gap <= radius_m + f.radius_m:
            hits.append((gap, f))
    return [f for _gap, f in sorted(hits, key=lambda h: h[0])]


def group_places(items: list[Find]) -> int:
    """Number the places the finds point to (:func:`place_numbers`; items come newest first, so
    a place is numbered by its newest find) into ``Find.place``. Returns the number of places."""
    numbers = place_numbers([(f.lat, f.lon, f.radius_m if f.placed == "ground" else None) for f in items])
    for f, n in zip(items, numbers, strict=True):
        f.place = n
    return len({n for n in numbers if n is not None})


def place_numbers(points: list[tuple[float | None, float | None, float | None]]) -> list[int | None]:
    """Place numbers (1, 2, ... in the order the points first name them) for (lat, lon, radius)
    points: two points whose discs overlap are one place, and so on through chains of overlaps
    (the same person seen in ten frames is one place to go to). A point without a radius (the
    aircraft's position) is a place of its own; one without a position has none."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    placed = {i: (lat, lon) for i, (lat, lon, _r) in enumerate(points) if lat is not None and lon is not None}
    located = list(placed)
    out: list[int | None] = [None] * len(points)
    if not located:
        return out
    lat0, lon0 = placed[located[0]]
    xy = np.array([latlon_to_offset(lat0, lon0, *placed[i]) for i in located])
    radius = np.array([points[i][2] if points[i][2] is not None else 0.0 for i in located])
    pairs = cKDTree(xy).query_pairs(r=2 * float(radius.max()) if radius.max() > 0 else 0.0, output_type="ndarray")
    if len(pairs):
        gap = np.hypot(*(xy[pairs[:, 0]] - xy[pairs[:, 1]]).T)
        keep = (gap <= radius[pairs[:, 0]] + radius[pairs[:, 1]]) & (radius[pairs[:, 0]] > 0) & (radius[pairs[:, 1]] > 0)
        pairs = pairs[keep]
    n = len(located)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])) if len(pairs) else ([], ([], [])), shape=(n, n))
    _count, labels = connected_components(graph, directed=False)
    numbers: dict[int, int] = {}
    for k, i in enumerate(located):
        out[i] = numbers.setdefault(int(labels[k]), len(numbers) + 1)
    return out


def finds_csv(items: list[Find]) -> str:
    """The finds as CSV text (for the clipboard or a file), one row each."""
    buf = io.StringIO()
    names = list(Find.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for f in items:
        writer.writerow(asdict(f))
    return buf.getvalue()


def finds_geojson(items: list[Find]) -> str:
    """The finds that have a position, as a GeoJSON FeatureCollection."""
    features: list[dict[str, Any]] = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [f.lon, f.lat]},
         "properties": {k: v for k, v in asdict(f).items() if k not in ("lat", "lon")}}
        for f in items if f.lat is not None and f.lon is not None
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}, indent=1)


def finds_gpx(items: list[Find]) -> str:
    """The places as GPX 1.1 waypoints, for the handheld receivers ground teams carry: one per
    place, at its newest find, named "Place N", described by its frames, reviewers and radius
    (the widest of its finds')."""
    import xml.etree.ElementTree as ET

    ns = "http://www.topografix.com/GPX/1/1"
    gpx = ET.Element("gpx", version="1.1", creator="triage_app", xmlns=ns)
    by_place: dict[int, list[Find]] = {}
    for f in items:
        if f.place is not None:
            by_place.setdefault(f.place, []).append(f)
    for number in sorted(by_place):
        fs = by_place[number]
        head = fs[0]  # the newest find names the place
        wpt = ET.SubElement(gpx, "wpt", lat=f"{head.lat:.7f}", lon=f"{head.lon:.7f}")
        if (when := utc_time(head.captured_at)) is not None:  # GPX times are UTC; a clock without a zone is left out
            ET.SubElement(wpt, "time").text = when
        ET.SubElement(wpt, "name").text = f"Place {number}"
        radii = [f.radius_m for f in fs if f.radius_m is not None]
        where = f"within {max(radii):.0f} m" if head.placed == "ground" and radii else "the aircraft's position"
        frames = ", ".join(f"{f.source} frame {f.frame}" for f in fs[:10]) + (" …" if len(fs) > 10 else "")
        local = f"; captured {head.captured_at} (camera clock, zone unknown)" if head.captured_at and when is None else ""
        said = "".join(f"; {f.what or 'note'}: {f.remark}" if f.remark else f"; {f.what}" for f in fs if f.what or f.remark)
        ET.SubElement(wpt, "desc").text = xml_safe(f"{len(fs)} accepted frame{'s' if len(fs) != 1 else ''} ({where}), by "
                                                   f"{', '.join(sorted({f.reviewer for f in fs}))}: {frames}{local}{said}")
        ET.SubElement(wpt, "sym").text = "Flag, Red"
        whats = sorted({f.what for f in fs if f.what})
        if whats:  # after sym, as GPX 1.1 orders them
            ET.SubElement(wpt, "type").text = xml_safe(", ".join(whats))
    ET.indent(gpx)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(gpx, encoding="unicode") + "\n"
