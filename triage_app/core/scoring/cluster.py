"""Scoring on a Ray cluster: the same frames, the same results, many machines.

This process stays the project's single writer, as in a local run: it lists the frames that
lack scores, cuts them into work units (a source's frames; a long video in ranges of
``scoring.cluster_unit_frames``) and hands the units to Ray actors. Each actor holds the
ensemble's ONNX Runtime sessions (one actor per GPU, or per few CPUs), built from the exported
ONNX files, which travel through Ray's object store and are checked by their SHA-256: a worker
needs the package and ONNX Runtime, never PyTorch or model code. An actor runs its unit through
the same decode, tile and batched-inference stages as a local run (:mod:`.pipeline`) and sends
back every frame's tile scores and embeddings; this process commits them with the local run's
writer, so a project scored on a cluster holds what a local run would have written (bit for bit
on the CPU provider). A unit is committed whole and once; the unit of an actor that died is
handed to another (Ray brings the actor back), up to ``_TRIES`` times; cancelling keeps what
was committed, and the next run scores the rest.

Ray is imported here only, and only when a cluster is asked for (``triage_app[cluster]``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

from triage_app.core.model.cards import ModelCard
from triage_app.core.model.errors import TriageError
from triage_app.core.model.records import Frame
from triage_app.core.scoring.members.ensemble import Ensemble, HeadMember, HeadModel, OnnxMember
from triage_app.core.scoring.members.runtime import OnnxSession
from triage_app.core.scoring.pipeline import (
    ScoreSummary,
    ScoringContext,
    Stages,
    StoreWriter,
    build_ensemble,
    note_tiling,
    pending_work,
    run_stages,
    scoring_context,
    scoring_run,
)
from triage_app.core.store import Workspace

log = logging.getLogger(__name__)

_TRIES = 3  # a unit whose actor died this many times is given up (and named)
_IN_FLIGHT = 2  # units queued per actor: the next is ready when one is done
_START_TIMEOUT_S = 300.0


class ClusterError(TriageError):
    """The cluster cannot be reached or cannot run the workers; the message says which and why."""


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ClusterError('scoring on a cluster needs Ray, which is not installed here: pip install "triage_app[cluster]"') from exc
    return ray


# -- what travels to the workers -----------------------------------------------------------
@dataclass
class MemberFile:
    """An exported member on its way to the workers: its card, meta and the SHA-256 of its
    ONNX file (the bytes travel beside it as an object-store argument)."""

    card: ModelCard
    meta: dict[str, Any]
    sha256: str
    file_name: str


@dataclass
class EnsembleSpec:
    names: list[str]
    backbones: list[MemberFile]
    heads: list[ModelCard]
    head: HeadModel | None
    device: str
    batch: int
    cuda_graph: bool
    threads: int | None  # ONNX Runtime's CPU threads per worker (None: its own choice)


@dataclass
class WorkUnit:
    key: int
    source_id: int
    frames: list[Frame]
    tries: int = 0

    def describe(self, ctx: ScoringContext) -> str:
        uri = ctx.sources[self.source_id].get("uri", "?")
        return f"{uri} frames {self.frames[0]['idx']}-{self.frames[-1]['idx']}"


@dataclass
class UnitResult:
    key: int
    results: list[Any]  # pipeline results, in frame order
    errors: list[str]
    messages: list[tuple[int, str]]  # (source id, why) for the project's messages
    scales: dict[int, list[float]]
    scale_why: dict[int, str]
    frames_decoded: int
    worker: str
    seconds: float


def work_units(pending: list[Frame], unit_frames: int) -> list[WorkUnit]:
    """The pending frames cut into units: each a run of one source's frames in index order,
    at most ``unit_frames`` long (a long video is several units, each decoded from its own
    keyframe)."""
    units: list[WorkUnit] = []
    run: list[Frame] = []
    for f in pending:
        if run and (f["source_id"] != run[0]["source_id"] or len(run) >= unit_frames):
            units.append(WorkUnit(len(units), int(run[0]["source_id"]), run))
            run = []
        run.append(f)
    if run:
        units.append(WorkUnit(len(units), int(run[0]["source_id"]), run))
    return units


def unit_size(frames: int, workers: int, most: int) -> int:
    """Frames per unit: at most ``most``, and small enough that each worker gets about four
    units (a short job still spreads over every worker), but not under 8 frames."""
    return max(1, min(most, max(8, math.ceil(frames / (4 * max(1, workers))))))


def ensemble_spec(ens: Ensemble, device: str, batch: int, cuda_graph: bool, threads: int | None) -> tuple[EnsembleSpec, list[bytes]]:
    """The spec of ``ens`` and its ONNX files' bytes (in the spec's backbone order)."""
    files, blobs = [], []
    for b in ens.backbones:
        data = Path(b.onnx_path).read_bytes()
        files.append(MemberFile(b.card, dict(b.meta), hashlib.sha256(data).hexdigest(), Path(b.onnx_path).name))
        blobs.append(data)
    heads = [m.card for m in ens.members if isinstance(m, HeadMember)]
    head = next((m.model for m in ens.members if isinstance(m, HeadMember)), None)
    return EnsembleSpec(ens.names, files, heads, head, device, batch, cuda_graph, threads), blobs


def worker_cache() -> Path:
    """Where a worker keeps the members' ONNX files (by hash): its own cache folder."""
    return Path(os.environ.get("TRIAGE_CACHE_DIR") or platformdirs.user_cache_dir("triage_app")) / "cluster"


def _keep_file(folder: Path, member: MemberFile, data: bytes) -> Path:
    """The member's ONNX file in the worker's cache, written once (checked by its hash)."""
    if hashlib.sha256(data).hexdigest() != member.sha256:
        raise ClusterError(f"the ONNX file of member {member.card.name} arrived damaged (SHA-256 differs)")
    path = folder / f"{member.sha256[:20]}-{member.file_name}"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def ensemble_from_spec(spec: EnsembleSpec, blobs: list[bytes], cache: Path) -> Ensemble:
    """The ensemble a worker runs, from the files that travelled to it."""
    ens = Ensemble()
    by_name: dict[str, OnnxMember] = {}
    for member, data in zip(spec.backbones, blobs, strict=True):
        path = _keep_file(cache, member, data)
        session = OnnxSession(path, member.card.input_size, spec.device, spec.batch, cache, threads=spec.threads,
                              cuda_graph=spec.cuda_graph)
        m = OnnxMember(member.card, path, member.meta, session)
        by_name[m.name] = m
        ens.backbones.append(m)
    heads = {c.name: c for c in spec.heads}
    for name in spec.names:
        if name in heads and spec.head is not None:
            ens.members.append(HeadMember(heads[name], spec.head))
        elif name in by_name:
            ens.members.append(by_name[name])
    return ens


class ScoringWorker:
    """A Ray actor's body: the ensemble's sessions, and the stages run over one unit at a time."""

    def __init__(self, spec: EnsembleSpec, ctx: ScoringContext, blob_refs: list[Any]) -> None:
        ray = _ray()
        self.ctx = ctx
        # The files' references arrive inside a list, so that Ray does not resolve them before
        # the actor starts; the driver keeps them alive for the run, and a restarted actor
        # reads them again.
        self.ens = ensemble_from_spec(spec, ray.get(blob_refs), worker_cache())
        self.node = ray.get_runtime_context().get_node_id()
        self.name = f"{socket.gethostname()} (node {self.node[:8]}) pid {os.getpid()}"

    def ready(self) -> dict[str, Any]:
        """Who this worker is, and that it runs the members without PyTorch."""
        return {"worker": self.name, "node": self.node, "pid": os.getpid(), "provider": self.ens.provider,
                "torch_loaded": "torch" in sys.modules}

    def score(self, unit: WorkUnit) -> UnitResult:
        t0 = time.perf_counter()
        errors: list[str] = []
        messages: list[tuple[int, str]] = []
        stages = Stages(self.ctx, self.ens, unit.frames, errors, report=lambda sid, why: messages.append((sid, why)))
        results = list(run_stages(stages))
        errors = [f"on {self.name}: {e}" for e in errors]
        return UnitResult(unit.key, results, errors, messages, stages.scales, stages.scale_why, stages.frames_decoded,
                          self.name, time.perf_counter() - t0)


# -- the driver -----------------------------------------------------------------------------
@dataclass
class ClusterPlan:
    workers: int
    device: str
    cpus: float  # per worker
    gpus: float  # per worker
    threads: int | None
    resources: dict[str, float] = field(default_factory=dict)


def plan_workers(resources: dict[str, float], nodes: list[dict[str, Any]], device: str, workers: int | None,
                 cpus_per_worker: int) -> ClusterPlan:
    """One worker per GPU where the cluster has GPUs (and the device setting allows them);
    otherwise one per ``cpus_per_worker`` CPUs of each node (at least one per node)."""
    gpus = int(resources.get("GPU", 0))
    if gpus and device != "cpu":
        return ClusterPlan(workers or gpus, "cuda", 1.0, 1.0, None, resources)
    if device == "cuda":
        raise ClusterError("the device setting asks for CUDA but the cluster reports no GPU")
    per_node = [float(n.get("Resources", {}).get("CPU", 0)) for n in nodes if n.get("Alive")]
    biggest = max(per_node, default=float(resources.get("CPU", 1)))
    cpus = float(max(1, min(cpus_per_worker, int(biggest) or 1)))
    count = sum(max(1, int(c // cpus)) for c in per_node if c >= cpus) or 1
    return ClusterPlan(workers or count, "cpu", cpus, 0.0, int(cpus), resources)


def score_on_cluster(
    ws: Workspace, address: str, workers: int | None = None, member_names: list[str] | None = None,
    progress: Callable[[int, int | None], None] | None = None, cancel: Any = None, wait_s: float = 0.0,
    on_started: Callable[[list[dict[str, Any]]], None] | None = None,
) -> ScoreSummary:
    """Score every frame that lacks a score, as :func:`~.pipeline.score_project` does, on the
    Ray cluster at ``address`` (``auto``: the one started on this machine with ``ray start
    --head``; ``ray://host:10001``: a remote one). ``on_started`` hears each worker's name,
    process id and provider once they are up."""
    ray = _ray()
    t0 = time.perf_counter()
    s = ws.settings.scoring
    owns = not ray.is_initialized()
    try:
        if owns:
            _reachable(address)
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds for an unreachable cluster
        raise ClusterError(f"no Ray cluster at {address}: {exc} (start one with `ray start --head`, or name it as ray://HOST:10001)") from exc
    actors: list[Any] = []
    try:
        plan = plan_workers(ray.cluster_resources(), ray.nodes(), s.device, workers, s.cluster_cpus_per_worker)
        # auto: fp16 on GPU workers; on CPU workers the precision the project was scored in, fp32
        # for a new one (whether the workers' CPUs have 8-bit dot products the driver cannot see).
        precision = s.precision if s.precision != "auto" else ("fp16" if plan.device == "cuda" else "auto")
        # The driver's own sessions run on its CPU: it only reads the members' versions and sizes.
        ens = build_ensemble(ws, member_names, device="cpu", precision=precision, int8_auto=False)
        summary = ScoreSummary(members=ens.names, precisions=ens.precisions, unavailable=dict(ens.unavailable),
                               provider="none")
        if not ens.members:
            summary.errors.append("no ensemble member is available: nothing can be scored")
            return summary
        with ws.writing("scoring", wait_s=wait_s):
            versions, pending = pending_work(ws, ens)
            summary.frames_pending = len(pending)
            if pending:
                spec, blobs = ensemble_spec(ens, plan.device, s.batch, s.cuda_graph, plan.threads)
                ctx = replace(scoring_context(ws, pending), pictures=None)  # the workers keep no pictures
                refs = [ray.put(b) for b in blobs]
                remote = ray.remote(ScoringWorker).options(num_cpus=plan.cpus, num_gpus=plan.gpus, max_restarts=0)

                def new_actor() -> Any:
                    actor = remote.remote(spec, ctx, refs)
                    actors.append(actor)  # every actor made is killed at the end
                    return actor

                workers_now = [new_actor() for _ in range(plan.workers)]
                started = _wait_started(ray, workers_now, plan)
                summary.provider = started[0]["provider"]
                if on_started:
                    on_started(started)
                log.info("scoring %d frames on %d workers of the cluster at %s (%s)", len(pending), len(actors), address,
                         ", ".join(w["worker"] for w in started))
                units = work_units(pending, unit_size(len(pending), len(workers_now), s.cluster_unit_frames))
                _drive(ray, ws, ens, _Pool(workers_now, new_actor), ctx, units, versions, summary, progress, cancel)
                summary.cluster = {"address": address, "workers": len(workers_now), "device": plan.device,
                                   "nodes": len({w["node"] for w in started})} | summary.cluster
        summary.seconds = time.perf_counter() - t0
        return summary
    finally:
        for a in actors:
            ray.kill(a)
        if owns:
            ray.shutdown()


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail at once, naming the address, where nothing listens there (Ray itself retries an
    unreachable head for minutes)."""
    if address == "auto":
        return  # Ray finds the cluster started on this machine, or says there is none
    hostport = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"cluster address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterError(f"no Ray cluster at {address}: nothing answers there ({exc}); start one with `ray start --head` "
                           "and name its address (HOST:6379, or ray://HOST:10001 from another network)") from exc


def _wait_started(ray: Any, actors: list[Any], plan: ClusterPlan) -> list[dict[str, Any]]:
    pending = [a.ready.remote() for a in actors]
    done, waiting = ray.wait(pending, num_returns=len(pending), timeout=_START_TIMEOUT_S)
    if waiting:
        raise ClusterError(f"{len(waiting)} of {len(actors)} workers did not start in {_START_TIMEOUT_S:.0f} s: each needs "
                           f"{plan.cpus:g} CPUs and {plan.gpus:g} GPUs, the cluster has {plan.resources} (fewer --workers?)")
    try:
        return [ray.get(r) for r in pending]
    except Exception as exc:  # noqa: BLE001 - the worker's own error, as Ray wraps it
        raise ClusterError(f"a worker could not start: {exc}") from exc


class _Pool:
    """The workers, one slot each; a worker that died is replaced in its slot by a new one
    (which loads the members again from the files in the object store)."""

    def __init__(self, actors: list[Any], make: Callable[[], Any]) -> None:
        self.actors, self.make = list(actors), make
        self.replaced = 0

    def replace(self, k: int, dead: Any) -> None:
        if self.actors[k] is dead:  # its other units in flight fail too: replaced once
            self.actors[k] = self.make()
            self.replaced += 1


class _Driver:
    """Hands the units to the actors and commits each one's results as it comes back."""

    def __init__(self, ray: Any, ws: Workspace, pool: _Pool, ctx: ScoringContext, units: list[WorkUnit],
                 writer: StoreWriter, summary: ScoreSummary) -> None:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, WorkerCrashedError

        self.lost = (RayActorError, ActorDiedError, ActorUnavailableError, WorkerCrashedError)
        self.ray, self.ws, self.pool, self.ctx, self.writer, self.summary = ray, ws, pool, ctx, writer, summary
        self.units = len(units)
        self.total = sum(len(u.frames) for u in units)
        self.queue = deque(units)
        self.in_flight: dict[Any, tuple[WorkUnit, int, Any]] = {}
        self.load = [0] * len(pool.actors)
        self.scales: dict[int, list[float]] = {}
        self.why: dict[int, str] = {}
        self.retried = 0
        self.per_worker: dict[str, int] = {}
        self.commit_s = 0.0  # this process's time taking results in and writing them: the ceiling of the cluster's rate

    def submit(self) -> None:
        """Keep ``_IN_FLIGHT`` units queued on every actor, the least loaded first."""
        while self.queue:
            k = min(range(len(self.pool.actors)), key=self.load.__getitem__)
            if self.load[k] >= _IN_FLIGHT:
                return
            unit = self.queue.popleft()
            actor = self.pool.actors[k]
            self.in_flight[actor.score.remote(unit)] = (unit, k, actor)
            self.load[k] += 1

    def run(self, progress: Callable[[int, int | None], None] | None, cancel: Any, t_stream: float) -> None:
        self.submit()
        while self.in_flight:
            if cancel is not None and cancel.is_set():
                self.summary.cancelled = True
                return
            ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=0.25)
            for ref in ready:
                unit, k, actor = self.in_flight.pop(ref)
                self.load[k] -= 1
                t0 = time.perf_counter()
                res = self._result(ref, unit, k, actor)
                if res is None:
                    continue
                if self.summary.first_result_s is None:
                    self.summary.first_result_s = time.perf_counter() - t_stream
                self._commit(res)
                self.commit_s += time.perf_counter() - t0
                if progress:
                    progress(self.summary.frames_scored, self.total)
            self.submit()

    def _result(self, ref: Any, unit: WorkUnit, k: int, actor: Any) -> UnitResult | None:
        """The unit's results; None where its worker died (the unit goes back in the queue)
        or the unit failed (named in the summary's errors)."""
        try:
            res: UnitResult = self.ray.get(ref)
            return res
        except self.lost as exc:
            self.pool.replace(k, actor)
            unit.tries += 1
            if unit.tries < _TRIES:
                self.retried += 1
                log.warning("a worker died scoring %s; handing it to another (try %d of %d)", unit.describe(self.ctx),
                            unit.tries + 1, _TRIES)
                self.queue.appendleft(unit)
            else:
                self.summary.errors.append(f"{unit.describe(self.ctx)}: given up after its worker died {_TRIES} times ({exc})")
        except Exception as exc:  # noqa: BLE001 - the unit's own failure; the other units go on
            self.summary.errors.append(f"{unit.describe(self.ctx)}: {exc}")
        return None

    def _commit(self, res: UnitResult) -> None:
        """A unit's frames into the store in one commit, as a local run writes them."""
        for item in res.results:
            self.writer.add(item)
        self.summary.frames_scored += self.writer.commit()
        self.summary.errors.extend(res.errors)
        for sid, text in res.messages:
            self.ws.frames.add_message("error", f"scoring skipped frames: {text}", path=self.ctx.sources[sid].get("uri"),
                                       source_id=sid)
        for sid, vals in res.scales.items():
            self.scales.setdefault(sid, []).extend(vals)
            self.why.setdefault(sid, res.scale_why.get(sid, ""))
        self.summary.frames_decoded += res.frames_decoded
        self.per_worker[res.worker] = self.per_worker.get(res.worker, 0) + len(res.results)


def _drive(ray: Any, ws: Workspace, ens: Ensemble, pool: _Pool, ctx: ScoringContext, units: list[WorkUnit],
           versions: dict[str, int], summary: ScoreSummary, progress: Callable[[int, int | None], None] | None,
           cancel: Any) -> None:
    t_stream = time.perf_counter()
    with scoring_run(ws, ens, versions, summary.provider, summary) as writer:
        driver = _Driver(ray, ws, pool, ctx, units, writer, summary)
        driver.run(progress, cancel, t_stream)
        summary.stream_seconds = time.perf_counter() - t_stream
        note_tiling(summary, driver.scales, driver.why)
        summary.cluster = {"retried_units": driver.retried, "units": driver.units, "frames_per_worker": driver.per_worker,
                           "commit_s": round(driver.commit_s, 5)}
        log.info("scored %d frames on the cluster in %.1f s; %d units retried", summary.frames_scored, summary.stream_seconds,
                 driver.retried)
