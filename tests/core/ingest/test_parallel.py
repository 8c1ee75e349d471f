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
