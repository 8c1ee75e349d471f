"""The demo: a project built from the footage shipped in ``resources/demo``, scored with
the offline default ensemble. Works on a fresh machine with no network."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from triage_app import REPO_ROOT
from triage_app.core.ingest.footage import IngestResult, ingest_source
from triage_app.core.model.cards import load_cards
from triage_app.core.scoring.pipeline import score_project
from triage_app.core.review.active_policy import active_policy, candidate_frames
from triage_app.core.ingest.telemetry.geo import place
from triage_app.core.store.scores import ScoreStore
from triage_app.core.model.settings import APP_NAME, load_settings
from triage_app.core.ingest.sources import Sampling
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
    candidates: int = 0
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
        bar = progress_factory("demo scoring") if progress_factory else None
        try:
            scored = score_project(project, settings, progress=bar)
        finally:
            if bar is not None and hasattr(bar, "close"):
                bar.close()
        for name, why in scored.unavailable.items():
            summary.lines.append(f"  member {name} left out: {why}")
        summary.lines.append(
            f"  scored with {', '.join(scored.members) or 'no member'} on {scored.provider}: "
            f"{scored.frames_with_scores} frames, {scored.candidates} candidates for review ({scored.policy})"
        )
        summary.candidates = scored.candidates
        store = ScoreStore(project)
        policy = active_policy(store, load_cards(settings.models_dir, project.root), settings)
        ids, fused, cand = candidate_frames(store, policy, scored.members)
        order = [i for i in fused.argsort()[::-1] if cand[i]][:5]
        if order:
            summary.lines.append("  strongest candidates:")
        for i in order:
            frame = project.frame(int(ids[i]))
            best = max(store.frame_scores(int(ids[i])), key=lambda r: r["score"])
            placed = place(frame, (best["x0"], best["y0"], best["x1"], best["y1"]), settings.geo)
            if placed.point is not None:  # where the tile lies on the ground
                p = placed.point
                within = f" within {p.radius_m:.0f} m" if p.radius_m is not None else ""
                where = f"on the ground at {p.lat:.5f}, {p.lon:.5f}{within} ({p.distance_m:.0f} m from the aircraft)"
            elif frame["lat"] is not None:
                where = f"aircraft at {frame['lat']:.5f}, {frame['lon']:.5f}"
            else:
                where = "no position"
            summary.lines.append(
                f"    t={frame['timestamp_s']:5.1f}s  fused {fused[i]:.2f}  {best['member']} {best['score']:.2f} "
                f"in tile ({best['x0']},{best['y0']})-({best['x1']},{best['y1']})  {where}"
            )
        summary.lines.append(f"  review them with: triage-app {root}")
    return summary
