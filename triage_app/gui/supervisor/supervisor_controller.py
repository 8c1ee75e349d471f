"""Feeds the supervisor view: charts refreshed as a background task, policy previews before
any change is saved, and the change itself (versioned, with who and when)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from triage_app.core.store import Workspace
from triage_app.gui.supervisor.supervisor_view import SupervisorView, assurance_text
from triage_app.gui.tasks import Task, run_task


class SupervisorController(QObject):
    policy_did_change = Signal(int)
    supervisor_did_fail = Signal(str)

    def __init__(self, view: SupervisorView) -> None:
        super().__init__()
        self.view = view
        self.ws: Workspace | None = None
        self._tasks: list[Task] = []
        view.user_did_preview.connect(self.preview)
        view.user_did_apply.connect(self.apply)

    def start(self, ws: Workspace) -> None:
        self.ws = ws
        saved = ws.policies.current()
        self.view.set_confidence(float(saved["confidence"]) if saved and saved.get("confidence")
                                 else ws.settings.review.recall_confidence)
        target = float(saved["target_recall"]) if saved and saved.get("target_recall") else ws.settings.review.target_recall
        self.view.set_target(target)
        if saved is not None:
            conf = float(saved.get("confidence") or ws.settings.review.recall_confidence)
            self.view.show_preview(f"Policy {saved['id']} is in force (target {target:.1%}, {assurance_text(conf)}). "
                                   "Move the slider to see what another target costs.")
        self.refresh()

    def refresh_soon(self) -> None:
        """The members changed: the charts are drawn again."""
        self.refresh()

    def _run(self, job: Callable[[], Any], done: Callable[[Any], None]) -> None:
        box: list[Task] = []

        def finished(result: Any) -> None:
            self._tasks.remove(box[0])
            done(result)

        def failed(message: str) -> None:
            self._tasks.remove(box[0])
            self.supervisor_did_fail.emit(message)

        box.append(run_task(lambda progress, cancel: job(), finished, failed))
        self._tasks.append(box[0])

    def refresh(self) -> None:
        ws = self.ws
        if ws is None:
            return
        from triage_app.core.outputs.reports import supervisor_data  # scikit-learn and scipy load on first use

        self._run(lambda: supervisor_data(ws), self.view.show_data)

    def preview(self, target: float) -> None:
        ws = self.ws
        if ws is None:
            return
        from triage_app.core.review.audit import propose_policy
        from triage_app.core.review.progress import review_progress

        confidence = self.view.confidence
        active = ws.settings.review.order == "active"

        def job() -> Any:
            return propose_policy(ws, target, confidence=confidence), (
                review_progress(ws, target=target, confidence=confidence) if active else None)

        def done(result: Any) -> None:
            (d, rule), progress = result
            sure = assurance_text(confidence)
            if progress is not None:
                # Active review: what the target costs is how much longer review goes on.
                if progress.recall is None:
                    cost = "what it costs can be estimated once accepted and rejected frames have been decided"
                elif progress.reached:
                    cost = "reached: review stops here (M in the review keeps going)"
                elif progress.waiting:
                    cost = f"reached by the current estimate; {progress.waiting}"
                elif progress.next_points:
                    cost = f"about {progress.next_points[0][1]:,} more frames to review to reach it (model-based)"
                else:
                    cost = "not reached, and the frames left may not be enough to reach it"
                text = (f"Target {target:.1%}, {sure}: {cost}. {progress.headline().split(' · ')[0]}. "
                        "Nothing is saved until you press Apply.")
                self.view.show_preview(text)
                return
            lo, hi = d.recall_ci
            est = "unknown" if d.estimated_recall != d.estimated_recall else f"{d.estimated_recall:.1%}"
            bound = "" if confidence <= 0.5 else f", lower bound at {confidence:.0%} confidence {lo:.1%}"
            text = (f"Target {target:.1%}, {sure}, rule {rule.text}: people review {d.candidates} frames "
                    f"({d.workload_fraction:.1%}); estimated recall {est}{bound}. "
                    f"Nothing is saved until you press Apply.")
            if not d.enough_labels:
                text += f"\n{d.note}"
            self.view.show_preview(text)

        self._run(job, done)

    def apply(self, target: float) -> None:
        ws = self.ws
        if ws is None:
            return
        from triage_app.core.review.audit import propose_policy, refresh_audit

        confidence = self.view.confidence

        def job() -> int:
            d, rule = propose_policy(ws, target, confidence=confidence)
            pid = ws.policies.save(rule.text, d.thresholds, ws.settings.review.reviewer, target_recall=target,
                                   note=d.note or None, confidence=confidence)
            refresh_audit(ws)
            return pid

        def done(pid: int) -> None:
            self.view.show_preview(f"Policy {pid} is in force (target {target:.1%}, {assurance_text(confidence)}).")
            self.policy_did_change.emit(pid)
            self.refresh()

        self._run(job, done)
