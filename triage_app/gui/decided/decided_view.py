"""The decided tab: every frame already decided, newest first, filtered by decision, reviewer
and source, with the selected frame's picture; A, R or U (or the buttons) change the selected
frames' decision where it stands, Z takes the last change back. Layout only; the controller
(``decided_controller``) lists the frames and records the changes."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from triage_app.gui import theme
from triage_app.gui.tables import local_time, set_up_list

COLUMNS = ("Decided", "Decision", "Reviewer", "Source", "Frame", "Time", "Fused score then", "How", "Changed")
#: How a decision was made, in words (the audit's draws stay blind: nothing says which they were).
HOW = {"single": "one frame", "event": "the event", "grid": "grid page", "revised": "changed here"}
LABELS = (("All decisions", None), ("Accepted", "accept"), ("Rejected", "reject"), ("Unsure", "unsure"))
SHOWN = {"accept": "accepted", "reject": "rejected", "unsure": "unsure"}


class DecidedTable(QTableWidget):
    """The list; decision keys on it change the selected rows."""

    key_did_decide = Signal(str)
    key_did_undo = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = {Qt.Key.Key_A: "accept", Qt.Key.Key_R: "reject", Qt.Key.Key_U: "unsure"}.get(Qt.Key(event.key()))
        if key is not None:
            self.key_did_decide.emit(key)
        elif event.key() == Qt.Key.Key_Z:
            self.key_did_undo.emit()
        else:
            super().keyPressEvent(event)


class DecidedView(QWidget):
    user_did_filter = Signal(object, object, object)  # label, reviewer, source id (None: any)
    user_did_change = Signal(object, str)  # frame ids, new label
    user_did_undo = Signal()
    user_did_select = Signal(int)  # frame id whose picture to show

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Any] = []
        self.label_box = QComboBox()
        for text, value in LABELS:
            self.label_box.addItem(text, value)
        self.reviewer_box = QComboBox()
        self.source_box = QComboBox()
        for box in (self.label_box, self.reviewer_box, self.source_box):
            box.currentIndexChanged.connect(self._filter)
        self.summary = QLabel("Nothing decided yet.")
        self.buttons = {label: QPushButton(text) for label, text in
                        (("accept", "Accept (A)"), ("reject", "Reject (R)"), ("unsure", "Unsure (U)"))}
        for label, button in self.buttons.items():
            button.setToolTip(f"Change the selected frames' decision to {SHOWN[label]}")
            button.clicked.connect(lambda _checked=False, lab=label: self._change(lab))
        self.undo_button = QPushButton("Take back the last change (Z)")
        self.undo_button.clicked.connect(self.user_did_undo.emit)
        top = QHBoxLayout()
        for widget in (QLabel("Show"), self.label_box, QLabel("by"), self.reviewer_box, QLabel("from"), self.source_box):
            top.addWidget(widget)
        top.addWidget(self.summary, 1)
        self.table = set_up_list(DecidedTable(), COLUMNS, stretch=3)
        self.table.horizontalHeaderItem(0).setToolTip("When the standing decision was made (local time)")
        self.table.horizontalHeaderItem(5).setToolTip("The frame's time in its video")
        self.table.horizontalHeaderItem(6).setToolTip("The ensemble's fused score when the frame was decided")
        self.table.horizontalHeaderItem(8).setToolTip("How many decisions this frame had before the one that stands")
        self.table.key_did_decide.connect(self._change)
        self.table.key_did_undo.connect(self.user_did_undo.emit)
        self.table.itemSelectionChanged.connect(self._selected)
        self.preview = QLabel("Select a frame to see it.")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumWidth(240)
        self.preview.setStyleSheet("background: #1e1f22; color: #d0d0d0;")
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        side = QWidget()
        sl = QVBoxLayout(side)
        sl.addWidget(self.preview, 1)
        sl.addWidget(self.caption)
        actions = QHBoxLayout()
        for button in self.buttons.values():
            actions.addWidget(button)
        sl.addLayout(actions)
        sl.addWidget(self.undo_button)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(side)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([640, 360])  # the list gets the larger share at any width
        self.feedback = QLabel()
        self.restyle()
        self.feedback.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.feedback)
        self._set_enabled()

    # -- what the controller shows -------------------------------------------------------
    def set_choices(self, reviewers: list[str], sources: list[tuple[int, str]]) -> None:
        """The reviewers and sources to filter by (the current choice is kept where it still exists)."""
        for box, items, everyone in ((self.reviewer_box, [(r, r) for r in reviewers], "everyone"),
                                     (self.source_box, [(name, sid) for sid, name in sources], "every source")):
            keep = box.currentData()
            box.blockSignals(True)
            box.clear()
            box.addItem(everyone, None)
            for text, value in items:
                box.addItem(text, value)
            at = box.findData(keep)
            box.setCurrentIndex(at if at >= 0 else 0)
            box.blockSignals(False)

    def show_rows(self, rows: list[Any], total: int) -> None:
        selected = set(self.selected_frames())
        self.rows = rows
        self.table.blockSignals(True)
        self.table.setRowCount(len(rows))
        for r, d in enumerate(rows):
            score = "" if d.fused_score is None else f"{d.fused_score:.2f}"
            changed = f"{d.changes}×" if d.changes else ""
            values = (local_time(d.decided_at), SHOWN.get(d.label, d.label), d.reviewer, d.source, str(d.frame),
                      f"{d.timestamp_s:.1f} s", score, HOW.get(d.via, d.via), changed)
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                if c in (4, 5, 6, 8):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.clearSelection()
        chosen = self.table.selectionModel()
        for r, d in enumerate(rows):
            if d.frame_id in selected:  # every row selected before stays selected
                chosen.select(self.table.model().index(r, 0),
                              chosen.SelectionFlag.Select | chosen.SelectionFlag.Rows)
        self.table.blockSignals(False)
        self._selected()  # the caption says what the selected frame's decision is now
        shown = f"{len(rows):,} of {total:,} decided frames" if len(rows) != total else f"{total:,} decided frames"
        self.summary.setText(f"{shown}, newest first." if total else "Nothing decided yet.")
        self._set_enabled()

    def show_picture(self, frame_id: int, image: QImage | None, message: str = "") -> None:
        rows = self.selected_rows()
        if not rows or self.rows[rows[0]].frame_id != frame_id:
            return  # another frame was selected meanwhile
        if image is None:
            self.preview.setPixmap(QPixmap())
            self.preview.setText(message or "loading…")
            return
        size = self.preview.size()
        self.preview.setPixmap(QPixmap.fromImage(image).scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                                               Qt.TransformationMode.SmoothTransformation))

    def restyle(self) -> None:
        """The feedback line's colour for the current look (``theme``)."""
        self.feedback.setStyleSheet(f"color: {theme.tone('feedback')}; font-weight: 600; padding: 2px;")

    def show_feedback(self, text: str) -> None:
        self.feedback.setText(text)

    # -- what the user does --------------------------------------------------------------
    def selected_rows(self) -> list[int]:
        return sorted({i.row() for i in self.table.selectionModel().selectedRows()})

    def selected_frames(self) -> list[int]:
        return [self.rows[r].frame_id for r in self.selected_rows() if r < len(self.rows)]

    def _filter(self) -> None:
        self.user_did_filter.emit(self.label_box.currentData(), self.reviewer_box.currentData(),
                                  self.source_box.currentData())

    def _change(self, label: str) -> None:
        frames = self.selected_frames()
        if frames:
            self.user_did_change.emit(frames, label)
        else:
            self.show_feedback("Select the frames to change first (click a row; Shift or Ctrl to add more).")

    def _selected(self) -> None:
        self._set_enabled()
        rows = self.selected_rows()
        if not rows:
            self.caption.setText("")
            return
        d = self.rows[rows[0]]
        more = f" (and {len(rows) - 1} more selected)" if len(rows) > 1 else ""
        self.caption.setText(f"{d.source} frame {d.frame} at {d.timestamp_s:.1f} s: {SHOWN.get(d.label, d.label)} by "
                             f"{d.reviewer}{more}")
        self.user_did_select.emit(d.frame_id)

    def _set_enabled(self) -> None:
        some = bool(self.selected_rows())
        for button in self.buttons.values():
            button.setEnabled(some)
