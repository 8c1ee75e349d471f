"""Ordered decoding on a few threads: input order kept, errors handed back with their item,
bounded work in flight, and a stop honoured."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from triage_app.core.ingest.parallel import ordered_map
from triage_app.core.ingest.sources import open_source
from triage_app.core.model.records import Sampling


@pytest.mark.parametrize("workers", [1, 4])
def test_results_keep_the_input_order_and_errors_stay_with_their_item(workers: int) -> None:
    lock = threading.Lock()
    running = {"now": 0, "most": 0}

    def slow_square(x: int) -> int:
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        time.sleep(0.01 * ((x * 7) % 5))  # later items often finish first
        with lock:
            running["now"] -= 1
        if x == 5:
            raise ValueError("five is broken")
        return x * x

    out = list(ordered_map(slow_square, range(12), workers))
    assert [item for item, _, _ in out] == list(range(12))
    assert [r for item, r, e in out if e is None] == [x * x for x in range(12) if x != 5]
    (broken,) = [(item, e) for item, _, e in out if e is not None]
    assert broken[0] == 5 and "five is broken" in str(broken[1])
    assert running["most"] <= workers and (workers == 1 or running["most"] > 1)


def test_a_stop_ends_the_run_without_starting_the_rest() -> None:
    started: list[int] = []
    stop = threading.Event()

    def work(x: int) -> int:
        started.append(x)
        return x

    got = []
    for item, _, _ in ordered_map(work, range(100), 3, stop.is_set):
        got.append(item)
        if item == 4:
            stop.set()
    assert got == [0, 1, 2, 3, 4] and len(started) <= 5 + 3


def test_a_survey_ingests_in_order_with_several_threads_and_names_a_broken_still(tmp_path: Path, ortho: np.ndarray) -> None:
    folder = tmp_path / "survey"
    folder.mkdir()
    for k in range(7):
        cv2.imwrite(str(folder / f"IMG_{k}.jpg"), ortho[200 * k : 200 * k + 300, 150 * k : 150 * k + 400])
    (folder / "IMG_3.jpg").write_bytes(b"\xff\xd8 truncated")
    frames = {w: list(open_source(folder, decode_workers=w).frames(Sampling())) for w in (1, 3)}
    for one, three in zip(frames[1], frames[3], strict=True):
        assert (one.idx, one.path, one.error) == (three.idx, three.path, three.error)
        assert (one.image is None and three.image is None) or np.array_equal(one.image, three.image)
    assert [f.path for f in frames[3]] == [f"IMG_{k}.jpg" for k in range(7)]
    assert frames[3][3].image is None and frames[3][3].error


def test_several_streams_at_once_give_every_item_and_say_an_error() -> None:
    from triage_app.core.ingest.parallel import interleaved

    seen_threads: set[str] = set()
    closed: list[str] = []

    def stream(name: str, n: int, fail_at: int | None = None):
        def items():
            try:
                for i in range(n):
                    seen_threads.add(threading.current_thread().name)
                    if i == fail_at:
                        raise ValueError(f"{name}: broken at {i}")
                    yield name, i
            finally:
                closed.append(name)
        return items

    got = list(interleaved([stream("a", 5), stream("b", 7), stream("c", 3)], 2, lambda: False, backlog=2))
    assert sorted(got) == sorted([("a", i) for i in range(5)] + [("b", i) for i in range(7)] + [("c", i) for i in range(3)])
    assert [i for n, i in got if n == "b"] == list(range(7))  # each stream in its own order
    assert seen_threads <= {"decode-stream-0", "decode-stream-1"} and sorted(closed) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="b: broken at 2"):
        list(interleaved([stream("a", 50), stream("b", 5, fail_at=2)], 2, lambda: False))
    # The reader leaving early ends every thread and closes the streams left part-way.
    closed.clear()
    gen = interleaved([stream("x", 1000), stream("y", 1000)], 2, lambda: False, backlog=1)
    next(gen)
    gen.close()
    assert sorted(closed) == ["x", "y"]
