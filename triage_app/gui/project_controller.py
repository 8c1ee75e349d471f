"""The project controller: owns the open project (a :class:`Workspace`), runs ingest,
scoring and learning as background tasks, and says what each changed
(``project_did_change``, a :class:`Change`). Views never touch the store."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal

from triage_app.core.model.errors import StoreUnavailable, TriageError
from triage_app.core.model.settings import load_settings, save_user_setting
from triage_app.core.store import Workspace
from triage_app.gui.tasks import Change, Task, run_task

log = logging.getLogger(__name__)


#: How often the window looks for changes others made to the project (milliseconds).
WATCH_MS = 5000


class ProjectController(QObject):
    project_did_open = Signal(str)
    project_did_change = Signal(int)  # a Change: what the last piece of work changed
    sources_did_change = Signal(list)
    progress_did_change = Signal(str, int, int)  # what, done, total
    work_did_finish = Signal(str)
    work_did_fail = Signal(str)
    demo_did_open = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.ws: Workspace | None = None
        self._tasks: list[Task] = []
        self._kinds: dict[Task, str] = {}  # what each running task does
        self._last_refresh = 0.0
        #: What the store held when last looked at: changes others make (a teammate's decisions,
        #: the supervisor's policy, a run from a terminal) are announced like this window's own.
        self._marks: tuple[Any, ...] | None = None
        self._watch = QTimer(self)
        self._watch.setInterval(WATCH_MS)
        self._watch.timeout.connect(self._poll)
        self._announced = Change.NONE  # what this window announced itself since the watcher last looked
        self._polling = False
        self._poll_task: Task | None = None

    @property
    def settings(self) -> Any:
        return self.ws.settings if self.ws is not None else None

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    def open_project(self, path: Path | str) -> bool:
        """Open a project folder or a team store's URL (``work_did_fail`` says why not)."""
        try:
            ws = Workspace(path)
        except TriageError as exc:
            self.work_did_fail.emit(str(exc))
            return False
        if self.ws is not None:
            self.ws.close()
        self.ws = ws
        self._marks, self._announced = self._store_marks(), Change.NONE
        self._watch.start()
        self.project_did_open.emit(str(path))
        self.refresh()
        return True

    def announce(self, change: Change) -> None:
        """Tell the views that the project changed (decisions made in review, say)."""
        self._announced |= change  # this window's own change: the watcher does not say it again
        self.project_did_change.emit(int(change))

    def _store_marks(self) -> tuple[Any, ...] | None:
        """Cheap marks of what the views show (read on a worker by the watcher)."""
        ws = self.ws
        if ws is None:
            return None
        try:
            policy = ws.policies.current()
            ranking = ws.rankings.latest()
            return (*ws.change_marks(), policy["id"] if policy else None, ranking["id"] if ranking else None)
        except TriageError:
            return None  # unreachable for now: looked at again on the next tick

    def _poll(self) -> None:
        """The watcher's tick: read the marks on a worker, compare them on the GUI thread."""
        if self.ws is None or self.busy or self._polling:
            return  # running work announces its own changes when it ends
        self._polling = True
        ws = self.ws

        def done(now: Any) -> None:
            self._polling = False
            if ws is self.ws:
                self._compare(now)

        def failed(_message: str) -> None:
            self._polling = False

        self._poll_task = run_task(lambda progress, cancel: self._store_marks(), done, failed)  # kept: its signals live

    def look_for_changes(self) -> Change:
        """Announce what others changed in the project since the window last looked (scores,
        decisions, the policy, a new ranking, footage); returns it. Reads on the calling thread."""
        if self.ws is None or self.busy:
            return Change.NONE
        return self._compare(self._store_marks())

    def _compare(self, now: tuple[Any, ...] | None) -> Change:
        before, own = self._marks, self._announced
        if now is None:
            return Change.NONE
        self._marks, self._announced = now, Change.NONE
        if before is None:
            return Change.NONE
        change = Change.NONE
        for i, flag in ((0, Change.SCORES), (1, Change.DECISIONS), (2, Change.SCORES), (3, Change.SOURCES),
                        (4, Change.POLICY), (5, Change.QUEUE)):
            if before[i] != now[i]:
                change |= flag
        change &= ~own  # what this window did itself was announced when it did it
        if change:
            log.info("the project changed elsewhere: %s", change)
            self.project_did_change.emit(int(change))
        return change

    def set_reviewer(self, name: str) -> str | None:
        """Review as ``name`` from now on, and remember it in the user's settings file. Returns
        what to tell the user, or None (and ``work_did_fail``) when it cannot be done."""
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
        if self.ws is not None and path is not None:
            try:
                wins = load_settings(self.ws.root).review.reviewer
            except TriageError:
                wins = name
            if wins != name:
                said += f" This project's settings.toml names {wins}, which wins when it is opened again."
        return said

    def refresh(self) -> None:
        if self.ws is not None:
            from triage_app.core.outputs.reports import source_overview

            try:
                overview = source_overview(self.ws)
            except StoreUnavailable as exc:  # a team store out of reach: the table stays, the bar says why
                self.work_did_fail.emit(str(exc))
                return
            self.sources_did_change.emit(overview)

    def _run(self, what: str, job: Any, on_done: Any) -> None:
        box: list[Task] = []

        def finished(result: Any) -> None:
            self._forget(box)
            on_done(result)

        def failed(message: str) -> None:
            self._forget(box)
            self.work_did_fail.emit(f"{what} failed: {message}")

        task = run_task(job, finished, failed, lambda d, t: self._on_progress(what, d, t))
        box.append(task)
        self._tasks.append(task)
        self._kinds[task] = what

    def running(self, what: str) -> bool:
        """Whether a background task of this kind ("Scoring", "Ingest", ...) runs now."""
        return what in self._kinds.values()

    def _forget(self, box: list[Task]) -> None:
        if box and box[0] in self._tasks:
            self._tasks.remove(box[0])
        if box:
            self._kinds.pop(box[0], None)

    def _on_progress(self, what: str, done: int, total: int) -> None:
        self.progress_did_change.emit(what, done, total)
        if what == "Scoring" and time.monotonic() - self._last_refresh > 2.0:
            self._last_refresh = time.monotonic()
            self.announce(Change.SCORES)  # the review queue grows while scoring runs

    # -- ingest ----------------------------------------------------------------------------
    def _open_or_say(self) -> Workspace | None:
        if self.ws is None:
            self.work_did_fail.emit("Open or create a project first.")
        return self.ws

    def ingest(self, uris: list[str], then_score: bool = True, sampling: Any = None) -> None:
        """Add sources as a background task (``sampling``: a ``Sampling``; default from the
        settings), then score what is new."""
        ws = self._open_or_say()
        if ws is None:
            return
        from triage_app.core.ingest.footage import ingest_source  # heavy imports wait for the first use

        def job(progress: Any, cancel: Any) -> list[Any]:
            results = []
            for uri in uris:
                if cancel.is_set():
                    break
                results.append(ingest_source(ws, uri, sampling=sampling, progress=progress, cancel=cancel))
            return results

        self._run("Ingest", job, lambda results: self._on_ingest_done(results, then_score))

    def _on_ingest_done(self, results: list[Any], then_score: bool) -> None:
        self.refresh()
        self.announce(Change.SOURCES)
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
        ws = self._open_or_say()
        if ws is None:
            return
        from triage_app.core.review.audit import refresh_audit
        from triage_app.core.scoring.pipeline import score_project

        def job(progress: Any, cancel: Any) -> tuple[Any, int]:
            summary = score_project(ws, progress=progress, cancel=cancel)
            refresh_audit(ws)
            _ids, _fused, cand = ws.candidates(members=summary.members)
            return summary, int(cand.sum())

        self._run("Scoring", job, self._on_score_done)

    def _on_score_done(self, done: tuple[Any, int]) -> None:
        summary, candidates = done
        self.refresh()
        self.announce(Change.SCORES)
        left_out = "; ".join(f"{k} left out ({v})" for k, v in summary.unavailable.items())
        self.work_did_finish.emit(
            f"Scored {summary.frames_scored} frames on {summary.provider} ({summary.fps:.1f}/s): "
            f"{candidates} candidates." + (" Stopped early." if summary.cancelled else ""))
        problems = list(summary.errors) + ([f"Members: {left_out}"] if left_out else [])
        if problems:
            self.work_did_fail.emit("\n".join(problems))

    def set_target(self, name: str, classes: list[str] | None = None, prompts: list[str] | None = None,
                   size_m: float | None = None) -> bool:
        """Look for another target from now on (saved in the project's settings); the frames
        already scored are scored again for it, in the background."""
        ws = self._open_or_say()
        if ws is None:
            return False
        before = ws.target
        try:
            target = ws.set_target(name, classes, prompts, size_m=size_m)
        except TriageError as exc:
            self.work_did_fail.emit(f"The target could not be set: {exc}")
            return False
        self.announce(Change.CARDS)
        if target == before:
            self.work_did_finish.emit(f"This project looks for {target.describe()}.")
            return True
        self.work_did_finish.emit(f"This project now looks for {target.describe()}.")
        if ws.frames.frame_count():
            self.score()  # the zero-shot members' scores depend on the target
        return True

    # -- learning --------------------------------------------------------------------------
    def learn(self) -> None:
        """Learn from the decisions: the ranking of active review and a new head (every frame
        re-scored from the cache), in the background."""
        ws = self._open_or_say()
        if ws is None:
            return
        from triage_app.core.learning.loop import learn

        def done(out: Any) -> None:
            self.refresh()
            self.announce(Change.SCORES)
            said = []
            if out.ranking is not None:
                said.append(f"Review order: {out.ranking.describe()}.")
            r = out.head
            if r is not None:
                auc = "n/a" if r.cv_auc is None else f"{r.cv_auc:.3f}"
                ctx = "" if r.cv_auc_context is None else f" (with context features {r.cv_auc_context:.3f})"
                said.append(f"Head version {r.head_id}: {r.positives} accepted / {r.negatives} rejected, "
                            f"cross-validated AUC {auc}{ctx}; reads "
                            f"{'the whole frame' if r.features_used == 'whole_frame' else 'pooled tiles'}; "
                            f"{r.rescored} frames re-scored.")
                if r.cv_auc is not None and r.cv_auc < 0.5:
                    self.work_did_fail.emit(f"The head's cross-validated AUC is {r.cv_auc:.2f}, worse than chance: "
                                            "its scores say nothing about these decisions yet (check the labels, or "
                                            "the target the project looks for).")
            self.work_did_finish.emit(" ".join(said) or f"Nothing learnt yet: {out.note}.")

        head = ws.role == "supervisor"  # on a team store, an analyst's window learns the review order only
        self._run("Learning", lambda progress, cancel: learn(ws, head=head), done)

    def finetune(self, blocks: int = 2, epochs: int = 6, deploy: str = "auto") -> None:
        """Compare fine-tuning the backbone with the head; deploy it as a member when it wins
        (``deploy``), then score every frame with it."""
        ws = self._open_or_say()
        if ws is None:
            return
        from triage_app.core.learning.finetune import FinetuneCancelled, finetune_comparison
        from triage_app.core.review.audit import refresh_audit

        def work(progress: Any, cancel: Any) -> Any:
            try:
                r = finetune_comparison(ws, blocks=blocks, epochs=epochs, progress=progress, deploy=deploy, cancel=cancel)
            except FinetuneCancelled:
                return None
            if r.deployed:
                refresh_audit(ws)
            return r

        def done(r: Any) -> None:
            if r is None:
                self.work_did_finish.emit("Fine-tuning stopped; nothing was deployed.")
                return
            if r.deployed:
                self.refresh()
                self.announce(Change.CARDS | Change.SCORES)
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
        ws = self._open_or_say()
        if ws is None:
            return
        from triage_app.core.learning.label_check import queue_for_rereview, suspicious_decisions

        def work(progress: Any, cancel: Any) -> int:
            return queue_for_rereview(ws, suspicious_decisions(ws))

        def done(n: int) -> None:
            self.announce(Change.QUEUE)  # the review queue picks the frames up
            self.work_did_finish.emit(f"Label check: {n} decisions look wrong and are back in the review queue.")

        self._run("Checking labels", work, done)

    # -- demo ------------------------------------------------------------------------------
    def build_demo(self, root: Path) -> None:
        """Build the demo project as a background task, then open it (the window is up meanwhile)."""
        from triage_app.core.evaluation.demo import run_demo

        def job(progress: Any, cancel: Any) -> Any:
            class Bar:
                def __init__(self, _what: str) -> None:
                    pass

                def __call__(self, done: int, total: int | None) -> None:
                    progress(done, total)

            return run_demo(root, progress_factory=Bar)

        def done(summary: Any) -> None:
            self.open_project(root)
            self.work_did_finish.emit(f"Demo ready in {root}: {summary.candidates} frames flagged; the review queue "
                                      f"may also hold a few dropped frames, as a blind audit.")
            self.demo_did_open.emit(str(root))

        self._run("Building the demo", job, done)

    def cancel_work(self) -> None:
        for task in self._tasks:
            task.cancel.set()

    def close(self) -> None:
        self._watch.stop()
        self.cancel_work()
        QThreadPool.globalInstance().waitForDone(30000)
        if self.ws is not None:
            self.ws.close()
            self.ws = None
