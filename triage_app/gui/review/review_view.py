"""The analyst's review screen: one candidate large, its scores and telemetry beside it,
the neighbouring frames below, a help overlay. Layout and key bindings only; every key
becomes a signal that the review controller acts on."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QKeyEvent, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from triage_app.gui import theme
from triage_app.gui.review.adjust import Adjustment
from triage_app.gui.review.clip_player import ClipPlayer
from triage_app.gui.review.frame_canvas import FrameCanvas
from triage_app.gui.review.grid_view import GridView, placeholder_icon

KEYS = [
    ("A", "accept"), ("R", "reject"), ("U", "unsure"),
    ("Shift+A / Shift+R", "accept / reject the whole event"),
    ("Z or Ctrl+Z", "undo (several levels)"),
    ("→ or J / ← or K", "next / previous candidate"),
    ("F", "zoom on the firing tile"), ("0", "fit the frame"), ("wheel, drag", "zoom, pan"),
    ("B / Shift+B", "brighter / darker picture"), ("N / Shift+N", "more / less contrast"),
    ("E", "auto-contrast: the frame's own range stretched (thermal, night)"),
    ("H", "hide / show the outlines"), ("Backspace", "the picture as captured"),
    ("G", "grid mode: 1-9 or a click marks a thumbnail accepted, again unsure, again neither; R decides the page"),
    ("C", "copy the find's position on the ground (else the aircraft's)"),
    ("M", "more: keep reviewing once the target recall is reached"),
    ("V", "play the seconds of video around the frame (the slider scrubs, , / . step one picture back / on; "
          "V again: back to the frame)"),
    ("P", "pop out the picture into a window of its own (a second screen; F11 there: full screen)"),
    ("? or F1", "this help"),
]
MEMBER_COLOURS = ["#ff5a5f", "#ffb400", "#00c2a8", "#8a7dff"]


#: The keys of each mode, as the footer lists them.
FRAME_KEYS = "A accept · R reject · U unsure · Z undo · → next · B/N/E picture · H outlines · G grid · M more · ? help"
GRID_KEYS = ("1-9 or click: accepted, again unsure, again neither · R decide the page (the rest rejected) · Z undo (the "
             "page comes back marked) · G back")


def member_colour(member: str, members: list[str]) -> str:
    """A member's colour, the same on every frame (by its place among the ensemble's members,
    not by its rank on this frame)."""
    order = sorted(members)
    k = order.index(member) if member in order else len(order)
    return MEMBER_COLOURS[k % len(MEMBER_COLOURS)]


class HelpOverlay(QLabel):
    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        rows = "".join(f"<tr><td align='right'><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in KEYS)
        self.setText(f"<h3 align='center'>Review keys</h3><table align='center' cellspacing='4'>{rows}</table>"
                     "<p align='center'>Press ? to close.</p>")
        self.setStyleSheet("background: rgba(20, 20, 24, 225); color: #eee; padding: 24px; border-radius: 10px; font-size: 14px;")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hide()

    def toggle(self) -> None:
        parent = self.parentWidget()
        self.setGeometry(parent.rect().adjusted(80, 60, -80, -60))
        self.setVisible(not self.isVisible())
        self.raise_()


class ReviewView(QWidget):
    user_did_decide = Signal(str)
    user_did_decide_event = Signal(str)
    user_did_decide_grid = Signal(object)  # {frame id: label}
    user_did_undo = Signal()
    user_did_move = Signal(int)
    user_did_toggle_grid = Signal(bool)
    user_did_copy_position = Signal()
    user_did_ask_more = Signal()  # keep reviewing once the target recall is reached
    user_did_ask_clip = Signal()  # play the seconds of video around the candidate

    def __init__(self) -> None:
        super().__init__()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.canvas = FrameCanvas()
        self.grid = GridView()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.canvas)
        self.stack.addWidget(self.grid)
        self.header = QLabel("No candidates yet.")
        self.progress = QLabel()  # active review: the recall reached so far and the target
        self._reached = False
        self.progress.setWordWrap(True)
        self.progress.hide()
        self.scores = QLabel()
        self.scores.setTextFormat(Qt.TextFormat.RichText)
        self.scores.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.scores.setWordWrap(True)
        self.telemetry = QLabel()
        self.telemetry.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.telemetry.setWordWrap(True)
        self.footer = QLabel(FRAME_KEYS)
        self.feedback = QLabel()  # what the last key did, and how to take it back
        # A long message wraps; it never widens the window past the screen.
        self.feedback.setWordWrap(True)
        self.feedback.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.filmstrip = QListWidget()
        self.filmstrip.setViewMode(QListWidget.ViewMode.IconMode)
        self.filmstrip.setFlow(QListWidget.Flow.LeftToRight)
        self.filmstrip.setWrapping(False)
        self.filmstrip.setIconSize(QSize(150, 90))
        self.filmstrip.setGridSize(QSize(162, 116))
        self.filmstrip.setMovement(QListWidget.Movement.Static)
        self.filmstrip.setFixedHeight(130)
        self.filmstrip.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # one row, scrolled sideways
        self.filmstrip.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        # The strip shows where the frame lies; a click must not add a second highlight beside
        # the current frame's (the keys always decide the frame in the large view).
        self.filmstrip.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.filmstrip.itemClicked.connect(lambda _item: self.show_feedback(
            "The filmstrip shows the frames around this one: → / ← step through the queue, V plays these seconds."))

        panel = QWidget()
        sl = QVBoxLayout(panel)
        sl.addWidget(QLabel("<b>Scores</b>"))
        sl.addWidget(self.scores)
        sl.addWidget(QLabel("<b>Telemetry</b>"))
        sl.addWidget(self.telemetry)
        sl.addStretch(1)
        # The panel scrolls where the window is short (a small screen at 150 %): its text never
        # makes the window taller than the screen.
        side = QScrollArea()
        side.setWidget(panel)
        side.setWidgetResizable(True)
        side.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side.setMinimumWidth(200)
        side.setFrameShape(QFrame.Shape.StyledPanel)
        # The picture and the side panel share the width as the analyst drags it (remembered).
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.stack)
        self.splitter.addWidget(side)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([900, 280])
        self._shown: tuple[Any, ...] = (None, [], "", "")  # what the canvas shows, for the viewer and the player
        self.player = ClipPlayer(self._show_clip_frame)  # the seconds around the frame (V)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.progress)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.player)
        layout.addWidget(self.filmstrip)
        # While the picture is not as captured, a lasting word says so (the feedback line moves on).
        self.picture_state = QLabel()
        self.picture_state.hide()
        self.popout: Any = None  # the frame viewer, once opened (popout.py)
        self.restyle()
        bottom = QHBoxLayout()
        bottom.addWidget(self.feedback, 1)
        bottom.addWidget(self.picture_state)
        bottom.addWidget(self.footer)
        layout.addLayout(bottom)
        self.help = HelpOverlay(self)

    @property
    def grid_mode(self) -> bool:
        return self.stack.currentWidget() is self.grid

    def set_grid_mode(self, on: bool) -> None:
        self.stack.setCurrentWidget(self.grid if on else self.canvas)
        self.footer.setText(GRID_KEYS if on else FRAME_KEYS)  # the keys that work in this mode
        self.filmstrip.setVisible(not on)  # the neighbours of one frame: none in a grid of nine
        if on:
            self.scores.setText("Grid mode: each thumbnail is one candidate.")
            self.telemetry.setText("")

    # -- what the controller shows -------------------------------------------------------
    def show_candidate(self, info: dict[str, Any], image: QImage | None) -> None:
        boxes = []
        members = info.get("members") or [m for m, _s, _b in info.get("tiles", [])]
        for member, score, box in info.get("tiles", []):
            if box is not None:
                boxes.append((QRectF(*box), member_colour(member, members), f"{member} {score:.2f}"))
        self.canvas.show_frame(image, boxes, "" if image is not None else info.get("loading", "loading…"))
        self._shown = (image, boxes, "" if image is not None else info.get("loading", "loading…"), info.get("header", ""))
        if self.popout is not None and self.popout.isVisible():
            self.popout.show_frame(*self._shown)
        self.header.setText(info.get("header", ""))
        self.scores.setText(info.get("scores_html", ""))
        self.telemetry.setText(info.get("telemetry", ""))

    def sharpen(self, image: QImage) -> None:
        """The exact frame in place of its quick picture, on screen and in the viewer; the
        analyst's zoom stays."""
        if self.player.playing() or not self.canvas.sharpen(image):
            return
        self._shown = (image, *self._shown[1:])
        if self.popout is not None and self.popout.isVisible():
            self.popout.canvas.sharpen(image)

    def show_progress(self, text: str, reached: bool = False) -> None:
        """The line under the header: where active review stands (hidden when empty)."""
        self.progress.setText(text)
        self._reached = reached
        self._style_progress()
        self.progress.setVisible(bool(text))

    def restyle(self) -> None:
        """The labels' colours and sizes for the current look and text size (``theme``)."""
        self.header.setStyleSheet(f"{theme.text_size(1.25)} font-weight: 600; padding: 4px;")
        self.footer.setStyleSheet(f"color: {theme.tone('quiet')}; padding: 2px;")
        self.feedback.setStyleSheet(f"color: {theme.tone('feedback')}; font-weight: 600; padding: 2px;")
        self.picture_state.setStyleSheet(f"color: {theme.tone('warning')}; font-weight: 600; padding: 2px 8px;")
        self._style_progress()

    def _style_progress(self) -> None:
        self.progress.setStyleSheet("padding: 0 4px 4px 4px; " + (f"color: {theme.tone('good')}; font-weight: 600;" if self._reached
                                                                  else f"color: {theme.tone('secondary')};"))

    def show_feedback(self, text: str) -> None:
        """Say what the last decision or undo did."""
        self.feedback.setText(text)

    def show_empty(self, text: str) -> None:
        self.canvas.show_frame(None, [], text)
        self._shown = (None, [], text, "")
        if self.popout is not None and self.popout.isVisible():
            self.popout.show_frame(*self._shown)
        self.header.setText(text.splitlines()[0])
        self.scores.setText("")
        self.telemetry.setText("")
        self.filmstrip.clear()

    def show_filmstrip(self, items: list[tuple[int, str, bool]]) -> None:
        self.filmstrip.clear()
        for frame_id, caption, current in items:
            item = QListWidgetItem(placeholder_icon(self.filmstrip.iconSize()), caption)
            item.setData(Qt.ItemDataRole.UserRole, frame_id)
            if current:
                item.setBackground(Qt.GlobalColor.darkCyan)
                item.setForeground(Qt.GlobalColor.white)  # readable on the highlight
            self.filmstrip.addItem(item)
        # Repaint the whole strip: a partial repaint left the previous captions showing under
        # the new ones.
        self.filmstrip.viewport().update()

    def set_filmstrip_thumbnail(self, frame_id: int, image: QImage) -> None:
        for i in range(self.filmstrip.count()):
            item = self.filmstrip.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == frame_id:
                item.setIcon(QIcon(QPixmap.fromImage(image)))
                self.filmstrip.viewport().update()

    def _clip_key(self) -> None:
        if self.player.playing():
            self.stop_clip()
        else:
            self.show_feedback("Reading the seconds around this frame…")
            self.user_did_ask_clip.emit()

    def play_clip(self, images: list[QImage], times: list[float], centre: int) -> None:
        """Play the frames around the candidate's, looping; the slider scrubs (``ClipPlayer``)."""
        self.player.play(images, times, centre)
        self.show_feedback(f"Playing {times[-1] - times[0]:.1f} s around the frame ({len(images)} pictures); the slider "
                           "scrubs, V goes back to the frame.")

    def stop_clip(self) -> None:
        if self.player.playing():
            self.player.stop()
            self.canvas.show_frame(*self._shown[:3])
            self.show_feedback("Back on the candidate's frame.")

    def _show_clip_frame(self, image: QImage, here: bool) -> None:
        # The outlines belong to the candidate's own frame: shown on it alone.
        self.canvas.show_frame(image, self._shown[1] if here else [], "")

    def toggle_popout(self) -> None:
        """The picture in a window of its own (for a second screen), or back to this one only."""
        from triage_app.gui.review.popout import PopOutViewer

        if self.popout is not None and self.popout.isVisible():
            self.popout.close()
            self.show_feedback("Frame viewer closed (P opens it again).")
            return
        if self.popout is None:
            self.popout = PopOutViewer(self.keyPressEvent, self)
        self.popout.follow_picture(self.canvas.adjustment, self.canvas.overlays_shown)
        self.popout.show_frame(*self._shown)
        self.popout.show()
        self.popout.raise_()
        self.show_feedback("The picture is in the frame viewer too: drag it to another screen (F11 there: full screen); "
                           "its keys decide here. P closes it.")

    # -- keys ---------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key, mods = event.key(), event.modifiers()
        shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
        K = Qt.Key
        if key in (K.Key_Question, K.Key_F1):
            self.help.toggle()
        elif key == K.Key_Escape and self.help.isVisible():
            self.help.hide()
        elif key == K.Key_G:
            self.user_did_toggle_grid.emit(not self.grid_mode)
        elif not (self._grid_key(key) if self.grid_mode else self._frame_key(key, shift)):
            super().keyPressEvent(event)

    def _grid_key(self, key: int) -> bool:
        K = Qt.Key
        if K.Key_1 <= key <= K.Key_9:
            self.grid.toggle(key - K.Key_1)
        elif key == K.Key_R or key in (K.Key_Return, K.Key_Enter):
            self.user_did_decide_grid.emit(self.grid.labels())
        elif key == K.Key_Z:
            self.user_did_undo.emit()
        elif key == K.Key_M:
            self.user_did_ask_more.emit()
        else:
            return False
        return True

    def _picture_key(self, key: int, shift: bool) -> bool:
        """Brightness, contrast, auto-contrast, outlines: what is shown, never the footage."""
        K = Qt.Key
        a = self.canvas.adjustment
        step = -1 if shift else 1
        changes = {K.Key_B: lambda: a.step(brightness=step), K.Key_N: lambda: a.step(contrast=step),
                   K.Key_E: a.toggled_stretch, K.Key_Backspace: Adjustment}
        if key == K.Key_H:
            self.canvas.set_overlays_shown(not self.canvas.overlays_shown)
            self.show_feedback("Outlines hidden (H shows them)." if not self.canvas.overlays_shown else "Outlines shown.")
        elif (change := changes.get(key)) is not None:
            self.canvas.set_adjustment(change())
            said = self.canvas.adjustment.describe()
            self.show_feedback(f"Picture: {said} (Backspace shows it as captured)." if said else "Picture as captured.")
        else:
            return False
        if self.popout is not None:
            self.popout.follow_picture(self.canvas.adjustment, self.canvas.overlays_shown)
        state = [x for x in (self.canvas.adjustment.describe(),
                             "" if self.canvas.overlays_shown else "outlines hidden") if x]
        self.picture_state.setText("Picture: " + ", ".join(state) if state else "")
        self.picture_state.setVisible(bool(state))
        return True

    def _frame_key(self, key: int, shift: bool) -> bool:
        if self.player.playing() and key in (Qt.Key.Key_Comma, Qt.Key.Key_Period):
            self.player.step(-1 if key == Qt.Key.Key_Comma else 1)  # step along the seconds around the frame
            return True
        if self.player.playing() and key != Qt.Key.Key_V:
            self.stop_clip()  # any other key acts on the candidate's own frame again
        if self._picture_key(key, shift):
            return True
        K = Qt.Key
        decide = self.user_did_decide_event if shift else self.user_did_decide
        actions = {
            K.Key_A: lambda: decide.emit("accept"), K.Key_R: lambda: decide.emit("reject"),
            K.Key_U: lambda: self.user_did_decide.emit("unsure"), K.Key_Z: self.user_did_undo.emit,
            K.Key_Right: lambda: self.user_did_move.emit(1), K.Key_J: lambda: self.user_did_move.emit(1),
            K.Key_Space: lambda: self.user_did_move.emit(1),
            K.Key_Left: lambda: self.user_did_move.emit(-1), K.Key_K: lambda: self.user_did_move.emit(-1),
            K.Key_F: self.canvas.zoom_to_focus, K.Key_C: self.user_did_copy_position.emit, K.Key_0: self.canvas.fit,
            K.Key_M: self.user_did_ask_more.emit, K.Key_P: self.toggle_popout, K.Key_V: self._clip_key,
            K.Key_Plus: lambda: self.canvas.zoom(1.25), K.Key_Equal: lambda: self.canvas.zoom(1.25),
            K.Key_Minus: lambda: self.canvas.zoom(0.8),
        }
        action = actions.get(key)
        if action is None:
            return False
        action()
        return True
