"""Builds the map (:func:`~triage_app.core.outputs.flight_map.flight_map`) in the background
whenever the finds change, lays the base map's tiles under it where they can be had
(:mod:`~triage_app.core.outputs.map_tiles`), marks the frame review shows, and opens a find
clicked on the map in the Finds tab."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject

from triage_app.core.outputs.flight_map import flight_map
from triage_app.core.outputs.map_tiles import MAX_ZOOM, base_map
from triage_app.gui.map.map_view import MapView
from triage_app.gui.tasks import Task, run_task


class MapController(QObject):
    def __init__(self, view: MapView) -> None:
        super().__init__(view)
        self.view = view
        self.ws: Any = None
        self._task: Task | None = None
        self._again: list[Any] | None = None
        self._current: int | None = None
        self._tiles: Task | None = None
        self._detail: Task | None = None  # finer tiles of the area in view, on the way
        self._detail_cover: tuple[int, tuple[float, float, float, float]] = (-1, (0.0, 0.0, 0.0, 0.0))  # their zoom, ground
        view.view_did_settle.connect(self.fetch_detail)

    def show_finds(self, finds: list[Any]) -> None:
        """The finds changed (or the project opened): draw the map again, in the background."""
        if self.ws is None:
            return
        if self._task is not None:
            self._again = finds
            return
        ws = self.ws
        self._task = run_task(lambda progress, cancel: flight_map(ws, finds), self._drawn, self._failed)

    def _drawn(self, m: Any) -> None:
        self._task = None
        self.view.show_map(m)
        self._fetch_base(m)
        if self._current is not None:
            self.view.mark_frame(self._current)
        if self._again is not None:
            finds, self._again = self._again, None
            self.show_finds(finds)

    def _fetch_base(self, m: Any) -> None:
        """The tiles under the map, in the background (from the disk where fetched before)."""
        geo = self.ws.settings.geo if self.ws is not None else None
        box = self.view.extent()
        if geo is None or not geo.map_tiles or m.origin is None or box is None:
            return
        if self._tiles is not None:
            self._tiles.cancel.set()
        url, credit, cache = geo.map_tiles, geo.map_attribution, self.ws.settings.cache_dir
        task = run_task(lambda progress, cancel: base_map(url, credit, cache, m.origin, box, cancel.is_set),
                        lambda base: self._based(task, base), lambda message: self._based(task, None))
        self._tiles = task

    def fetch_detail(self) -> None:
        """The analyst zoomed in past the base tiles: finer ones for the area in view."""
        geo = self.ws.settings.geo if self.ws is not None else None
        box = self.view.detail_wanted()
        if geo is None or not geo.map_tiles or box is None or self.view.origin is None or self._detail is not None:
            return
        z, (w, s, e, n) = self._detail_cover
        if z >= MAX_ZOOM and w <= box[0] and s <= box[1] and e >= box[2] and n >= box[3]:
            return  # the finest tiles there are cover the view already
        url, credit, cache, origin = geo.map_tiles, geo.map_attribution, self.ws.settings.cache_dir, self.view.origin
        task = run_task(lambda progress, cancel: base_map(url, credit, cache, origin, box, cancel.is_set),
                        lambda base: self._detailed(base), lambda message: self._detailed(None))
        self._detail = task

    def _detailed(self, base: Any) -> None:
        self._detail = None
        if base is not None and base.tiles:
            self.view.show_base(base, detail=True)
            rects = [t.rect for t in base.tiles]
            self._detail_cover = (base.tiles[0].z, (min(r[0] for r in rects), min(r[1] for r in rects),
                                                    max(r[2] for r in rects), max(r[3] for r in rects)))

    def _based(self, task: Task, base: Any) -> None:
        if task is not self._tiles:
            return  # an older map's tiles
        self._tiles = None
        if base is not None:
            self.view.show_base(base)

    def _failed(self, message: str) -> None:
        self._task = None
        self.view.message = f"The map could not be drawn: {message}"
        self.view.viewport().update()

    def mark_frame(self, frame_id: int) -> None:
        self._current = frame_id
        self.view.mark_frame(frame_id)


def attach_map(window: Any) -> MapController:
    """The map tab in the window, between Finds and Decided, wired to review and the finds."""
    view = MapView()
    controller = MapController(view)
    window.tabs.insertTab(window.tabs.indexOf(window.finds_view) + 1, view, "Map")
    window.map_view = view
    window.finds.finds_did_update.connect(lambda finds: (setattr(controller, "ws", window.controller.ws),
                                                         controller.show_finds(finds)))
    window.review.frame_did_show.connect(controller.mark_frame)

    def open_find(frame_id: int) -> None:
        window.tabs.setCurrentWidget(window.finds_view)
        window.finds_view.select_frame(frame_id)

    view.user_did_pick_find.connect(open_find)
    return controller
