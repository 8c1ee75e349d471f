"""The map tab's picture: the flights' tracks, the ground their frames saw, the finds with
their radii and place numbers, and the frame on screen in review, on a metric plane with
north up, a scale bar and a north arrow. Layout and drawing only; ``map_controller`` builds
what it shows. A click on a find asks for it to be opened."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QMouseEvent, QPainter, QPainterPath, QPen, QPixmap, QPolygonF, QTransform, QWheelEvent
from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene, QGraphicsView

TRACK_COLOURS = ["#3d8bfd", "#f28e2b", "#59a14f", "#b07aa1", "#e15759", "#76b7b2"]
FIND_ROLE = 1  # an item's data key holding the frame id of the find it draws


def nice_length(metres: float) -> float:
    """1, 2 or 5 times a power of ten, at most ``metres`` (a scale bar's length)."""
    if metres <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(metres))
    return max(m * power for m in (1, 2, 5) if m * power <= metres)


class MapView(QGraphicsView):
    user_did_pick_find = Signal(int)  # the find's frame id
    view_did_settle = Signal()  # the analyst zoomed in and stopped: finer tiles may be wanted

    def __init__(self) -> None:
        super().__init__()
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        # A map pans by dragging; scroll bars would only take room (and come and go with the tiles).
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.positions: dict[int, tuple[float, float]] = {}
        self.footprints: dict[int, list[tuple[float, float]]] = {}
        self.marker: QGraphicsItem | None = None
        self.current_footprint: QGraphicsItem | None = None
        self.message = "The map shows the flights once frames with a position are in the project."
        self.user_zoomed = False  # until the analyst zooms, the map fits the view as it resizes
        self._extent: QRectF | None = None
        self.origin: tuple[float, float] | None = None
        self.base_tiles: list[QGraphicsItem] = []  # the base map's tiles, under everything else
        self.attribution = ""  # the tiles' credit, in the corner while they show
        self.base_note = ""  # why the base map is missing, in the corner
        self.detail_tiles: list[QGraphicsItem] = []  # finer tiles of the area in view, once zoomed in
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(400)
        self._settle.timeout.connect(self.view_did_settle)

    # -- what the controller shows -------------------------------------------------------
    def show_map(self, m: Any) -> None:
        """Draw ``m`` (a ``FlightMap``); the view keeps the analyst's zoom after the first time."""
        scene = self.scene()
        scene.clear()
        self.marker = self.current_footprint = None
        self.base_tiles, self.detail_tiles, self.attribution, self.base_note = [], [], "", ""
        self.positions, self.footprints = m.positions, m.footprints
        self.origin = m.origin  # (lat, lon) of the plane's (0, 0)
        if m.origin is None:
            self.message = ("No frame has a position: the map needs telemetry (a DJI .SRT beside the video, or GPS in "
                            "the photos).")
            self.viewport().update()
            return
        self.message = ""
        foot_pen = QPen(QColor(120, 140, 160, 160), 0)
        foot_brush = QBrush(QColor(120, 160, 200, 28))
        for corners in m.footprints.values():
            scene.addPolygon(QPolygonF([QPointF(x, -y) for x, y in corners]), foot_pen, foot_brush)
        for k, (_name, points) in enumerate(m.tracks.items()):
            path = QPainterPath(QPointF(points[0][0], -points[0][1]))
            for x, y in points[1:]:
                path.lineTo(x, -y)
            pen = QPen(QColor(TRACK_COLOURS[k % len(TRACK_COLOURS)]), 2)
            pen.setCosmetic(True)
            scene.addPath(path, pen)
        labelled: set[int] = set()  # a place's number once, on its first find (not piled up on each)
        for f in m.finds:
            self._add_find(f, f.place is not None and f.place not in labelled)
            if f.place is not None:
                labelled.add(f.place)
        box = m.extent()
        if box is not None:
            w, s, e, n = box
            pad = max(20.0, 0.08 * max(e - w, n - s))
            self._extent = QRectF(w - pad, -n - pad, e - w + 2 * pad, n - s + 2 * pad)
            if not self.user_zoomed:
                self.fit()
        self.viewport().update()

    def extent(self) -> tuple[float, float, float, float] | None:
        """(west, south, east, north) metres of the map with its margin (what tiles must cover)."""
        r = self._extent
        return None if r is None else (r.left(), -r.bottom(), r.right(), -r.top())

    def detail_wanted(self) -> tuple[float, float, float, float] | None:
        """The area in view (west, south, east, north metres) where the view shows the base
        tiles' pixels enlarged (zoomed in past them), else None."""
        layer = self.detail_tiles or self.base_tiles
        if not layer:
            return None
        tile_m_per_px = layer[0].transform().m11()
        view_m_per_px = 1.0 / max(self.transform().m11(), 1e-12)
        if view_m_per_px > 0.6 * tile_m_per_px:
            return None
        r = self.mapToScene(self.viewport().rect()).boundingRect()
        return r.left(), -r.bottom(), r.right(), -r.top()

    def show_base(self, base: Any, detail: bool = False) -> None:
        """Lay a ``BaseMap``'s tiles under the map, stitched into one picture on the ground
        rectangle they cover (no seams between them at any zoom), with their credit; or say
        in the corner why there are none. ``detail``: finer tiles of the area in view, over
        the base."""
        scene = self.scene()
        for item in self.detail_tiles if detail else self.base_tiles:
            if item.scene() is scene:
                scene.removeItem(item)
        layer: list[QGraphicsItem] = []
        if detail:
            self.detail_tiles = layer
        else:
            self.base_tiles = layer
        pictures = [(t, QImage.fromData(t.data)) for t in base.tiles]
        pictures = [(t, img) for t, img in pictures if not img.isNull()]
        if pictures:
            size = pictures[0][1].width()
            x0, y0 = min(t.x for t, _ in pictures), min(t.y for t, _ in pictures)
            cols, rows = max(t.x for t, _ in pictures) - x0 + 1, max(t.y for t, _ in pictures) - y0 + 1
            mosaic = QImage(cols * size, rows * size, QImage.Format.Format_RGB32)
            mosaic.fill(QColor("#e8e8e8"))  # a tile the server did not give
            painter = QPainter(mosaic)
            for t, img in pictures:
                painter.drawImage(QRectF((t.x - x0) * size, (t.y - y0) * size, size, size), img)
            painter.end()
            west = min(t.rect[0] for t, _ in pictures)
            south = min(t.rect[1] for t, _ in pictures)
            east = max(t.rect[2] for t, _ in pictures)
            north = max(t.rect[3] for t, _ in pictures)
            item = scene.addPixmap(QPixmap.fromImage(mosaic))
            item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
            item.setTransform(QTransform.fromScale((east - west) / mosaic.width(), (north - south) / mosaic.height()))
            item.setPos(west, -north)
            item.setZValue(-9 if detail else -10)
            layer.append(item)
        if not detail:
            self.attribution = base.attribution if layer else ""
            self.base_note = base.note
        self.viewport().update()

    def fit(self) -> None:
        """Everything drawn, in the view."""
        if self._extent is not None:
            self.fitInView(self._extent, Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        super().resizeEvent(event)
        if not self.user_zoomed:
            self.fit()

    def _add_find(self, f: Any, label: bool = True) -> None:
        scene = self.scene()
        red = QColor("#e03131")
        if f.radius_m:
            disc = scene.addEllipse(f.x - f.radius_m, -f.y - f.radius_m, 2 * f.radius_m, 2 * f.radius_m,
                                    QPen(QColor(224, 49, 49, 150), 0), QBrush(QColor(224, 49, 49, 40)))
            disc.setData(FIND_ROLE, f.frame_id)
            disc.setToolTip(f.label)
        dot = scene.addEllipse(-6, -6, 12, 12, QPen(QColor("white"), 1.5), QBrush(red))
        dot.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        dot.setPos(f.x, -f.y)
        dot.setZValue(5)
        dot.setData(FIND_ROLE, f.frame_id)
        dot.setToolTip(f.label + " (click: open it in Finds)")
        if f.place is not None and label:
            text = scene.addSimpleText(f"Place {f.place}", QFont("", 9, QFont.Weight.Bold))
            text.setBrush(red)
            text.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            text.setPos(f.x, -f.y)
            text.setZValue(5)
            text.setData(FIND_ROLE, f.frame_id)

    def mark_frame(self, frame_id: int) -> None:
        """The frame on screen in review: a marker at the aircraft's position, its footprint lit."""
        scene = self.scene()
        for item in (self.marker, self.current_footprint):
            if item is not None and item.scene() is scene:
                scene.removeItem(item)
        self.marker = self.current_footprint = None
        where = self.positions.get(frame_id)
        if where is None:
            return
        corners = self.footprints.get(frame_id)
        if corners:
            pen = QPen(QColor("#ffd43b"), 2)
            pen.setCosmetic(True)
            self.current_footprint = scene.addPolygon(QPolygonF([QPointF(x, -y) for x, y in corners]), pen,
                                                      QBrush(QColor(255, 212, 59, 50)))
            self.current_footprint.setZValue(3)
        self.marker = scene.addPolygon(QPolygonF([QPointF(0, -9), QPointF(7, 7), QPointF(-7, 7)]), QPen(QColor("black"), 1),
                                       QBrush(QColor("#ffd43b")))
        self.marker.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.marker.setPos(where[0], -where[1])
        self.marker.setZValue(6)
        self.marker.setToolTip("The frame on screen in review (the aircraft's position)")

    # -- the analyst's hands -------------------------------------------------------------
    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt name
        factor = 1.25 if event.angleDelta().y() > 0 else 0.8
        self.scale(factor, factor)
        self.user_zoomed = True
        self._settle.start()

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        if event.key() == Qt.Key.Key_0:  # as in review: fit again
            self.user_zoomed = False
            self.fit()
        else:
            super().keyPressEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt name
        for item in self.items(event.position().toPoint()):
            frame_id = item.data(FIND_ROLE)
            if frame_id is not None:
                self.user_did_pick_find.emit(int(frame_id))
                return
        super().mousePressEvent(event)

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 - Qt name
        """The scale bar and the north arrow, fixed to the view's corner; or why there is no map."""
        painter.save()
        painter.resetTransform()
        vp = self.viewport().rect()
        fg = self.palette().color(self.foregroundRole())
        painter.setPen(QPen(fg, 2))
        if self.message:
            painter.drawText(vp.adjusted(20, 20, -20, -20), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message)
            painter.restore()
            return
        per_px = 1.0 / max(self.transform().m11(), 1e-9)  # metres per pixel
        metres = nice_length(120 * per_px)
        px = metres / per_px
        x0, y0 = 20, vp.height() - 24
        painter.drawLine(QPointF(x0, y0), QPointF(x0 + px, y0))
        painter.drawLine(QPointF(x0, y0 - 5), QPointF(x0, y0 + 5))
        painter.drawLine(QPointF(x0 + px, y0 - 5), QPointF(x0 + px, y0 + 5))
        label = f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"
        painter.drawText(QPointF(x0 + px + 8, y0 + 5), label)
        nx, ny = vp.width() - 30, 24
        painter.drawLine(QPointF(nx, ny + 26), QPointF(nx, ny))
        painter.drawLine(QPointF(nx, ny), QPointF(nx - 6, ny + 9))
        painter.drawLine(QPointF(nx, ny), QPointF(nx + 6, ny + 9))
        painter.drawText(QPointF(nx - 5, ny + 42), "N")
        corner = " · ".join(t for t in (self.attribution, self.base_note) if t)
        if corner:  # the tiles' credit (and what is missing), on a plate readable on any map
            metrics = painter.fontMetrics()
            box = metrics.boundingRect(corner).adjusted(-6, -3, 6, 3)
            box.moveBottomRight(vp.bottomRight() - QPointF(6, 6).toPoint())
            painter.fillRect(box, QColor(255, 255, 255, 200))
            painter.setPen(QColor(40, 40, 40))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, corner)
        painter.restore()
