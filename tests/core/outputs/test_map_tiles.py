"""The base map where the machine is online: the right web map tiles for the map's extent,
placed where their ground lies on the map's plane, kept on disk for the field, and a server
out of reach said in a line without holding anything up."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import TileServer
from triage_app.core.ingest.telemetry.geo import latlon_to_offset
from triage_app.core.outputs.map_tiles import TileSource, base_map, tiles_covering


def test_tiles_cover_the_extent_where_their_ground_lies() -> None:
    origin = (45.0, 7.0)
    extent = (-300.0, -200.0, 500.0, 400.0)  # a flight of under a kilometre
    tiles = tiles_covering(origin, extent, max_tiles=48)
    z = tiles[0][0]
    assert 14 <= z <= 19 and len(tiles) <= 48 and {t[0] for t in tiles} == {z}
    assert len(tiles_covering(origin, extent, max_tiles=200)) > len(tiles)  # more allowed: finer tiles
    west = min(t[3][0] for t in tiles)
    south = min(t[3][1] for t in tiles)
    east = max(t[3][2] for t in tiles)
    north = max(t[3][3] for t in tiles)
    assert west <= -300 and south <= -200 and east >= 500 and north >= 400  # the whole extent is covered
    # The tile holding the origin, by the XYZ scheme's own formula: (0, 0) lies inside its rectangle.
    n = 2**z
    x = int((7.0 + 180) / 360 * n)
    y = int((1 - np.arcsinh(np.tan(np.radians(45.0))) / np.pi) / 2 * n)
    (rect,) = [t[3] for t in tiles if (t[1], t[2]) == (x, y)]
    assert rect[0] <= 0 <= rect[2] and rect[1] <= 0 <= rect[3]
    # A tile's width on the ground at this zoom: the equator's length over 2^z, times cos(latitude).
    assert rect[2] - rect[0] == pytest.approx(40_075_016.7 / n * np.cos(np.radians(45.0)), rel=0.01)
    # Neighbours meet edge to edge.
    right = next(t[3] for t in tiles if (t[1], t[2]) == (x + 1, y))
    assert right[0] == pytest.approx(rect[2], abs=0.01)
    assert latlon_to_offset(*origin, *origin) == (0.0, 0.0)


def test_tiles_are_fetched_once_and_shown_again_offline(tile_server: str, tmp_path: Path) -> None:
    origin, extent = (45.0, 7.0), (-100.0, -100.0, 100.0, 100.0)
    base = base_map(tile_server, "© test tiles", tmp_path, origin, extent)
    assert base.tiles and base.note == "" and base.attribution == "© test tiles"
    assert len(TileServer.asked) == len(base.tiles)
    first = base.tiles[0]
    decoded = cv2.imdecode(np.frombuffer(first.data, np.uint8), cv2.IMREAD_COLOR)
    assert tuple(decoded[0, 0]) == (first.z * 10 % 255, first.x % 255, first.y % 255)  # the tile asked for
    again = base_map(tile_server, "© test tiles", tmp_path, origin, extent)
    assert len(TileServer.asked) == len(base.tiles)  # from the disk: the server was not asked again
    assert [t.data for t in again.tiles] == [t.data for t in base.tiles]


def test_a_server_out_of_reach_is_said_quickly(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.png"
    t0 = time.perf_counter()
    base = base_map(url, "© x", tmp_path, (45.0, 7.0), (-100.0, -100.0, 100.0, 100.0))
    assert time.perf_counter() - t0 < 10  # one refused connection, then the server is not asked again
    assert base.tiles == [] and base.note == f"No base map: 127.0.0.1:{port} out of reach"
    assert TileSource(url, tmp_path).get(17, 1, 1) is None  # still out of reach: not asked for a while
    assert base_map("", "", tmp_path, (45.0, 7.0), (0, 0, 1, 1)).tiles == []  # no server set: no tiles


def test_a_server_that_refuses_a_tile_is_named_with_its_answer(tile_server: str, tmp_path: Path) -> None:
    wrong = tile_server.replace("{z}/{x}/{y}.png", "styles/{z}/{x}/{y}.png")  # a path the server has no tiles at
    base = base_map(wrong, "© x", tmp_path, (45.0, 7.0), (-50.0, -50.0, 50.0, 50.0))
    assert base.tiles == [] and base.note.endswith("answered 404 Not Found")
