"""``triage`` commands about learning and label quality: retrain, finetune, labels,
agreement, drift."""

from __future__ import annotations

import argparse
import json
from typing import Any

from triage_app.cli.common import ProgressBar, open_project, project_location
from triage_app.core.learning.drift import flight_drift
from triage_app.core.learning.finetune import finetune_comparison, retire_finetuned
from triage_app.core.learning.head import retrain
from triage_app.core.learning.label_check import queue_for_rereview, suspicious_decisions
from triage_app.core.learning.ranker import train_ranking
from triage_app.core.review.agreement import agreement, disagreements
from triage_app.core.review.audit import refresh_audit


def cmd_retrain(args: argparse.Namespace) -> int:
    with open_project(args) as ws:
        ranking = train_ranking(ws)
        if ranking is not None:
            print(f"active review: {ranking.describe()}")
        r = retrain(ws)
    auc = "n/a" if r.cv_auc is None else f"{r.cv_auc:.3f}"
    print(f"head version {r.head_id}: trained on {r.positives} accepted and {r.negatives} rejected frames, "
          f"cross-validated ROC AUC {auc} ({r.cv_folds} folds); re-scored {r.rescored} frames from the cache "
          f"in {r.rescore_seconds:.2f} s")
    if r.cv_auc_context is not None:
        print(f"with context features ({', '.join(r.context_features)}): cross-validated ROC AUC "
              f"{r.cv_auc_context:.3f} against {auc} without")
    if r.cv_auc_whole_frame is not None:
        print(f"whole-frame embedding alone (no tile pooling): cross-validated ROC AUC {r.cv_auc_whole_frame:.3f}")
    print("the head reads " + ("the whole-frame embedding (it cross-validated clearly better)" if r.features_used == "whole_frame"
                               else "the pooled tile features (mean over the frame's tiles, max of their strongest cells)"))
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    if args.retire:
        with open_project(args) as ws:
            done = retire_finetuned(ws)
        print("the fine-tuned member is retired: its card and weights are in models/retired/, its scores removed"
              if done else "no fine-tuned member is deployed in this project")
        return 0
    bar = ProgressBar("fine-tune")
    try:
        with open_project(args) as ws:
            r = finetune_comparison(ws, blocks=args.blocks, epochs=args.epochs, max_frames=args.max_frames, progress=bar,
                                    deploy=args.deploy)
            if r.deployed:
                refresh_audit(ws)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(r.as_dict()))
        return 0
    print(f"{r.frames} decided frames ({r.positives} accepted, {r.negatives} rejected), {r.folds} folds, on {r.device}, "
          f"{r.seconds:.0f} s")
    print(f"  fine-tuned backbone (last {r.blocks} blocks, {r.epochs} epochs): cross-validated ROC AUC {r.cv_auc_finetuned:.3f}")
    print(f"  head on the cached embeddings:                 cross-validated ROC AUC {r.cv_auc_head:.3f}")
    print(f"the evidence favours the {r.favoured}")
    if r.skipped:
        print(f"  {r.skipped} frames left out: their pixels could not be read")
    if r.deployed:
        print(f"deployed as the member 'finetuned' ({r.deployed}), threshold {r.threshold:.3g} (its out-of-fold scores "
              f"keep {r.target_recall:.0%} of the accepted frames); scored {r.rescored} frames with it in "
              f"{r.rescore_seconds:.0f} s")
    elif args.deploy == "auto":
        print("nothing deployed (the head stays the learned member); --deploy always deploys the fine-tuned net anyway")
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    with open_project(args) as ws:
        found = suspicious_decisions(ws)
        rows = {r["id"]: r for r in ws.frames.frame_rows()}
        if args.queue:
            queue_for_rereview(ws, found)
    if args.json:
        print(json.dumps([dict(decision_id=f.decision_id, frame_id=f.frame_id, source_id=rows[f.frame_id]["source_id"], frame=rows[f.frame_id]["idx"],
                               label=f.label, reviewer=f.reviewer, label_probability=round(f.label_probability, 4))
                          for f in found]))
        return 0
    print(f"{len(found)} decisions look wrong (most doubtful first):")
    for f in found:
        r = rows[f.frame_id]
        print(f"  source {r['source_id']} frame {r['idx']}: {f.label} by {f.reviewer or '?'}, "
              f"out-of-fold probability of that label {f.label_probability:.2f}")
    if args.queue:
        print(f"{len(found)} frames are back in the review queue until they are decided again")
    return 0


def cmd_agreement(args: argparse.Namespace) -> int:
    with open_project(args) as ws:
        pairs, disputed = agreement(ws), disagreements(ws)
    if args.json:
        print(json.dumps(dict(pairs=[dict(p, reviewers=list(p["reviewers"])) for p in pairs], disagreements=disputed)))
        return 0
    if not pairs:
        print("no frame has been decided by two reviewers yet (see review.second_review_share)")
    for p in pairs:
        kappa = "n/a" if p["kappa"] is None else f"{p['kappa']:.3f}"
        print(f"{p['reviewers'][0]} / {p['reviewers'][1]}: {p['frames']} frames, agree on {p['agreement']:.0%}, "
              f"Cohen's kappa {kappa}")
    print(f"{len(disputed)} disagreements wait for a supervisor (resolve queue)")
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    with open_project(args, {"drift": {"alert_psi": args.alert}} if args.alert else None) as ws:
        settings = ws.settings
        flights = flight_drift(ws)
    if args.json:
        print(json.dumps([f.as_dict() for f in flights]))
        return 0
    print(f"drift per flight (population stability index against the reference; alert above {settings.drift.alert_psi:g})")
    for f in flights:
        score = "n/a" if f.drift is None else f"{f.drift:.3f}"
        flag = "  ALERT" if f.alert else ""
        rates = f"flagged {f.flag_rate:.0%}" + ("" if f.reference_flag_rate is None else f" (ref {f.reference_flag_rate:.0%})")
        if f.accept_rate is not None:
            ref = "" if f.reference_accept_rate is None else f" (ref {f.reference_accept_rate:.0%})"
            rates += f", accepted {f.accept_rate:.0%} of {f.decisions}{ref}"
        print(f"  {f.name}: drift {score}{flag}; {rates}; against {f.reference}")
        if f.reasons():
            print(f"      {', '.join(f.reasons()[:4])}" + ("" if f.centroid_distance is None else
                                                           f"; embedding centroid distance {f.centroid_distance:.4f}"))
        if f.note:
            print(f"      {f.note}")
    return 0


def add_parsers(sub: Any) -> None:
    rt = sub.add_parser("retrain", help="learn from the decisions: the ranking of active review, and the head member "
                        "(every frame re-scored from the cache)")
    rt.add_argument("project", type=project_location, metavar="PROJECT")
    rt.set_defaults(func=cmd_retrain)

    ft = sub.add_parser("finetune", help="compare fine-tuning the backbone's last blocks with the head, on the same folds, "
                        "and deploy the fine-tuned net as a member when it wins")
    ft.add_argument("project", type=project_location, metavar="PROJECT")
    ft.add_argument("--blocks", type=int, default=2, help="last backbone blocks trained (0: the new output layer only)")
    ft.add_argument("--epochs", type=int, default=6)
    ft.add_argument("--max-frames", type=int, default=1000, help="at most this many decided frames (seeded sample)")
    ft.add_argument("--deploy", choices=["auto", "always", "never"], default="auto",
                    help="auto: when the evidence favours it, train on every decided frame, add it to the project's "
                    "ensemble as the member 'finetuned' and score every frame with it (default auto)")
    ft.add_argument("--retire", action="store_true", help="take a deployed fine-tuned member out of the project")
    ft.add_argument("--json", action="store_true", help="print one JSON object")
    ft.set_defaults(func=cmd_finetune)

    lb = sub.add_parser("labels", help="decisions that the evidence disagrees with (confident learning)")
    lb.add_argument("project", type=project_location, metavar="PROJECT")
    lb.add_argument("--json", action="store_true", help="print one JSON list")
    lb.add_argument("--queue", action="store_true", help="put these frames back into the review queue (re-review)")
    lb.set_defaults(func=cmd_labels)

    ag = sub.add_parser("agreement", help="Cohen's kappa per pair of reviewers, and the disagreements to resolve")
    ag.add_argument("project", type=project_location, metavar="PROJECT")
    ag.add_argument("--json", action="store_true", help="print one JSON object")
    ag.set_defaults(func=cmd_agreement)

    dr = sub.add_parser("drift", help="how far each flight's scores and embeddings moved from the labelled flights")
    dr.add_argument("project", type=project_location, metavar="PROJECT")
    dr.add_argument("--json", action="store_true", help="print one JSON list")
    dr.add_argument("--alert", type=float, help="drift score past which a flight is flagged (default drift.alert_psi)")
    dr.set_defaults(func=cmd_drift)
