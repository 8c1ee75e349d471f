"""``triage`` commands that fill a project and read it out: ingest, score, policy, report,
finds, export, annotations."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from triage_app.cli.common import EXIT_INPUT, EXIT_NOTHING_DONE, EXIT_USAGE, ProgressBar, csv_list, open_project, project_location
from triage_app.core.ingest.footage import IngestResult, ingest_source
from triage_app.core.model.errors import InputError, StoreError
from triage_app.core.model.records import Sampling
from triage_app.core.model.targets import load_targets
from triage_app.core.model.text import terminal_safe
from triage_app.core.outputs.annotation_import import import_annotations
from triage_app.core.outputs.export.plan import FORMATS, Options, Selection, parse_time
from triage_app.core.outputs.export.writer import export
from triage_app.core.outputs.finds import finds, finds_csv, finds_geojson, finds_gpx
from triage_app.core.outputs.reports import report
from triage_app.core.review.audit import propose_policy, refresh_audit
from triage_app.core.scoring.pipeline import ScoreSummary, score_project
from triage_app.core.store import Workspace


def _print_ingest(results: list[IngestResult], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    flagged: Counter[str] = Counter()
    for r in results:
        if r.error:
            print(f"  FAILED  {terminal_safe(r.error)}", file=out)
            continue
        flagged.update(r.flagged)
        flags = ", ".join(f"{k} {v}" for k, v in sorted(r.flagged.items())) or "none"
        tele = f"telemetry matched {r.telemetry_matched}/{r.frames_total}" if r.telemetry_path or r.telemetry_matched else "no telemetry"
        print(f"  {terminal_safe(r.name)}: {r.frames_total} frames ({r.frames_new} new), flagged: {flags}, {tele}", file=out)
        for c in r.changes:
            print(f"    changed: {terminal_safe(c)}", file=out)
        for w in r.warnings[:5]:
            print(f"    warning: {terminal_safe(w)}", file=out)
        if len(r.warnings) > 5:
            print(f"    ... and {len(r.warnings) - 5} more warnings (see the project's messages)", file=out)
    total = sum(r.frames_total for r in results)
    print(f"{total} frames from {sum(1 for r in results if r.ok)} of {len(results)} sources; flagged by reason: "
          + (", ".join(f"{k} {v}" for k, v in sorted(flagged.items())) or "none"), file=out)


def cmd_ingest(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.every:
        overrides.setdefault("ingest", {})["every"] = args.every
    if args.fps:
        overrides.setdefault("ingest", {})["fps"] = args.fps
    results = []
    local = [u for u in args.sources if "://" not in u]
    if not Workspace.exists(args.project) and local and len(local) == len(args.sources) \
            and not any(Path(u).exists() for u in local):
        # Nothing to ingest and no project yet: say so, and leave no empty project behind.
        for u in local:
            print(f"error: {terminal_safe(u)}: no such file or folder", file=sys.stderr)
        print(f"error: nothing ingested; no project was created at {args.project}", file=sys.stderr)
        return EXIT_NOTHING_DONE
    with open_project(args, overrides, create=True) as ws:
        if args.target:
            print(f"looking for {ws.set_target(args.target).describe()}")
        sampling = Sampling(ws.settings.ingest.every, ws.settings.ingest.fps)
        for uri in args.sources:
            bar = ProgressBar(Path(uri).name or uri)
            try:
                results.append(ingest_source(ws, uri, args.telemetry, sampling, progress=bar, wait_s=args.wait))
            finally:
                bar.close()
    print(f"ingested into {args.project} ({sampling.describe()}):")
    _print_ingest(results)
    return 0 if any(r.ok and r.frames_total for r in results) else EXIT_NOTHING_DONE


def cmd_target(args: argparse.Namespace) -> int:
    with open_project(args) as ws:
        if args.name:
            target = ws.set_target(args.name, csv_list(args.classes), _prompts(args.prompts), _prompts(args.background),
                                   args.size)
            print(f"{args.project} now looks for {target.describe()}; scoring again gives its members' new scores")
        else:
            target = ws.target
            print(f"{args.project} looks for {target.describe()}")
        print(f"  ImageNet classes: {', '.join(target.imagenet_classes) or '(none)'}")
        print(f"  CLIP prompts: {'; '.join(target.prompts) or '(none)'}")
        if not args.name:
            table = load_targets()
            print("targets in the table (" + ", ".join(str(f) for f in table.files) + "):")
            for t in table.targets.values():
                print(f"  {t.name:<16} {t.describe()}")
    return 0


def _prompts(text: str | None) -> list[str] | None:
    return None if text is None else [p.strip() for p in text.split(";") if p.strip()]


def after_scoring(ws: Workspace, summary: ScoreSummary) -> tuple[int, int, str]:
    """What scoring changed for review: the audit considers the newly scored frames.
    Returns (candidates, scored frames, the policy in words)."""
    refresh_audit(ws)
    policy = ws.policy()
    ids, _fused, cand = ws.candidates(policy, summary.members)
    return int(cand.sum()), len(ids), policy.describe(summary.members)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _print_score(summary: ScoreSummary, candidates: int, scored: int, policy: str, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    for name, why in summary.unavailable.items():
        print(f"  member {name} left out: {why}", file=out)
    for err in summary.errors[:10]:
        print(f"  problem: {err}", file=out)
    print(
        f"scored {summary.frames_scored} frames ({summary.frames_pending} were waiting) with "
        f"{summary.members_described or 'no member'} on {summary.provider} at {summary.fps:.1f} frames/s; "
        f"{candidates} candidates of {scored} scored frames ({policy})"
        + ("; stopped early, run again to resume" if summary.cancelled else ""),
        file=out,
    )
    if summary.cluster:
        c = summary.cluster
        print(f"  on the cluster at {c.get('address')}: {plural(c.get('workers', 0), 'worker')} on {plural(c.get('nodes', 0), 'node')} "
              f"({c.get('device')}), {plural(c.get('units', 0), 'work unit')}, {c.get('retried_units', 0)} handed to another "
              "worker after one died", file=out)
    for sid, (lo, med, hi, why) in summary.tiling.items():
        spread = "" if lo == hi else f" ({lo:.2f}-{hi:.2f})"
        print(f"  source {sid}: tiles cut at scale {med:.2f}{spread}: {why}", file=out)
    if summary.stage_busy and summary.frames_scored:
        names = {"decode": "decode", "tile": "tiles", "infer": "inference", "store": "store"}
        busy = ", ".join(f"{names[k]} {v:.0%}" for k, v in summary.stage_busy.items())
        slowest = max(summary.stage_busy, key=lambda k: summary.stage_busy[k])
        print(f"  stages busy: {busy} (the {names[slowest]} stage set the pace)", file=out)


def cmd_score(args: argparse.Namespace) -> int:
    if args.workers is not None and (not args.cluster or args.workers < 1):
        print("error: --workers takes a count of at least 1, with --cluster", file=sys.stderr)
        return EXIT_USAGE
    overrides: dict[str, Any] = {"scoring": {}}
    if args.device:
        overrides["scoring"]["device"] = args.device
    if args.batch:
        overrides["scoring"]["batch"] = args.batch
    if args.members:
        overrides["scoring"]["members"] = [m.strip() for m in args.members.split(",") if m.strip()]
    with open_project(args, overrides) as ws:
        bar = ProgressBar("scoring")
        try:
            if args.cluster:
                from triage_app.core.scoring.cluster import score_on_cluster

                summary = score_on_cluster(ws, args.cluster, workers=args.workers, progress=bar, wait_s=args.wait)
            else:
                summary = score_project(ws, progress=bar, wait_s=args.wait)
        finally:
            bar.close()
        candidates, scored, policy = after_scoring(ws, summary)
    _print_score(summary, candidates, scored, policy)
    return 0 if summary.frames_scored or (scored and not summary.errors) else EXIT_NOTHING_DONE


def cmd_policy(args: argparse.Namespace) -> int:
    with open_project(args) as ws:
        try:
            derived, rule = propose_policy(ws, args.target_recall, args.rule, confidence=args.confidence)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        frames = len(ws.scores.score_table()[0])
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
        pid = ws.policies.save(rule.text, derived.thresholds, args.by or ws.settings.review.reviewer,
                               target_recall=args.target_recall, note=derived.note or None, confidence=derived.confidence)
        sampled = refresh_audit(ws)
        print(f"saved as policy {pid}; {sampled} dropped frames sampled for the blind audit")
    return 0


def cmd_finds(args: argparse.Namespace) -> int:
    with open_project(args) as ws:
        items = finds(ws)
    to_stdout = [t for t in (args.geojson, args.gpx) if t == "-"]
    if len(to_stdout) > 1:
        print("error: only one of --geojson and --gpx can be - (standard output)", file=sys.stderr)
        return 2
    for target, text, what in ((args.geojson, finds_geojson, "finds"), (args.gpx, finds_gpx, "places")):
        if not target:
            continue
        if target == "-":  # standard output, and nothing else printed there
            sys.stdout.write(text(items))
            continue
        try:
            Path(target).write_text(text(items), encoding="utf-8")
        except OSError as exc:
            print(f"{target}: cannot be written ({exc.strerror or exc})", file=sys.stderr)
            return 2
        count = sum(f.lat is not None for f in items) if what == "finds" else len({f.place for f in items if f.place})
        print(f"wrote {count} {what} to {target}", file=sys.stderr)
    if to_stdout:
        return 0
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
        said = " — " + terminal_safe(": ".join(t for t in (f.what, f.remark) if t)) if f.what or f.remark else ""
        print(f"  {place} {f.decided_at[:19].replace('T', ' ')} UTC  {terminal_safe(f.reviewer):<10} {terminal_safe(f.source)} frame {f.frame} "
              f"(t={f.timestamp_s:.1f} s)  {where}{said}")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    """A class and a note on a find (any frame, by its id as ``triage finds --csv`` gives it)."""
    with open_project(args) as ws:
        try:
            frame = ws.frames.frame(args.frame)
        except StoreError:
            print(f"error: {args.project} has no frame {args.frame} (the frame_id column of triage finds --csv)", file=sys.stderr)
            return EXIT_INPUT
        before = ws.notes.of_frames([args.frame]).get(args.frame)
        if args.what is None and args.text is None:
            print(f"frame {args.frame}: " + (f"{before.what or '-'}: {before.note or '-'} (by {before.author}, {before.noted_at[:19]})"
                                               if before else "no note"))
            return 0
        what = args.what if args.what is not None else (before.what if before else "")
        text = args.text if args.text is not None else (before.note if before else "")
        now = ws.notes.set(args.frame, what, text, ws.settings.review.reviewer)
        accepted = any(d.frame_id == args.frame and d.label.value == "accept" for d in ws.decisions.current())
    print(f"frame {args.frame} (frame {frame['idx']} of source {frame['source_id']}): "
          + (f"{now.what or '-'}: {now.note or '-'}" if now else "note taken away")
          + ("" if accepted else " (not a find yet: the frame is not accepted)"))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    with open_project(args) as ws:
        data = report(ws)
    if args.json:
        print(json.dumps(data))
        return 0
    if data["active_review"] is not None:
        print(f"active review for {data['target']}:")
        for line in data["active_review"]["lines"]:
            print(f"  {line}")
        print("policy in force (the frames past its thresholds, for a review by threshold):")
    data = {**data, **(data.get("policy_in_force") or {})}  # the policy's own numbers from here on
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


def _export_options(args: argparse.Namespace) -> tuple[Options, tuple[str, ...], Any, Any, list[int] | None]:
    try:
        split = tuple(float(x) for x in args.split.split(","))
    except ValueError:
        raise ValueError(f"--split {args.split}: three shares as numbers, train,val,test (for example 0.8,0.1,0.1)") from None
    options = Options(formats=tuple(csv_list(args.format) or ()), split=split, balance=args.balance,  # type: ignore[arg-type]
                      seed=args.seed, image_format=args.image_format, overwrite=args.overwrite)
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    labels = tuple(csv_list(args.labels) or ())
    Selection(labels=labels)  # checked before the project is opened
    policies = None
    if args.policies:
        try:
            policies = [int(x) for x in csv_list(args.policies) or []]
        except ValueError:
            raise ValueError(f"--policies {args.policies}: policy ids are numbers (see triage report)") from None
    return options, labels, since, until, policies


def _sources_named(ws: Workspace, text: str | None) -> list[int] | None:
    """Source ids for ``--sources`` (ids or names); a ValueError names an unknown one."""
    if not text:
        return None
    known = ws.frames.source_summaries()
    sources: list[int] = []
    for token in csv_list(text) or []:
        hit = [s["id"] for s in known if str(s["id"]) == token or s["name"] == token]
        if not hit:
            names = ", ".join(f"{s['id']} {s['name']}" for s in known)
            raise ValueError(f"{ws.root}: no source named or numbered '{token}' (sources: {names})")
        sources += hit
    return sources


def cmd_export(args: argparse.Namespace) -> int:
    try:
        options, labels, since, until, policies = _export_options(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with open_project(args) as ws:
        try:
            sources = _sources_named(ws, args.sources)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        selection = Selection(sources=sources, reviewers=csv_list(args.reviewers), labels=labels, since=since, until=until,
                              policies=policies,
                              include_doubtful=args.include_doubtful)
        bar = ProgressBar("export")
        try:
            done = export(ws, args.outdir, selection, options, progress=bar)
        finally:
            bar.close()
    print(f"exported {done.rows} decided frames to {done.outdir} ({done.files} image files)")
    for split, counts in done.counts.items():
        before = done.before_balance.get(split, {})
        text = ", ".join(f"{c} {n}" + (f" (was {before.get(c, 0)})" if before.get(c, 0) != n else "")
                         for c, n in sorted(counts.items())) or "empty"
        print(f"  {split}: {text}")
    if any(done.held_back.values()):
        print(f"held back: {done.held_back['disputed']} frames with an unresolved disagreement, "
              f"{done.held_back['doubted']} decisions the label check doubts (--include-doubtful to export them)")
    if done.geo_points:
        print(f"{done.geo_points} accepted frames with GPS written as map points")
    for msg in done.skipped:
        print(f"  skipped: {msg}")
    return 0


def cmd_annotations_import(args: argparse.Namespace) -> int:
    reports = []
    with open_project(args) as ws:
        for f in args.files:
            try:
                reports.append(import_annotations(ws, f))
            except InputError as exc:  # named, and the other files go on
                print(f"error: {terminal_safe(str(exc))}", file=sys.stderr)
    if args.json:
        print(json.dumps([dict(file=str(r.file), tool=r.tool, frames=r.frames, boxes=r.boxes, empty=r.empty,
                               skipped=r.skipped) for r in reports], indent=1))
    else:
        for r in reports:
            print(terminal_safe(r.summary()))
            for msg in r.skipped[1:6]:
                print(f"  skipped: {terminal_safe(msg)}")
    return 0 if any(r.frames for r in reports) else EXIT_NOTHING_DONE  # as ingest: each failure named on stderr


def cmd_annotations_list(args: argparse.Namespace) -> int:
    with open_project(args) as ws:
        drawn = ws.annotations.of_frames()
    rows = [dict(frame_id=a.frame_id, tool=a.tool, annotator=a.annotator, file=a.file, imported_at=a.imported_at,
                 boxes=[dict(label=b.label, x0=b.x0, y0=b.y0, x1=b.x1, y1=b.y1) for b in a.boxes])
            for a in sorted(drawn.values(), key=lambda a: a.frame_id)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    labels = Counter(b["label"] for r in rows for b in r["boxes"])
    print(f"{len(rows)} frames annotated, {sum(labels.values())} boxes"
          + (f" ({', '.join(f'{k} {v}' for k, v in sorted(labels.items()))})" if labels else ""))
    for tool, n in sorted(Counter(r["tool"] for r in rows).items()):
        print(f"  from {tool}: {n} frames")
    return 0


def add_parsers(sub: Any) -> None:
    ing = sub.add_parser("ingest", help="add videos, image folders or streams to a project")
    ing.add_argument("project", type=project_location, metavar="PROJECT")
    ing.add_argument("sources", nargs="+", help="video files, image folders, or stream URLs")
    g = ing.add_mutually_exclusive_group()
    g.add_argument("--every", type=int, help="keep every Nth frame")
    g.add_argument("--fps", type=float, help="keep N frames per second of video time")
    ing.add_argument("--telemetry", type=Path, help="DJI .SRT file (default: the one beside each video)")
    ing.add_argument("--target", help="what the project looks for: person, vehicle, boat, animal, building_damage, ... "
                     "(see triage target; changeable later)")
    ing.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="when another run is writing the project, wait this long for it (default: say who and stop)")
    ing.set_defaults(func=cmd_ingest)

    tg = sub.add_parser("target", help="what the project looks for: show it and the targets table, or change it")
    tg.add_argument("project", type=project_location, metavar="PROJECT")
    tg.add_argument("name", nargs="?", help="a target of the table, or a name of your own with --classes or --prompts")
    tg.add_argument("--classes", help="comma-separated ImageNet class names standing for the target")
    tg.add_argument("--prompts", help="CLIP prompts for the target, separated by semicolons")
    tg.add_argument("--background", help="CLIP prompts for what is not the target, separated by semicolons")
    tg.add_argument("--size", type=float, help="the target's size on the ground, metres across")
    tg.set_defaults(func=cmd_target)

    sc = sub.add_parser("score", help="score the ingested frames with the ensemble")
    sc.add_argument("project", type=project_location, metavar="PROJECT")
    sc.add_argument("--members", help="comma-separated members (default from settings: imagenet,clip,head)")
    sc.add_argument("--device", choices=["auto", "cpu", "cuda"])
    sc.add_argument("--batch", type=int, help="tiles per inference batch")
    sc.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="when another run is writing the project, wait this long for it (default: say who and stop)")
    sc.add_argument("--cluster", metavar="ADDRESS", help="score on a Ray cluster: auto (the one started here with `ray start "
                    "--head`), HOST:PORT, or ray://HOST:10001; the footage must be readable by the workers at its stored path")
    sc.add_argument("--workers", type=int, help="with --cluster: how many workers (default: one per GPU, or per "
                    "scoring.cluster_cpus_per_worker CPUs)")
    sc.set_defaults(func=cmd_score)

    po = sub.add_parser("policy", help="derive thresholds for a target recall and save them as the policy")
    po.add_argument("project", type=project_location, metavar="PROJECT")
    po.add_argument("--target-recall", type=float, required=True, help="for example 0.98")
    po.add_argument("--rule", help="any, all, or K-of-N (default: the rule in force)")
    po.add_argument("--confidence", type=float, help="assurance of reaching the target: the one-sided confidence of "
                    "the recall bound (0.95 strict ... 0.5 the point estimate; default review.recall_confidence)")
    po.add_argument("--by", help="who sets the policy (default: the reviewer name in settings)")
    po.add_argument("--dry-run", action="store_true", help="show the effect, save nothing")
    po.set_defaults(func=cmd_policy)

    ex = sub.add_parser("export", help="export decided frames with their provenance (image folders, manifests, COCO, maps)")
    ex.add_argument("project", type=project_location, metavar="PROJECT")
    ex.add_argument("outdir", type=Path)
    ex.add_argument("--format", default="imagefolder,csv,parquet",
                    help=f"comma-separated: {', '.join(FORMATS)} (cvat and label-studio: the accepted frames as "
                    "annotation tasks with the tile that fired pre-drawn; fiftyone: a GeoJSON dataset with each "
                    "frame's position)")
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
    ex.add_argument("--overwrite", action="store_true",
                    help="replace an earlier export in that folder (only once the new one is complete; never a folder "
                    "that holds anything else)")
    ex.set_defaults(func=cmd_export)

    fi = sub.add_parser("finds", help="accepted frames, newest first, with where they are on the ground")
    fi.add_argument("project", type=project_location, metavar="PROJECT")
    fi.add_argument("--csv", action="store_true", help="print them as CSV")
    fi.add_argument("--geojson", metavar="FILE", help="also write them as GeoJSON points (- : to standard output, alone)")
    fi.add_argument("--gpx", metavar="FILE", help="also write their places as GPX waypoints, for handheld receivers "
                    "(- : to standard output, alone)")
    fi.set_defaults(func=cmd_finds)

    no = sub.add_parser("note", help="say what a find is and add a note to it (shown with the finds and in their exports)")
    no.add_argument("project", type=project_location, metavar="PROJECT")
    no.add_argument("frame", type=int, metavar="FRAME_ID", help="the frame's id (frame_id in triage finds --csv)")
    no.add_argument("--what", help="what was found, in your words (person, vehicle, debris, ...); '' takes it away")
    no.add_argument("--text", help="the note; '' takes it away (without --what and --text: print the note)")
    no.set_defaults(func=cmd_note)

    rp = sub.add_parser("report", help="workload, reviews, audit and the measured recall")
    rp.add_argument("project", type=project_location, metavar="PROJECT")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=cmd_report)

    an = sub.add_parser("annotations", help="boxes drawn in CVAT or Label Studio: bring them back, list them")
    asub = an.add_subparsers(dest="annotations_command", required=True, metavar="COMMAND")
    ai = asub.add_parser("import", help="read CVAT for images 1.1 XML or Label Studio JSON / JSON-MIN exports of frames "
                         "this project exported; each frame's boxes replace what it had")
    ai.add_argument("project", type=project_location, metavar="PROJECT")
    ai.add_argument("files", nargs="+", type=Path, metavar="FILE")
    ai.add_argument("--json", action="store_true")
    ai.set_defaults(func=cmd_annotations_import)
    al = asub.add_parser("list", help="the frames annotated and their boxes")
    al.add_argument("project", type=project_location, metavar="PROJECT")
    al.add_argument("--json", action="store_true")
    al.set_defaults(func=cmd_annotations_list)
