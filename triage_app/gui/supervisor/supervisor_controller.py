"""Feeds the supervisor view: charts refreshed in a worker, policy previews before any
change is saved, and the change itself (versioned, with who and when)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from triage_app.gui.supervisor.supervisor_view import SupervisorView, assurance_text
from triage_app.gui.tasks import Worker, start


class SupervisorController(QObject):
    policy_did_change = Signal(int)
    supervisor_did_fail = Signal(str)

    def __init__(self, view: SupervisorView) -> None:
        super().__init__()
        self.view = view
        self.project: Any = None
        self.cards: dict = {}
        self.settings: Any = None
        self._workers: list[Worker] = []
        view.user_did_preview.connect(self.preview)
        view.user_did_apply.connect(self.apply)

    def start(self, project: Any, cards: dict, settings: Any) -> None:
        self.project, self.cards, self.settings = project, cards, settings
        from triage_app.core.store.scores import ScoreStore

        saved = ScoreStore(project).current_policy()
        self.view.set_confidence(float(saved["confidence"]) if saved and saved.get("confidence")
                                 else settings.review.recall_confidence)
        self.refresh()

    def set_cards(self, cards: dict) -> None:
        self.cards = cards
        self.refresh()

    def _run(self, job, done) -> None:
        worker = Worker(lambda progress, cancel: job())
        worker.signals.worker_did_finish.connect(lambda r: (self._workers.remove(worker), done(r)))
        worker.signals.worker_did_fail.connect(lambda m: (self._workers.remove(worker), self.supervisor_did_fail.emit(m)))
        self._workers.append(worker)
        start(worker)

    def refresh(self) -> None:
        if self.project is None:
            return
        from triage_app.core.outputs.supervisor import supervisor_data

        project, cards, settings = self.project, self.cards, self.settings
        self._run(lambda: supervisor_data(project, cards, settings), self.view.show_data)

    def preview(self, target: float) -> None:
        if self.project is None:
            return
        from triage_app.core.review.audit import propose_policy

        project, cards, settings = self.project, self.cards, self.settings
        confidence = self.view.confidence

        def done(result) -> None:
            d, rule = result
            lo, hi = d.recall_ci
            est = "unknown" if d.estimated_recall != d.estimated_recall else f"{d.estimated_recall:.1%}"
            sure = assurance_text(confidence)
            bound = "" if confidence <= 0.5 else f", lower bound at {confidence:.0%} confidence {lo:.1%}"
            text = (f"Target {target:.1%}, {sure}, rule {rule.text}: people review {d.candidates} frames "
                    f"({d.workload_fraction:.1%}); estimated recall {est}{bound}. "
                    f"Nothing is saved until you press Apply.")
            if not d.enough_labels:
                text += f"\n{d.note}"
            self.view.show_preview(text)

        self._run(lambda: propose_policy(project, cards, settings, target, confidence=confidence), done)

    def apply(self, target: float) -> None:
        if self.project is None:
            return
        from triage_app.core.review.audit import propose_policy, refresh_audit
        from triage_app.core.store.scores import ScoreStore

        project, cards, settings = self.project, self.cards, self.settings
        confidence = self.view.confidence

        def job():
            d, rule = propose_policy(project, cards, settings, target, confidence=confidence)
            pid = ScoreStore(project).save_policy(rule.text, d.thresholds, settings.review.reviewer, target_recall=target,
                                                  note=d.note or None, confidence=confidence)
            refresh_audit(project, cards, settings)
            return pid

        def done(pid: int) -> None:
            self.view.show_preview(f"Policy {pid} is in force (target {target:.1%}, {assurance_text(confidence)}).")
            self.policy_did_change.emit(pid)
            self.refresh()

        self._run(job, done)
