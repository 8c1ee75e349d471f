"""Grid mode's page: nine candidates at once, each with its firing tiles outlined; a key or a
click marks one accepted, again unsure, again neither; one key decides the page (the marked
as marked, the rest rejected), and an undo brings the page back with its marks."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem

#: The marks a thumbnail cycles through, with their caption and background.
MARKS = {"accept": ("  ✔ accept", Qt.GlobalColor.darkGreen), "unsure": ("  ? unsure", Qt.GlobalColor.darkYellow)}
CYCLE = {None: "accept", "accept": "unsure", "unsure": None}
MARK_ROLE = Qt.ItemDataRole.UserRole + 1


def placeholder_icon(size: QSize) -> QIcon:
    """A grey box the size of a thumbnail, shown until the picture is decoded."""
    pix = QPixmap(size)
    pix.fill(QColor("#3a3b3f"))
    return QIcon(pix)


def outlined(image: QImage, boxes: list[tuple[QRectF, str]], frame_width: int) -> QPixmap:
    """The thumbnail with the frame's firing tiles drawn on it (``boxes`` in the frame's pixels)."""
    pix = QPixmap.fromImage(image)
    if not boxes or not frame_width:
        return pix
    scale = pix.width() / frame_width
    painter = QPainter(pix)
    for rect, colour in boxes:
        pen = QPen(QColor(colour), max(2.0, pix.width() / 200))
        painter.setPen(pen)
        painter.drawRect(QRectF(rect.x() * scale, rect.y() * scale, rect.width() * scale, rect.height() * scale))
    painter.end()
    return pix


class GridView(QListWidget):
    """N thumbnails at once; marked ones are accepted (or unsure), the rest rejected, in one key."""

    def __init__(self) -> None:
        super().__init__()
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setIconSize(QSize(256, 160))
        self.setGridSize(QSize(276, 196))
        self.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.setMovement(QListWidget.Movement.Static)
        self.setSpacing(0)  # the grid cells hold the margins
        # One page of nine fills the area exactly: no scroll bar to steal a column.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.itemClicked.connect(lambda item: self.toggle(self.row(item)))
        self._boxes: dict[int, tuple[list[tuple[QRectF, str]], int]] = {}

    COLUMNS = ROWS = 3  # one page: keys 1-9

    def resizeEvent(self, event) -> None:  # noqa: N802
        """The page's nine thumbnails share the whole area, as large as it allows (16:9)."""
        super().resizeEvent(event)
        area = self.viewport().size()
        cell_w = max(120, (area.width() - 6) // self.COLUMNS)
        cell_h = max(90, (area.height() - 6) // self.ROWS)
        icon_h = cell_h - self.fontMetrics().height() - 18
        icon_w = max(96, min(cell_w - 16, icon_h * 16 // 9))
        self.setGridSize(QSize(cell_w, cell_h))
        self.setIconSize(QSize(icon_w, icon_w * 9 // 16))

    def show_items(self, items: list[tuple[int, str]], boxes: dict[int, tuple[list[tuple[QRectF, str]], int]] | None = None) -> None:
        """A page of (frame id, caption); ``boxes``: each frame's firing tiles (rect, colour) in
        its own pixels, and its width, outlined on the thumbnail once it is decoded."""
        self.clear()
        self._boxes = boxes or {}
        for n, (frame_id, caption) in enumerate(items, start=1):
            item = QListWidgetItem(placeholder_icon(self.iconSize()), f"{n}  {caption}")
            item.setData(Qt.ItemDataRole.UserRole, frame_id)
            item.setData(Qt.ItemDataRole.UserRole + 2, f"{n}  {caption}")
            self.addItem(item)
            self._mark(item, None)

    def set_thumbnail(self, frame_id: int, image: QImage) -> None:
        for i in range(self.count()):
            item = self.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == frame_id:
                boxes, width = self._boxes.get(frame_id, ([], 0))
                item.setIcon(QIcon(outlined(image, boxes, width)))  # drawn at the icon size, which follows the window

    def _mark(self, item: QListWidgetItem, mark: str | None) -> None:
        item.setData(MARK_ROLE, mark)
        caption, background = MARKS.get(mark or "", ("", Qt.GlobalColor.transparent))
        item.setText(item.data(Qt.ItemDataRole.UserRole + 2) + caption)
        item.setBackground(background)
        item.setForeground(QBrush(Qt.GlobalColor.white) if mark else QBrush())  # readable on the mark's colour

    def toggle(self, row: int) -> None:
        """Accepted, then unsure, then neither."""
        item = self.item(row)
        if item is not None:
            self._mark(item, CYCLE[item.data(MARK_ROLE)])

    def set_marks(self, marks: dict[int, str]) -> None:
        """Mark the page's frames as ``marks`` says (an undone page decision: its marks again)."""
        for i in range(self.count()):
            item = self.item(i)
            mark = marks.get(int(item.data(Qt.ItemDataRole.UserRole)))
            self._mark(item, mark if mark in MARKS else None)

    def marks(self) -> dict[int, str]:
        """The thumbnails marked, and how."""
        return {int(self.item(i).data(Qt.ItemDataRole.UserRole)): self.item(i).data(MARK_ROLE)
                for i in range(self.count()) if self.item(i).data(MARK_ROLE)}

    def labels(self) -> dict[int, str]:
        """Every thumbnail's decision: its mark, else rejected."""
        return {int(self.item(i).data(Qt.ItemDataRole.UserRole)): self.item(i).data(MARK_ROLE) or "reject"
                for i in range(self.count())}
