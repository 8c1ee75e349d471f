"""Import the scientific libraries once, under a lock, before worker threads use them.

When two threads import scikit-learn for the first time at the same moment, Python's
per-module import locks can hand one of them a partially initialised module (an
ImportError about a circular import). Every background job calls ``preload`` first, so
the first import happens in one thread while the others wait.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_done = False


def preload() -> None:
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        import sklearn.decomposition  # noqa: F401
        import sklearn.linear_model  # noqa: F401
        import sklearn.metrics  # noqa: F401
        import sklearn.model_selection  # noqa: F401
        import sklearn.pipeline  # noqa: F401
        import sklearn.preprocessing  # noqa: F401

        _done = True
