"""The sources list: one row per source with its counts. Layout only."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

COLUMNS = ("Source", "Kind", "Sampling", "Frames", "Scored", "Flagged", "Candidates", "Reviewed", "Telemetry", "Status")


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
        names = distinct_names(rows)
        for r, row in enumerate(rows):
            values = (
                names[r], row["kind"], _sampling_text(row), row["frames"], row.get("scored", 0), row["flagged"],
                row.get("candidates", 0), row.get("reviewed", 0), f"{row['telemetry_matched']}/{row['frames']}",
                _status_text(row),
            )
            for c, value in enumerate(values):
                item = QTableWidgetItem(str(value))
                if isinstance(value, int):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c == 0:
                    item.setToolTip(str(row["uri"]))
                self.setItem(r, c, item)


def _status_text(row: dict[str, Any]) -> str:
    """The source's ingest status, and whether its frames are all scored yet."""
    status = str(row["status"])
    left = int(row["frames"]) - int(row.get("scored", 0))
    if row["frames"] and left > 0 and status not in ("ingesting", "failed"):
        return f"{status}; {left:,} frames not scored yet"
    return status


def distinct_names(rows: list[dict[str, Any]]) -> list[str]:
    """Source names as the list shows them: a name two sources share (``flight.mp4`` from two
    cards) gets the folders that tell them apart (``DCIM/100MEDIA/flight.mp4``)."""
    from collections import Counter
    from pathlib import PurePath

    counts = Counter(str(r["name"]) for r in rows)
    out = []
    for row in rows:
        name = str(row["name"])
        if counts[name] < 2 or "://" in str(row["uri"]):
            out.append(name)
            continue
        twins = [PurePath(str(o["uri"])).parts for o in rows if str(o["name"]) == name]
        parts = PurePath(str(row["uri"])).parts
        depth = 1
        while depth < len(parts) and sum(t[-depth - 1:] == parts[-depth - 1:] for t in twins) > 1:
            depth += 1
        out.append("/".join(parts[-depth - 1:]) if depth < len(parts) else str(row["uri"]))
    return out


def _sampling_text(row: dict[str, Any]) -> str:
    from triage_app.core.model.records import Sampling

    if row["kind"] == "images":
        return "every still"
    try:
        return Sampling.stored(row.get("sampling")).describe()
    except (ValueError, TypeError):
        return ""
