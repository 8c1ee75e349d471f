"""The player of the seconds around a frame (V in review): the pictures in a loop at their own
pace, a slider to scrub them and the time of the one on screen. It only lays them out; the
review view shows each picture on its canvas."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QWidget


class ClipPlayer(QWidget):
    """Hidden until a clip plays; ``show_image(image, is_the_candidates_frame)`` draws each."""

    def __init__(self, show_image: Callable[[QImage, bool], None]) -> None:
        super().__init__()
        self.show_image = show_image
        self.images: list[QImage] = []
        self.times: list[float] = []
        self.centre = 0
        self.pause_button = QPushButton("Pause")
        self.pause_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the review keys stay with the review
        self.pause_button.clicked.connect(self.toggle_pause)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.valueChanged.connect(self._show)
        self.slider.sliderPressed.connect(self.pause)
        self.where = QLabel()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.pause_button)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.where)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self._advance)
        self.hide()

    def playing(self) -> bool:
        return self.isVisible() and bool(self.images)

    def play(self, images: list[QImage], times: list[float], centre: int) -> None:
        self.images, self.times, self.centre = images, times, centre
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(images) - 1)
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.show()
        self._show(0)
        self.pause_button.setText("Pause")
        self._schedule()

    def stop(self) -> None:
        self.timer.stop()
        self.images, self.times = [], []
        self.hide()

    def pause(self) -> None:
        self.timer.stop()
        self.pause_button.setText("Play")

    def toggle_pause(self) -> None:
        if self.timer.isActive():
            self.pause()
        else:
            self.pause_button.setText("Pause")
            self._schedule()

    def step(self, by: int) -> None:
        """Pause and show the picture ``by`` places on (a key steps along the seconds around the frame)."""
        if self.images:
            self.pause()
            self.slider.setValue((self.slider.value() + by) % len(self.images))

    def _schedule(self) -> None:
        k = self.slider.value()
        gap = self.times[k + 1] - self.times[k] if k + 1 < len(self.times) else 0.6  # a pause at the loop's end
        self.timer.start(max(20, int(1000 * gap)))

    def _advance(self) -> None:
        if not self.images:
            return
        self.slider.setValue((self.slider.value() + 1) % len(self.images))
        self._schedule()

    def _show(self, k: int) -> None:
        if not self.images:
            return
        here = k == self.centre
        offset = self.times[k] - self.times[self.centre]
        self.where.setText(f"{self.times[k]:.2f} s ({offset:+.2f} s){' · the frame' if here else ''}")
        self.show_image(self.images[k], here)
