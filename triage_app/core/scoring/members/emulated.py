"""An emulated accelerator, for measuring how well the pipeline's stages overlap on a machine
without a GPU.

On a GPU, inference runs on the device while the host decodes and cuts the next frames; the
host's part of a call is copying the tiles in and the outputs out. ``EmulatedDevice`` stands
in for a member's session with exactly that split: each call copies the batch into a fixed
staging buffer and the outputs out of theirs (host work, as a bound GPU session does), and the
device's share is a wait of ``latency + batch / tiles_per_s`` that holds no core and no GIL,
as a synchronous GPU call does. The outputs have the real model's shapes (read from one run of
the real session) but carry no meaning: this is for throughput benchmarks only, never for
scoring footage (``triage bench pipeline --emulate-device``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from triage_app.core.scoring.members.runtime import OnnxSession


class EmulatedDevice:
    """A member session whose device work is a timed wait (see the module's text)."""

    graph = None
    on_gpu = True
    fixed_batch = True

    def __init__(self, real: OnnxSession, tiles_per_s: float, batch: int, latency_s: float = 0.0003) -> None:
        if tiles_per_s <= 0:
            raise ValueError("the emulated device's speed must be positive (tiles per second)")
        self.path: Path = real.path
        self.input_size = real.input_size
        self.output_names = list(real.output_names)
        self.batch = batch
        self.tiles_per_s = float(tiles_per_s)
        self.latency_s = float(latency_s)
        self.provider = f"emulated device ({tiles_per_s:g} tiles/s)"
        sample = real.run(np.zeros((1, self.input_size, self.input_size, 3), np.uint8))
        self._staging = np.empty((batch, self.input_size, self.input_size, 3), np.uint8)
        rng = np.random.default_rng(0)
        self._outputs = [rng.random((batch, *o.shape[1:]), dtype=np.float32) for o in sample]
        self.calls = 0

    def device_seconds(self) -> float:
        """The device's time for one call (a full, padded batch)."""
        return self.latency_s + self.batch / self.tiles_per_s

    def run(self, tiles: np.ndarray) -> list[np.ndarray]:
        outs: list[list[np.ndarray]] = [[] for _ in self.output_names]
        for start in range(0, len(tiles), self.batch):
            chunk = tiles[start : start + self.batch]
            n = len(chunk)
            self._staging[:n] = chunk  # the host's copy towards the device (the rest is padding)
            if n < self.batch:
                self._staging[n:] = 0
            deadline = time.perf_counter() + self.device_seconds()
            while (left := deadline - time.perf_counter()) > 0:
                time.sleep(left)  # the device works; the host's cores and the GIL are free
            self.calls += 1
            for i, o in enumerate(self._outputs):
                outs[i].append(np.array(o[:n], copy=True))  # the copy back from the device
        return [np.concatenate(o) for o in outs]
