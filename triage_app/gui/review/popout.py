"""The pop-out viewer: the candidate's picture alone in a window of its own, for a second
screen or full screen, following the review as it moves on. Its keys are the review's: an
analyst can decide from it without going back to the main window."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QImage, QKeyEvent
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from triage_app.gui.review.adjust import Adjustment
from triage_app.gui.review.frame_canvas import FrameCanvas


class PopOutViewer(QWidget):
    """A top-level window with its own canvas; ``forward`` takes the keys it does not use."""

    def __init__(self, forward: Callable[[QKeyEvent], None], parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Frame viewer")
        self.forward = forward
        self.canvas = FrameCanvas()
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.caption)
        self.resize(1280, 800)

    def show_frame(self, image: QImage | None, boxes: list[tuple[QRectF, str, str]], message: str, caption: str) -> None:
        self.canvas.show_frame(image, boxes, message)
        self.caption.setText(caption)
        self.setWindowTitle(f"Frame viewer: {caption}" if caption else "Frame viewer")

    def follow_picture(self, adjustment: Adjustment, overlays: bool) -> None:
        """The review's picture settings (brightness, contrast, outlines), as they change."""
        self.canvas.set_adjustment(adjustment)
        self.canvas.set_overlays_shown(overlays)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt name
        K = Qt.Key
        if event.key() == K.Key_F11:
            self.showNormal() if self.isFullScreen() else self.showFullScreen()
        elif event.key() == K.Key_Escape and self.isFullScreen():
            self.showNormal()
        elif event.key() in (K.Key_F, K.Key_0, K.Key_Plus, K.Key_Equal, K.Key_Minus):
            {K.Key_F: self.canvas.zoom_to_focus, K.Key_0: self.canvas.fit, K.Key_Plus: lambda: self.canvas.zoom(1.25),
             K.Key_Equal: lambda: self.canvas.zoom(1.25), K.Key_Minus: lambda: self.canvas.zoom(0.8)}[K(event.key())]()
        else:
            self.forward(event)  # decisions, moves and picture keys act on the review itself
