"""Full batches of tiles across frame boundaries.

A 1080p frame gives 19 tiles, while a GPU session runs fixed batches (32, 64, 128 tiles).
Run frame by frame, every call is padded: 19 tiles in 32 slots waste 40 % of the GPU's work,
and 7 frames (133 tiles) in batches of 128 take two calls. The batcher copies the tiles of
successive frames into one buffer per input size and runs the members each time the buffer is
full; a frame comes out, in the order it went in, once all its tiles have been scored. Only the
last, partial batch of a run is padded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from triage_app.core.scoring.tiling import Tile


class Backbone(Protocol):
    """What the batcher needs of an ONNX member (``OnnxMember``)."""

    name: str
    input_size: int

    def run(self, tiles: np.ndarray) -> Any:  # -> TileOutput(scores, embedding, peak)
        ...


@dataclass
class FrameTiles:
    """One frame's tiles: ``key`` is carried through untouched (the frame's row)."""

    key: Any
    tiles: list[Tile]
    pixels: dict[int, np.ndarray]  # input size -> (n, S, S, 3) uint8


@dataclass
class FrameOutputs:
    """Every backbone's per-tile scores and embeddings for one frame."""

    key: Any
    tiles: list[Tile]
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # backbone -> (n,)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # backbone -> (n, dim)
    peaks: dict[str, np.ndarray] = field(default_factory=dict)  # backbone -> (n, peak_dim), where it has feature maps
    done: int = 0  # tiles scored so far (by every backbone)


class TileBatcher:
    """Runs ``backbones`` on exactly ``batch`` tiles per call, whatever the frames' tile counts."""

    def __init__(self, backbones: Sequence[Backbone], batch: int) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.backbones = list(backbones)
        self.batch = batch
        self.sizes = sorted({b.input_size for b in self.backbones})
        self._buf = {s: np.empty((batch, s, s, 3), np.uint8) for s in self.sizes}
        self._fill = 0
        self._segments: list[tuple[FrameOutputs, int, int]] = []  # (frame, first tile, count) in buffer order
        self._open: deque[FrameOutputs] = deque()
        self.calls = 0  # batches run (each runs every backbone once)
        self.tiles_run = 0

    @property
    def fill(self) -> float:
        """Share of the batch slots run that held a real tile (1.0: no padding at all)."""
        return self.tiles_run / (self.calls * self.batch) if self.calls else 1.0

    def add(self, frame: FrameTiles) -> list[FrameOutputs]:
        """Queue a frame's tiles; returns the frames completed by the batches this filled."""
        n = len(frame.tiles)
        for s in self.sizes:
            if len(frame.pixels[s]) != n:
                raise ValueError(f"frame has {n} tiles but {len(frame.pixels[s])} pixel tiles at {s} px")
        out = FrameOutputs(frame.key, frame.tiles)
        self._open.append(out)
        start = 0
        while start < n:
            take = min(n - start, self.batch - self._fill)
            for s in self.sizes:
                self._buf[s][self._fill : self._fill + take] = frame.pixels[s][start : start + take]
            self._segments.append((out, start, take))
            self._fill += take
            start += take
            if self._fill == self.batch:
                self._run()
        return self._completed()

    def finish(self) -> list[FrameOutputs]:
        """Run what is left (the one padded batch) and return the last frames."""
        if self._fill:
            self._run()
        return self._completed()

    def _run(self) -> None:
        n = self._fill
        for b in self.backbones:
            res = b.run(self._buf[b.input_size][:n])
            outputs = [None if v is None else np.asarray(v, np.float32)
                       for v in (res.scores, res.embedding, getattr(res, "peak", None))]
            pos = 0
            for frame, first, count in self._segments:
                total = len(frame.tiles)
                for into, value in zip((frame.scores, frame.embeddings, frame.peaks), outputs, strict=True):
                    if value is None:
                        continue
                    if b.name not in into:
                        into[b.name] = np.empty((total, *value.shape[1:]), np.float32)
                    into[b.name][first : first + count] = value[pos : pos + count]
                pos += count
        for frame, _first, count in self._segments:
            frame.done += count
        self.calls += 1
        self.tiles_run += n
        self._segments = []
        self._fill = 0

    def _completed(self) -> list[FrameOutputs]:
        done = []
        while self._open and self._open[0].done == len(self._open[0].tiles):
            done.append(self._open.popleft())
        return done
