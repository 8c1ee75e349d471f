"""The one way the window runs core work off the GUI thread, and says what it changed.

``run_task(fn, on_done, on_fail, on_progress)`` calls ``fn(progress=..., cancel=...)`` on a
pool thread. Its result, its error and its progress come back as signals, which Qt delivers
on the GUI thread, so the callbacks may touch widgets; the task itself never does. A failure
is logged with its traceback and handed to ``on_fail`` as a message for the user.

:class:`Change` names what a piece of work changed in the project; controllers announce
it on one signal and the main window routes it to the views that show it.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from enum import IntFlag
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from triage_app.core.learning.preload import preload

log = logging.getLogger(__name__)


class Change(IntFlag):
    """What changed in the open project."""

    NONE = 0
    SOURCES = 1  # footage added, frames ingested
    SCORES = 2  # frames scored or re-scored (a retrain, a new member)
    DECISIONS = 4  # decisions made or undone
    POLICY = 8  # a new policy is in force
    CARDS = 16  # a member joined or left the project's ensemble
    QUEUE = 32  # frames put back in the queue (the label check)


class TaskSignals(QObject):
    progress_did_change = Signal(int, int)  # done, total (-1 when unknown)
    task_did_finish = Signal(object)
    task_did_fail = Signal(str)


class Task(QRunnable):
    """Calls ``fn(progress=..., cancel=...)`` on a pool thread."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn
        self.signals = TaskSignals()
        self.cancel = threading.Event()

    def _progress(self, done: int, total: int | None) -> None:
        self.signals.progress_did_change.emit(done, -1 if total is None else total)

    def run(self) -> None:
        try:
            preload()  # the first import of scikit-learn, in one thread at a time
            result = self.fn(progress=self._progress, cancel=self.cancel)
        except Exception as exc:  # noqa: BLE001 - shown to the user, traceback logged
            log.error("background task failed:\n%s", traceback.format_exc())
            self.signals.task_did_fail.emit(str(exc))
        else:
            self.signals.task_did_finish.emit(result)


def run_task(fn: Callable[..., Any], on_done: Callable[[Any], None] | None = None,
             on_fail: Callable[[str], None] | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> Task:
    """Start ``fn`` on the thread pool; the callbacks run on the GUI thread."""
    task = Task(fn)
    if on_progress is not None:
        task.signals.progress_did_change.connect(on_progress)
    if on_done is not None:
        task.signals.task_did_finish.connect(on_done)
    if on_fail is not None:
        task.signals.task_did_fail.connect(on_fail)
    QThreadPool.globalInstance().start(task)
    return task
