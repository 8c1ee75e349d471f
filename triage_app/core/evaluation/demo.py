"""The demo: a project built from the footage shipped in ``resources/demo``, scored with
the offline default ensemble. Works on a fresh machine with no network."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from triage_app import data_dir
from triage_app.core.ingest.footage import IngestResult, ingest_source
from triage_app.core.ingest.telemetry.geo import ground_position
from triage_app.core.model.records import Sampling
from triage_app.core.model.settings import APP_NAME
from triage_app.core.review.audit import refresh_audit
from triage_app.core.scoring.pipeline import score_project
from triage_app.core.store import Workspace

DEMO_VIDEO = data_dir("resources") / "demo" / "flight.mp4"
DEMO_FPS = 2.0
DEMO_TARGET = "boat"  # the demo flight follows a river with boats on it


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
    with Workspace(root) as ws:
        if not ws.target_chosen:
            ws.set_target(DEMO_TARGET)
        settings = ws.settings
        bar = progress_factory("demo ingest") if progress_factory else None
        try:
            result: IngestResult = ingest_source(ws, DEMO_VIDEO, sampling=Sampling(fps=DEMO_FPS), progress=bar)
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
            scored = score_project(ws, progress=bar)
            refresh_audit(ws)
        finally:
            if bar is not None and hasattr(bar, "close"):
                bar.close()
        for name, why in scored.unavailable.items():
            summary.lines.append(f"  member {name} left out: {why}")
        policy = ws.policy()
        ids, fused, cand = ws.candidates(policy, scored.members)
        summary.candidates = int(cand.sum())
        summary.lines.append(
            f"  scored with {scored.members_described or 'no member'} on {scored.provider}: "
            f"{len(ids)} frames, {summary.candidates} candidates for review ({policy.describe(scored.members)})"
        )
        order = [i for i in fused.argsort()[::-1] if cand[i]][:5]
        if order:
            summary.lines.append("  strongest candidates:")
        for i in order:
            frame = ws.frames.frame(int(ids[i]))
            best = max(ws.scores.frame_scores(int(ids[i])), key=lambda r: r["score"])
            placed = ground_position(frame, (best["x0"], best["y0"], best["x1"], best["y1"]), settings.geo)
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
