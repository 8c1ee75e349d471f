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


def _with_quantiles(rec: dict[str, Any], spread: float) -> dict[str, Any]:
    """Review's recall at each learning drawn about a mean rising from 61 % (0.56 + n / 500,
    at most 99.5 %) with the given spread: its quantiles, as the recording keeps them."""
    from scipy import stats

    for L in rec["learnings"]:
        n = L["reviewed"]
        mean = min(0.995, 0.56 + n / 500)
        L["found"] = len(set(rec["shown"][:n]) & rec["positives"])
        L["quantiles"] = {q: min(1.0, float(stats.norm.ppf(q, mean, spread))) for q in _module().QUANTILES}
    return rec


def test_a_lower_assurance_stops_sooner_with_the_same_guard() -> None:
    mod = _module()
    rows = {r["assurance"]: r for r in mod.assurance_stops(_with_quantiles(_recording(reached_at=10_000), 0.02))}
    # The median reaches 95 % by the 200th frame (0.56 + 200 / 500 = 0.96); the guard wants the
    # learning 25 decisions earlier to agree, so review stops one learning later.
    assert rows[0.5]["shown"] == 225
    # At 95 % the lower bound is 1.645 spreads under the mean: 0.56 + n / 500 >= 0.983 from 225 on.
    assert rows[0.95]["shown"] == 250
    shown = [rows[a]["shown"] for a in mod.ASSURANCES]
    assert shown == sorted(shown)  # more assurance never stops sooner
    r = rows[0.95]
    assert r["recall"] == 1.0 and r["low"] >= 0.95 and r["covers"]  # every positive was shown by then


def test_an_assurance_the_bound_never_reaches_never_stops() -> None:
    mod = _module()
    rows = {r["assurance"]: r for r in mod.assurance_stops(_with_quantiles(_recording(reached_at=10_000), 0.05))}
    assert rows[0.95]["shown"] is None  # 0.995 - 1.645 * 0.05 = 0.913: under the target at every learning
    assert rows[0.5]["shown"] == 225


def test_the_table_puts_review_spread_beside_that_of_the_targets_truly_left(capsys: Any) -> None:
    """Each learning's row: the runs' spread review gave its count, and that of the runs the
    targets not yet shown form in capture order (pairs of neighbours: 2; single frames: 1)."""
    mod = _module()
    rec = _recording(reached_at=10_000)
    rec["positives"] |= {700, 701}  # a pair of neighbouring targets, never shown early
    rec["shown"] = [f for f in rec["shown"] if f not in (700, 701)] + [700, 701]
    for L in rec["learnings"]:
        L["spread"] = 1.5
    mod.anatomy(rec, table=True)
    rows = {int(line.split()[0]): line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    # after 150 shown: the last 5 of the late targets (frames 505-509, a run of 5) and the pair
    # left: (25 + 4) / 7
    assert rows[150][-2:] == ["1.50", f"{29 / 7:.2f}"]
    # after 200 shown: only the pair is left
    assert rows[200][-2:] == ["1.50", "2.00"]
