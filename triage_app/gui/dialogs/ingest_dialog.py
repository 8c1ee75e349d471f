"""Adding videos or a stream: what each one is (length, frame rate, size, telemetry found,
whether it is in the project already) and how densely to sample it, with the number of frames
that will be scored before anything is read in full. Videos are probed in a worker."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from triage_app.core.ingest.footage import FootageProbe, probe_footage
from triage_app.core.ingest.sources import is_stream_uri
from triage_app.core.model.records import Sampling
from triage_app.core.model.text import duration_words
from triage_app.gui import theme
from triage_app.gui.tasks import run_task

COLUMNS = ("Footage", "Length", "Frame rate", "Size", "Telemetry", "Note")


def _length(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class AddFootageDialog(QDialog):
    """Ask how to sample the chosen videos (or stream) before they are added."""

    probes_did_finish = Signal()

    def __init__(self, uris: list[str], default: Sampling, ws: Any = None, parent: Any = None) -> None:
        super().__init__(parent)
        self.uris = list(uris)
        self.probes: list[FootageProbe] = []
        self.setWindowTitle("Add footage")
        self.resize(900, 460)
        layout = QVBoxLayout(self)

        self.table = QTableWidget(len(self.uris), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for i in range(1, len(COLUMNS) - 1):
            header.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        for r, uri in enumerate(self.uris):
            self.table.setItem(r, 0, QTableWidgetItem(uri.replace("\\", "/").rsplit("/", 1)[-1] or uri))
            self.table.setItem(r, 5, QTableWidgetItem("reading…"))
        layout.addWidget(self.table, 1)

        box = QGroupBox("Frames to score")
        grid = QGridLayout(box)
        self.every_frame = QRadioButton("Every frame")
        self.one_in = QRadioButton("1 frame in")
        self.per_second = QRadioButton("Frames per second of video:")
        self.every_spin = QSpinBox()
        self.every_spin.setRange(2, 10_000)
        self.fps_spin = QDoubleSpinBox()
        self.fps_spin.setRange(0.05, 240.0)
        self.fps_spin.setDecimals(2)
        self.fps_spin.setSingleStep(0.5)
        self.group = QButtonGroup(self)
        for b in (self.every_frame, self.one_in, self.per_second):
            self.group.addButton(b)
        grid.addWidget(self.every_frame, 0, 0)
        grid.addWidget(QLabel("the surest for small or fast-moving targets, and the most work"), 0, 1, 1, 2)
        grid.addWidget(self.one_in, 1, 0)
        grid.addWidget(self.every_spin, 1, 1)
        grid.addWidget(self.per_second, 2, 0)
        grid.addWidget(self.fps_spin, 2, 1)
        grid.setColumnStretch(2, 1)
        self.estimate = QLabel()
        self.estimate.setWordWrap(True)
        self.estimate.setMinimumHeight(3 * self.estimate.fontMetrics().lineSpacing())
        grid.addWidget(self.estimate, 3, 0, 1, 3)
        layout.addWidget(box)

        self.score_after = QCheckBox("Score the new frames as soon as they are added")
        self.score_after.setChecked(True)
        layout.addWidget(self.score_after)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.add_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        streams = sum(is_stream_uri(u) for u in self.uris)
        videos = len(self.uris) - streams
        self.add_button.setText("Add " + " and ".join(
            t for t in (f"{videos} video{'s' if videos != 1 else ''}" if videos else "",
                        f"{streams} stream{'s' if streams != 1 else ''}" if streams else "") if t))
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        self.set_sampling(default)
        self.group.buttonToggled.connect(lambda *_: self._update())
        self.every_spin.valueChanged.connect(lambda *_: self._update())
        self.fps_spin.valueChanged.connect(lambda *_: self._update())
        self._update()

        uris_copy = list(self.uris)
        self.speed: tuple[float, str] | None = None  # this project's last scoring speed

        def probe(progress: Any, cancel: Any) -> tuple[tuple[float, str] | None, list[FootageProbe]]:
            speed = ws.scores.recent_speed() if ws is not None else None
            return speed, [probe_footage(u, ws) for u in uris_copy]

        self._task = run_task(probe, self._show_probes,
                              lambda m: self.estimate.setText(f"The footage could not be read: {m}"))

    # -- the choice ---------------------------------------------------------------------
    def set_sampling(self, sampling: Sampling) -> None:
        self.every_spin.setValue(max(2, sampling.every))
        self.fps_spin.setValue(sampling.fps or 1.0)
        if sampling.fps:
            self.per_second.setChecked(True)
        elif sampling.every > 1:
            self.one_in.setChecked(True)
        else:
            self.every_frame.setChecked(True)

    def sampling(self) -> Sampling:
        if self.per_second.isChecked():
            return Sampling(fps=round(self.fps_spin.value(), 3))
        if self.one_in.isChecked():
            return Sampling(every=self.every_spin.value())
        return Sampling()

    # -- what the footage is ----------------------------------------------------------
    def _show_probes(self, result: tuple[tuple[float, str] | None, list[FootageProbe]]) -> None:
        self.speed, probes = result
        self.probes = probes
        for r, p in enumerate(probes):
            size = f"{p.width} × {p.height}" if p.width and p.height else ""
            rate = f"{p.fps:g} frames/s" if p.fps else ""
            telemetry = p.telemetry.replace("\\", "/").rsplit("/", 1)[-1] if p.telemetry else (
                "" if p.kind == "stream" or p.error else "none found")
            if p.error:
                note = f"cannot be read: {p.error.split(': ', 1)[-1]} (it will be listed under Problems)"
            elif p.in_project:
                note = f"already in the project at {', '.join(p.in_project)}: another rate adds it again as a new source"
            elif p.kind == "stream":
                note = "a stream: its frames are kept in the project as they come"
            else:
                note = ""
            length = _length(p.duration_s) if p.kind == "video" and not p.error else ("live" if p.kind == "stream" else "")
            for c, text in enumerate((p.name, length, rate, size, telemetry, note), start=0):
                item = QTableWidgetItem(text)
                if c == 0:
                    item.setToolTip(p.uri)
                if c == 5:
                    item.setToolTip(text)
                if c == 5 and p.error:
                    item.setForeground(QColor(theme.tone("error")))
                if c in (1, 2):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self._update()
        self.probes_did_finish.emit()

    def _update(self) -> None:
        self.every_spin.setEnabled(self.one_in.isChecked())
        self.fps_spin.setEnabled(self.per_second.isChecked())
        sampling = self.sampling()
        if not self.probes:
            self.estimate.setText(f"Keeps {sampling.describe()}. Reading the footage…")
            return
        videos = [p for p in self.probes if p.kind == "video" and not p.error]
        kept = [p.frames_kept(sampling) for p in videos]
        total = sum(p.frame_count or 0 for p in videos)
        known = sum(k for k in kept if k)
        parts = []
        if videos:
            seconds = sum(p.duration_s or 0.0 for p in videos)
            spacing = seconds / known if known else 0.0
            parts.append(f"{known:,} frames to score from {len(videos)} video{'s' if len(videos) != 1 else ''} "
                         f"({_length(seconds)} of footage, {total:,} frames in all; one frame every "
                         f"{spacing:.2f} s on average).")
            if self.speed is not None and known:
                fps, provider = self.speed
                parts.append(f"At this project's last scoring speed ({fps:.1f} frames/s on {provider}), about "
                             f"{duration_words(known / fps)}.")
        streams = sum(p.kind == "stream" for p in self.probes)
        if streams:
            parts.append(f"A stream keeps {sampling.describe()} while it runs.")
        bad = sum(1 for p in self.probes if p.error)
        if bad:
            parts.append(f"{bad} cannot be read.")
        self.estimate.setText(f"Keeps {sampling.describe()}: " + " ".join(parts))
