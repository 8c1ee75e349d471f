"""scripts/stop_anatomy.py: where review's stop lies against the stops a count erring only by
chance would have allowed, after any decision, at review's learnings, and with its guard."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "stop_anatomy.py"


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("stop_anatomy", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _recording(reached_at: int) -> dict[str, Any]:
    """1,000 frames, 100 positives (each alone in capture order): 90 among the first 100 shown,
    then one in every 10 shown up to the 200th; learnings every 25 decisions, review's own
    estimate saying the target is reached from ``reached_at`` on."""
    frames = 1000
    positives = set(range(0, 180, 2))  # 90 positives among frames 0..179
    late = list(range(500, 510))  # 10 more positives, shown one in every 10 from the 110th
    positives |= set(late)
    first = sorted(positives - set(late)) + [f for f in range(1, 20, 2)]  # 90 positives, 10 negatives
    rest = [f for f in range(frames) if f not in set(first) | set(late)]
    shown = list(first)
    for k, f in enumerate(late):
        shown += rest[k * 9:(k + 1) * 9] + [f]
    shown += rest[len(late) * 9:]
    learnings = [dict(reviewed=n, found=0, model_low=None, previous_low=None, reached=n >= reached_at, remaining=None,
                      remaining_high=None) for n in range(25, frames + 1, 25)]
    return dict(learnings=learnings, shown=shown, positives=positives, frames=frames,
                positions={f: (1, f) for f in range(frames)}, target=0.95, confidence=0.95, guard=25)


def test_each_stop_is_no_earlier_than_the_one_before_it() -> None:
    mod = _module()
    stops = dict(mod.anatomy(_recording(reached_at=450)))
    at95 = stops["95 % of the positives shown"]
    any_decision = stops["chance alone, after any decision"]
    learnings = stops["chance alone, at review's learnings"]
    guarded = stops["chance alone, at the learnings, with the guard"]
    # 95 of 100 found when the 5th late positive is shown: 100 + 5 * 10 decisions
    assert at95 == 150
    assert at95 <= any_decision <= learnings <= guarded
    assert learnings % 25 == 0 and learnings - any_decision < 25  # the first learning at or after it
    assert guarded == learnings + 25  # the chance count keeps agreeing: one learning later
    assert stops["review's estimate (its stop)"] == 450  # review's own: where its estimate said so


def test_the_chance_count_reads_the_targets_left_at_each_point() -> None:
    mod = _module()
    rec = _recording(reached_at=10_000)
    assert dict(mod.anatomy(rec))["review's estimate (its stop)"] is None
    found, left = mod._truth_at(rec, 150)
    assert (found, len(left)) == (95, 5)
    # 5 left of 100: a Poisson count about 5 reaches 11 at 95 %, 95 / 106 < 95 %: no stop yet
    assert not mod._chance_stop(rec, 150)
    assert mod._chance_stop(rec, 200)  # all 100 found: nothing left
