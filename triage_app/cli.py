"""``triage``: the core from a terminal (ingest, score, report, export, demo, bench)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from triage_app import __version__
from triage_app.core.errors import TriageError

log = logging.getLogger("triage_app")


class _Bar:
    """A tqdm progress bar fed by (done, total) callbacks."""

    def __init__(self, desc: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=False, disable=None)

    def __call__(self, done: int, total: int | None) -> None:
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def _settings(args: argparse.Namespace, overrides: dict[str, Any] | None = None):
    from triage_app.core.settings import load_settings

    project = getattr(args, "project", None)
    return load_settings(Path(project) if project else None, overrides=overrides)


def _print_ingest(results: list, out=None) -> None:
    out = out or sys.stdout
    flagged: Counter[str] = Counter()
    for r in results:
        if r.error:
            print(f"  FAILED  {r.error}", file=out)
            continue
        flagged.update(r.flagged)
        flags = ", ".join(f"{k} {v}" for k, v in sorted(r.flagged.items())) or "none"
        tele = f"telemetry matched {r.telemetry_matched}/{r.frames_total}" if r.telemetry_path or r.telemetry_matched else "no telemetry"
        print(f"  {r.name}: {r.frames_total} frames ({r.frames_new} new), flagged: {flags}, {tele}", file=out)
        for w in r.warnings[:5]:
            print(f"    warning: {w}", file=out)
        if len(r.warnings) > 5:
            print(f"    ... and {len(r.warnings) - 5} more warnings (see the project's messages)", file=out)
    total = sum(r.frames_total for r in results)
    print(f"{total} frames from {sum(1 for r in results if r.ok)} of {len(results)} sources; flagged by reason: "
          + (", ".join(f"{k} {v}" for k, v in sorted(flagged.items())) or "none"), file=out)


def cmd_ingest(args: argparse.Namespace) -> int:
    from triage_app.core.ingest import ingest_source
    from triage_app.core.sources import Sampling
    from triage_app.core.store import Project

    overrides: dict[str, Any] = {}
    if args.every:
        overrides.setdefault("ingest", {})["every"] = args.every
    if args.fps:
        overrides.setdefault("ingest", {})["fps"] = args.fps
    settings = _settings(args, overrides)
    sampling = Sampling(settings.ingest.every, settings.ingest.fps)
    results = []
    with Project(args.project) as project:
        for uri in args.sources:
            bar = _Bar(Path(uri).name or uri)
            try:
                results.append(ingest_source(project, uri, settings, args.telemetry, sampling, progress=bar))
            finally:
                bar.close()
    print(f"ingested into {args.project} ({sampling.describe()}):")
    _print_ingest(results)
    return 0 if any(r.ok and r.frames_total for r in results) else 1


def _print_score(summary, out=None) -> None:
    out = out or sys.stdout
    for name, why in summary.unavailable.items():
        print(f"  member {name} left out: {why}", file=out)
    for err in summary.errors[:10]:
        print(f"  problem: {err}", file=out)
    print(
        f"scored {summary.frames_scored} frames ({summary.frames_pending} were waiting) with "
        f"{', '.join(summary.members) or 'no member'} on {summary.provider} at {summary.fps:.1f} frames/s; "
        f"{summary.candidates} candidates of {summary.frames_with_scores} scored frames ({summary.policy})"
        + ("; stopped early, run again to resume" if summary.cancelled else ""),
        file=out,
    )


def cmd_score(args: argparse.Namespace) -> int:
    from triage_app.core.pipeline import score_project
    from triage_app.core.store import Project

    overrides: dict[str, Any] = {"scoring": {}}
    if args.device:
        overrides["scoring"]["device"] = args.device
    if args.batch:
        overrides["scoring"]["batch"] = args.batch
    if args.members:
        overrides["scoring"]["members"] = [m.strip() for m in args.members.split(",") if m.strip()]
    settings = _settings(args, overrides)
    with Project(args.project, create=False) as project:
        bar = _Bar("scoring")
        try:
            summary = score_project(project, settings, progress=bar)
        finally:
            bar.close()
    _print_score(summary)
    return 0 if summary.frames_scored or (summary.frames_with_scores and not summary.errors) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from triage_app.core import bench

    if args.what == "rescore":
        result = bench.bench_rescore(args.frames)
        print(json.dumps(result) if args.json else "\n".join(f"{k:>24}: {v}" for k, v in result.items()))
        return 0
    work = Path(args.workdir) if args.workdir else Path.cwd() / "bench-out"
    work.mkdir(parents=True, exist_ok=True)
    if args.what == "review":
        from triage_app.gui.bench_review import bench_review

        result = bench_review(args.decisions, args.think_ms, work)
    elif args.memory:
        result = bench.bench_memory(work, args.sample_fps or 1.0, args.device)
    else:
        video = Path(args.input) if args.input else work / f"flight-{args.seconds:g}s.mp4"
        if not video.exists():
            bench.make_h264_flight(video, args.seconds)
        result = bench.bench_pipeline(video, args.sample_fps, args.device, args.batch, pipeline_only=args.pipeline_only,
                                      precision=args.precision)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    from triage_app.core.audit import propose_policy, refresh_audit
    from triage_app.core.members.cards import load_cards
    from triage_app.core.store import Project
    from triage_app.core.store.scoring import ScoreStore

    settings = _settings(args)
    with Project(args.project, create=False) as project:
        cards = load_cards(settings.models_dir, project.root)
        try:
            derived, rule = propose_policy(project, cards, settings, args.target_recall, args.rule, confidence=args.confidence)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        frames = len(ScoreStore(project).score_table()[0])
        print(f"target recall {args.target_recall:.1%} at {derived.confidence:.0%} confidence with rule {rule.text}:")
        print(f"  people review {derived.candidates} of {frames} scored frames ({derived.workload_fraction:.1%})")
        lo, hi = derived.recall_ci
        est = "n/a" if derived.estimated_recall != derived.estimated_recall else f"{derived.estimated_recall:.1%}"
        print(f"  estimated recall {est} ({derived.confidence:.0%} bounds {lo:.1%} to {hi:.1%}) from "
              f"{derived.positives_used:g} labelled positives")
        if not derived.enough_labels:
            print(f"  note: {derived.note}")
        print("  thresholds: " + ", ".join(f"{k} {v:.4g}" for k, v in derived.thresholds.items()))
        if args.dry_run:
            print("dry run: nothing saved")
            return 0
        pid = ScoreStore(project).save_policy(rule.text, derived.thresholds, args.by or settings.review.reviewer,
                                              target_recall=args.target_recall, note=derived.note or None,
                                              confidence=derived.confidence)
        sampled = refresh_audit(project, cards, settings)
        print(f"saved as policy {pid}; {sampled} dropped frames sampled for the blind audit")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from triage_app.core.audit import report
    from triage_app.core.members.cards import load_cards
    from triage_app.core.store import Project

    settings = _settings(args)
    with Project(args.project, create=False) as project:
        data = report(project, load_cards(settings.models_dir, project.root), settings)
    if args.json:
        print(json.dumps(data))
        return 0
    rec = data["recall_estimate"]
    print(f"{data['frames']} frames, {data['scored']} scored, {data['candidates']} candidates "
          f"({data['workload_fraction']:.1%} of scored), {data['reviewed']} reviewed, {data['accepted']} accepted")
    print(f"audit: {data['audit_sampled']} dropped frames checked, {data['audit_positives']} positive, "
          f"{data['audit_waiting']} waiting in the queue")
    print(f"measured recall: {'n/a' if rec is None else f'{rec:.1%}'} "
          f"(95% interval {data['recall_ci_low']:.1%} to {data['recall_ci_high']:.1%})")
    p = data["policy"]
    print(f"policy {p['id'] or '(card defaults)'}: rule {p['rule']}, thresholds "
          + ", ".join(f"{k} {v:.4g}" for k, v in p["thresholds"].items()))
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from triage_app.core.learning import retrain
    from triage_app.core.members.cards import load_cards
    from triage_app.core.store import Project

    settings = _settings(args)
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
    from triage_app.core.finetune import finetune_comparison, retire_finetuned
    from triage_app.core.members.cards import load_cards
    from triage_app.core.store import Project

    settings = _settings(args)
    if args.retire:
        with Project(args.project, create=False) as project:
            done = retire_finetuned(project)
        print("the fine-tuned member is retired: its card and weights are in models/retired/, its scores removed"
              if done else "no fine-tuned member is deployed in this project")
        return 0
    bar = _Bar("fine-tune")
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
    from triage_app.core.label_quality import suspicious_decisions
    from triage_app.core.members.cards import load_cards
    from triage_app.core.store import Project

    settings = _settings(args)
    with Project(args.project, create=False) as project:
        found = suspicious_decisions(project, load_cards(settings.models_dir, project.root))
        rows = {r["id"]: r for r in project.frame_rows()}
        if args.queue:
            from triage_app.core.label_quality import queue_for_rereview

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
    from triage_app.core.agreement import agreement, disagreements
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


def _csv_list(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def cmd_export(args: argparse.Namespace) -> int:
    from triage_app.core.export import export
    from triage_app.core.export_plan import Options, Selection, parse_time
    from triage_app.core.members.cards import load_cards
    from triage_app.core.store import Project

    settings = _settings(args)
    try:
        split = tuple(float(x) for x in args.split.split(","))
        options = Options(formats=tuple(_csv_list(args.format) or ()), split=split, balance=args.balance, seed=args.seed,
                          image_format=args.image_format, overwrite=args.overwrite)
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
        labels = tuple(_csv_list(args.labels) or ())
        Selection(labels=labels)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with Project(args.project, create=False) as project:
        sources = None
        if args.sources:
            known = project.source_summaries()
            sources = []
            for token in _csv_list(args.sources) or []:
                hit = [s["id"] for s in known if str(s["id"]) == token or s["name"] == token]
                if not hit:
                    names = ", ".join(f"{s['id']} {s['name']}" for s in known)
                    print(f"error: {args.project}: no source named or numbered '{token}' (sources: {names})", file=sys.stderr)
                    return 2
                sources += hit
        selection = Selection(sources=sources, reviewers=_csv_list(args.reviewers),
                              labels=labels, since=since, until=until,
                              policies=[int(x) for x in _csv_list(args.policies)] if args.policies else None,
                              include_doubtful=args.include_doubtful)
        bar = _Bar("export")
        try:
            report = export(project, load_cards(settings.models_dir, project.root), settings, args.outdir, selection, options, progress=bar)
        finally:
            bar.close()
    print(f"exported {report.rows} decided frames to {report.outdir} ({report.files} image files)")
    for split, counts in report.counts.items():
        before = report.before_balance.get(split, {})
        text = ", ".join(f"{c} {n}" + (f" (was {before.get(c, 0)})" if before.get(c, 0) != n else "")
                         for c, n in sorted(counts.items())) or "empty"
        print(f"  {split}: {text}")
    if any(report.held_back.values()):
        print(f"held back: {report.held_back['disputed']} frames with an unresolved disagreement, "
              f"{report.held_back['doubted']} decisions the label check doubts (--include-doubtful to export them)")
    if report.geo_points:
        print(f"{report.geo_points} accepted frames with GPS written as map points")
    for msg in report.skipped:
        print(f"  skipped: {msg}")
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from triage_app.core.drift import flight_drift
    from triage_app.core.members.cards import load_cards
    from triage_app.core.store import Project

    settings = _settings(args, {"drift": {"alert_psi": args.alert}} if args.alert else None)
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
    from triage_app.core.evaluate import evaluate, plot_curves
    from triage_app.core.truth import read_truth

    overrides: dict[str, Any] = {}
    if args.members:
        overrides["scoring"] = {"members": _csv_list(args.members)}
    if args.every:
        overrides["ingest"] = {"every": args.every}
    if args.order:
        overrides.setdefault("review", {})["order"] = args.order
    if args.confidence is not None:
        overrides.setdefault("review", {})["recall_confidence"] = args.confidence
    if not 0 < args.target_recall < 1:
        print(f"error: --target-recall {args.target_recall} must lie between 0 and 1", file=sys.stderr)
        return 2
    settings = _settings(args, overrides)
    truth = read_truth(args.truth, set(_csv_list(args.truth_classes) or []) or None)
    res = evaluate(args.sources, truth, settings, args.target_recall, args.retrain_every, args.project,
                   args.max_decisions, progress_factory=_Bar)
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


def cmd_demo(args: argparse.Namespace) -> int:
    from triage_app.core.demo import run_demo

    if not args.headless:
        from triage_app.gui.app import main as gui_main

        return gui_main(["--demo"] + (["--project", str(args.project)] if args.project else []))
    summary = run_demo(Path(args.project) if args.project else None, progress_factory=_Bar)
    print(summary.text())
    return 0 if summary.frames else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="triage", description="Drone footage triage from the terminal.")
    p.add_argument("--version", action="version", version=f"triage_app {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = p.add_subparsers(dest="command", required=True)

    ing = sub.add_parser("ingest", help="add videos, image folders or streams to a project")
    ing.add_argument("project", type=Path)
    ing.add_argument("sources", nargs="+", help="video files, image folders, or stream URLs")
    g = ing.add_mutually_exclusive_group()
    g.add_argument("--every", type=int, help="keep every Nth frame")
    g.add_argument("--fps", type=float, help="keep N frames per second of video time")
    ing.add_argument("--telemetry", type=Path, help="DJI .SRT file (default: the one beside each video)")
    ing.set_defaults(func=cmd_ingest)

    sc = sub.add_parser("score", help="score the ingested frames with the ensemble")
    sc.add_argument("project", type=Path)
    sc.add_argument("--members", help="comma-separated members (default from settings: imagenet,clip,head)")
    sc.add_argument("--device", choices=["auto", "cpu", "cuda"])
    sc.add_argument("--batch", type=int, help="tiles per inference batch")
    sc.set_defaults(func=cmd_score)

    be = sub.add_parser("bench", help="measure throughput and memory")
    be.add_argument("what", choices=["pipeline", "review", "rescore"])
    be.add_argument("--json", action="store_true", help="print one JSON object")
    be.add_argument("--input", help="a video to use instead of the generated 1080p H.264 flight")
    be.add_argument("--seconds", type=float, default=10.0, help="length of the generated flight")
    be.add_argument("--sample-fps", type=float, default=3.0, help="frames per second of video scored (0 = every frame)")
    be.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    be.add_argument("--batch", type=int, default=32)
    be.add_argument("--precision", choices=["auto", "fp32", "fp16"], default="auto",
                    help="model precision (auto: fp16 on a GPU, fp32 on the CPU)")
    be.add_argument("--memory", action="store_true", help="compare peak RSS on 1- and 10-minute inputs")
    be.add_argument("--pipeline-only", action="store_true", help="measure the pipeline alone (for its peak RSS)")
    be.add_argument("--workdir", help="where generated inputs are kept (default ./bench-out)")
    be.add_argument("--decisions", type=int, default=500, help="review: decisions to make")
    be.add_argument("--frames", type=int, default=100_000, help="rescore: cached frames")
    be.add_argument("--think-ms", type=float, default=150.0, help="review: the analyst's look at each frame")
    be.set_defaults(func=cmd_bench)

    po = sub.add_parser("policy", help="derive thresholds for a target recall and save them as the policy")
    po.add_argument("project", type=Path)
    po.add_argument("--target-recall", type=float, required=True, help="for example 0.98")
    po.add_argument("--rule", help="any, all, or K-of-N (default: the rule in force)")
    po.add_argument("--confidence", type=float, help="assurance of reaching the target: the one-sided confidence of "
                    "the recall bound (0.95 strict ... 0.5 the point estimate; default review.recall_confidence)")
    po.add_argument("--by", help="who sets the policy (default: the reviewer name in settings)")
    po.add_argument("--dry-run", action="store_true", help="show the effect, save nothing")
    po.set_defaults(func=cmd_policy)

    rt = sub.add_parser("retrain", help="train the head member on the decisions and re-score every frame")
    rt.add_argument("project", type=Path)
    rt.set_defaults(func=cmd_retrain)

    ft = sub.add_parser("finetune", help="compare fine-tuning the backbone's last blocks with the head, on the same folds, "
                        "and deploy the fine-tuned net as a member when it wins")
    ft.add_argument("project", type=Path)
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
    lb.add_argument("project", type=Path)
    lb.add_argument("--json", action="store_true", help="print one JSON list")
    lb.add_argument("--queue", action="store_true", help="put these frames back into the review queue (re-review)")
    lb.set_defaults(func=cmd_labels)

    ag = sub.add_parser("agreement", help="Cohen's kappa per pair of reviewers, and the disagreements to resolve")
    ag.add_argument("project", type=Path)
    ag.add_argument("--json", action="store_true", help="print one JSON object")
    ag.set_defaults(func=cmd_agreement)

    ex = sub.add_parser("export", help="export decided frames with their provenance (image folders, manifests, COCO, maps)")
    ex.add_argument("project", type=Path)
    ex.add_argument("outdir", type=Path)
    ex.add_argument("--format", default="imagefolder,csv,parquet",
                    help="comma-separated: imagefolder, csv, parquet, coco, crops, geojson, kml")
    ex.add_argument("--split", default="0.8,0.1,0.1", help="train,val,test shares (stratified by class, seeded)")
    ex.add_argument("--balance", choices=["none", "under", "over"], default="none",
                    help="balance the classes of the training split (a report is written either way)")
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--sources", help="comma-separated source ids or names")
    ex.add_argument("--reviewers", help="comma-separated reviewer names")
    ex.add_argument("--labels", default="accept,reject", help="comma-separated: accept, reject, unsure")
    ex.add_argument("--since", help="decided at or after (ISO date or date-time; local time unless a zone is given)")
    ex.add_argument("--until", help="decided before (ISO date or date-time)")
    ex.add_argument("--policies", help="comma-separated policy ids the decisions were made under")
    ex.add_argument("--include-doubtful", action="store_true",
                    help="also export unresolved disagreements and decisions the label check doubts")
    ex.add_argument("--image-format", choices=["jpg", "png"], default="jpg", help="for video frames (image files are copied)")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing export folder (only once the new one is complete)")
    ex.set_defaults(func=cmd_export)

    dr = sub.add_parser("drift", help="how far each flight's scores and embeddings moved from the labelled flights")
    dr.add_argument("project", type=Path)
    dr.add_argument("--json", action="store_true", help="print one JSON list")
    dr.add_argument("--alert", type=float, help="drift score past which a flight is flagged (default drift.alert_psi)")
    dr.set_defaults(func=cmd_drift)

    ev = sub.add_parser("evaluate", help="replay the whole review with a ground-truth oracle and measure recall and workload")
    ev.add_argument("sources", nargs="+", help="videos or image folders")
    ev.add_argument("--truth", type=Path, required=True,
                    help="a CSV (path,label or source,frame,label) or a folder of YOLO .txt / Pascal VOC .xml boxes")
    ev.add_argument("--truth-classes", help="comma-separated box classes that count (YOLO ids or VOC names; default all)")
    ev.add_argument("--target-recall", type=float, default=0.95)
    ev.add_argument("--confidence", type=float, help="assurance of the supervisor's policies (default review.recall_confidence)")
    ev.add_argument("--retrain-every", type=int, default=50, help="retrain the head after every N decisions (0: never)")
    ev.add_argument("--max-decisions", type=int, help="stop after this many decisions")
    ev.add_argument("--members", help="comma-separated members (default from settings)")
    ev.add_argument("--every", type=int, help="keep every Nth video frame")
    ev.add_argument("--order", choices=["time", "score", "learned"], help="review order (default from settings: review.order)")
    ev.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON to this file")
    ev.add_argument("--plots", type=Path, metavar="DIR", help="write the curves (PNG and CSV) into this folder")
    ev.add_argument("--project", type=Path, metavar="DIR", help="keep the replayed project here (a new folder)")
    ev.set_defaults(func=cmd_evaluate)

    rp = sub.add_parser("report", help="workload, reviews, audit and the measured recall")
    rp.add_argument("project", type=Path)
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=cmd_report)

    demo = sub.add_parser("demo", help="build and score a demo project from the shipped footage")
    demo.add_argument("--headless", action="store_true", help="no window: print a summary")
    demo.add_argument("--project", type=Path, help="where the demo project goes")
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except TriageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; everything already recorded is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
