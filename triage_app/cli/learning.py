"""``triage`` commands about learning and label quality (retrain, finetune, labels,
agreement) and about how well the process works (drift, evaluate)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from triage_app.cli.common import ProgressBar, csv_list, cli_settings


def cmd_retrain(args: argparse.Namespace) -> int:
    from triage_app.core.learning.head import retrain
    from triage_app.core.model.cards import load_cards
    from triage_app.core.store import Project

    settings = cli_settings(args)
    with Project(args.project, create=False) as project:
        r = retrain(project, load_cards(settings.models_dir, project.root), settings)
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
                               else "the pooled tile embeddings (mean and max over the frame's tiles)"))
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from triage_app.core.learning.finetune import finetune_comparison, retire_finetuned
    from triage_app.core.model.cards import load_cards
    from triage_app.core.store import Project

    settings = cli_settings(args)
    if args.retire:
        with Project(args.project, create=False) as project:
            done = retire_finetuned(project)
        print("the fine-tuned member is retired: its card and weights are in models/retired/, its scores removed"
              if done else "no fine-tuned member is deployed in this project")
        return 0
    bar = ProgressBar("fine-tune")
    try:
        with Project(args.project, create=False) as project:
            r = finetune_comparison(project, load_cards(settings.models_dir, project.root), settings, blocks=args.blocks,
                                    epochs=args.epochs, max_frames=args.max_frames, progress=bar, deploy=args.deploy)
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
    from triage_app.core.learning.label_check import suspicious_decisions
    from triage_app.core.model.cards import load_cards
    from triage_app.core.store import Project

    settings = cli_settings(args)
    with Project(args.project, create=False) as project:
        found = suspicious_decisions(project, load_cards(settings.models_dir, project.root))
        rows = {r["id"]: r for r in project.frame_rows()}
        if args.queue:
            from triage_app.core.learning.label_check import queue_for_rereview

            queue_for_rereview(project, found)
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
    from triage_app.core.review.agreement import agreement, disagreements
    from triage_app.core.store import Project

    with Project(args.project, create=False) as project:
        pairs, disputed = agreement(project), disagreements(project)
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
    from triage_app.core.learning.drift import flight_drift
    from triage_app.core.model.cards import load_cards
    from triage_app.core.store import Project

    settings = cli_settings(args, {"drift": {"alert_psi": args.alert}} if args.alert else None)
    with Project(args.project, create=False) as project:
        flights = flight_drift(project, load_cards(settings.models_dir, project.root), settings)
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from triage_app.core.evaluation.replay import evaluate, plot_curves
    from triage_app.core.evaluation.truth import read_truth

    overrides: dict[str, Any] = {}
    if args.members:
        overrides["scoring"] = {"members": csv_list(args.members)}
    if args.every:
        overrides["ingest"] = {"every": args.every}
    if args.order:
        overrides.setdefault("review", {})["order"] = args.order
    if args.confidence is not None:
        overrides.setdefault("review", {})["recall_confidence"] = args.confidence
    if not 0 < args.target_recall < 1:
        print(f"error: --target-recall {args.target_recall} must lie between 0 and 1", file=sys.stderr)
        return 2
    settings = cli_settings(args, overrides)
    truth = read_truth(args.truth, set(csv_list(args.truth_classes) or []) or None)
    res = evaluate(args.sources, truth, settings, args.target_recall, args.retrain_every, args.project,
                   args.max_decisions, progress_factory=ProgressBar)
    out = res.as_dict()
    if args.plots:
        out["plots"] = [str(p) for p in plot_curves(res, args.plots)]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1%}"

    print(f"replayed {res.decisions} decisions on {res.frames} frames ({res.positives} positives), "
          f"target recall {res.target_recall:.0%} at {res.confidence:.0%} confidence, retraining every {args.retrain_every}: {res.retrains} retrains")
    print(f"  people were shown {res.shown} frames ({pct(res.workload_fraction)}) holding {res.shown_positives} "
          f"positives: true recall {pct(res.true_recall)}")
    lo, hi = res.estimated_recall_ci
    print(f"  audit-estimated recall of the final policy {pct(res.estimated_recall)} (95 % interval {lo:.1%}-{hi:.1%}); "
          f"its true recall {pct(res.policy_true_recall)} at {pct(res.policy_workload_fraction)} of frames")
    if res.firing_tile_hits is not None:
        print(f"  the firing tile held at least half a truth box on {res.firing_tile_hits} of "
              f"{res.firing_tile_checked} positives shown")
    for m in res.messages:
        print(f"  note: {m}")
    if args.json:
        print(f"JSON written to {args.json}")
    if args.plots:
        print(f"curves written to {args.plots}")
    if res.project:
        print(f"the replayed project, with its decisions, is kept in {res.project}")
    return 0
