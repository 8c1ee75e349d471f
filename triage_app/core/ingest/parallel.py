"""Ordered work on a few threads, for decoding still images.

A 20-megapixel JPEG takes a quarter of a second to decode, and OpenCV releases the GIL while
it does, so a photo survey decodes several images at once. Results come back in the input
order, and at most one item per worker is in flight, so memory stays bounded whatever the
number of files.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers(setting: int, share: int = 2, most: int = 8) -> int:
    """``setting`` when given, else one thread per ``share`` cores, 1 to ``most``."""
    return setting or max(1, min(most, (os.cpu_count() or 1) // share))


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int,
                stop: Callable[[], bool] | None = None) -> Iterator[tuple[T, R | None, BaseException | None]]:
    """``(item, fn(item), None)``, or ``(item, None, error)`` when ``fn`` raised, in the order of
    ``items``, computed by ``workers`` threads (inline with one). ``stop`` is asked between
    items; once it says yes nothing more is started or yielded."""
    todo = iter(items)
    if workers <= 1:
        for item in todo:
            if stop is not None and stop():
                return
            try:
                yield item, fn(item), None
            except Exception as exc:  # noqa: BLE001 - handed to the caller with its item
                yield item, None, exc
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="decode")
    ahead: deque[tuple[Any, Future]] = deque()
    try:
        while True:
            while len(ahead) < workers:
                nxt: Any = next(todo, _DONE)
                if nxt is _DONE:
                    break
                ahead.append((nxt, pool.submit(fn, nxt)))
            if not ahead or (stop is not None and stop()):
                return
            item, job = ahead.popleft()
            try:
                yield item, job.result(), None
            except Exception as exc:  # noqa: BLE001
                yield item, None, exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_DONE = object()
