"""Run core operations off the GUI thread. Results and errors come back as signals, which
Qt delivers on the GUI thread; a worker never touches a widget."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from triage_app.core.learning.preload import preload

log = logging.getLogger(__name__)


class WorkerSignals(QObject):
    progress_did_change = Signal(int, int)  # done, total (-1 when unknown)
    worker_did_finish = Signal(object)
    worker_did_fail = Signal(str)


class Worker(QRunnable):
    """Calls ``fn(progress=..., cancel=...)`` on a pool thread."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn
        self.signals = WorkerSignals()
        self.cancel = threading.Event()

    def _progress(self, done: int, total: int | None) -> None:
        self.signals.progress_did_change.emit(done, -1 if total is None else total)

    def run(self) -> None:
        try:
            preload()  # the first import of scikit-learn, in one thread at a time
            result = self.fn(progress=self._progress, cancel=self.cancel)
        except Exception as exc:  # noqa: BLE001 - shown to the user, traceback logged
            log.error("worker failed:\n%s", traceback.format_exc())
            self.signals.worker_did_fail.emit(str(exc))
        else:
            self.signals.worker_did_finish.emit(result)


def start(worker: Worker) -> None:
    QThreadPool.globalInstance().start(worker)
