"""Builds the finds as a background task, keeps them up to date while reviewing goes on, and
acts on the finds view's buttons (copy, save as GeoJSON or GPX)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QImage

from triage_app.core.model.errors import StoreError
from triage_app.core.outputs.finds import accepted_count, finds, finds_csv, finds_geojson, finds_gpx
from triage_app.gui.finds.finds_view import THUMB, FindsView
from triage_app.gui.review.frame_loader import FrameLoader
from triage_app.gui.tasks import Task, run_task


class FindsController(QObject):
    """Builds the finds as a background task and acts on the view's buttons."""

    finds_did_change = Signal(int)  # how many
    finds_did_update = Signal(object)  # the finds themselves (the review panel names a candidate's neighbours)
    finds_did_fail = Signal(str)
    message_did_post = Signal(str)

    def __init__(self, view: FindsView) -> None:
        super().__init__(view)  # goes with its view: a late worker's result then reaches no dead widget
        self.view = view
        self.items: list[Any] = []
        self._ws: Any = None
        self._loader: FrameLoader | None = None
        self._task: Task | None = None
        self._again = False
        view.user_did_copy_all.connect(self.copy_csv)
        view.user_did_save.connect(lambda path: self.save_geojson(Path(path)))
        view.user_did_save_gpx.connect(lambda path: self.save_gpx(Path(path)))
        view.user_did_copy_row.connect(self.copy_position)
        view.user_did_note.connect(self.save_note)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(2000)  # decisions come fast: one rebuild once they pause
        self._timer.timeout.connect(self.refresh)
        self._counting = 0  # counts asked for, the newest wins
        self._count_task: Task | None = None  # kept: its signals live as long as it does

    #: Finds whose pictures are decoded for the list (the newest first).
    THUMBNAILS = 60

    def start(self, ws: Any) -> None:
        self.stop()
        self._ws = ws
        self._loader = FrameLoader(ws, capacity=self.THUMBNAILS, thumb_size=2 * THUMB.width())
        self._loader.frame_did_load.connect(self._on_thumbnail)
        self.refresh()

    def stop(self) -> None:
        if self._loader is not None:
            self._loader.close()
        self._loader = None

    def _on_thumbnail(self, frame_id: int, image: QImage) -> None:
        self.view.set_thumbnail(frame_id, image)

    def refresh_soon(self) -> None:
        """Decisions came: the count follows at once (a count of the accepted frames, in the
        background), the list once they pause."""
        self._timer.start()
        ws = self._ws
        if ws is None:
            return
        self._counting += 1
        asked = self._counting
        self._count_task = run_task(lambda progress, cancel: accepted_count(ws), lambda n: self._counted(asked, n))

    def _counted(self, asked: int, n: int) -> None:
        if asked == self._counting:  # the latest count asked for (an older one may land after it)
            self.finds_did_change.emit(n)

    def refresh(self) -> None:
        ws = self._ws
        if ws is None:
            return
        if self._task is not None:
            self._again = True
            return
        self._task = run_task(lambda progress, cancel: finds(ws), self._show, self._failed)

    def _failed(self, message: str) -> None:
        self._task = None
        self.finds_did_fail.emit(f"The finds could not be listed: {message}")

    def _show(self, items: list[Any]) -> None:
        self._task = None
        if self.view.editing():  # an analyst is typing a note: the list waits for them
            self.refresh_soon()
            return
        self.items = items
        self.view.show_finds(items)
        if self._loader is not None:
            wanted = [f.frame_id for f in items[: self.THUMBNAILS]]
            for f in wanted:
                image = self._loader.cached(f)
                if image is not None:
                    self.view.set_thumbnail(f, image)
            self._loader.request([f for f in wanted if self._loader.cached(f) is None])
        self.finds_did_change.emit(len(items))
        self.finds_did_update.emit(items)
        if self._again:
            self._again = False
            self.refresh()

    def save_note(self, frame_id: int, what: str, note: str) -> None:
        """What the analyst wrote in the What or Note column, recorded at once."""
        ws = self._ws
        if ws is None:
            return
        try:
            ws.notes.set(frame_id, what, note, ws.settings.review.reviewer)
        except StoreError as exc:
            self.finds_did_fail.emit(f"The note could not be saved: {exc}")
            return
        for f in self.items:
            if f.frame_id == frame_id:
                f.what, f.remark = what, note
                said = ": ".join(t for t in (what, note) if t)
                self.message_did_post.emit(f"Noted on {f.source} frame {f.frame}: {said}." if said else
                                           f"Note taken off {f.source} frame {f.frame}.")

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
        QGuiApplication.clipboard().setText(finds_csv(self.items))
        self.message_did_post.emit(f"Copied {len(self.items)} finds as CSV.")

    def save_geojson(self, path: Path) -> None:
        if self._write(path, finds_geojson(self.items)):
            self.message_did_post.emit(f"Saved {sum(f.lat is not None for f in self.items)} finds to {path}.")

    def save_gpx(self, path: Path) -> None:
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
