"""The project controller: owns the open project, runs ingest and scoring in workers, and
tells the views what changed through signals. Views never touch the store."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from triage_app.gui.tasks import Worker, start

log = logging.getLogger(__name__)


class ProjectController(QObject):
    project_did_open = Signal(str)
    sources_did_change = Signal(list)
    progress_did_change = Signal(str, int, int)  # what, done, total
    scores_did_commit = Signal()
    cards_did_change = Signal()  # a member joined or left the project's ensemble
    work_did_finish = Signal(str)
    work_did_fail = Signal(str)
    demo_did_open = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.project: Any = None
        self.settings: Any = None
        self.cards: dict = {}
        self._workers: list[Worker] = []
        self._last_refresh = 0.0

    @property
    def busy(self) -> bool:
        return bool(self._workers)

    def open_project(self, path: Path) -> bool:
        from triage_app.core.model.errors import TriageError
        from triage_app.core.model.cards import load_cards
        from triage_app.core.model.settings import load_settings
        from triage_app.core.store import Project

        try:
            project = Project(path)
            settings = load_settings(path)
            cards = load_cards(settings.models_dir, path)
        except TriageError as exc:
            self.work_did_fail.emit(str(exc))
            return False
        if self.project is not None:
            self.project.close()
        self.project, self.settings, self.cards = project, settings, cards
        self.project_did_open.emit(str(path))
        self.refresh()
        return True

    def set_reviewer(self, name: str) -> str | None:
        """Review as ``name`` from now on, and remember it in the user's settings file. Returns
        what to tell the user, or None (and ``work_did_fail``) when it cannot be done."""
        from triage_app.core.model.errors import TriageError
        from triage_app.core.model.settings import load_settings, save_user_setting

        name = name.strip()
        if not name:
            self.work_did_fail.emit("A reviewer needs a name: decisions record who made them.")
            return None
        try:
            path = save_user_setting("review", "reviewer", name)
        except TriageError as exc:
            self.work_did_fail.emit(f"The reviewer's name is used for now but could not be saved: {exc}")
            path = None
        if self.settings is not None:
            self.settings.review.reviewer = name
        said = f"Reviewing as {name}" + (f" (saved in {path})" if path else "") + "."
        if self.project is not None and path is not None:
            try:
                wins = load_settings(self.project.root).review.reviewer
            except TriageError:
                wins = name
            if wins != name:
                said += f" This project's settings.toml names {wins}, which wins when it is opened again."
        return said

    def refresh(self) -> None:
        if self.project is not None:
            from triage_app.core.outputs.overview import source_overview

            self.sources_did_change.emit(source_overview(self.project, self.cards, self.settings))

    def _run(self, what: str, job, on_done) -> None:
        worker = Worker(job)
        worker.signals.progress_did_change.connect(lambda d, t: self._on_progress(what, d, t))
        worker.signals.worker_did_finish.connect(lambda result: self._finish(worker, on_done, result))
        worker.signals.worker_did_fail.connect(lambda msg: self._fail(worker, f"{what} failed: {msg}"))
        self._workers.append(worker)
        start(worker)

    def _finish(self, worker: Worker, on_done, result) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        on_done(result)

    def _fail(self, worker: Worker, message: str) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        self.work_did_fail.emit(message)

    def _on_progress(self, what: str, done: int, total: int) -> None:
        self.progress_did_change.emit(what, done, total)
        if what == "Scoring" and time.monotonic() - self._last_refresh > 2.0:
            self._last_refresh = time.monotonic()
            self.scores_did_commit.emit()  # the review queue grows while scoring runs

    # -- ingest ----------------------------------------------------------------------------
    def ingest(self, uris: list[str], then_score: bool = True, sampling=None) -> None:
        """Add sources in a worker (``sampling``: a ``Sampling``; default from the settings),
        then score what is new."""
        if self.project is None:
            self.work_did_fail.emit("Open or create a project first.")
            return
        from triage_app.core.ingest.footage import ingest_source

        project, settings = self.project, self.settings

        def job(progress, cancel):
            results = []
            for uri in uris:
                if cancel.is_set():
                    break
                results.append(ingest_source(project, uri, settings, sampling=sampling, progress=progress, cancel=cancel))
            return results

        self._run("Ingest", job, lambda results: self._on_ingest_done(results, then_score))

    def _on_ingest_done(self, results: list, then_score: bool) -> None:
        self.refresh()
        frames = sum(r.frames_total for r in results)
        failed = [r.error for r in results if r.error]
        self.work_did_finish.emit(f"Ingested {frames} frames from {len(results) - len(failed)} source(s).")
        problems = failed + [w for r in results for w in r.warnings]
        if problems:
            self.work_did_fail.emit("\n".join(problems))
        if then_score and frames:
            self.score()

    # -- scoring ---------------------------------------------------------------------------
    def score(self) -> None:
        if self.project is None:
            self.work_did_fail.emit("Open or create a project first.")
            return
        from triage_app.core.scoring.pipeline import score_project

        project, settings, cards = self.project, self.settings, self.cards
        self._run("Scoring", lambda progress, cancel: score_project(project, settings, progress=progress, cancel=cancel, cards=cards),
                  self._on_score_done)

    def _on_score_done(self, summary) -> None:
        self.refresh()
        self.scores_did_commit.emit()
        left_out = "; ".join(f"{k} left out ({v})" for k, v in summary.unavailable.items())
        self.work_did_finish.emit(
            f"Scored {summary.frames_scored} frames on {summary.provider} ({summary.fps:.1f}/s): "
            f"{summary.candidates} candidates." + (" Stopped early." if summary.cancelled else ""))
        problems = list(summary.errors) + ([f"Members: {left_out}"] if left_out else [])
        if problems:
            self.work_did_fail.emit("\n".join(problems))

    # -- learning --------------------------------------------------------------------------
    def retrain(self) -> None:
        """Train a new head from the decisions and re-score every frame from the cache."""
        if self.project is None:
            self.work_did_fail.emit("Open or create a project first.")
            return
        from triage_app.core.learning.head import retrain

        project, settings, cards = self.project, self.settings, self.cards

        def done(r) -> None:
            self.refresh()
            self.scores_did_commit.emit()
            auc = "n/a" if r.cv_auc is None else f"{r.cv_auc:.3f}"
            ctx = "" if r.cv_auc_context is None else f" (with context features {r.cv_auc_context:.3f})"
            self.work_did_finish.emit(f"Head version {r.head_id}: {r.positives} accepted / {r.negatives} rejected, "
                                      f"cross-validated AUC {auc}{ctx}; reads "
                                      f"{'the whole frame' if r.features_used == 'whole_frame' else 'pooled tiles'}; "
                                      f"{r.rescored} frames re-scored.")

        self._run("Retraining", lambda progress, cancel: retrain(project, cards, settings), done)

    def finetune(self, blocks: int = 2, epochs: int = 6, deploy: str = "auto") -> None:
        """Compare fine-tuning the backbone with the head; deploy it as a member when it wins
        (``deploy``), then score every frame with it."""
        if self.project is None:
            self.work_did_fail.emit("Open or create a project first.")
            return
        from triage_app.core.learning.finetune import FinetuneCancelled, finetune_comparison
        from triage_app.core.model.cards import load_cards

        project, settings, cards = self.project, self.settings, self.cards

        def work(progress, cancel):
            try:
                return finetune_comparison(project, cards, settings, blocks=blocks, epochs=epochs, progress=progress,
                                           deploy=deploy, cancel=cancel)
            except FinetuneCancelled:
                return None

        def done(r) -> None:
            if r is None:
                self.work_did_finish.emit("Fine-tuning stopped; nothing was deployed.")
                return
            if r.deployed:
                self.cards = load_cards(settings.models_dir, project.root)
                self.cards_did_change.emit()
                self.refresh()
                self.scores_did_commit.emit()
            verdict = (f"Fine-tuned backbone: cross-validated AUC {r.cv_auc_finetuned:.3f} against {r.cv_auc_head:.3f} "
                       f"for the head ({r.frames} decided frames, {r.device}); the evidence favours the {r.favoured}.")
            if r.deployed:
                verdict += (f" Deployed as the member 'finetuned' (threshold {r.threshold:.3g}); "
                            f"{r.rescored} frames scored with it"
                            + (" (stopped early: Score finishes the rest)." if r.rescore_stopped else "."))
            else:
                verdict += " Nothing deployed."
            self.work_did_finish.emit(verdict)

        self._run("Fine-tuning", work, done)

    def check_labels(self) -> None:
        """Find the decisions the evidence disagrees with and put their frames back in the queue."""
        if self.project is None:
            self.work_did_fail.emit("Open or create a project first.")
            return
        from triage_app.core.learning.label_check import queue_for_rereview, suspicious_decisions

        project, cards = self.project, self.cards

        def work(progress, cancel) -> int:
            return queue_for_rereview(project, suspicious_decisions(project, cards))

        def done(n: int) -> None:
            self.scores_did_commit.emit()  # the review queue picks the frames up
            self.work_did_finish.emit(f"Label check: {n} decisions look wrong and are back in the review queue.")

        self._run("Checking labels", work, done)

    # -- demo ------------------------------------------------------------------------------
    def build_demo(self, root: Path) -> None:
        """Build the demo project in a worker, then open it (the window is up meanwhile)."""
        from triage_app.core.evaluation.demo import run_demo

        def job(progress, cancel):
            class Bar:
                def __init__(self, _what: str) -> None:
                    pass

                def __call__(self, done: int, total: int | None) -> None:
                    progress(done, total)

            return run_demo(root, progress_factory=Bar)

        def done(summary) -> None:
            self.open_project(root)
            self.scores_did_commit.emit()
            self.work_did_finish.emit(f"Demo ready in {root}: {summary.candidates} frames flagged; the review queue "
                                      f"may also hold a few dropped frames, as a blind audit.")
            self.demo_did_open.emit(str(root))

        self._run("Building the demo", job, done)

    def cancel_work(self) -> None:
        for worker in self._workers:
            worker.cancel.set()

    def close(self) -> None:
        self.cancel_work()
        from PySide6.QtCore import QThreadPool

        QThreadPool.globalInstance().waitForDone(30000)
        if self.project is not None:
            self.project.close()
            self.project = None
