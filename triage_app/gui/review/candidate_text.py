"""The candidate panel's words and marks: score bars, the filmstrip's captions, the grid's
outlines."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF

from triage_app.gui import theme
from triage_app.gui.review.review_view import member_colour

#: What a decision was, in words, and its mark on the filmstrip.
PAST = {"accept": "Accepted", "reject": "Rejected", "unsure": "Marked unsure"}
MARK = {"accept": " ✓ accepted", "reject": " ✗ rejected", "unsure": " ? unsure"}


def score_bar(score: float, threshold: float | None, colour: str, length: int = 26) -> str:
    """A bar of ``length`` cells for a score in [0, 1], filled to the score, with the
    threshold's cell drawn as a dark tick (rich text)."""
    filled = int(round(length * min(max(score, 0.0), 1.0)))
    tick = None if threshold is None else min(length - 1, int(length * min(max(threshold, 0.0), 1.0)))
    cells = []
    for i in range(length):
        if i == tick:
            tick_colour = theme.tone("bar_tick")
            cells.append(f"<span style='background:{tick_colour}; color:{tick_colour}'>|</span>")
        else:
            bg = colour if i < filled else theme.tone("bar_empty")
            cells.append(f"<span style='background:{bg}'>&nbsp;</span>")
    return "".join(cells)


def short_time(t: float) -> str:
    """A frame's time for a caption, precise to the hundredth (frames sampled every 0.25 s
    must not read alike): ``0.25s``, ``12.5s``, ``3:07.25``."""
    if t < 60:
        return f"{t:.2f}".rstrip("0").rstrip(".") + "s"
    minutes, seconds = divmod(t, 60)
    return f"{int(minutes)}:{seconds:05.2f}"


def grid_boxes(ws: Any, frame_ids: list[int]) -> dict[int, tuple[list[tuple[QRectF, str]], int]]:
    """Each frame's firing tiles (every member's best, in the member's colour) in the frame's
    own pixels, and the frame's width: what the grid outlines on its thumbnails."""
    rows = ws.scores.frame_score_rows(frame_ids)
    frames = ws.frames.frames_by_id(frame_ids)
    members = sorted(ws.cards)
    out = {}
    for fid in frame_ids:
        f = frames.get(fid, {})
        width, height = int(f.get("width") or 0), int(f.get("height") or 0)
        boxes = [(QRectF(r["x0"], r["y0"], r["x1"] - r["x0"], r["y1"] - r["y0"]), member_colour(m, members))
                 for m, r in rows.get(fid, {}).items() if r.get("x0") is not None
                 # the whole frame outlined says nothing on a thumbnail
                 and (r["x1"] - r["x0"]) * (r["y1"] - r["y0"]) < 0.9 * width * height]
        out[fid] = (boxes, width)
    return out
