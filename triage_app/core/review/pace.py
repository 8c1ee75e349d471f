"""An analyst's pace in one session: decisions a minute over the time spent deciding (a pause of
more than a few minutes is a break, not slow work), how long the frames still to review would
take at that pace, and a summary of the session in words."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from triage_app.core.model.text import duration_words

#: A gap between two decisions longer than this is a break: it does not count as working time.
BREAK_S = 180.0
#: Decisions before a pace is given (fewer say little).
MIN_DECISIONS = 5


@dataclass
class Pace:
    clock: Callable[[], float] = time.monotonic
    working_s: float = 0.0
    last: float = 0.0  # when the last decision (or the session) began
    labels: Counter[str] = field(default_factory=Counter)
    undone: int = 0
    batches: list[list[str]] = field(default_factory=list)  # each key's decisions, for undo

    def __post_init__(self) -> None:
        self.last = self.clock()

    @property
    def decided(self) -> int:
        return sum(self.labels.values())

    def record(self, labels: list[str]) -> None:
        """The decisions of one key (a frame, an event, a grid page) just now: accept, reject
        or unsure each."""
        if not labels:
            return
        now = self.clock()
        gap = now - self.last
        self.working_s += gap if gap <= BREAK_S else 0.0
        self.last = now
        self.labels.update(labels)
        self.batches.append(list(labels))

    def take_back(self) -> None:
        """The last key's decisions undone: they no longer count as decided."""
        if self.batches:
            batch = self.batches.pop()
            self.labels.subtract(batch)
            self.undone += len(batch)

    def per_minute(self) -> float | None:
        """Decisions a minute of working time (None before there are enough)."""
        if self.decided < MIN_DECISIONS or self.working_s <= 0:
            return None
        return self.decided / (self.working_s / 60.0)

    def time_for(self, frames: int) -> str | None:
        """How long ``frames`` more would take at this pace, in words (None without a pace)."""
        rate = self.per_minute()
        if rate is None or frames <= 0:
            return None
        return duration_words(frames / rate * 60.0)

    def summary(self) -> str:
        """The session in one line."""
        if not self.decided:
            return "This session: no decisions."
        rate = self.per_minute()
        pace = f", {rate:.1f} a minute" if rate is not None else ""
        kinds = ", ".join(f"{self.labels[k]} {word}" for k, word in
                          (("accept", "accepted"), ("reject", "rejected"), ("unsure", "unsure")) if self.labels[k])
        undone = f"; {self.undone} taken back" if self.undone else ""
        return (f"This session: {self.decided} frame{'s' if self.decided != 1 else ''} decided in "
                f"{duration_words(self.working_s)} of work{pace} ({kinds}{undone}).")
