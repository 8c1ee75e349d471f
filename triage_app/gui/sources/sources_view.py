"""The sources list: one row per source with its counts. Layout only."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

COLUMNS = ("Source", "Kind", "Sampling", "Frames", "Flagged", "Candidates", "Reviewed", "Telemetry", "Status")


class SourcesView(QTableWidget):
    def __init__(self) -> None:
        super().__init__(0, len(COLUMNS))
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for i in range(1, len(COLUMNS)):
            header.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)

    def show_sources(self, rows: list[dict[str, Any]]) -> None:
        self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            values = (
                row["name"], row["kind"], _sampling_text(row), row["frames"], row["flagged"], row.get("candidates", 0),
                row.get("reviewed", 0), f"{row['telemetry_matched']}/{row['frames']}", row["status"],
            )
            for c, value in enumerate(values):
                item = QTableWidgetItem(str(value))
                if isinstance(value, int):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c == 0:
                    item.setToolTip(str(row["uri"]))
                self.setItem(r, c, item)


def _sampling_text(row: dict[str, Any]) -> str:
    from triage_app.core.model.records import Sampling

    if row["kind"] == "images":
        return "every still"
    try:
        return Sampling.stored(row.get("sampling")).describe()
    except (ValueError, TypeError):
        return ""
