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
from triage_app.cli.common import ProgressBar, csv_list, cli_settings
from triage_app.cli.learning import (cmd_agreement, cmd_drift, cmd_evaluate, cmd_finetune, cmd_labels,
                                     cmd_retrain)
from triage_app.core.model.errors import TriageError

log = logging.getLogger("triage_app")


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
    from triage_app.core.ingest.footage import ingest_source
    from triage_app.core.ingest.sources import Sampling
    from triage_app.core.store import Project

    overrides: dict[str, Any] = {}
    if args.every:
        overrides.setdefault("ingest", {})["every"] = args.every
    if args.fps:
        overrides.setdefault("ingest", {})["fps"] = args.fps
    settings = cli_settings(args, overrides)
    sampling = Sampling(settings.ingest.every, settings.ingest.fps)
    results = []
    with Project(args.project) as project:
        for uri in args.sources:
            bar = ProgressBar(Path(uri).name or uri)
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
    if summary.stage_busy and summary.frames_scored:
        names = {"decode": "decode", "tile": "tiles", "infer": "inference", "store": "store"}
        busy = ", ".join(f"{names[k]} {v:.0%}" for k, v in summary.stage_busy.items())
        slowest = max(summary.stage_busy, key=summary.stage_busy.get)
        print(f"  stages busy: {busy} (the {names[slowest]} stage set the pace)", file=out)


def cmd_score(args: argparse.Namespace) -> int:
    from triage_app.core.scoring.pipeline import score_project
    from triage_app.core.store import Project

    overrides: dict[str, Any] = {"scoring": {}}
    if args.device:
        overrides["scoring"]["device"] = args.device
    if args.batch:
        overrides["scoring"]["batch"] = args.batch
    if args.members:
        overrides["scoring"]["members"] = [m.strip() for m in args.members.split(",") if m.strip()]
    settings = cli_settings(args, overrides)
    with Project(args.project, create=False) as project:
        bar = ProgressBar("scoring")
        try:
            summary = score_project(project, settings, progress=bar)
        finally:
            bar.close()
    _print_score(summary)
    return 0 if summary.frames_scored or (summary.frames_with_scores and not summary.errors) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from triage_app.core.evaluation import bench

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
                                      precision=args.precision, emulate_device=args.emulate_device)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    from triage_app.core.review.audit import propose_policy, refresh_audit
    from triage_app.core.model.cards import load_cards
    from triage_app.core.store import Project
    from triage_app.core.store.scores import ScoreStore

    settings = cli_settings(args)
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


def cmd_finds(args: argparse.Namespace) -> int:
    from triage_app.core.outputs.finds import finds, finds_csv, finds_geojson, finds_gpx
    from triage_app.core.model.cards import load_cards
    from triage_app.core.store import Project

    settings = cli_settings(args)
    with Project(args.project, create=False) as project:
        items = finds(project, load_cards(settings.models_dir, project.root), settings)
    for target, text, what in ((args.geojson, finds_geojson, "finds"), (args.gpx, finds_gpx, "places")):
        if not target:
            continue
        try:
            Path(target).write_text(text(items), encoding="utf-8")
        except OSError as exc:
            print(f"{target}: cannot be written ({exc.strerror or exc})", file=sys.stderr)
            return 2
        count = sum(f.lat is not None for f in items) if what == "finds" else len({f.place for f in items if f.place})
        print(f"wrote {count} {what} to {target}", file=sys.stderr)
    if args.csv:
        sys.stdout.write(finds_csv(items))
        return 0
    if not items:
        print("no accepted frame yet")
        return 0
    places = len({f.place for f in items if f.place is not None})
    print(f"{len(items)} finds at {places} places, newest first (position on the ground where the telemetry allows, "
          "else the aircraft's; finds whose ground discs overlap share a place):")
    for f in items:
        where = (f"{f.lat:.6f}, {f.lon:.6f}" if f.lat is not None else "no position") + (
            f"  on the ground{'' if f.radius_m is None else f' within {f.radius_m:.0f} m'}, "
            f"{f.distance_m:.0f} m from the aircraft" if f.placed == "ground" else
            f"  aircraft ({f.note})" if f.placed == "aircraft" else "")
        place = f"place {f.place:<3}" if f.place is not None else "         "
        print(f"  {place} {f.decided_at[:19].replace('T', ' ')} UTC  {f.reviewer:<10} {f.source} frame {f.frame} "
              f"(t={f.timestamp_s:.1f} s)  {where}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from triage_app.core.review.audit import report
    from triage_app.core.model.cards import load_cards
    from triage_app.core.store import Project

    settings = cli_settings(args)
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
    unaudited = data["unaudited_dropped"]
    print(f"{'estimated' if unaudited else 'measured'} recall: {'n/a' if rec is None else f'{rec:.1%}'} "
          f"(95% interval {data['recall_ci_low']:.1%} to {data['recall_ci_high']:.1%})")
    if unaudited:
        print(f"  {unaudited} dropped frames were never considered for the audit: about "
              f"{data['unaudited_positives']:g} positives among them, estimated from reviewed frames of similar score")
    p = data["policy"]
    print(f"policy {p['id'] or '(card defaults)'}: rule {p['rule']}, thresholds "
          + ", ".join(f"{k} {v:.4g}" for k, v in p["thresholds"].items()))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from triage_app.core.outputs.export.writer import export
    from triage_app.core.outputs.export.plan import Options, Selection, parse_time
    from triage_app.core.model.cards import load_cards
    from triage_app.core.store import Project

    settings = cli_settings(args)
    try:
        split = tuple(float(x) for x in args.split.split(","))
        options = Options(formats=tuple(csv_list(args.format) or ()), split=split, balance=args.balance, seed=args.seed,
                          image_format=args.image_format, overwrite=args.overwrite)
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
        labels = tuple(csv_list(args.labels) or ())
        Selection(labels=labels)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with Project(args.project, create=False) as project:
        sources = None
        if args.sources:
            known = project.source_summaries()
            sources = []
            for token in csv_list(args.sources) or []:
                hit = [s["id"] for s in known if str(s["id"]) == token or s["name"] == token]
                if not hit:
                    names = ", ".join(f"{s['id']} {s['name']}" for s in known)
                    print(f"error: {args.project}: no source named or numbered '{token}' (sources: {names})", file=sys.stderr)
                    return 2
                sources += hit
        selection = Selection(sources=sources, reviewers=csv_list(args.reviewers),
                              labels=labels, since=since, until=until,
                              policies=[int(x) for x in csv_list(args.policies)] if args.policies else None,
                              include_doubtful=args.include_doubtful)
        bar = ProgressBar("export")
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


def cmd_demo(args: argparse.Namespace) -> int:
    from triage_app.core.evaluation.demo import run_demo

    if not args.headless:
        from triage_app.gui.app import main as gui_main

        return gui_main(["--demo"] + (["--project", str(args.project)] if args.project else []))
    summary = run_demo(Path(args.project) if args.project else None, progress_factory=ProgressBar)
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
    be.add_argument("--emulate-device", type=float, metavar="TILES_PER_S",
                    help="pipeline: stand in for a GPU whose inference takes this many tiles/s and no CPU (overlap of the stages without a GPU; scores meaningless)")
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

    fi = sub.add_parser("finds", help="accepted frames, newest first, with where they are on the ground")
    fi.add_argument("project", type=Path)
    fi.add_argument("--csv", action="store_true", help="print them as CSV")
    fi.add_argument("--geojson", metavar="FILE", help="also write them as GeoJSON points")
    fi.add_argument("--gpx", metavar="FILE", help="also write their places as GPX waypoints (for handheld receivers)")
    fi.set_defaults(func=cmd_finds)

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
