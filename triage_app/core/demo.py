"""The demo: a project built from the footage shipped in ``resources/demo``, scored with
the offline default ensemble. Works on a fresh machine with no network."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from triage_app import REPO_ROOT
from triage_app.core.ingest import IngestResult, ingest_source
from triage_app.core.settings import APP_NAME, load_settings
from triage_app.core.sources import Sampling
from triage_app.core.store import Project

DEMO_VIDEO = REPO_ROOT / "resources" / "demo" / "flight.mp4"
DEMO_FPS = 2.0


def default_demo_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME)) / "demo-project"


@dataclass
class DemoSummary:
    project: Path
    frames: int = 0
    flagged: int = 0
    telemetry_matched: int = 0
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        head = (
            f"demo project: {self.project}\n"
            f"  {self.frames} frames ingested from {DEMO_VIDEO.name} at {DEMO_FPS:g} frames/s, "
            f"{self.flagged} flagged by the quality gate, telemetry matched on {self.telemetry_matched}"
        )
        return "\n".join([head, *self.lines])


def run_demo(project_dir: Path | None = None, progress_factory: Callable[[str], Callable] | None = None) -> DemoSummary:
    """Build (or bring up to date) the demo project and return its summary."""
    root = Path(project_dir) if project_dir else default_demo_dir()
    summary = DemoSummary(project=root)
    settings = load_settings(root)
    with Project(root) as project:
        bar = progress_factory("demo ingest") if progress_factory else None
        try:
            result: IngestResult = ingest_source(project, DEMO_VIDEO, settings, sampling=Sampling(fps=DEMO_FPS), progress=bar)
        finally:
            if bar is not None and hasattr(bar, "close"):
                bar.close()
        if result.error:
            summary.lines.append(f"  error: {result.error}")
            return summary
        summary.frames = result.frames_total
        summary.flagged = sum(result.flagged.values())
        summary.telemetry_matched = result.telemetry_matched
    return summary
