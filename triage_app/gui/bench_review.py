"""``triage bench review``: drive the real window (offscreen) through N decisions and
measure the latency from key press to the next candidate on screen."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

OPEN_SCRIPT = """
import os, sys, time
t0 = time.perf_counter()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtWidgets import QApplication
from triage_app.gui.main_window import MainWindow
app = QApplication([])
w = MainWindow(); w.resize(1400, 900); w.show()
w.controller.open_project(sys.argv[1]); w.show_review()
shown = []
w.review.frame_did_show.connect(lambda f: shown.append(f))
while not shown and time.perf_counter() - t0 < 30:
    app.processEvents()
print(time.perf_counter() - t0, "torch" in sys.modules, flush=True)
w.close()
os._exit(0)
"""


def make_review_project(root: Path, frames: int, width: int = 1920, height: int = 1080) -> Path:
    """A project over a generated H.264 flight whose every frame is a candidate (scores are
    synthetic: this measures the review path, not the models), with the review pictures that
    scoring keeps made by the function the window uses for frames scored without them."""
    from triage_app.core.evaluation.bench import make_h264_flight
    from triage_app.core.ingest.footage import ingest_source
    from triage_app.core.ingest.pictures import make_pictures
    from triage_app.core.model.records import Sampling
    from triage_app.core.store import Workspace

    video = make_h264_flight(root.parent / f"review-flight-{frames}.mp4", frames / 30.0 + 0.5, width, height, bitrate="20M")
    with Workspace(root) as ws:
        ingest_source(ws, video, sampling=Sampling())
        store = ws.scores
        v = store.model_version("imagenet", "imagenet", "bench")
        rng = np.random.default_rng(0)
        rows = []
        for f in ws.frames.frame_rows():
            x0, y0 = int(rng.integers(0, width - 448)), int(rng.integers(0, height - 448))
            rows.append(dict(frame_id=f["id"], member="imagenet", model_version_id=v, score=float(rng.uniform(0.3, 1.0)),
                             tile=3, x0=x0, y0=y0, x1=x0 + 448, y1=y0 + 448, tiles=19))
        store.commit_scores(rows, {})
        ws.policies.save("any", {"imagenet": 0.25}, created_by="bench")
        make_pictures(ws)
    return root


def _drive(root: Path, decisions: int, think_ms: float) -> tuple[list[float], int, float]:
    """Open the project in the real window and decide ``decisions`` frames by key, an analyst's
    look of ``think_ms`` before each key; the latencies from key to the next picture on screen."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from triage_app.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    window = MainWindow()
    window.resize(1400, 900)
    window.show()
    window.controller.open_project(root)
    window.show_review()
    view, review = window.review_view, window.review
    shown: list[tuple[int, float]] = []
    review.frame_did_show.connect(lambda fid: shown.append((fid, time.perf_counter())))

    def wait_until(pred, timeout: float = 10.0) -> None:
        end = time.perf_counter() + timeout
        while not pred() and time.perf_counter() < end:
            app.processEvents()

    wait_until(lambda: bool(shown))
    latencies: list[float] = []
    t_start = time.perf_counter()
    for i in range(decisions):
        end = time.perf_counter() + think_ms / 1000.0
        while time.perf_counter() < end:  # the analyst looks; the prefetcher works
            app.processEvents()
        expected = review.session.queue.items[review.session.position + 1].frame_id if len(review.session.queue) > 1 else None
        n = len(shown)
        t0 = time.perf_counter()
        QTest.keyClick(view, Qt.Key.Key_A if i % 7 == 0 else Qt.Key.Key_R)
        if expected is None:
            break
        wait_until(lambda n=n, expected=expected: len(shown) > n and shown[-1][0] == expected)
        latencies.append((shown[-1][1] - t0) * 1000.0)
    total = time.perf_counter() - t_start
    made = review.decisions_made
    window.close()  # as a person closes it: the session's summary kept, then the project closed
    return sorted(latencies), made, total


def _summary(lat: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(lat), 2), "p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 2),
            "max_ms": round(lat[-1], 2)}


def bench_review(decisions: int = 500, think_ms: float = 150.0, workdir: Path | None = None) -> dict[str, Any]:
    """Key to next picture in active order (out of capture order) over 1080p H.264, with the
    pictures scoring keeps and, in the same run, with none kept (every frame decoded from the
    footage, as before pictures were kept)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from triage_app.core.ingest.pictures import PICTURES_DIR
    from triage_app.core.model.settings import save_section

    tmp = tempfile.TemporaryDirectory(prefix="triage-review-bench-") if workdir is None else None
    base = Path(tmp.name) if tmp else Path(workdir)
    root = base / f"review-project-{decisions}"
    if not root.exists():
        make_review_project(root, 2 * decisions + 20)  # decisions for each of the two runs
    kept = list((root / PICTURES_DIR).rglob("*.jpg"))
    out = subprocess.run([sys.executable, "-c", OPEN_SCRIPT, str(root)], capture_output=True, text=True)
    open_s, torch_loaded = out.stdout.split()[:2]
    settings = root / "settings.toml"
    save_section("review", {"picture_px": 1280}, path=settings, replace=False)
    with_pictures, made, total = _drive(root, decisions, think_ms)
    save_section("review", {"picture_px": 0}, path=settings, replace=False)
    try:
        without, _made, _total = _drive(root, decisions, think_ms)
    finally:
        save_section("review", {"picture_px": 1280}, path=settings, replace=False)
    if tmp:
        tmp.cleanup()
    result: dict[str, Any] = {
        "decisions": made,
        **_summary(with_pictures),
        "decisions_per_s": round(made / total, 2),
        "think_ms": think_ms,
        "decisions_per_s_excluding_think": round(made / (total - think_ms / 1000.0 * made), 2),
        "without_pictures": _summary(without),
        "p95_ratio_without_to_with": round(_summary(without)["p95_ms"] / max(_summary(with_pictures)["p95_ms"], 1e-3), 1),
        "picture_kb": round(sum(p.stat().st_size for p in kept) / max(1, len(kept)) / 1024, 1),
        "window_open_s": round(float(open_s), 2),
        "torch_imported_at_open": torch_loaded == "True",
        "frame_size": "1920x1080 H.264, active order",
    }
    return result
