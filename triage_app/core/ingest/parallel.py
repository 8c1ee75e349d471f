"""Work on a few threads, for decoding.

A 20-megapixel JPEG takes a quarter of a second to decode, and OpenCV releases the GIL while
it does, so a photo survey decodes several images at once (:func:`ordered_map`: results in
the input order, at most one item per worker in flight, so memory stays bounded whatever the
number of files). Several videos are decoded at once by :func:`interleaved`: each stream on
a thread of its own, their frames as they come.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
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


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_ENDED = object()


class _Streams:
    """The threads behind :func:`interleaved`."""

    def __init__(self, streams: Sequence[Callable[[], Iterator[Any]]], stop: Callable[[], bool], backlog: int,
                 busy: Callable[[float], None] | None) -> None:
        self.todo: queue.Queue[Callable[[], Iterator[Any]]] = queue.Queue()
        for stream in streams:
            self.todo.put(stream)
        self.out: queue.Queue[Any] = queue.Queue(backlog)
        self.halt = threading.Event()  # the reader is gone (finished, failed or stopped)
        self.stop, self.busy = stop, busy

    def put(self, item: Any) -> bool:
        while not (self.halt.is_set() or self.stop()):
            try:
                self.out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def drain(self, items: Iterator[Any]) -> None:
        """One stream's items onto the queue, until it ends or the reader is gone."""
        try:
            while True:
                t0 = time.perf_counter()
                item = next(items, _DONE)
                if self.busy is not None:
                    self.busy(time.perf_counter() - t0)
                if item is _DONE or not self.put(item):
                    return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a stream left part-way lets its file go

    def work(self) -> None:
        try:
            while not (self.halt.is_set() or self.stop()):
                try:
                    stream = self.todo.get_nowait()
                except queue.Empty:
                    break
                self.drain(stream())
        except BaseException as exc:  # noqa: BLE001 - raised in the reader
            self.put(_Failure(exc))
        self.put(_ENDED)


def interleaved(streams: Sequence[Callable[[], Iterator[T]]], workers: int, stop: Callable[[], bool],
                backlog: int = 8, busy: Callable[[float], None] | None = None) -> Iterator[T]:
    """The items of every stream (each a function giving an iterator), ``workers`` streams at
    once, each on a thread of its own, in the order they come. ``busy`` gets each thread's
    seconds spent producing items; an error in a stream is raised here; ``stop`` (or the
    caller leaving) ends every thread, which are joined before this returns."""
    state = _Streams(streams, stop, backlog, busy)
    n = max(1, min(workers, len(streams)))
    threads = [threading.Thread(target=state.work, name=f"decode-stream-{k}", daemon=True) for k in range(n)]
    for th in threads:
        th.start()
    running = n
    try:
        while running:
            try:
                item = state.out.get(timeout=0.1)
            except queue.Empty:
                if stop():
                    return
                continue
            if item is _ENDED:
                running -= 1
            elif isinstance(item, _Failure):
                raise item.exc
            else:
                yield item
    finally:
        state.halt.set()
        for th in threads:
            th.join(timeout=30)
