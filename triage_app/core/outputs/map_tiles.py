"""A base map under the flights where the machine is online: web map tiles (the XYZ scheme
of OpenStreetMap and most tile servers, ``geo.map_tiles``) for the map's extent, placed on
its metric plane, kept on disk so a map seen once is there again in the field.

Tiles are fetched at one zoom level chosen so the extent takes a few dozen of them; a tile
server out of reach (no network, a proxy, an error) is said in one line and the map stays the
offline base it always is. Nothing here is needed for anything else: no tile, no loss."""

from __future__ import annotations

import logging
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from triage_app import __version__
from triage_app.core.ingest.telemetry.geo import latlon_to_offset, offset_to_latlon

log = logging.getLogger(__name__)

#: At most this many tiles for one map (a tile server's fair use; a few MB at most).
MAX_TILES = 48
MAX_ZOOM = 19
TIMEOUT_S = 5.0
#: After a failed fetch, the server is not asked again for this long (seconds).
RETRY_AFTER_S = 120.0


@dataclass
class MapTile:
    z: int
    x: int
    y: int
    rect: tuple[float, float, float, float]  # (west, south, east, north) metres on the map's plane
    data: bytes  # the picture as the server sent it (PNG or JPEG)


@dataclass
class BaseMap:
    tiles: list[MapTile] = field(default_factory=list)
    attribution: str = ""
    note: str = ""  # why some or all tiles are missing ("" when none is)


def _tile_xy(lat: float, lon: float, z: int) -> tuple[float, float]:
    """Web Mercator tile coordinates (fractional) of a point."""
    n = 2.0**z
    lat = max(-85.0511, min(85.0511, lat))
    x = (lon + 180.0) / 360.0 * n
    r = math.radians(lat)
    y = (1.0 - math.asinh(math.tan(r)) / math.pi) / 2.0 * n
    return x, y


def _tile_corner(x: float, y: float, z: int) -> tuple[float, float]:
    """(lat, lon) of a tile corner."""
    n = 2.0**z
    lon = x / n * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1.0 - 2.0 * y / n))))
    return lat, lon


def tiles_covering(origin: tuple[float, float], extent: tuple[float, float, float, float],
                   max_tiles: int = MAX_TILES, max_zoom: int = MAX_ZOOM) -> list[tuple[int, int, int, tuple[float, float, float, float]]]:
    """(z, x, y, plane rect) of the tiles covering ``extent`` (west, south, east, north metres
    from ``origin``), at the finest zoom where at most ``max_tiles`` do."""
    lat0, lon0 = origin
    w, s, e, n = extent
    north_lat, west_lon = offset_to_latlon(lat0, lon0, w, n)
    south_lat, east_lon = offset_to_latlon(lat0, lon0, e, s)
    for z in range(max_zoom, -1, -1):
        x0, y0 = _tile_xy(north_lat, west_lon, z)
        x1, y1 = _tile_xy(south_lat, east_lon, z)
        xs, ys = range(int(x0), int(x1) + 1), range(int(y0), int(y1) + 1)
        if len(xs) * len(ys) <= max_tiles or z == 0:
            out = []
            for ty in ys:
                for tx in xs:
                    nw = _tile_corner(tx, ty, z)
                    se = _tile_corner(tx + 1, ty + 1, z)
                    west, north = latlon_to_offset(lat0, lon0, nw[0], nw[1])
                    east, south = latlon_to_offset(lat0, lon0, se[0], se[1])
                    out.append((z, tx % (2**z), ty, (west, south, east, north)))
            return out
    return []


class TileSource:
    """Tiles from ``url`` (``{z}``, ``{x}``, ``{y}`` filled in), kept under ``cache_dir``."""

    _down_until: dict[str, float] = {}  # server -> when to ask it again (shared by every map)

    def __init__(self, url: str, cache_dir: Path, timeout: float = TIMEOUT_S) -> None:
        self.url = url
        self.server = urllib.parse.urlsplit(url).netloc or "local"
        self.cache = Path(cache_dir) / "map-tiles" / self.server.replace(":", "_")
        self.timeout = timeout
        self.failure = ""

    def _path(self, z: int, x: int, y: int) -> Path:
        return self.cache / str(z) / str(x) / f"{y}.tile"

    def get(self, z: int, x: int, y: int) -> bytes | None:
        """The tile, from the disk if it was fetched before, else from the server; None (and
        ``failure`` says why) where it cannot be had."""
        path = self._path(z, x, y)
        try:
            return path.read_bytes()
        except OSError:
            pass
        if time.monotonic() < self._down_until.get(self.server, 0.0):
            self.failure = self.failure or f"{self.server} was out of reach a moment ago"
            return None
        url = self.url.format(z=z, x=x, y=y)
        request = urllib.request.Request(url, headers={"User-Agent": f"triage_app/{__version__} (drone footage triage)"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - the user's tile server
                data = response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            self.failure = (f"{self.server} answered {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError)
                            else f"{self.server} out of reach")
            TileSource._down_until[self.server] = time.monotonic() + RETRY_AFTER_S
            log.info("map tiles: %s cannot be fetched (%s)", url, reason)
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError as exc:
            log.info("map tiles: %s not kept (%s)", path, exc)
        return data


def base_map(url: str, attribution: str, cache_dir: Path, origin: tuple[float, float] | None,
             extent: tuple[float, float, float, float] | None, cancel: Callable[[], bool] | None = None) -> BaseMap:
    """The tiles under a map of ``extent`` around ``origin``; none where ``url`` is empty."""
    if not url or origin is None or extent is None:
        return BaseMap()
    source = TileSource(url, cache_dir)
    out = BaseMap(attribution=attribution)
    wanted = tiles_covering(origin, extent)
    for z, x, y, rect in wanted:
        if cancel is not None and cancel():
            break
        data = source.get(z, x, y)
        if data is not None:
            out.tiles.append(MapTile(z, x, y, rect, data))
    if len(out.tiles) < len(wanted):
        out.note = (f"No base map: {source.failure}" if not out.tiles else
                    f"{len(wanted) - len(out.tiles)} of {len(wanted)} map tiles missing: {source.failure}")
    return out
