"""``triage`` commands about how well the process works and how fast it runs: evaluate
(a replay with a ground-truth oracle), bench, and the demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from triage_app.cli.common import EXIT_NOTHING_DONE, ProgressBar, cli_settings, csv_list
from triage_app.core.evaluation import bench
from triage_app.core.evaluation.demo import run_demo
from triage_app.core.evaluation.replay import evaluate, plot_curves
from triage_app.core.evaluation.truth import read_truth


def cmd_evaluate(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.members:
        overrides["scoring"] = {"members": csv_list(args.members)}
    if args.every:
        overrides["ingest"] = {"every": args.every}
    if args.order:
        overrides.setdefault("review", {})["order"] = args.order
    if args.confidence is not None:
        overrides.setdefault("review", {})["recall_confidence"] = args.confidence
    if args.target:
        overrides["target"] = {"name": args.target}
    if not 0 < args.target_recall < 1:
        print(f"error: --target-recall {args.target_recall} must lie between 0 and 1", file=sys.stderr)
        return 2
    settings = cli_settings(args, overrides)
    truth = read_truth(args.truth, set(csv_list(args.truth_classes) or []) or None)
    every = settings.review.retrain_every if args.retrain_every is None else args.retrain_every
    res = evaluate(args.sources, truth, settings, args.target_recall, every, args.project,
                   args.max_decisions, progress_factory=ProgressBar, until_stop=args.until_stop)
    out = res.as_dict()
    if args.plots:
        out["plots"] = [str(p) for p in plot_curves(res, args.plots)]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    _print_replay(res, every)
    if args.json:
        print(f"JSON written to {args.json}")
    if args.plots:
        print(f"curves written to {args.plots}")
    if res.project:
        print(f"the replayed project, with its decisions, is kept in {res.project}")
    return 0


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def _print_replay(res: Any, retrain_every: int) -> None:
    print(f"replayed {res.decisions} decisions on {res.frames} frames ({res.positives} positives), {res.order} review for "
          f"'{res.target}', target recall {res.target_recall:.0%} at {res.confidence:.0%} assurance, retraining every "
          f"{retrain_every}: {res.retrains} retrains")
    if res.order == "active":
        if res.stop:
            st = res.stop
            print(f"  stopped by itself after {st['shown']} frames ({_pct(st['shown_fraction'])}): true recall then "
                  f"{_pct(st['true_recall'])}; its estimate {_pct(st['estimated_recall'])} (interval "
                  f"{st['ci_low']:.1%}-{st['ci_high']:.1%}{', covers the truth' if st['covered'] else ', MISSES the truth'})")
        else:
            print("  never stopped by itself: the estimate did not reach the target")
        if res.stop_floor:
            fl = res.stop_floor
            spread = fl.get("spread", 1.0)
            runs = (f" (the targets left in runs of consecutive frames: {spread:.1f} times a count of single frames' "
                    "spread)" if spread > 1.05 else "")
            line = (f"  a count of the targets left erring only by chance{runs} would have let it stop after {fl['shown']} "
                    f"frames ({_pct(fl['shown_fraction'])}, true recall then {_pct(fl['true_recall'])})")
            if res.stop and res.stop["shown"] > fl["shown"]:
                line += f"; the {res.stop['shown'] - fl['shown']} frames more are the estimate's own caution"
            elif res.stop and res.stop["shown"] < fl["shown"]:
                line += "; review stopped before it: its estimate was bolder than the truth allowed"
            print(line)
        for name, shares in (("review", res.shares), ("random order", res.random_shares)):
            print(f"  {name:<12} share of frames shown at 90/95/98/100 % of positives: "
                  + " / ".join(_pct(shares.get(k)) for k in ("90", "95", "98", "100")))
        print(f"  work saved over sampling at 95 % recall (WSS@95): review {_pct(res.wss95)}, random {_pct(res.random_wss95)}")
    else:
        print(f"  people were shown {res.shown} frames ({_pct(res.workload_fraction)}) holding {res.shown_positives} "
              f"positives: true recall {_pct(res.true_recall)}")
        lo, hi = res.estimated_recall_ci
        print(f"  audit-estimated recall of the final policy {_pct(res.estimated_recall)} (95 % interval {lo:.1%}-{hi:.1%}); "
              f"its true recall {_pct(res.policy_true_recall)} at {_pct(res.policy_workload_fraction)} of frames")
    if res.firing_tile_hits is not None:
        print(f"  the firing tile held at least half a truth box on {res.firing_tile_hits} of "
              f"{res.firing_tile_checked} positives shown")
    for m in res.messages:
        print(f"  note: {m}")


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "team":
        from triage_app.core.evaluation.bench_team import bench_team

        if not args.store:
            print("error: bench team needs --store URL (an empty PostgreSQL database) or --store DIR (a new folder)",
                  file=sys.stderr)
            return 2
        counts = [int(n) for n in str(args.analysts).split(",") if n.strip()]
        shared = Path(args.shared) if args.shared else (Path(args.workdir) if args.workdir else Path.cwd() / "bench-out") / "team-shared"
        result = bench_team(args.store, counts, seconds=args.seconds, frames=args.frames if args.frames != 100_000 else 3000,
                            shared=shared)
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{result['store']} store, {result['frames']} frames, {result['seconds']:g} s per run, {result['cpus']} CPUs")
            for r in result["runs"]:
                print("  " + ", ".join(f"{k} {v}" for k, v in r.items()))
        return 0
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
        gop = f"-gop{args.gop:g}s" if args.gop else "-gopx264"
        video = Path(args.input) if args.input else work / f"flight-{args.seconds:g}s{gop}.mp4"
        if not video.exists() and not args.archive:
            bench.make_h264_flight(video, args.seconds, gop_s=args.gop or None)
        if args.archive:
            from triage_app.core.evaluation.bench_archive import archive_flights, bench_archive

            flights = archive_flights(work, args.archive, args.seconds, args.gop or None)
            result = bench_archive(flights, args.sample_fps, args.device, args.batch, args.precision, args.sources_at_once)
        elif args.cluster:
            from triage_app.core.evaluation.bench_cluster import bench_cluster

            result = bench_cluster(video, args.sample_fps, args.cluster, args.workers, args.device, args.batch,
                                   precision=args.precision)
        else:
            result = bench.bench_pipeline(video, args.sample_fps, args.device, args.batch, pipeline_only=args.pipeline_only,
                                          precision=args.precision, emulate_device=args.emulate_device)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if not args.headless:
        from triage_app.gui.app import main as gui_main

        return gui_main(["--demo"] + (["--project", str(args.project)] if args.project else []))
    summary = run_demo(Path(args.project) if args.project else None, progress_factory=ProgressBar)
    print(summary.text())
    return 0 if summary.frames else EXIT_NOTHING_DONE


def add_parsers(sub: Any) -> None:
    ev = sub.add_parser("evaluate", help="replay the whole review with a ground-truth oracle and measure recall and workload")
    ev.add_argument("sources", nargs="+", help="videos or image folders")
    ev.add_argument("--truth", type=Path, required=True,
                    help="a CSV (path,label or source,frame,label) or a folder of YOLO .txt / Pascal VOC .xml boxes")
    ev.add_argument("--truth-classes", help="comma-separated box classes that count (YOLO ids or VOC names; default all)")
    ev.add_argument("--target-recall", type=float, default=0.95, help="the recall review should reach before it stops")
    ev.add_argument("--confidence", type=float, help="assurance of the supervisor's policies (default review.recall_confidence)")
    ev.add_argument("--retrain-every", type=int, help="learn after every N decisions (default review.retrain_every, 25; "
                    "0: never)")
    ev.add_argument("--max-decisions", type=int, help="stop after this many decisions")
    ev.add_argument("--members", help="comma-separated members (default from settings)")
    ev.add_argument("--target", help="what the footage is searched for (person, vehicle, boat, ...; default from settings)")
    ev.add_argument("--every", type=int, help="keep every Nth video frame")
    ev.add_argument("--order", choices=["active", "time", "score"], help="review order (default from settings: review.order, "
                    "active)")
    ev.add_argument("--until-stop", action="store_true", help="end where review stops by itself (default: go on until "
                    "every positive is shown, for the whole curve)")
    ev.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON to this file")
    ev.add_argument("--plots", type=Path, metavar="DIR", help="write the curves (PNG and CSV) into this folder")
    ev.add_argument("--project", type=Path, metavar="DIR", help="keep the replayed project here (a new folder)")
    ev.set_defaults(func=cmd_evaluate)

    be = sub.add_parser("bench", help="measure throughput and memory")
    be.add_argument("what", choices=["pipeline", "review", "rescore", "team"])
    be.add_argument("--store", help="team: where the bench's project goes (an empty PostgreSQL database's URL, or a folder)")
    be.add_argument("--analysts", default="1,4,16", help="team: how many analysts at once, each count in turn (default 1,4,16)")
    be.add_argument("--shared", help="team: the shared folder of a PostgreSQL bench project (default WORKDIR/team-shared)")
    be.add_argument("--json", action="store_true", help="print one JSON object")
    be.add_argument("--input", help="a video to use instead of the generated 1080p H.264 flight")
    be.add_argument("--seconds", type=float, default=10.0, help="length of the generated flight; team: of each run")
    be.add_argument("--gop", type=float, default=1.0,
                    help="pipeline: seconds between keyframes of the generated flight (0: libx264's own choice, up to 250 frames)")
    be.add_argument("--sample-fps", type=float, default=3.0, help="frames per second of video scored (0 = every frame)")
    be.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    be.add_argument("--batch", type=int, default=32)
    be.add_argument("--precision", choices=["auto", "fp32", "fp16", "int8"], default="auto",
                    help="model precision (auto: fp16 on a GPU; on the CPU 8 bits where the member's card and the CPU allow, else "
                         "fp32; int8: 8-bit members for the CPU)")
    be.add_argument("--emulate-device", type=float, metavar="TILES_PER_S",
                    help="pipeline: stand in for a GPU whose inference takes this many tiles/s and no CPU (overlap of "
                    "the stages without a GPU; scores meaningless)")
    be.add_argument("--memory", action="store_true", help="compare peak RSS on 1- and 10-minute inputs")
    be.add_argument("--pipeline-only", action="store_true", help="measure the pipeline alone (for its peak RSS)")
    be.add_argument("--cluster", metavar="ADDRESS", help="pipeline: score the same input locally and on this Ray cluster "
                    "(auto, HOST:PORT or ray://HOST:10001), with the ratio and a check that the scores agree")
    be.add_argument("--archive", type=int, metavar="N", help="pipeline: N generated flights of --seconds each in one "
                    "project, scored one after another and several at once (--sources-at-once), in one run")
    be.add_argument("--sources-at-once", type=int, help="pipeline --archive: flights decoded at once (default: "
                    "scoring.sources_at_once from the machine, at least 2)")
    be.add_argument("--workers", type=int, help="pipeline --cluster: how many workers (default: one per GPU, or per "
                    "scoring.cluster_cpus_per_worker CPUs)")
    be.add_argument("--workdir", help="where generated inputs are kept (default ./bench-out)")
    be.add_argument("--decisions", type=int, default=500, help="review: decisions to make")
    be.add_argument("--frames", type=int, default=100_000, help="rescore: cached frames; team: frames of the project "
                    "(default 3000)")
    be.add_argument("--think-ms", type=float, default=150.0, help="review: the analyst's look at each frame")
    be.set_defaults(func=cmd_bench)

    demo = sub.add_parser("demo", help="build and score a demo project from the shipped footage")
    demo.add_argument("--headless", action="store_true", help="no window: print a summary")
    demo.add_argument("--project", type=Path, help="where the demo project goes")
    demo.set_defaults(func=cmd_demo)
