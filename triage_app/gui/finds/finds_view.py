"""The finds tab: accepted frames, newest first, with the find's position (on the ground
where the telemetry allows), for whoever sends people to them. The view lays them out; the
controller builds them in a worker and copies or saves them (CSV, GeoJSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from triage_app.gui.tasks import Worker, start

COLUMNS = ("Place", "Decided (local time)", "Reviewer", "Source", "Frame", "Time in video", "Position", "Within", "Placed",
           "From the aircraft")


def _local_time(iso: str) -> str:
    """A stored UTC time as this computer's local time, to the second."""
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso[:19].replace("T", " ")


class FindsView(QWidget):
    """Layout only: the table, a summary, two buttons; user actions become signals."""

    user_did_copy_all = Signal()
    user_did_save = Signal(str)  # the chosen file (GeoJSON)
    user_did_save_gpx = Signal(str)  # the chosen file (GPX: the places, for handheld receivers)
    user_did_copy_row = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.summary = QLabel("No accepted frame yet.")
        self.copy_button = QPushButton("Copy all as CSV")
        self.save_button = QPushButton("Save GeoJSON…")
        self.gpx_button = QPushButton("Save places as GPX…")
        self.gpx_button.setToolTip("One waypoint per place, for the handheld receivers ground teams carry")
        self.copy_button.clicked.connect(self.user_did_copy_all.emit)
        self.save_button.clicked.connect(self._ask_file)
        self.gpx_button.clicked.connect(self._ask_gpx_file)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        for b in (self.copy_button, self.save_button, self.gpx_button):
            top.addWidget(b)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        for i in range(len(COLUMNS)):
            header.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.setToolTip("Double-click a row to copy its position")
        self.table.cellDoubleClicked.connect(lambda row, _col: self.user_did_copy_row.emit(row))
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        self.show_finds([])

    def _ask_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the finds", "finds.geojson", "GeoJSON (*.geojson *.json)")
        if path:
            self.user_did_save.emit(path)

    def _ask_gpx_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the places", "places.gpx", "GPX (*.gpx)")
        if path:
            self.user_did_save_gpx.emit(path)

    def show_finds(self, items: list[Any]) -> None:
        self.table.setRowCount(len(items))
        for r, f in enumerate(items):
            position = f"{f.lat:.6f}, {f.lon:.6f}" if f.lat is not None else "—"
            placed = {"ground": "on the ground", "aircraft": "aircraft's position", "none": "no position"}[f.placed]
            away = f"{f.distance_m:.0f} m" if f.distance_m is not None else ""
            within = f"{f.radius_m:.0f} m" if f.radius_m is not None else ""
            values = ("" if f.place is None else str(f.place), _local_time(f.decided_at), f.reviewer, f.source, str(f.frame),
                      f"{f.timestamp_s:.1f} s", position, within, placed, away)
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                if c in (0, 4, 5, 7, 9):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c == 0:
                    item.setToolTip("Finds whose places on the ground overlap (their positions, within their radii) "
                                    "share a number: one place to go to")
                if c == 8 and f.note:
                    item.setToolTip(f.note)
                self.table.setItem(r, c, item)
        ground = sum(f.placed == "ground" for f in items)
        aircraft = sum(f.placed == "aircraft" for f in items)
        places = len({f.place for f in items if f.place is not None})
        self.summary.setText(f"{len(items)} accepted frame{'s' if len(items) != 1 else ''} at {places} "
                             f"place{'s' if places != 1 else ''}, newest first: {ground} placed on the ground "
                             f"(flat ground assumed), {aircraft} at the aircraft's position."
                             if items else "No accepted frame yet.")
        for b in (self.copy_button, self.save_button, self.gpx_button):
            b.setEnabled(bool(items))


class FindsController(QObject):
    """Builds the finds in a worker and acts on the view's buttons."""

    finds_did_change = Signal(int)  # how many
    finds_did_update = Signal(object)  # the finds themselves (the review panel names a candidate's neighbours)
    finds_did_fail = Signal(str)
    message_did_post = Signal(str)

    def __init__(self, view: FindsView) -> None:
        super().__init__(view)  # goes with its view: a late worker's result then reaches no dead widget
        self.view = view
        self.items: list[Any] = []
        self._project = self._cards = self._settings = None
        self._worker: Worker | None = None
        self._again = False
        view.user_did_copy_all.connect(self.copy_csv)
        view.user_did_save.connect(lambda path: self.save_geojson(Path(path)))
        view.user_did_save_gpx.connect(lambda path: self.save_gpx(Path(path)))
        view.user_did_copy_row.connect(self.copy_position)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(2000)  # decisions come fast: one rebuild once they pause
        self._timer.timeout.connect(self.refresh)

    def start(self, project: Any, cards: dict, settings: Any) -> None:
        self._project, self._cards, self._settings = project, cards, settings
        self.refresh()

    def refresh_soon(self) -> None:
        self._timer.start()

    def refresh(self) -> None:
        if self._project is None:
            return
        if self._worker is not None:
            self._again = True
            return
        from triage_app.core.outputs.finds import finds

        project, cards, settings = self._project, self._cards, self._settings
        worker = Worker(lambda progress, cancel: finds(project, cards, settings))
        worker.signals.worker_did_finish.connect(self._show)
        worker.signals.worker_did_fail.connect(self._failed)
        self._worker = worker
        start(worker)

    def _failed(self, message: str) -> None:
        self._worker = None
        self.finds_did_fail.emit(f"The finds could not be listed: {message}")

    def _show(self, items: list[Any]) -> None:
        self._worker = None
        self.items = items
        self.view.show_finds(items)
        self.finds_did_change.emit(len(items))
        self.finds_did_update.emit(items)
        if self._again:
            self._again = False
            self.refresh()

    def copy_position(self, row: int) -> None:
        f = self.items[row] if 0 <= row < len(self.items) else None
        if f is None or f.lat is None:
            self.message_did_post.emit("This find has no position to copy.")
            return
        text = f"{f.lat:.6f}, {f.lon:.6f}"
        QGuiApplication.clipboard().setText(text)
        where = "on the ground" if f.placed == "ground" else "the aircraft's position"
        self.message_did_post.emit(f"Copied {text}: {f.source} frame {f.frame}, {where}.")

    def copy_csv(self) -> None:
        from triage_app.core.outputs.finds import finds_csv

        QGuiApplication.clipboard().setText(finds_csv(self.items))
        self.message_did_post.emit(f"Copied {len(self.items)} finds as CSV.")

    def save_geojson(self, path: Path) -> None:
        from triage_app.core.outputs.finds import finds_geojson

        if self._write(path, finds_geojson(self.items)):
            self.message_did_post.emit(f"Saved {sum(f.lat is not None for f in self.items)} finds to {path}.")

    def save_gpx(self, path: Path) -> None:
        from triage_app.core.outputs.finds import finds_gpx

        if self._write(path, finds_gpx(self.items)):
            places = len({f.place for f in self.items if f.place is not None})
            self.message_did_post.emit(f"Saved {places} places as GPX waypoints to {path}.")

    def _write(self, path: Path, text: str) -> bool:
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            self.finds_did_fail.emit(f"{path}: cannot be written ({exc.strerror or exc})")
            return False
        return True
