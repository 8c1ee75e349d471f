from __future__ import annotations

from pathlib import Path

from tests.conftest import TileServer
from tests.gui.conftest import shot
from triage_app.gui.main_window import MainWindow


def _go_to_neighbour(qtbot, window: MainWindow, frame) -> None:
    """Step through the queue (by keys) to the frame nearest ``frame`` in its flight: the
    review order is by likelihood, so the neighbour need not come next."""
    from PySide6.QtCore import Qt

    s = window.review.session
    items = s.queue.items
    want = min(range(len(items)), key=lambda k: (items[k].source_id != frame.source_id, abs(items[k].idx - frame.idx)))
    while s.position != want:
        qtbot.keyClick(window.review_view, Qt.Key.Key_Right if want > s.position else Qt.Key.Key_Left)


def test_demo_builds_in_a_worker_and_opens_the_review_queue(qtbot, tmp_path: Path, tile_server: str, monkeypatch) -> None:
    monkeypatch.setenv("TRIAGE_GEO__MAP_TILES", tile_server)  # a machine online: the map gets its base
    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    with qtbot.waitSignal(window.controller.demo_did_open, timeout=120000):
        window.controller.build_demo(tmp_path / "demo")
    window.show_review()
    review = window.review
    assert len(review.session.queue) > 0
    qtbot.waitUntil(lambda: not window.review_view.canvas._pixmap.pixmap().isNull(), timeout=10000)
    qtbot.waitUntil(lambda: window.review_view.filmstrip.count() > 0
                    and review.thumbs.cached(window.review_view.filmstrip.item(0).data(256)) is not None, timeout=10000)
    qtbot.wait(300)
    assert window.review_view.header.text().startswith("Waiting: ")
    assert "position" in window.review_view.telemetry.text()  # the demo flight has SRT telemetry
    shot(window, "demo_review.png")
    import math

    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication

    # Straight down from 80 m: the outlined tile lies on the ground within the picture's
    # footprint around the aircraft, and C copies that estimate (the panel's figures).
    text = window.review_view.telemetry.text()
    assert "outlined tile on the ground:" in text and "flat ground assumed, 72° field of view from the 24 mm focal length" in text
    qtbot.keyClick(window.review_view, Qt.Key.Key_C)
    copied = QGuiApplication.clipboard().text()
    assert f"outlined tile on the ground: {copied}, within about " in text
    assert "estimated position on the ground" in window.statusBar().currentMessage()
    lat, lon = (float(v) for v in copied.split(", "))
    frame = window.controller.ws.frames.frame(review.session.current.frame_id)
    north = math.radians(lat - frame["lat"]) * 6_367_000
    east = math.radians(lon - frame["lon"]) * 6_378_000 * math.cos(math.radians(lat))
    half_width = frame["rel_alt"] * math.tan(math.radians(71.6 / 2))  # 24 mm equivalent, 16:9 video
    assert 0 < math.hypot(east, north) <= half_width * math.hypot(1, 9 / 16) + 1

    qtbot.keyClick(window.review_view, Qt.Key.Key_G)
    grid = window.review_view.grid
    qtbot.waitUntil(lambda: all(review.thumbs.cached(grid.item(i).data(256)) is not None for i in range(grid.count())), timeout=20000)
    qtbot.keyClick(window.review_view, Qt.Key.Key_3)
    qtbot.wait(200)
    shot(window, "demo_grid.png")
    qtbot.keyClick(window.review_view, Qt.Key.Key_G)
    window.tabs.setCurrentIndex(0)
    assert window.sources_view.item(0, 0).text() == "flight.mp4"
    shot(window, "demo_sources.png")

    # An accepted frame is a find: listed with its place on the ground, copied by a double-click.
    window.show_review()
    qtbot.waitUntil(lambda: review.session.current is not None and not window.review_view.grid_mode, timeout=10000)
    first = review.session.current
    qtbot.keyClick(window.review_view, Qt.Key.Key_A)
    _go_to_neighbour(qtbot, window, first)  # the frame half a second later: the same stretch of river
    qtbot.keyClick(window.review_view, Qt.Key.Key_A)
    window.tabs.setCurrentWidget(window.finds_view)
    table = window.finds_view.table
    qtbot.waitUntil(lambda: table.rowCount() == 2, timeout=10000)
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Finds (2)"
    assert window.finds_view.summary.text().startswith("2 accepted frames at 1 place")
    assert table.item(1, 0).text() == "1"  # its ground disc overlaps the newer one's: one place to go to
    # Each find with its picture and the time the camera took it.
    qtbot.waitUntil(lambda: len(window.finds_view.pictured) == 2, timeout=10000)
    assert table.item(0, 12).text().startswith("20") and ":" in table.item(0, 12).text()
    # Back in review, another frame of that stretch of river says what it overlaps.
    window.show_review()
    _go_to_neighbour(qtbot, window, first)
    qtbot.waitUntil(lambda: "overlaps place 1 (accepted by analyst): flight.mp4 frame" in window.review_view.telemetry.text(), timeout=10000)
    shot(window, "review_overlap.png")
    assert table.item(0, 10).text() == "on the ground" and table.item(0, 11).text().endswith(" m")
    assert table.item(0, 9).text().endswith(" m")  # within: the telemetry's errors and the tile's size
    assert table.item(0, 0).text() == "1"  # the first place
    table.cellDoubleClicked.emit(0, 8)
    assert QGuiApplication.clipboard().text() == table.item(0, 8).text()
    # The analyst says what the find is, in the What and Note columns: recorded at once, kept
    # through the list's refreshes, and carried by the exports.
    assert table.item(0, 1).flags() & Qt.ItemFlag.ItemIsEditable and not table.item(0, 8).flags() & Qt.ItemFlag.ItemIsEditable
    newest = window.finds.items[0].frame_id
    table.item(0, 1).setText("boat")
    table.item(0, 2).setText("moored, nobody aboard")
    ws = window.controller.ws
    assert (ws.notes.of_frames([newest])[newest].what, ws.notes.of_frames([newest])[newest].note) == ("boat", "moored, nobody aboard")
    window.finds.refresh()
    qtbot.waitUntil(lambda: window.finds._task is None, timeout=10000)
    assert table.item(0, 1).text() == "boat" and table.item(0, 2).text() == "moored, nobody aboard"
    window.finds.save_geojson(tmp_path / "finds.geojson")
    import json

    feature = json.loads((tmp_path / "finds.geojson").read_text())["features"][0]
    assert feature["properties"]["placed"] == "ground" and feature["properties"]["source"] == "flight.mp4"
    assert (feature["properties"]["what"], feature["properties"]["remark"]) == ("boat", "moored, nobody aboard")
    window.finds.save_gpx(tmp_path / "places.gpx")
    assert (tmp_path / "places.gpx").read_text().count("<wpt ") == 1  # two finds, one place
    assert "<type>boat</type>" in (tmp_path / "places.gpx").read_text() and "boat: moored, nobody aboard" in (tmp_path / "places.gpx").read_text()
    window.finds.save_gpx(tmp_path / "no-such-folder" / "places.gpx")
    assert "places.gpx: cannot be written" in window.problems_view.item(window.problems_view.count() - 1).text()
    window.tabs.setCurrentWidget(window.finds_view)
    shot(window, "finds.png")
    # The map: the flight's track and the ground its frames saw, the finds, the frame on screen;
    # a click on a find opens it in the Finds tab.
    window.tabs.setCurrentWidget(window.map_view)
    qtbot.waitUntil(lambda: window.map.view.positions and window.map._task is None, timeout=10000)
    assert len(window.map_view.footprints) >= 10 and window.map_view.marker is not None
    places = [i.text() for i in window.map_view.scene().items() if hasattr(i, "text") and str(i.text()).startswith("Place ")]
    assert places == ["Place 1"]  # two finds at one place: its number once, not piled up
    # The map as it stands once the finds' list has settled (a new list redraws it).
    qtbot.waitUntil(lambda: window.map._task is None and window.map._tiles is None and bool(window.map_view.base_tiles)
                    and not window.finds._timer.isActive() and window.finds._task is None, timeout=20000)
    tiles = window.map_view.base_tiles
    covered = tiles[0].sceneBoundingRect()
    for item in tiles[1:]:
        covered = covered.united(item.sceneBoundingRect())
    drawn = [i for i in window.map_view.scene().items() if i not in tiles and i.zValue() < 5]  # tracks, footprints
    flight = drawn[0].sceneBoundingRect()
    for item in drawn[1:]:
        flight = flight.united(item.sceneBoundingRect())
    assert covered.contains(flight)  # the tiles lie under all of the flight
    assert all(item.zValue() < 0 for item in tiles) and window.map_view.attribution == "© OpenStreetMap contributors"
    # Each tile where its ground lies: the one holding the first position is drawn under it
    # (the test server paints every tile in a colour of its own z, x and y).
    from PySide6.QtCore import QPointF

    from triage_app.core.outputs.map_tiles import tiles_covering

    (z, x, y, _rect), = [t for t in tiles_covering(window.map_view.origin, window.map_view.extent())
                         if t[3][0] < 0 < t[3][2] and t[3][1] < 0 < t[3][3]]
    at = tiles[0].mapFromScene(QPointF(0, 0))
    colour = tiles[0].pixmap().toImage().pixelColor(int(at.x()), int(at.y()))
    assert (colour.red(), colour.green(), colour.blue()) == (y % 255, x % 255, z * 10 % 255)
    # Zoomed in past the base tiles' pixels: finer tiles of the area in view come over them.
    mv = window.map_view
    base_m_per_px = tiles[0].transform().m11()
    mv.scale(16, 16)
    mv.user_zoomed = True
    assert mv.detail_wanted() is not None
    window.map.fetch_detail()
    qtbot.waitUntil(lambda: bool(mv.detail_tiles), timeout=20000)
    (detail,) = mv.detail_tiles
    assert detail.transform().m11() < 0.6 * base_m_per_px and detail.zValue() == -9  # finer, over the base
    in_view = mv.mapToScene(mv.viewport().rect()).boundingRect()
    assert detail.sceneBoundingRect().contains(in_view.center())
    assert detail.sceneBoundingRect().contains(in_view)  # all of the view
    # Zoomed this far the finest tiles the scheme has (z 19) cover the view: nothing more is asked for.
    from triage_app.core.outputs.map_tiles import MAX_ZOOM

    assert window.map._detail_cover[0] == MAX_ZOOM
    asked = len(TileServer.asked)
    window.map.fetch_detail()
    assert window.map._detail is None and len(TileServer.asked) == asked
    mv.user_zoomed = False
    mv.fit()
    picked = window.finds.items[-1].frame_id
    window.map_view.user_did_pick_find.emit(picked)
    assert window.tabs.currentWidget() is window.finds_view
    assert window.finds_view.table.currentRow() == len(window.finds.items) - 1
    window.tabs.setCurrentWidget(window.map_view)
    shot(window, "map.png")
    # Undo in review takes the newest find back; the list follows without being looked at.
    window.show_review()
    qtbot.keyClick(window.review_view, Qt.Key.Key_Z)
    qtbot.waitUntil(lambda: window.tabs.tabText(window.tabs.indexOf(window.finds_view)) == "Finds (1)", timeout=10000)
    window.controller.close()
