"""Recall control on simulated scores with known ground truth.

Prints, over seeded replays: how often thresholds derived for the target reach it on
held-out frames, and how often the audit's 95 % interval covers the true recall, at the
supervisor's assurance (the confidence of the recall bound the thresholds are set at).
With --cold-start: the first policy of a project, from a share of the frames reviewed in
capture order and no audit yet.
    python scripts/recall_coverage.py [--trials 200] [--target 0.9] [--audit-share 0.2] [--confidence 0.95]
    python scripts/recall_coverage.py --cold-start [--reviewed 0.2] [--confidence 0.95]

With --active: simulated flights reviewed through the product's own active-review loop (the
queue, learning every 25 decisions, the stopping point): the share of frames shown when 90,
95, 98 and 100 % of the targets had been, beside a random order's; where review stopped by
itself, its true recall then, and how often the interval covered it.
    python scripts/recall_coverage.py --active [--trials 20] [--frames 2000] [--prevalence 0.1] [--target 0.95]
"""

from __future__ import annotations

import argparse
import json

from triage_app.core.evaluation.recall_sim import cold_start, simulate_flights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--audit-share", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--confidence", type=float, default=0.95)
    ap.add_argument("--cold-start", action="store_true")
    ap.add_argument("--reviewed", type=float, default=0.2, help="cold start: share of frames reviewed")
    ap.add_argument("--active", action="store_true", help="the active-review loop on simulated flights")
    ap.add_argument("--frames", type=int, default=2000, help="active: frames per flight")
    ap.add_argument("--prevalence", type=float, default=0.10, help="active: share of frames holding the target")
    ap.add_argument("--separation", type=float, default=2.0, help="active: how clearly the embeddings show the target")
    ap.add_argument("--burst", type=int, default=1, help="active: frames per run of near duplicates (a video "
                    "sampled a few times a second; 1 = every frame its own scene)")
    ap.add_argument("--runs", action="store_true", help="active: print every trial, not only the summary")
    args = ap.parse_args()
    if args.active:
        from triage_app.core.evaluation.active_sim import run_active_trial, summarise

        trials = [run_active_trial(args.seed + i, frames=args.frames, prevalence=args.prevalence, target=args.target,
                                   confidence=args.confidence, separation=args.separation, burst=args.burst)
                  for i in range(args.trials)]
        result = summarise(trials, args.target)
        if not args.runs:
            result.pop("runs")
        result.update(frames=args.frames, prevalence=args.prevalence, separation=args.separation, burst=args.burst)
    elif args.cold_start:
        result = cold_start(args.trials, seed=args.seed, target=args.target, reviewed=args.reviewed,
                            confidence=args.confidence)
        result["reviewed"] = args.reviewed
    else:
        result = simulate_flights(args.trials, seed=args.seed, target=args.target, audit_share=args.audit_share,
                        confidence=args.confidence)
    result["confidence"] = args.confidence
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
