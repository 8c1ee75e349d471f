"""The main window: project, sources with ingest in a worker, the review and supervisor
views, and the toolbar that sets the target, scores, learns, checks labels and exports."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from triage_app.gui import status_line, theme
from triage_app.gui.decided.decided_controller import DecidedController
from triage_app.gui.decided.decided_view import DecidedView
from triage_app.gui.finds.finds_controller import FindsController
from triage_app.gui.finds.finds_view import FindsView
from triage_app.gui.map.map_controller import attach_map
from triage_app.gui.project_controller import ProjectController
from triage_app.gui.review.review_controller import ReviewController
from triage_app.gui.review.review_view import ReviewView
from triage_app.gui.sources.sources_view import SourcesView
from triage_app.gui.supervisor.supervisor_controller import SupervisorController
from triage_app.gui.supervisor.supervisor_view import SupervisorView
from triage_app.gui.tasks import Change

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    def __init__(self, controller: ProjectController | None = None) -> None:
        super().__init__()
        self.controller = controller or ProjectController()
        self._last_sampling = None  # the sampling chosen for the last footage added
        self._learnt_at = 0  # decisions made when learning last started
        self._last_store = "postgresql://"  # the team store opened last in this window
        self.target_dialog = None
        self.setWindowTitle("Drone triage")
        self.resize(1200, 760)
        self.sources_view = SourcesView()
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        # A click must not leave the keyboard focus behind: once the button hides, Qt would hand
        # it to the next field (the reviewer's name), and A and R would type there.
        self.cancel_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.controller.cancel_work)

        sources_page = QWidget()
        layout = QVBoxLayout(sources_page)
        self.project_label = QLabel("No project open. Create or open one to add footage.")
        self.project_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.project_label)
        layout.addWidget(self.sources_view, 3)
        layout.addWidget(QLabel("Problems"))
        self.problems_view = QListWidget()
        self.problems_view.setWordWrap(True)
        layout.addWidget(self.problems_view, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(sources_page, "Sources")
        self.review_view = ReviewView()
        self.review = ReviewController(self.review_view)
        self.review.busy = self.controller.running
        self.tabs.addTab(self.review_view, "Review")
        self.supervisor_view = SupervisorView()
        self.supervisor = SupervisorController(self.supervisor_view)
        # Its charts need room: on a small screen the page scrolls instead of making the window
        # taller than the screen.
        self.supervisor_page = QScrollArea()
        self.supervisor_page.setWidget(self.supervisor_view)
        self.supervisor_page.setWidgetResizable(True)
        self.supervisor_page.setFrameShape(QScrollArea.Shape.NoFrame)
        self.tabs.addTab(self.supervisor_page, "Supervisor")
        self.finds_view = FindsView()
        self.finds = FindsController(self.finds_view)
        self.tabs.addTab(self.finds_view, "Finds")
        self.decided_view = DecidedView()
        self.decided = DecidedController(self.decided_view)
        self.decided.reviewer = lambda: (self.review.session.reviewer if self.review.session is not None
                                         else self.controller.ws.settings.review.reviewer)
        self.tabs.addTab(self.decided_view, "Decided")
        self.setCentralWidget(self.tabs)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)
        self._build_toolbar()
        self._build_view_keys()
        self.setAcceptDrops(True)  # videos, folders and stills dropped on the window are added

        c = self.controller
        c.project_did_open.connect(self._on_project_open)
        c.project_did_change.connect(self._route_change)
        c.sources_did_change.connect(self.sources_view.show_sources)
        c.progress_did_change.connect(self._on_progress)
        self.review.queue_did_change.connect(self._show_queue_size)
        self.review.review_did_fail.connect(self._on_work_failed)
        self.review.position_did_copy.connect(self._say)
        self.review.target_did_reach.connect(self._say)
        self.review.decision_did_record.connect(self._on_decided)
        self.review.decision_did_undo.connect(lambda _n: c.announce(Change.DECISIONS))
        self.supervisor.policy_did_change.connect(lambda _pid: c.announce(Change.POLICY))
        self.supervisor.supervisor_did_fail.connect(self._on_work_failed)
        self.finds.finds_did_change.connect(self._show_finds_count)
        self.decided.decisions_did_change.connect(lambda _n: c.announce(Change.DECISIONS | Change.QUEUE))
        self.decided.decided_did_count.connect(
            lambda n: self.tabs.setTabText(self.tabs.indexOf(self.decided_view), f"Decided ({n:,})"))
        self.finds.finds_did_fail.connect(self._on_work_failed)
        self.finds.finds_did_update.connect(self.review.set_finds)
        self.finds.message_did_post.connect(self._say)
        self.map = attach_map(self)  # the map tab (gui/map)
        self._last_tab: QWidget | None = self.tabs.currentWidget()
        self.tabs.currentChanged.connect(self._on_tab_changed)
        # The sources' counts are rebuilt from the whole project: never on every key press,
        # at most once per quiet second and only while they are on screen.
        self._sources_timer = QTimer(self)
        self._sources_timer.setSingleShot(True)
        self._sources_timer.setInterval(1000)
        self._sources_timer.timeout.connect(self._refresh_sources_if_shown)
        c.work_did_finish.connect(self._on_work_finished)
        c.work_did_fail.connect(self._on_work_failed)

    _TIPS = {
        "Open team store…": "Open a team's project on its PostgreSQL server: analysts review it at once, never the "
                            "same frame, and every decision is signed with your database login.",
        "Learn": "Learn from the decisions now: the review order (most likely frames first) and the head, every frame "
                 "re-scored from the cached embeddings. Runs by itself every few dozen decisions.",
        "Target…": "What this project looks for (person, vehicle, boat, ... or your own classes and prompts)",
        "Fine-tune backbone": "Fine-tune the backbone's last blocks on the decisions, compare with the head on the same "
                              "folds, and add it to the ensemble when it wins (minutes on a GPU, long on a CPU)",
        "Check labels": "Put the decisions the evidence disagrees with back into the review queue",
    }

    #: Steps of text size either way from the system's (each one point).
    TEXT_STEPS = 6

    def _build_view_keys(self) -> None:
        """Window keys, wherever the focus is: F11 full screen, Ctrl+= / Ctrl+- larger or smaller text,
        Ctrl+0 the system's size, Ctrl+Shift+D the dark or the light look (remembered with the
        window's layout), Ctrl+Q quits as closing the window does."""
        self._base_font = QApplication.font().pointSizeF()
        self.text_step = 0
        for keys, slot in ((["F11"], self.toggle_full_screen), (["Ctrl+=", "Ctrl++"], lambda: self.set_text_step(self.text_step + 1)),
                           (["Ctrl+-"], lambda: self.set_text_step(self.text_step - 1)), (["Ctrl+0"], lambda: self.set_text_step(0)),
                           (["Ctrl+Shift+D"], lambda: self.set_theme("light" if theme.current() == "dark" else "dark")),
                           (["Ctrl+Q"], self.close)):
            action = QAction(self)
            action.setShortcuts([QKeySequence(k) for k in keys])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(slot)
            self.addAction(action)

    def toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def set_text_step(self, step: int) -> None:
        """Text larger or smaller than the system's by ``step`` points, in every page."""
        self.text_step = max(-self.TEXT_STEPS // 2, min(self.TEXT_STEPS, int(step)))
        font = QApplication.font()
        font.setPointSizeF(max(6.0, self._base_font + self.text_step))
        QApplication.setFont(font)  # dialogs opened from now on
        self._restyle()
        for widget in self.findChildren(QWidget):
            if widget.styleSheet():  # a widget with a style sheet keeps the size it was polished with
                widget.setStyleSheet(widget.styleSheet())
        if self.text_step:
            self.statusBar().showMessage(f"Text {self.text_step:+d} pt (Ctrl+0: the system's size)", 5000)

    def set_theme(self, name: str) -> None:
        """The dark or the light look, in every page (and the dialogs opened from now on)."""
        theme.apply(name)
        self._restyle()
        self.review.show_current()  # the score bars are drawn in the look's colours
        if self.isVisible():
            self.save_layout()  # kept at once: a session that ends badly keeps the choice
        self.statusBar().showMessage(f"The {name} look (Ctrl+Shift+D: the {'light' if name == 'dark' else 'dark'} one)", 5000)

    def _restyle(self) -> None:
        """Views that style labels themselves, again for the current look and text size."""
        for widget in [self, *self.findChildren(QWidget)]:
            restyle = getattr(widget, "restyle", None)
            if callable(restyle):
                restyle()

    def _build_toolbar(self) -> None:
        bar = QToolBar("Project")
        bar.setMovable(False)
        self.addToolBar(bar)
        for text, slot, key in (
            ("Open project…", self._open_project, QKeySequence.StandardKey.Open),
            ("Open team store…", self._open_team_store, None),
            ("Add video…", self._add_video, None),
            ("Add image folder…", self._add_folder, None),
            ("Add stream…", self._add_stream, None),
            ("Score", self.controller.score, None),
            ("Target…", self.open_target, None),
            ("Learn", self.controller.learn, None),
            ("Fine-tune backbone", lambda: self.controller.finetune(), None),
            ("Check labels", self.controller.check_labels, None),
            ("Export…", self.open_export, None),
        ):
            action = QAction(text, self)
            if text in self._TIPS:
                action.setToolTip(self._TIPS[text])
            if key is not None:
                action.setShortcut(key)
            action.triggered.connect(slot)
            bar.addAction(action)
        self.resolve_action = QAction("Resolve disagreements", self)
        self.resolve_action.setCheckable(True)
        self.resolve_action.setToolTip("Show the frames whose reviewers disagree; your decision settles each one")
        self.resolve_action.toggled.connect(self._set_resolve_mode)
        bar.addAction(self.resolve_action)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        bar.addWidget(QLabel("Reviewer: "))
        self.reviewer_edit = QLineEdit()
        self.reviewer_edit.setMaximumWidth(160)
        self.reviewer_edit.setToolTip("Who is reviewing: every decision records it, second reviews go to someone "
                                      "else, agreement is measured between reviewers. Remembered for next time.")
        self.reviewer_edit.editingFinished.connect(self._reviewer_changed)
        # Enter ends the name: the keys go back to reviewing.
        self.reviewer_edit.returnPressed.connect(self._keys_back_to_review)
        bar.addWidget(self.reviewer_edit)
        self._show_reviewer()

    # -- user actions ---------------------------------------------------------------
    def _open_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Project folder (new or existing)")
        if folder:
            self.open_or_create(Path(folder))

    def _open_team_store(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        url, ok = QInputDialog.getText(self, "Open team store", "The team's PostgreSQL database, as "
                                       "postgresql://[user@]host[:port]/database\n(the password comes from ~/.pgpass "
                                       "or PGPASSWORD, never typed here):", text=self._last_store)
        if ok and url.strip():
            self.open_team_store(url.strip())

    def open_team_store(self, url: str) -> bool:
        """Open a team's project by its database URL; the status bar says why not."""
        from triage_app.core.store.db import is_store_url

        if not is_store_url(url):
            self.statusBar().showMessage(f"{url}: not a team store's URL (postgresql://host/database)", 15000)
            return False
        self._last_store = url
        return self.controller.open_project(url)

    def open_or_create(self, folder: Path) -> bool:
        """Open the project in ``folder``; where there is none, a new one is made only once the
        user says so (a folder picked by mistake does not silently become a project), and the
        status bar says it was made."""
        from triage_app.core.store.frames import DB_NAME

        new = not (folder / DB_NAME).exists()
        if new:
            holds = sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0
            what = (f"{folder} does not exist (a mistyped path?)." if not folder.exists() else
                    f"{folder} holds {holds} other item(s) and no project." if holds else f"{folder} holds no project yet.")
            yes, no = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
            answer = QMessageBox.question(self, "New project?", f"{what}\n\nMake a new project there?", yes | no,
                                          no if holds or not folder.exists() else yes)
            if answer != yes:
                self.statusBar().showMessage(f"No project opened: {folder} was left as it is.", 15000)
                return False
        opened = self.controller.open_project(folder)
        if opened and new:
            self.statusBar().showMessage(f"New project made in {folder}: add footage to begin.", 15000)
        return opened

    def _add_video(self) -> None:
        from triage_app.core.ingest.sources import VIDEO_SUFFIXES

        patterns = " ".join(f"*{s} *{s.upper()}" for s in sorted(VIDEO_SUFFIXES))
        files, _ = QFileDialog.getOpenFileNames(self, "Add videos", "", f"Videos ({patterns});;All files (*)")
        if files:
            self.open_add_footage(files)

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of images")
        if folder:
            self.controller.ingest([folder])

    def _add_stream(self) -> None:
        url, ok = QInputDialog.getText(self, "Add stream", "A live stream's URL (rtsp://, http://, udp://),\n"
                                       "or a video or folder in an object store (s3://, gs://, az://):")
        if ok and url.strip():
            self.open_add_footage([url.strip()])

    def open_add_footage(self, uris: list[str]):
        """Ask how densely to sample these videos or this stream, then add them (the dialog is
        returned, for tests). The choice is offered again for the next footage."""
        c = self.controller
        if c.ws is None:
            self._on_work_failed("Open or create a project first.")
            return None
        from triage_app.core.model.records import Sampling
        from triage_app.gui.dialogs.ingest_dialog import AddFootageDialog

        default = self._last_sampling or Sampling(c.settings.ingest.every, c.settings.ingest.fps)
        dialog = AddFootageDialog(uris, default, c.ws, self)

        def accepted() -> None:
            self._last_sampling = dialog.sampling()
            c.ingest(uris, then_score=dialog.score_after.isChecked(), sampling=dialog.sampling())

        dialog.accepted.connect(accepted)
        self.add_footage_dialog = dialog
        dialog.open()
        return dialog

    def open_target(self):
        """"What are you looking for?" (not modal; the dialog is returned, for tests)."""
        c = self.controller
        if c.ws is None:
            self._on_work_failed("Open or create a project first: the target belongs to a project.")
            return None
        from triage_app.gui.dialogs.target_dialog import TargetDialog

        dialog = TargetDialog(c.ws.target if c.ws.target_chosen else None, self, frames=c.ws.frames.frame_count())

        def accepted() -> None:
            name, classes, prompts, size = dialog.chosen()
            if c.set_target(name, classes, prompts, size):
                self._show_target()

        dialog.accepted.connect(accepted)
        self.target_dialog = dialog
        dialog.open()
        return dialog

    def _show_target(self) -> None:
        c = self.controller
        if c.ws is not None:
            t = c.ws.target
            self.project_label.setText(f"Project: {c.ws.root}  ·  looking for {t.label or t.name}"
                                       + ("" if c.ws.target_chosen else " (the default: Target… to choose)"))

    def open_export(self) -> None:
        """The export dialog (not modal: reviewing can go on beside it)."""
        c = self.controller
        if c.ws is None:
            self._on_work_failed("Open a project first: export writes its decided frames.")
            return
        from triage_app.gui.dialogs.export_dialog import ExportDialog

        self.export_dialog = ExportDialog(c.ws, self)
        self.export_dialog.export_did_finish.connect(
            lambda r: self.statusBar().showMessage(f"Exported {r.rows} frames to {r.outdir}", 15000))
        self.export_dialog.show()

    # -- dropping files on the window ------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        self.add_dropped(paths)

    def add_dropped(self, paths: list[str]):
        """Videos (also those in a dropped folder) go through the add-footage dialog, which is
        returned; folders of stills and stills are added at once; anything else is named."""
        from triage_app.core.ingest.footage import sort_dropped

        if self.controller.ws is None:
            self._on_work_failed("Open or create a project first, then drop footage on the window.")
            return None
        dropped = sort_dropped(paths)
        if dropped.ignored:
            self._on_work_failed("Not footage (no video or image, nor a folder holding any): "
                                 + ", ".join(dropped.ignored))
        if dropped.image_sources:
            self.controller.ingest(dropped.image_sources)
        return self.open_add_footage(dropped.videos) if dropped.videos else None

    def _show_reviewer(self) -> None:
        c = self.controller
        if c.settings is not None:
            name = c.settings.review.reviewer
        else:
            from triage_app.core.model.errors import TriageError
            from triage_app.core.model.settings import load_settings

            try:
                name = load_settings(None).review.reviewer
            except TriageError:
                name = ""
        self.reviewer_edit.setText(name)
        team = c.ws is not None and c.ws.team  # on a team store the login signs decisions
        self.reviewer_edit.setReadOnly(team)
        self.reviewer_edit.setToolTip("Decisions on a team store are signed with your database login" if team
                                      else "The name your decisions are recorded under")

    def _reviewer_changed(self) -> None:
        c = self.controller
        name = self.reviewer_edit.text().strip()
        current = c.settings.review.reviewer if c.settings is not None else None
        if name == current:
            return
        said = c.set_reviewer(name)
        if said is None:
            self._show_reviewer()
            return
        self.statusBar().showMessage(said, 15000)
        if c.ws is not None:  # second reviews depend on who is reviewing: the queue is built again
            self.review.start(c.ws, resolve=self.resolve_action.isChecked())

    def _keys_back_to_review(self) -> None:
        if self.tabs.currentWidget() is self.review_view:
            self.review_view.setFocus()

    def _set_resolve_mode(self, on: bool) -> None:
        c = self.controller
        if c.ws is not None:
            self.review.start(c.ws, resolve=on)

    # -- what changed, routed to the views that show it ------------------------------------
    def _route_change(self, change: int) -> None:
        what = Change(change)
        if what & Change.CARDS:
            self.supervisor.refresh_soon()
        if what & (Change.SCORES | Change.POLICY | Change.CARDS | Change.QUEUE):
            self.review.refresh()
        if what & (Change.SOURCES | Change.SCORES | Change.POLICY | Change.DECISIONS):
            self._sources_timer.start()
        if what & Change.DECISIONS:
            self.finds.refresh_soon()  # rebuilt a while after decisions (or undos) stop coming
            self.decided.refresh_soon()

    def _on_decided(self, decisions: int) -> None:
        self.controller.announce(Change.DECISIONS)
        self._maybe_learn(decisions)

    def _on_tab_changed(self, index: int) -> None:
        page = self.tabs.widget(index)
        if self._last_tab is self.review_view and page is not self.review_view and self.review.pace.decided:
            self.statusBar().showMessage(self.review.pace.summary(), 30000)  # what the session came to
        self._last_tab = page
        if page is self.finds_view:
            self.finds.refresh()
        elif page is self.decided_view:
            self.decided.refresh()
            self.decided_view.table.setFocus()
        elif page is self.supervisor_page:
            self.supervisor.refresh()
        elif page is self.review_view:
            self.review_view.setFocus()
        elif index == 0:
            self.controller.refresh()

    def _refresh_sources_if_shown(self) -> None:
        if self.tabs.currentIndex() == 0:
            self.controller.refresh()

    def _show_queue_size(self, n: int) -> None:
        self.tabs.setTabText(self.tabs.indexOf(self.review_view), f"Review ({n})")

    def _show_finds_count(self, n: int) -> None:
        self.tabs.setTabText(self.tabs.indexOf(self.finds_view), f"Finds ({n})")

    def _say(self, text: str) -> None:
        status_line.show(self.statusBar(), text, 15000)  # cut to the width, whole in its tooltip

    # -- controller events ----------------------------------------------------------
    def _on_project_open(self, path: str) -> None:
        team = self.controller.ws.team if self.controller.ws is not None else False
        self.setWindowTitle(f"Drone triage — {Path(path).name}" + (f" (team store, as {self.controller.ws.db.user})"
                                                                     if team else ""))
        self._show_reviewer()
        c = self.controller
        self._learnt_at = self.review.decisions_made
        self._show_target()
        if not c.ws.target_chosen and not c.ws.frames.frame_count():
            self.open_target()  # a new project: ask what it looks for before footage comes
        self.review.start(c.ws, resolve=self.resolve_action.isChecked())
        self.supervisor.start(c.ws)
        self.finds.start(c.ws)
        self.decided.start(c.ws)

    def _on_progress(self, what: str, done: int, total: int) -> None:
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.progress.setFormat(f"{what}: %v/%m")
        self.progress.setRange(0, max(total, 0))
        self.progress.setValue(min(done, total) if total > 0 else 0)

    def _on_work_finished(self, summary: str) -> None:
        if not self.controller.busy:
            self.progress.setVisible(False)
            self.cancel_button.setVisible(False)
        self._say(summary)

    def _maybe_learn(self, decisions: int) -> None:
        """Learn again once ``review.retrain_every`` decisions were made since the last time
        (off when 0); while other work runs, at the next decision after it ends."""
        every = self.controller.settings.review.retrain_every if self.controller.settings else 0
        if every and decisions - self._learnt_at >= every and not self.controller.busy:
            self._learnt_at = decisions
            self.controller.learn()

    def show_review(self) -> None:
        self.tabs.setCurrentWidget(self.review_view)
        self.review_view.setFocus()

    # -- layout, remembered between sessions ------------------------------------------------------
    @staticmethod
    def layout_file() -> Path:
        """Where the window's size, place and panel widths are kept (beside the user's settings)."""
        from triage_app.core.model.settings import user_settings_path

        own = os.environ.get("TRIAGE_SETTINGS")
        return (Path(own) if own else user_settings_path()).with_name("window.ini")

    def restore_layout(self) -> None:
        """The size, place and panel widths of the last session, kept inside the screen; a first
        start takes most of the screen, never more than it."""
        from PySide6.QtCore import QSettings

        stored = QSettings(str(self.layout_file()), QSettings.Format.IniFormat)
        geometry = stored.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        splitter = stored.value("review_splitter")
        if splitter is not None:
            self.review_view.splitter.restoreState(splitter)
        step = stored.value("text_step")
        if step is not None:
            self.set_text_step(int(step))
        look = stored.value("theme")
        if look in theme.THEMES and look != theme.current():
            self.set_theme(str(look))
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        if screen is None:
            return
        if geometry is None:
            self.resize(min(1600, int(screen.width() * 0.9)), min(1000, int(screen.height() * 0.9)))
        elif self.width() > screen.width() or self.height() > screen.height():
            self.resize(min(self.width(), screen.width()), min(self.height(), screen.height()))
        frame = self.frameGeometry()
        if not screen.intersects(frame):
            self.move(screen.topLeft())

    def save_layout(self) -> None:
        from PySide6.QtCore import QSettings

        path = self.layout_file()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return  # a read-only home keeps the defaults
        stored = QSettings(str(path), QSettings.Format.IniFormat)
        stored.setValue("geometry", self.saveGeometry())
        stored.setValue("review_splitter", self.review_view.splitter.saveState())
        stored.setValue("text_step", self.text_step)
        stored.setValue("theme", theme.current())
        stored.sync()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.save_layout()
        self.review.end_session()  # its summary in the log and the project, said at the next opening
        self.review.stop()
        self.decided.stop()
        self.finds.stop()
        self.controller.close()
        super().closeEvent(event)

    def _on_work_failed(self, message: str) -> None:
        if not self.controller.busy:
            self.progress.setVisible(False)
            self.cancel_button.setVisible(False)
        # Not a modal box: an analyst's work is never blocked by a message.
        for line in message.splitlines():
            if line.strip():
                self.problems_view.addItem(line)
        self.problems_view.scrollToBottom()
        self.statusBar().showMessage(message.splitlines()[0], 15000)
