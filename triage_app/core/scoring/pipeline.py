"""The streaming scoring pipeline.

decode ─▶ tiles ─▶ batched inference ─▶ store, each stage a thread joined to the next by a
bounded queue, so decoding and inference overlap and memory stays flat for any length of
video. Inference fills every batch with the tiles of successive frames (``TileBatcher``): a
GPU's fixed batch shape is padded once per run, not once per frame. Results are committed in
small batches as they come (the review queue grows while scoring runs); a frame's scores for
all members and its cached embeddings are committed together, so a stopped run resumes where
it stopped and never scores a frame twice. Each stage's working time is measured, so a run
says which stage held the others back (``ScoreSummary.stage_busy``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triage_app.core.ingest import remote
from triage_app.core.ingest.parallel import default_workers, interleaved, ordered_map
from triage_app.core.ingest.pictures import PictureWriter, ReviewPictures
from triage_app.core.ingest.reader import frame_file
from triage_app.core.ingest.sources import VideoSource, decode_image
from triage_app.core.model.cards import project_members
from triage_app.core.model.errors import SourceError
from triage_app.core.model.records import Frame, Sampling, Source
from triage_app.core.model.settings import Settings
from triage_app.core.scoring.batching import FrameOutputs, FrameTiles, TileBatcher
from triage_app.core.scoring.members.ensemble import Ensemble, HeadMember, HeadModel, build_members, pool_tiles
from triage_app.core.scoring.tiling import Tile, frame_tiles, tiling_scale
from triage_app.core.store import Workspace
from triage_app.core.store.embeddings import EmbeddingWriter, pooled_set
from triage_app.core.store.scores import ScoreStore

log = logging.getLogger(__name__)
_END = object()


@dataclass
class ScoreSummary:
    frames_scored: int = 0
    frames_pending: int = 0
    provider: str = "none"
    seconds: float = 0.0
    stream_seconds: float = 0.0  # from the stages' start to the last commit (no set-up, no audit refresh)
    members: list[str] = field(default_factory=list)
    precisions: dict[str, str] = field(default_factory=dict)  # each ONNX member's (fp32, fp16, int8)
    unavailable: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    cancelled: bool = False
    # Share of the stream time each stage spent working rather than waiting on its queues
    # (tiles: per worker); the stage near 1.0 is the one holding the others back.
    stage_busy: dict[str, float] = field(default_factory=dict)
    batch_fill: float = 1.0  # share of the batch slots run that held a real tile (the rest is padding)
    first_result_s: float | None = None  # from the stages' start to the first scored frame (pipeline start-up)
    frames_decoded: int = 0  # pictures the decoders produced (a video's unsampled frames that the sampled ones need included)
    # per source: (smallest, median, largest) scale the frames were cut at, and why
    tiling: dict[int, tuple[float, float, float, str]] = field(default_factory=dict)
    cluster: dict[str, Any] = field(default_factory=dict)  # scored on a Ray cluster: its workers, units, retries

    @property
    def members_described(self) -> str:
        """``imagenet (int8), head``: the members, each ONNX one with its precision where it is
        not fp32."""
        return ", ".join(m + (f" ({self.precisions[m]})" if self.precisions.get(m, "fp32") != "fp32" else "")
                         for m in self.members)

    @property
    def fps(self) -> float:
        return self.frames_scored / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Decoded:
    frame: Frame
    image: np.ndarray


@dataclass
class _Result:
    frame: Frame
    tiles: list[Tile]
    scores: dict[str, np.ndarray]  # member -> per-tile scores
    embeddings: dict[str, np.ndarray]  # backbone -> (n, dim)
    peaks: dict[str, np.ndarray] = field(default_factory=dict)  # backbone -> (n, peak_dim): each tile's strongest cells


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def load_head(ws: Workspace) -> HeadModel | None:
    row = ws.heads.latest()
    if row is None:
        return None
    return HeadModel(int(row["id"]), row["backbone"], row["coef"], float(row["intercept"]), row["feature_mean"], row["feature_scale"],
                     features=row["metrics"].get("features_used", "pooled"))


def default_members(ws: Workspace) -> list[str]:
    """The settings' members, then those deployed into the project (a fine-tuned backbone)."""
    names = list(ws.settings.scoring.members)
    return names + [n for n in project_members(ws.root) if n not in names]


def build_ensemble(ws: Workspace, names: list[str] | None = None, device: str | None = None,
                   precision: str | None = None, int8_auto: bool = True) -> Ensemble:
    s = ws.settings.scoring
    names = names or default_members(ws)
    return build_members(
        names, ws.cards, ws.settings.cache_dir, device or s.device, s.batch, head=load_head(ws),
        precision=precision or s.precision, cuda_graph=s.cuda_graph,
        scored_keys={n: ws.scores.scored_version_keys(n) for n in names}, int8_auto=int8_auto,
    )


@dataclass
class ScoringContext:
    """What the stages read besides the frames and the members, with no tie to the store:
    a Ray worker gets a copy of it (:mod:`.cluster`)."""

    settings: Settings
    root: Path  # the project's folder (a stream's frames are kept there)
    target_size_m: float
    sources: dict[int, Source]
    #: Where the frames' review pictures are kept as they are decoded (None on a cluster's
    #: workers, which have no project folder: review makes those pictures itself).
    pictures: ReviewPictures | None = None


def scoring_context(ws: Workspace, frames: list[Frame]) -> ScoringContext:
    ids = sorted({int(f["source_id"]) for f in frames})
    pictures = ReviewPictures(ws.root, ws.settings.review.picture_px)
    return ScoringContext(ws.settings, Path(ws.root), ws.target.size_m, {i: ws.frames.source(i) for i in ids},
                          pictures if pictures.enabled else None)


class Stages:
    """Decode, tiles and inference over ``pending`` frames, each stage a thread; the results
    come out of ``q_results`` (:func:`run_stages`). A source that cannot be read is reported
    through ``report(source id, why)`` and the other sources go on."""

    def __init__(self, ctx: ScoringContext, ens: Ensemble, pending: list[Frame], errors: list[str],
                 report: Callable[[int, str], None] | None = None) -> None:
        settings = ctx.settings
        self.ctx, self.settings, self.ens, self.pending, self.errors, self.report = ctx, settings, ens, pending, errors, report
        size = max(1, settings.scoring.queue_frames)
        self.q_decoded: queue.Queue[Any] = queue.Queue(size)
        self.q_tiled: queue.Queue[Any] = queue.Queue(size)
        self.q_results: queue.Queue[Any] = queue.Queue(size)
        self.stop = threading.Event()
        self.sizes = sorted({m.input_size for m in ens.backbones})
        self.tile_workers = default_workers(settings.scoring.tile_workers, share=4, most=4)
        self.decode_workers = default_workers(settings.scoring.decode_workers)
        self.sources_at_once = default_workers(settings.scoring.sources_at_once, share=4, most=4)
        self._decoders_at_once = 0  # decoders running at once (0: one source after another)
        self._tile_running = self.tile_workers
        self._lock = threading.Lock()
        self.batcher = TileBatcher(ens.backbones, settings.scoring.batch)
        self.busy: dict[str, float] = defaultdict(float)  # stage -> seconds spent working (not waiting)
        self.scales: dict[int, list[float]] = {}  # source -> the tiling scale of each frame cut
        self.scale_why: dict[int, str] = {}
        self.frames_decoded = 0  # pictures decoded to give the frames scored (stills: one each)
        self.pictures = PictureWriter(ctx.pictures) if ctx.pictures is not None else None

    def busy_shares(self, wall: float) -> dict[str, float]:
        """Each stage's working time as a share of ``wall`` (tiles: per worker)."""
        if wall <= 0:
            return {}
        order = ("decode", "tile", "infer", "store")
        return {k: round(self.busy.get(k, 0.0) / wall / (self.tile_workers if k == "tile" else 1), 3) for k in order}

    def _note_scale(self, source_id: int, scale: float, why: str) -> None:
        with self._lock:
            self.scales.setdefault(source_id, []).append(scale)
            self.scale_why.setdefault(source_id, why)

    def _add_busy(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.busy[stage] += seconds

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return _END

    # -- stage 1: decode ------------------------------------------------------------
    def frames(self) -> Iterator[_Decoded]:
        """Every pending frame decoded: source after source, or with several sources pending and
        ``sources_at_once`` above one, that many sources at once, each on a decoder of its own,
        all feeding the one inference stage (their frames interleave; each frame is still
        scored once, and committed with its own results)."""
        by_source: dict[int, list[Frame]] = defaultdict(list)
        for f in self.pending:
            by_source[f["source_id"]].append(f)
        if self.sources_at_once > 1 and len(by_source) > 1:
            yield from self._frames_at_once(list(by_source.items()))
            return
        for source_id, frames in by_source.items():
            yield from self._source_frames(source_id, frames)

    def _source_frames(self, source_id: int, frames: list[Frame]) -> Iterator[_Decoded]:
        source = self.ctx.sources[source_id]
        try:
            yield from self._decode_source(source, frames)
        except SourceError as exc:
            self.errors.append(str(exc))
            if self.report is not None:
                self.report(source_id, str(exc))

    def _frames_at_once(self, work: list[tuple[int, list[Frame]]]) -> Iterator[_Decoded]:
        n = min(self.sources_at_once, len(work))
        self._decoders_at_once = n
        streams = [lambda sid=sid, frames=frames: self._source_frames(sid, frames) for sid, frames in work]
        # Each decoder's working time counts as its share of the stage's.
        yield from interleaved(streams, n, self.stop.is_set, self.q_decoded.maxsize,
                               busy=lambda seconds: self._add_busy("decode", seconds / n))

    def _decode_source(self, source: Source, frames: list[Frame]) -> Iterator[_Decoded]:
        max_px = self.settings.quality.max_pixels
        if source["kind"] == "video":
            wanted = {f["idx"]: f for f in frames}
            video = VideoSource(remote.localise(source["uri"]))  # an object-store video: its copy on this machine
            try:
                for item in video.frames(Sampling.stored(source["sampling"]), start_after=min(wanted) - 1, only=set(wanted)):
                    f = wanted.pop(item.idx, None)
                    if f is not None and item.image is not None:
                        yield _Decoded(f, item.image)
                    if not wanted or self.stop.is_set():
                        break
            finally:
                with self._lock:
                    self.frames_decoded += video.frames_decoded
            if wanted:
                self.errors.append(f"{source['uri']}: {len(wanted)} frames could not be decoded again for scoring")
            return
        files = []
        for f in frames:
            try:
                path = frame_file(source, f, self.ctx.root)
            except SourceError as exc:
                self.errors.append(str(exc))
                continue
            if path is not None:
                files.append((f, path))
        yield from self._decode_images(files, max_px)

    def _decode_images(self, files: list[tuple[Frame, Path]], max_px: int) -> Iterator[_Decoded]:
        """Still images decoded by ``decode_workers`` threads (:func:`ordered_map`), in order."""
        decoded = ordered_map(lambda fp: decode_image(fp[1], max_px), files, self.decode_workers, self.stop.is_set)
        for (f, _path), image, error in decoded:
            if isinstance(error, SourceError):
                self.errors.append(str(error))
            elif error is not None:
                raise error
            elif image is not None:
                with self._lock:
                    self.frames_decoded += 1
                yield _Decoded(f, image)

    def decode_stage(self) -> None:
        try:
            frames = self.frames()
            while True:
                t0 = time.perf_counter()
                item = next(frames, None)
                if not self._decoders_at_once:  # several decoders count their own working time
                    self._add_busy("decode", time.perf_counter() - t0)
                if item is None:
                    break
                if not self._put(self.q_decoded, item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed downstream
            self._put(self.q_decoded, _Failed(exc))
        self._put(self.q_decoded, _END)

    # -- stage 2: tiles -------------------------------------------------------------
    def tile_stage(self) -> None:
        """One of ``tile_workers`` threads (OpenCV releases the GIL while it resizes). The
        last worker to finish passes the end marker on."""
        t = self.settings.tiling
        try:
            while True:
                item = self._get(self.q_decoded)
                if item is _END or isinstance(item, _Failed):
                    self._put(self.q_decoded, item)  # for the sibling workers
                    with self._lock:
                        self._tile_running -= 1
                        last = self._tile_running == 0
                    if last:
                        self._put(self.q_tiled, item)
                    return
                t0 = time.perf_counter()
                frame = dict(item.frame, width=item.image.shape[1], height=item.image.shape[0])
                scale, why = tiling_scale(frame, self.ctx.target_size_m, t, self.settings.geo.hfov_deg, max(self.sizes))
                self._note_scale(int(item.frame["source_id"]), scale, why)
                tiles, pixels = frame_tiles(item.image, self.sizes, t.overlap, scale, t.whole_frame)
                if self.pictures is not None:
                    self.pictures.offer(item.frame, item.image)  # review shows it whatever order it comes in
                self._add_busy("tile", time.perf_counter() - t0)
                if not self._put(self.q_tiled, FrameTiles(item.frame, tiles, pixels)):
                    return
        except BaseException as exc:  # noqa: BLE001
            self._put(self.q_tiled, _Failed(exc))

    # -- stage 3: inference ---------------------------------------------------------
    def infer_stage(self) -> None:
        """Tiles of successive frames in full batches (``TileBatcher``); each frame goes on to
        the store once all its tiles are scored, with the head's score read off its embeddings."""
        try:
            while True:
                item = self._get(self.q_tiled)
                done = item is _END or isinstance(item, _Failed)
                t0 = time.perf_counter()
                finished = self.batcher.finish() if done else self.batcher.add(item)
                results = [self._result(f) for f in finished]
                self._add_busy("infer", time.perf_counter() - t0)
                for result in results:
                    if not self._put(self.q_results, result):
                        return
                if done:
                    self._put(self.q_results, item)
                    return
        except BaseException as exc:  # noqa: BLE001
            self._put(self.q_results, _Failed(exc))

    def _result(self, out: FrameOutputs) -> _Result:
        scores = dict(out.scores)
        for m in self.ens.members:
            if isinstance(m, HeadMember):
                arr = np.zeros(len(out.tiles), dtype=np.float32)
                score, tile = m.run_frame(out.embeddings[m.backbone], out.peaks.get(m.backbone))
                arr[tile] = score  # the frame's score sits on the tile that drove it
                scores[m.name] = arr
        wanted = set(self.ens.names)
        return _Result(out.key, out.tiles, {n: s for n, s in scores.items() if n in wanted}, out.embeddings, out.peaks)


def score_project(
    ws: Workspace, member_names: list[str] | None = None,
    progress: Callable[[int, int | None], None] | None = None, cancel: Any = None,
    ensemble: Ensemble | None = None, wait_s: float = 0.0,
) -> ScoreSummary:
    """Score every frame that lacks a score from the current members, and return what was
    scored. Never raises for a member that cannot be had (listed in ``summary.unavailable``)
    or a frame that cannot be decoded (``summary.errors``); raises ``ProjectBusy`` when
    another run is writing the project (after waiting up to ``wait_s`` seconds). What depends on the scores (the
    audit, the review queue) is brought up to date by the caller. :func:`.cluster.score_on_cluster`
    does the same on a Ray cluster."""
    t0 = time.perf_counter()
    ens = ensemble or build_ensemble(ws, member_names)
    summary = ScoreSummary(members=ens.names, precisions=ens.precisions, unavailable=dict(ens.unavailable),
                           provider=ens.provider)
    if not ens.members:
        summary.errors.append("no ensemble member is available: nothing can be scored")
        return summary
    with ws.writing("scoring", wait_s=wait_s):  # one writer of the embedding cache at a time
        versions, pending = pending_work(ws, ens)
        summary.frames_pending = len(pending)
        if pending:
            _stream(ws, ens, pending, versions, summary, progress, cancel)
    summary.seconds = time.perf_counter() - t0
    return summary


def pending_work(ws: Workspace, ens: Ensemble) -> tuple[dict[str, int], list[Frame]]:
    """The members' model versions, and the frames lacking a score from any of them (in
    source and index order). Called by the project's writer (``ws.writing``)."""
    ws.embeddings.sets()  # a cache cut short forgets the lost frames' scores: they are embedded again now
    versions = {m.name: ws.scores.model_version(m.name, m.card.kind, m.version_key) for m in ens.members}
    return versions, ws.scores.pending_frames(versions, include_flagged=not ws.settings.quality.gate_scoring)


def run_stages(stages: Stages, cancel: Any = None) -> Generator[_Result, None, None]:
    """Start the stages' threads and yield each frame's result as inference finishes it; the
    threads are stopped and joined when the caller stops reading (or ``cancel`` is set, checked
    between results)."""
    stage_fns = [stages.decode_stage, *[stages.tile_stage] * stages.tile_workers, stages.infer_stage]
    threads = [threading.Thread(target=fn, name=f"score-{fn.__name__}", daemon=True) for fn in stage_fns]
    for th in threads:
        th.start()
    try:
        while cancel is None or not cancel.is_set():
            item = stages._get(stages.q_results)
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stages.stop.set()
        for th in threads:
            th.join(timeout=30)
        if stages.pictures is not None:
            stages.pictures.close()


def note_tiling(summary: ScoreSummary, scales: dict[int, list[float]], why: dict[int, str]) -> None:
    """Each source's tiling scale (smallest, median, largest) into the summary and the log."""
    for sid, vals in scales.items():
        summary.tiling[sid] = (round(float(np.min(vals)), 3), round(float(np.median(vals)), 3), round(float(np.max(vals)), 3), why[sid])
        log.info("source %d: tiles cut at scale %.2f (median; %.2f-%.2f): %s", sid, summary.tiling[sid][1],
                 summary.tiling[sid][0], summary.tiling[sid][2], why[sid])


@contextmanager
def scoring_run(ws: Workspace, ens: Ensemble, versions: dict[str, int], provider: str, summary: ScoreSummary) -> Iterator[StoreWriter]:
    """One scoring run in the store's log, and the writer of its results (embedding sets
    open); the run is recorded as done, cancelled (``summary.cancelled``) or failed."""
    run_id = ws.scores.start_run(ens.names, provider, ws.settings.scoring.device)
    writer = StoreWriter(ws, versions)
    status = "failed"
    try:
        writer.open_embeddings(ens)
        yield writer
        status = "cancelled" if summary.cancelled else "done"
    finally:
        writer.close()
        ws.scores.finish_run(run_id, summary.frames_scored, status)


def _stream(ws: Workspace, ens: Ensemble, pending: list[Frame], versions: dict[str, int], summary: ScoreSummary,
            progress: Callable[[int, int | None], None] | None, cancel: Any) -> None:
    """Run the stages over the pending frames and commit their results as they come."""

    def report(source_id: int, why: str) -> None:
        ws.frames.add_message("error", f"scoring skipped frames: {why}", path=ctx.sources[source_id].get("uri"), source_id=source_id)

    ctx = scoring_context(ws, pending)
    stages = Stages(ctx, ens, pending, summary.errors, report)
    t_stream = time.perf_counter()
    with scoring_run(ws, ens, versions, ens.provider, summary) as writer:
        results = run_stages(stages, cancel)
        try:
            for item in results:
                t_work = time.perf_counter()
                if summary.first_result_s is None:
                    summary.first_result_s = t_work - t_stream
                writer.add(item)
                if writer.frames >= ws.settings.scoring.commit_every:
                    summary.frames_scored += writer.commit()
                    if progress:
                        progress(summary.frames_scored, len(pending))
                stages.busy["store"] += time.perf_counter() - t_work
        finally:
            results.close()  # the stages stop and are joined
        summary.cancelled = cancel is not None and cancel.is_set()
        t_work = time.perf_counter()
        summary.frames_scored += writer.commit()
        stages.busy["store"] += time.perf_counter() - t_work
        summary.stream_seconds = time.perf_counter() - t_stream
        summary.stage_busy = stages.busy_shares(summary.stream_seconds)
        note_tiling(summary, stages.scales, stages.scale_why)
        summary.batch_fill = stages.batcher.fill
        summary.frames_decoded = stages.frames_decoded
        log.info("scored %d frames in %.1f s (%d pictures decoded); stage busy %s; batch fill %.2f", summary.frames_scored,
                 summary.stream_seconds, summary.frames_decoded, summary.stage_busy, summary.batch_fill)
        if progress:
            progress(summary.frames_scored, len(pending))


class StoreWriter:
    """The store stage's side: score rows and embedding rows gathered per frame, committed
    together (embeddings made durable first, then the scores and the embedding sets' row
    counts in one transaction)."""

    def __init__(self, ws: Workspace, versions: dict[str, int]) -> None:
        self.ws, self.versions = ws, versions
        self.writers: dict[str, tuple[int, EmbeddingWriter]] = {}
        self.rows: list[dict[str, Any]] = []
        self.frames = 0

    def open_embeddings(self, ens: Ensemble) -> None:
        """Every tile's embedding, and per frame the pooled features the head reads, for each
        backbone."""
        for b in ens.backbones:
            vid = self.ws.scores.model_version(b.name, b.kind, b.version_key)
            dim, peak = b.feature_dims()
            for name, file, d in ((b.name, f"{b.name}-v{vid}", dim), (pooled_set(b.name), f"{b.name}-pooled-v{vid}", dim + peak)):
                meta = self.ws.embeddings.open_set(name, vid, d, file)
                self.writers[name] = (int(meta["id"]), self.ws.embeddings.writer(meta))

    def add(self, item: _Result) -> None:
        fid = item.frame["id"]
        for name, emb in item.embeddings.items():
            if name in self.writers:
                self.writers[name][1].append(np.full(len(item.tiles), fid), np.arange(len(item.tiles)), emb)
                pooled = pool_tiles(emb, item.peaks.get(name))
                self.writers[pooled_set(name)][1].append(np.array([fid]), np.array([-1]), pooled[None])
        for name, tile_scores in item.scores.items():
            best = int(np.argmax(tile_scores))
            t = item.tiles[best]
            self.rows.append(dict(frame_id=fid, member=name, model_version_id=self.versions[name],
                                  score=float(tile_scores[best]), tile=best, x0=t.x0, y0=t.y0, x1=t.x1, y1=t.y1,
                                  tiles=len(item.tiles)))
        self.frames += 1

    def commit(self) -> int:
        """Commit what was gathered; returns how many frames that was."""
        _commit(self.ws.scores, self.rows, self.writers)
        done, self.rows, self.frames = self.frames, [], 0
        return done

    def close(self) -> None:
        for _, w in self.writers.values():
            w.close()


def _commit(store: ScoreStore, rows: list[dict[str, Any]], writers: dict[str, tuple[int, EmbeddingWriter]]) -> None:
    if not rows:
        return
    committed = {set_id: w.flush() for set_id, w in writers.values()}  # embeddings durable first
    store.commit_scores(rows, committed)
