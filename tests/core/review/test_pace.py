"""The analyst's pace: decisions a minute of working time, breaks left out, undo counted back,
and what the frames still to review would take."""

from __future__ import annotations

from triage_app.core.review.pace import Pace


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_pace_leaves_breaks_out_and_counts_undo_back() -> None:
    clock = Clock()
    pace = Pace(clock=clock)
    assert pace.per_minute() is None and pace.summary() == "This session: no decisions."
    for label in ["accept", "reject", "reject", "reject"]:
        clock.t += 6.0
        pace.record([label])
    assert pace.per_minute() is None  # four decisions say too little
    clock.t += 600.0  # a ten-minute break
    pace.record(["reject"])
    clock.t += 6.0
    pace.record(["accept"] * 3)  # an event of three frames in one key
    # 8 decisions in 30 s of work (6 s each; the break's 600 s left out): 16 a minute.
    assert pace.decided == 8 and abs(pace.per_minute() - 16.0) < 1e-9
    assert pace.time_for(160) == "10 min"
    assert pace.time_for(0) is None
    pace.take_back()  # the event undone: all three of its frames
    assert pace.decided == 5 and pace.labels["accept"] == 1
    assert pace.summary() == ("This session: 5 frames decided in 30 s of work, 10.0 a minute "
                              "(1 accepted, 4 rejected; 3 taken back).")
