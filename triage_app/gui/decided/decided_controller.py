"""Lists the decided frames (a background task), shows the selected one's picture, and records
the analyst's changes to past decisions, with undo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QImage

from triage_app.core.model.errors import StoreError
from triage_app.core.review.decided import decided_frames, matching, revise
from triage_app.gui.decided.decided_view import SHOWN, DecidedView
from triage_app.gui.review.frame_loader import FrameLoader
from triage_app.gui.tasks import Task, run_task


class DecidedController(QObject):
    decisions_did_change = Signal(int)  # how many decisions were changed (or taken back)
    decided_did_count = Signal(int)  # decided frames in all

    def __init__(self, view: DecidedView) -> None:
        super().__init__(view)
        self.view = view
        self.ws: Any = None
        #: Who changes a decision: the review's reviewer (the window sets it).
        self.reviewer: Callable[[], str] = lambda: ""
        self._filter: tuple[Any, Any, Any] = (None, None, None)
        self._task: Task | None = None
        self._again = False
        self._undo: list[tuple[list[int], str]] = []  # (decision ids, what they did) per change
        self.loader: FrameLoader | None = None
        view.user_did_filter.connect(self.set_filter)
        view.user_did_change.connect(self.change)
        view.user_did_undo.connect(self.undo)
        view.user_did_select.connect(self._show_picture)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(2000)  # decisions come fast in the review: one rebuild once they pause
        self._timer.timeout.connect(self.refresh)
        self._counting = 0  # counts asked for, the newest wins
        self._count_task: Task | None = None  # kept: its signals live as long as it does

    def start(self, ws: Any) -> None:
        self.stop()
        self.ws = ws
        self._undo.clear()
        self.loader = FrameLoader(ws, capacity=16, thumb_size=640)
        self.loader.frame_did_load.connect(self._on_loaded)
        self.loader.frame_did_fail.connect(lambda f, message: self.view.show_picture(f, None, message))
        self.refresh()

    def stop(self) -> None:
        if self.loader is not None:
            self.loader.close()
        self.loader = None

    def refresh_soon(self) -> None:
        """Decisions came: the count follows at once (in the background), the list once they pause."""
        self._timer.start()
        ws = self.ws
        if ws is None:
            return
        self._counting += 1
        asked = self._counting
        self._count_task = run_task(lambda progress, cancel: len(ws.decisions.decided_frames()),
                 lambda n: self.decided_did_count.emit(n) if asked == self._counting else None)

    def set_filter(self, label: Any, reviewer: Any, source_id: Any) -> None:
        self._filter = (label, reviewer, source_id)
        self.refresh()

    def refresh(self) -> None:
        ws = self.ws
        if ws is None:
            return
        if self._task is not None:
            self._again = True
            return
        label, reviewer, source_id = self._filter

        def build(progress: Any, cancel: Any) -> tuple[list[Any], list[Any], list[tuple[int, str]]]:
            every = decided_frames(ws)
            return matching(every, label, reviewer, source_id), every, sorted({(d.source_id, d.source) for d in every})

        self._task = run_task(build, self._show, self._failed)

    def _show(self, built: tuple[list[Any], list[Any], list[tuple[int, str]]]) -> None:
        self._task = None
        rows, every, sources = built
        self.view.set_choices(sorted({d.reviewer for d in every}), sources)
        self.view.show_rows(rows, len(every))
        self.decided_did_count.emit(len(every))
        if self._again:
            self._again = False
            self.refresh()

    def _failed(self, message: str) -> None:
        self._task = None
        self.view.show_feedback(f"The decided frames could not be listed: {message}")

    def _show_picture(self, frame_id: int) -> None:
        if self.loader is None:
            return
        image = self.loader.cached(frame_id)
        self.view.show_picture(frame_id, image)
        if image is None:
            self.loader.request([frame_id])

    def _on_loaded(self, frame_id: int, image: QImage) -> None:
        self.view.show_picture(frame_id, image)

    def change(self, frame_ids: list[int], label: str) -> None:
        """Change the selected frames' decision where it stands (recorded at once)."""
        if self.ws is None:
            return
        try:
            ids = revise(self.ws, frame_ids, label, self.reviewer())
        except (StoreError, ValueError) as exc:
            self.view.show_feedback(f"Not changed: {exc}")
            return
        if not ids:
            self.view.show_feedback(f"Already {SHOWN[label]} by you: nothing to change.")
            return
        n = len(ids)
        said = f"{n} frame{'s' if n != 1 else ''} now {SHOWN[label]}"
        self._undo.append((ids, said))
        self.view.show_feedback(f"Changed: {said} (the review learns from it at its next learning) · Z takes it back")
        self.decisions_did_change.emit(n)
        self.refresh()

    def undo(self) -> None:
        if self.ws is None or not self._undo:
            self.view.show_feedback("No change to take back.")
            return
        ids, said = self._undo[-1]
        try:
            self.ws.decisions.undo(ids, reviewer=self.reviewer())
        except StoreError as exc:
            self.view.show_feedback(f"Not taken back: {exc}")
            return
        self._undo.pop()
        self.view.show_feedback(f"Took back the change ({said}): the decisions before it stand again.")
        self.decisions_did_change.emit(len(ids))
        self.refresh()
