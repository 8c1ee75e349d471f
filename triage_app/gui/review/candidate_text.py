"""The candidate panel's words and marks: score bars and the filmstrip's captions."""

from __future__ import annotations

from triage_app.gui import theme


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
