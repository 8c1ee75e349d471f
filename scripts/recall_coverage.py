"""Recall control on simulated scores with known ground truth.

Prints, over seeded replays: how often thresholds derived for the target reach it on
held-out frames, and how often the audit's 95 % interval covers the true recall, at the
supervisor's assurance (the confidence of the recall bound the thresholds are set at).
    python scripts/recall_coverage.py [--trials 200] [--target 0.9] [--audit-share 0.2] [--confidence 0.95]
"""

from __future__ import annotations

import argparse
import json

from triage_app.core.recall_sim import replay


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--audit-share", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--confidence", type=float, default=0.95)
    args = ap.parse_args()
    result = replay(args.trials, seed=args.seed, target=args.target, audit_share=args.audit_share,
                    confidence=args.confidence)
    result["confidence"] = args.confidence
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
