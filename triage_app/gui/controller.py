"""The project controller: owns the open project, runs ingest in workers, and tells the
views what changed through signals. Views never touch the store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from triage_app.gui.workers import Worker, start

log = logging.getLogger(__name__)


class ProjectController(QObject):
    project_did_open = Signal(str)
    sources_did_change = Signal(list)
    progress_did_change = Signal(int, int)
    work_did_finish = Signal(str)
    work_did_fail = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.project: Any = None
        self.settings: Any = None
        self._worker: Worker | None = None

    def open_project(self, path: Path) -> bool:
        from triage_app.core.errors import TriageError
        from triage_app.core.settings import load_settings
        from triage_app.core.store import Project

        try:
            project = Project(path)
            self.settings = load_settings(path)
        except TriageError as exc:
            self.work_did_fail.emit(str(exc))
            return False
        if self.project is not None:
            self.project.close()
        self.project = project
        self.project_did_open.emit(str(path))
        self.refresh()
        return True

    def refresh(self) -> None:
        if self.project is not None:
            self.sources_did_change.emit(self.project.source_summaries())

    def ingest(self, uris: list[str]) -> None:
        if self.project is None:
            self.work_did_fail.emit("Open or create a project first.")
            return
        from triage_app.core.ingest import ingest_source

        project, settings = self.project, self.settings

        def job(progress, cancel):
            results = []
            for uri in uris:
                if cancel.is_set():
                    break
                results.append(ingest_source(project, uri, settings, progress=progress, cancel=cancel))
            return results

        worker = Worker(job)
        worker.signals.progress_did_change.connect(self.progress_did_change)
        worker.signals.worker_did_finish.connect(self._on_ingest_done)
        worker.signals.worker_did_fail.connect(self.work_did_fail)
        self._worker = worker
        start(worker)

    def _on_ingest_done(self, results: list) -> None:
        self.refresh()
        frames = sum(r.frames_total for r in results)
        failed = [r.error for r in results if r.error]
        self.work_did_finish.emit(f"Ingested {frames} frames from {len(results) - len(failed)} source(s).")
        problems = failed + [w for r in results for w in r.warnings]
        if problems:
            self.work_did_fail.emit("\n".join(problems))

    def cancel_work(self) -> None:
        if self._worker is not None:
            self._worker.cancel.set()

    def close(self) -> None:
        if self.project is not None:
            self.project.close()
            self.project = None
