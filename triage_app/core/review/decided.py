"""The frames already decided, to browse, filter and change: an analyst who rejected a frame an
hour ago and now knows better changes that decision where it stands, without undoing
everything decided since.

A change is a new decision for the frame (``via = "revised"``): the history keeps the old
one, the newest stands, the ranking learns from it at the next learning, and it can be taken
back like any other. Made by another reviewer than the one who decided, it is that
reviewer's own opinion beside the first (a disagreement for the supervisor to settle, when
the two differ), never a silent overwrite of a colleague's decision."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from triage_app.core.model.records import Decision, Label
from triage_app.core.store import Workspace

REVISED = "revised"


@dataclass
class DecidedFrame:
    frame_id: int
    label: str  # accept, reject, unsure
    reviewer: str
    decided_at: str
    source_id: int
    source: str
    frame: int  # index in its source
    timestamp_s: float
    fused_score: float | None
    via: str
    changes: int  # decisions on this frame before the standing one (earlier, or changed since)


def decided_frames(ws: Workspace) -> list[DecidedFrame]:
    """Every decided frame's standing decision (its latest not undone), newest first."""
    standing: dict[int, Decision] = {}
    changes: dict[int, int] = {}
    for d in ws.decisions.history():  # oldest first: the last one of a frame stands
        changes[d.frame_id] = changes.get(d.frame_id, -1) + 1
        standing[d.frame_id] = d
    frames = ws.frames.frames_by_id(list(standing))
    names = {int(s["id"]): str(s["name"]) for s in ws.frames.source_summaries()}
    out = []
    for d in sorted(standing.values(), key=lambda d: d.id, reverse=True):
        f = frames.get(d.frame_id)
        if f is None:
            continue
        out.append(DecidedFrame(d.frame_id, d.label.value, d.reviewer, d.decided_at, int(f["source_id"]),
                                names.get(int(f["source_id"]), "?"), int(f["idx"]), float(f["timestamp_s"]),
                                d.fused_score, d.via, changes[d.frame_id]))
    return out


def matching(rows: list[DecidedFrame], label: str | None = None, reviewer: str | None = None,
             source_id: int | None = None) -> list[DecidedFrame]:
    """The rows of one decision, reviewer and source (None: any)."""
    want = None if label is None else Label.parse(label).value
    return [r for r in rows if (want is None or r.label == want) and (reviewer is None or r.reviewer == reviewer)
            and (source_id is None or r.source_id == source_id)]


def revise(ws: Workspace, frame_ids: Sequence[int], label: str | Label, reviewer: str) -> list[int]:
    """Change the standing decision of these frames to ``label``, as ``reviewer``: one new
    decision each (the old ones stay in the history), committed before this returns. Frames
    already standing at ``label`` by the same reviewer are left as they are. Returns the new
    decisions' ids (for undo)."""
    new = Label.parse(label)
    standing = {d.frame_id: d for d in ws.decisions.current()}
    rows = []
    for f in frame_ids:
        d = standing.get(int(f))
        if d is None:
            raise ValueError(f"frame {f} has no decision to change")
        if d.label == new and d.reviewer == reviewer:
            continue
        rows.append(dict(frame_id=int(f), label=new.value, reviewer=reviewer, seconds_spent=0.0,
                         policy_id=d.policy_id, policy=d.policy, member_scores=d.member_scores,
                         fused_score=d.fused_score, via=REVISED, sample_kind=d.sample_kind))
    return ws.decisions.record(rows) if rows else []
