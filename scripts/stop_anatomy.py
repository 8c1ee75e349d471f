"""Where review's stop lies against what the ranking's order allows, learning by learning.

Replays a labelled set through the product's own loop (the arguments of ``triage evaluate``
after ``--``), records review's estimate at every learning, and prints the stops these would
have made (the first four each no earlier than the one before; review's own can come before
them where its estimate is bolder than the truth allows):

- **95 % shown**: where the ranking's order had shown 95 % of the positives;
- **chance alone, any decision**: a count of the targets left that erred only by chance
  (``floor_stop``: drawn about the true number left, spread as the runs it forms), read after
  every decision (the replay's "earliest honest stop");
- **chance alone, at the learnings**: the same count read only where review reads its
  estimate, at its learnings;
- **and the guard**: also at the learning ``review.stop_guard`` decisions earlier (review's
  rule against the lulls between clusters of targets);
- **review**: review's own estimate at its learnings, with the guard (its stop).

What lies between the last two is the estimate's caution (its uncertainty and bias); between
the second and the fourth, the cadence of learning and the guard.

    python scripts/stop_anatomy.py [--save FILE] [--table] -- IMAGES_OR_VIDEO --truth T [evaluate options]
    python scripts/stop_anatomy.py --load FILE [--table]
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

import triage_app.core.evaluation.replay as replay_module
import triage_app.core.review.progress as progress_module
from triage_app.core.review.progress import MIN_FOUND, MIN_REVIEWED, capture_positions, clump_factor, target_runs
from triage_app.core.review.session import ReviewSession


def record(evaluate_args: list[str]) -> dict[str, Any]:
    """Run ``triage evaluate`` with review's progress kept after every learning, and the order
    the frames were shown in."""
    from triage_app.cli import main as cli

    rec: dict[str, Any] = {"learnings": []}
    learn, refresh, sum_up = replay_module.learn, ReviewSession.refresh, replay_module._sum_up_active
    samples = progress_module.remaining_samples
    learnt = {"now": False}
    drawn: list[np.ndarray] = []
    spreads: list[float] = []

    def sampling(*a: Any, **k: Any) -> np.ndarray:  # review's draws of the targets left, kept
        out = samples(*a, **k)
        drawn.append(np.asarray(out))
        spreads.append(float(k.get("design_effect", 1.0)))
        return out

    def learning(ws: Any, *a: Any, **k: Any) -> Any:
        learnt["now"] = True
        return learn(ws, *a, **k)

    def refreshed(self: ReviewSession) -> int:
        drawn.clear()
        spreads.clear()
        out = refresh(self)
        if learnt["now"] and self.progress is not None:
            learnt["now"] = False
            p = self.progress
            # The recall's quantiles from the same draws, for the stop at other assurances.
            recall = p.found / (p.found + drawn[0]) if drawn and p.found else None
            quantiles = {} if recall is None else {q: float(np.quantile(recall, q)) for q in QUANTILES}
            rec["learnings"].append(dict(reviewed=p.reviewed, found=p.found, model_low=p.model_low,
                                         previous_low=p.previous_low, reached=p.reached, remaining=p.remaining,
                                         remaining_high=p.remaining_high, quantiles=quantiles,
                                         spread=spreads[0] if spreads else None))
        return out

    def summed(res: Any, session: ReviewSession, shown: list[int], known: set[int], positives: set[int],
               seed: int) -> None:
        sum_up(res, session, shown, known, positives, seed)
        rec.update(shown=list(shown), positives=set(positives), frames=len(known),
                   positions=capture_positions(session.ws.frames.frames_by_id(sorted(known))),
                   target=res.target_recall, confidence=res.confidence, guard=session.ws.settings.review.stop_guard)

    replay_module.learn, ReviewSession.refresh, replay_module._sum_up_active = learning, refreshed, summed
    progress_module.remaining_samples = sampling
    try:
        code = cli(["evaluate", *evaluate_args])
    finally:
        replay_module.learn, ReviewSession.refresh, replay_module._sum_up_active = learn, refresh, sum_up
        progress_module.remaining_samples = samples
    if code or "shown" not in rec:
        raise SystemExit(f"triage evaluate did not complete an active replay (exit {code})")
    return rec


ASSURANCES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
QUANTILES = tuple(sorted({round(1 - a, 3) for a in ASSURANCES} | set(ASSURANCES) | {0.025, 0.975}))


def assurance_stops(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Where review's rule would have stopped at each assurance, read from the recording: the
    first learning whose lower bound (the recall's 1 - assurance quantile) reaches the target,
    after the floor of frames and targets, and whose reference learning (the latest at least
    the guard's decisions earlier) said so too. The reference's bound is the one that learning
    recorded, where review reads it again from the decisions made up to it: the same decisions
    and forecasts, so the same bound up to the draws' seed."""
    out = []
    learnings = [L for L in rec["learnings"] if L.get("quantiles")]
    frames, positives, target = rec["frames"], rec["positives"], rec["target"]
    for a in ASSURANCES:
        low = round(1 - a, 3)
        at = _guarded(learnings, rec["guard"], lambda L, low=low: L["quantiles"][low] >= target,
                      lambda L: L["reviewed"] >= MIN_REVIEWED and L["found"] >= MIN_FOUND)
        row: dict[str, Any] = dict(assurance=a, shown=at)
        if at is not None:
            stop = next(L for L in learnings if L["reviewed"] == at)
            found, _ = _truth_at(rec, at)
            q, true = stop["quantiles"], found / len(positives)
            row.update(share=at / frames, recall=true, median=q[0.5],
                       low=q[low], high=q[round(a, 3)] if a > 0.5 else 1.0, low95=q[0.025], high95=q[0.975])
            row["covers"] = row["low"] - 1e-9 <= true <= row["high"] + 1e-9
            row["covers95"] = q[0.025] - 1e-9 <= true <= q[0.975] + 1e-9
        out.append(row)
    return out


def _guarded(learnings: list[dict[str, Any]], guard: int, says: Any, floor: Any = lambda L: True) -> int | None:
    """The frames shown at the first learning (past ``floor``) where ``says`` holds and held at
    the reference learning too: the latest at least ``guard`` decisions earlier (review's guard)."""
    for k, L in enumerate(learnings):
        ref = [j for j in range(k) if learnings[j]["reviewed"] <= L["reviewed"] - guard]
        if floor(L) and says(L) and ref and says(learnings[ref[-1]]):
            return int(L["reviewed"])
    return None


def _truth_at(rec: dict[str, Any], n: int) -> tuple[int, set[int]]:
    shown = rec["shown"][:n]
    left = rec["positives"] - set(shown)
    return len(rec["positives"]) - len(left), left


def _chance_stop(rec: dict[str, Any], n: int) -> bool:
    """Would a count of the targets left erring only by chance let review stop after ``n`` shown?
    (What ``first_floor`` asks after every decision, asked at one.)"""
    found, left = _truth_at(rec, n)
    spread = clump_factor(target_runs(rec["positions"], left)) if left else 1.0
    return replay_module.floor_stop(found, len(left), n, rec["frames"], rec["target"], rec["confidence"], n,
                                    spread) is not None


def anatomy(rec: dict[str, Any], table: bool = False) -> list[tuple[str, int | None]]:
    """(what, frames shown) of each stop; None where it never came."""
    frames, positives, target = rec["frames"], rec["positives"], rec["target"]
    found_by = np.cumsum([f in positives for f in rec["shown"]])
    reach = np.flatnonzero(found_by >= target * len(positives) - 1e-9)
    at95 = int(reach[0]) + 1 if len(reach) else None
    floor = replay_module.first_floor(rec["shown"], positives, frames, target, rec["confidence"], rec["positions"])
    any_decision = int(floor["shown"]) if floor else None
    learnings = [dict(L, chance=_chance_stop(rec, L["reviewed"])) for L in rec["learnings"]]

    chance_learnings = next((int(L["reviewed"]) for L in learnings if L["chance"]), None)
    review = next((int(L["reviewed"]) for L in learnings if L["reached"]), None)
    if table:
        print("shown   frames  true recall  left  estimated (at most)  bound  chance alone  spread: review's, "
              "the targets left's")
        for L in learnings:
            found, left = _truth_at(rec, L["reviewed"])
            est = "" if L["remaining"] is None else f"{L['remaining']:5.1f} ({L['remaining_high']:5.1f})"
            low = "" if L["model_low"] is None else f"{L['model_low']:.3f}"
            # The runs' spread review gave its count (from the runs of targets found) beside that of
            # the runs the targets truly left form among the frames left.
            used = "" if L.get("spread") is None else f"{L['spread']:.2f}"
            truly = clump_factor(target_runs(rec["positions"], left)) if left else 1.0
            print(f"{L['reviewed']:5d}  {L['reviewed'] / frames:6.1%}  {found / len(positives):10.1%}  {len(left):4d}  "
                  f"{est:>18s}  {low:>5s}  {'stop' if L['chance'] else '':12s}  {used:>5s}  {truly:.2f}")
    return [("95 % of the positives shown", at95), ("chance alone, after any decision", any_decision),
            ("chance alone, at review's learnings", chance_learnings),
            ("chance alone, at the learnings, with the guard", _guarded(learnings, rec["guard"], lambda L: L["chance"])),
            ("review's estimate (its stop)", review)]


def main() -> int:
    argv = sys.argv[1:]
    rest = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", type=Path, help="keep the recording here")
    ap.add_argument("--load", type=Path, help="read a recording instead of replaying")
    ap.add_argument("--table", action="store_true", help="also print every learning: review's estimate beside the "
                    "truth, and the runs' spread it gave its count beside that of the runs the targets truly left form")
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.load:
        with open(args.load, "rb") as fh:
            rec = pickle.load(fh)
    elif rest:
        rec = record(rest)
        if args.save:
            with open(args.save, "wb") as fh:
                pickle.dump(rec, fh)
    else:
        ap.error("give the arguments of triage evaluate after --, or --load a recording")
    frames, positives = rec["frames"], rec["positives"]
    print(f"{frames} frames, {len(positives)} positive; target {rec['target']:.0%} at {rec['confidence']:.0%} assurance, "
          f"guard {rec['guard']} decisions")
    for what, n in anatomy(rec, args.table):
        if n is None:
            print(f"  {what:48s} never")
            continue
        found, _ = _truth_at(rec, n)
        print(f"  {what:48s} {n / frames:6.1%} of the frames ({n}), true recall then {found / len(positives):.1%}")
    if any(L.get("quantiles") for L in rec["learnings"]):
        print("review's stop at other assurances (the same estimates):")
        print("  assurance  shown   true recall  median  interval at the assurance  95 % interval (2.5-97.5 %)")
        for r in assurance_stops(rec):
            if r["shown"] is None:
                print(f"  {r['assurance']:8.0%}   never")
                continue
            print(f"  {r['assurance']:8.0%}  {r['share']:6.1%}  {r['recall']:10.1%}  {r['median']:6.1%}  "
                  f"{r['low']:6.1%}-{r['high']:6.1%} {'covers' if r['covers'] else 'MISSES'}  "
                  f"{r['low95']:6.1%}-{r['high95']:6.1%} {'covers' if r['covers95'] else 'MISSES'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
