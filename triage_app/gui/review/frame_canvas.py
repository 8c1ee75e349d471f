"""A frame with its firing tiles outlined; wheel zoom, drag pan, zoom to a box; the picture
adjusted for the eye (brightness, contrast, auto-contrast) and the outlines hidden on request."""

from __future__ import annotations

import textwrap

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap, QWheelEvent
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsRectItem, QGraphicsScene, QGraphicsSimpleTextItem, QGraphicsView

from triage_app.gui.review.adjust import Adjustment, adjusted

#: Characters per line of a message shown where no picture is.
MESSAGE_WIDTH = 56

#: The text key of a review picture's full frame size ("1920x1080").
FULL_SIZE = "triage-full-size"


def full_size(image: QImage) -> QSize:
    """The size of the frame ``image`` shows: its own, unless it is a reduced review picture."""
    text = image.text(FULL_SIZE)
    if text:
        w, _, h = text.partition("x")
        return QSize(int(w), int(h))
    return image.size()


def is_picture(image: QImage) -> bool:
    """Whether ``image`` is a kept review picture (the exact frame is still to come)."""
    return bool(image.text(FULL_SIZE))


class FrameCanvas(QGraphicsView):
    zoom_did_start = Signal()  # the analyst zooms in: the exact frame is wanted now

    def __init__(self) -> None:
        super().__init__()
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.SmoothPixmapTransform | QPainter.RenderHint.Antialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QColor("#1e1f22"))
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self._pixmap = QGraphicsPixmapItem()
        self.scene().addItem(self._pixmap)
        self._boxes: list[QGraphicsRectItem] = []
        self._message = QGraphicsSimpleTextItem()
        self._message.setBrush(QColor("#d0d0d0"))
        self.scene().addItem(self._message)
        self.focus_box: QRectF | None = None
        # Set once the analyst zooms or pans in; a resize (a line of text appearing above, the
        # window growing) then keeps their view instead of fitting the frame again.
        self.zoomed = False
        self._image: QImage | None = None  # the picture as decoded; what shows is it adjusted
        self.adjustment = Adjustment()
        self.overlays_shown = True

    def show_frame(self, image: QImage | None, boxes: list[tuple[QRectF, str, str]], message: str = "") -> None:
        """Show a picture with (rect, colour, label) outlines, fitted to the view."""
        for item in self._boxes:
            self.scene().removeItem(item)
        self._boxes.clear()
        # Long lines are wrapped: the message sits in a 400-pixel scene whatever the view's width.
        self._message.setText("\n".join(textwrap.fill(line, MESSAGE_WIDTH) if line else "" for line in message.splitlines()))
        self._message.setVisible(bool(message) or image is None)
        self._image = image
        if image is None:
            self._pixmap.setPixmap(QPixmap())
            self.scene().setSceneRect(QRectF(0, 0, 400, 300))
            return
        self._set_pixmap(image)
        full = full_size(image)  # a reduced review picture is drawn at the frame's own size
        self.scene().setSceneRect(QRectF(0, 0, full.width(), full.height()))
        width = max(2.0, full.width() / 400)
        for rect, colour, label in boxes:
            pen = QPen(QColor(colour), width)
            pen.setCosmetic(False)
            box = self.scene().addRect(rect, pen)
            text = QGraphicsSimpleTextItem(label)
            text.setBrush(QColor(colour))
            scale = max(1.0, full.width() / 900)
            # A dark plate under the label keeps it readable on water, roofs and snow alike.
            r = text.boundingRect()
            plate = self.scene().addRect(QRectF(0, 0, r.width() + 4, r.height() + 2), QPen(Qt.PenStyle.NoPen),
                                         QColor(0, 0, 0, 170))
            plate.setScale(scale)
            plate.setPos(rect.left() + width, rect.top() + width)
            text.setParentItem(plate)
            text.setPos(2, 1)
            self._boxes += [box, plate]
            box.setVisible(self.overlays_shown)
            plate.setVisible(self.overlays_shown)
        self.focus_box = boxes[0][0] if boxes else None
        self.fit()  # a new frame opens whole

    def _set_pixmap(self, image: QImage) -> None:
        self._pixmap.setPixmap(QPixmap.fromImage(adjusted(image, self.adjustment)))
        full = full_size(image)
        self._pixmap.setScale(full.width() / image.width() if image.width() else 1.0)

    def sharpen(self, image: QImage) -> bool:
        """Put the exact frame in place of the review picture on screen (same frame, same
        outlines, zoom and pan kept); False where the canvas shows something else."""
        shown = self._image
        if shown is None or not is_picture(shown) or full_size(shown) != image.size():
            return False
        self._image = image
        self._set_pixmap(image)
        return True

    def showing_picture(self) -> bool:
        """Whether a reduced review picture is on screen (the exact frame not yet in place)."""
        return self._image is not None and is_picture(self._image)

    def set_adjustment(self, adjustment: Adjustment) -> None:
        """Show the picture with ``adjustment`` (kept for the next frames too); zoom and pan stay."""
        self.adjustment = adjustment
        if self._image is not None:
            self._set_pixmap(self._image)

    def shown_image(self) -> QImage:
        """The picture as it is on screen (adjusted)."""
        return self._pixmap.pixmap().toImage()

    def set_overlays_shown(self, shown: bool) -> None:
        """Show or hide the firing tiles' outlines and labels (kept for the next frames too)."""
        self.overlays_shown = shown
        for item in self._boxes:
            item.setVisible(shown)

    def overlays_visible(self) -> bool:
        return any(item.isVisible() for item in self._boxes)

    def message_text(self) -> str:
        """What the canvas says where no picture is (empty when a picture shows)."""
        return self._message.text() if self._message.isVisible() else ""

    def fit(self) -> None:
        self.zoomed = False
        self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def zoom_to_focus(self) -> None:
        if self.focus_box is not None:
            m = 0.03 * max(self.focus_box.width(), self.focus_box.height())
            area = self.focus_box.adjusted(-m, -m, m, m).intersected(self.scene().sceneRect())
            self.fitInView(area, Qt.AspectRatioMode.KeepAspectRatio)
            self.zoomed = True
            self.zoom_did_start.emit()

    def zoom(self, factor: float) -> None:
        self.scale(factor, factor)
        self.zoomed = True
        if factor > 1:
            self.zoom_did_start.emit()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt name
        self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if not self.zoomed:
            self.fit()
