from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_flight
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.model.records import Sampling
from triage_app.core.scoring.pipeline import score_project
from triage_app.core.store import Workspace

SHOTS = Path(__file__).resolve().parents[1] / "screenshots"


@pytest.fixture
def review_project(tmp_path: Path, ortho: np.ndarray) -> Path:
    """A real small project: a flight ingested and scored by the imagenet member, with a
    policy under which every frame is a candidate (one event: frames 0.2 s apart)."""
    video = write_flight(tmp_path / "flight.mp4", ortho, frames=24, size=(640, 360))
    root = tmp_path / "proj"
    (tmp_path / "proj").mkdir()
    (root / "settings.toml").write_text('[review]\nreviewer = "ana"\nevent_gap_s = 0.5\n[scoring]\nmembers = ["imagenet"]\ndevice = "cpu"\n')
    with Workspace(root) as p:
        ingest_source(p, video, sampling=Sampling(every=2))
        score_project(p)
        p.policies.save("any", {"imagenet": 0.0}, created_by="test")
    return root


def shot(widget, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    assert widget.grab().save(str(SHOTS / name))


def open_review(qtbot, root: Path):  # type: ignore[no-untyped-def]
    """The window on ``root``, in review, with the first candidate's picture on screen."""
    from triage_app.gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    assert window.controller.open_project(root)
    window.show_review()
    qtbot.waitUntil(lambda: not window.review_view.canvas._pixmap.pixmap().isNull(), timeout=10000)
    return window
