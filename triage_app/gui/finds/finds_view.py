"""The finds tab: accepted frames, newest first, with the find's position (on the ground
where the telemetry allows), for whoever sends people to them. Layout only; the
controller (``finds_controller``) builds them and copies or saves them."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from triage_app.gui.tables import local_time, set_up_list

COLUMNS = ("Place", "What", "Note", "Decided (local time)", "Reviewer", "Source", "Frame", "Time in video", "Position",
           "Within", "Placed", "From the aircraft", "Captured")
WHAT, NOTE, SOURCE = 1, 2, 5  # the two columns an analyst writes in, and the one that carries the frame's id
THUMB = QSize(96, 60)


class FindsView(QWidget):
    """Layout only: the table, a summary, two buttons; user actions become signals."""

    user_did_copy_all = Signal()
    user_did_save = Signal(str)  # the chosen file (GeoJSON)
    user_did_save_gpx = Signal(str)  # the chosen file (GPX: the places, for handheld receivers)
    user_did_copy_row = Signal(int)
    user_did_note = Signal(int, str, str)  # frame id, what was found, the note

    def __init__(self) -> None:
        super().__init__()
        self.summary = QLabel("No accepted frame yet.")
        self.summary.setWordWrap(True)  # a narrow window wraps it rather than growing past the screen
        self.summary.setMinimumWidth(120)
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
        self.table = set_up_list(QTableWidget(), COLUMNS, stretch=NOTE)
        self.table.setIconSize(THUMB)  # each find's picture beside its source's name
        self.table.verticalHeader().setDefaultSectionSize(THUMB.height() + 8)
        self.table.setToolTip("Double-click What or Note to say what the find is; double-click elsewhere to copy its position")
        # Only What and Note take edits (their items alone are editable); a double-click
        # elsewhere copies the position.
        self.table.setEditTriggers(QTableWidget.EditTrigger.DoubleClicked | QTableWidget.EditTrigger.EditKeyPressed)
        self.table.cellDoubleClicked.connect(lambda row, col: col in (WHAT, NOTE) or self.user_did_copy_row.emit(row))
        self.table.itemChanged.connect(self._on_edit)
        grey = QPixmap(THUMB)
        grey.fill(Qt.GlobalColor.darkGray)
        self._placeholder = QIcon(grey)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        self.show_finds([])

    def set_thumbnail(self, frame_id: int, image: QImage) -> None:
        """A find's picture, once decoded, beside its source's name."""
        for r in range(self.table.rowCount()):
            item = self.table.item(r, SOURCE)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == frame_id:
                item.setIcon(QIcon(QPixmap.fromImage(image)))
                self.pictured.add(frame_id)

    def _ask_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the finds", "finds.geojson", "GeoJSON (*.geojson *.json)")
        if path:
            self.user_did_save.emit(path)

    def _ask_gpx_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the places", "places.gpx", "GPX (*.gpx)")
        if path:
            self.user_did_save_gpx.emit(path)

    def select_frame(self, frame_id: int) -> bool:
        """Select and show the find of this frame (a click on the map)."""
        for r in range(self.table.rowCount()):
            item = self.table.item(r, SOURCE)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == frame_id:
                self.table.selectRow(r)
                self.table.scrollToItem(item)
                return True
        return False

    def editing(self) -> bool:
        """Whether a What or Note cell is open for typing (a refresh then waits)."""
        return self.table.state() == QTableWidget.State.EditingState

    def _on_edit(self, item: QTableWidgetItem) -> None:
        if item.column() not in (WHAT, NOTE):
            return
        r = item.row()
        source = self.table.item(r, SOURCE)
        what, note = self.table.item(r, WHAT), self.table.item(r, NOTE)
        if source is not None and what is not None and note is not None:
            self.user_did_note.emit(int(source.data(Qt.ItemDataRole.UserRole)), what.text().strip(), note.text().strip())

    def show_finds(self, items: list[Any]) -> None:
        self.pictured: set[int] = set()  # the finds whose picture shows in the list
        self.table.blockSignals(True)  # filling in is not an edit
        try:
            self._fill(items)
        finally:
            self.table.blockSignals(False)

    def _fill(self, items: list[Any]) -> None:
        self.table.setRowCount(len(items))
        for r, f in enumerate(items):
            position = f"{f.lat:.6f}, {f.lon:.6f}" if f.lat is not None else "—"
            placed = {"ground": "on the ground", "aircraft": "aircraft's position", "none": "no position"}[f.placed]
            away = f"{f.distance_m:.0f} m" if f.distance_m is not None else ""
            within = f"{f.radius_m:.0f} m" if f.radius_m is not None else ""
            captured = (f.captured_at or "")[:19].replace("T", " ")
            values = ("" if f.place is None else str(f.place), f.what, f.remark, local_time(f.decided_at), f.reviewer, f.source,
                      str(f.frame), f"{f.timestamp_s:.1f} s", position, within, placed, away, captured)
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                if c in (WHAT, NOTE):
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                    item.setToolTip("What the find is, in your words (person, vehicle, debris, ...): double-click to write"
                                    if c == WHAT else "A note for whoever acts on the find: double-click to write")
                else:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                if c in (0, 6, 7, 9, 11):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c == 0:
                    item.setToolTip("Finds whose places on the ground overlap (their positions, within their radii) "
                                    "share a number: one place to go to")
                if c == 10 and f.note:
                    item.setToolTip(f.note)
                if c == SOURCE:
                    item.setData(Qt.ItemDataRole.UserRole, f.frame_id)
                    item.setIcon(self._placeholder)
                if c == 12:
                    item.setToolTip("When the camera took the frame (its own clock, as the footage records it)")
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
