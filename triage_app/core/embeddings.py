"""Cached tile embeddings: float16 arrays beside the database, keyed by (frame, tile).

One pair of append-only files per (member, model version): ``<name>.f16`` holds the rows,
``<name>.idx`` holds (frame id, tile index) per row. The database records how many rows
are committed, in the same transaction as the scores of those frames; rows past that count
(a run killed between the two writes) are cut off when the set is next opened, and those
frames are scored again, so no frame is ever counted twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EMBED_DIR = "embeddings"


@dataclass
class EmbeddingArrays:
    frame_ids: np.ndarray  # int64 (n,)
    tiles: np.ndarray  # int64 (n,)
    vectors: np.ndarray  # float16 (n, dim), memory-mapped


class EmbeddingWriter:
    """Appends rows for one embedding set; ``flush`` makes them durable."""

    def __init__(self, root: Path, file: str, dim: int, rows_committed: int) -> None:
        self.dim = dim
        folder = Path(root) / EMBED_DIR
        folder.mkdir(parents=True, exist_ok=True)
        self.vec_path = folder / f"{file}.f16"
        self.idx_path = folder / f"{file}.idx"
        for path, width in ((self.vec_path, dim * 2), (self.idx_path, 16)):
            with path.open("ab") as fh:
                if fh.tell() > rows_committed * width:
                    fh.truncate(rows_committed * width)  # rows never committed: drop them
        self.rows = rows_committed
        self._vec = self.vec_path.open("ab")
        self._idx = self.idx_path.open("ab")
        if self._vec.tell() != rows_committed * dim * 2 or self._idx.tell() != rows_committed * 16:
            raise OSError(f"{self.vec_path}: embedding cache is shorter than the database records")

    def append(self, frame_ids: np.ndarray, tiles: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float16)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"embedding rows must be (n, {self.dim})")
        idx = np.stack([np.asarray(frame_ids, np.int64), np.asarray(tiles, np.int64)], axis=1)
        self._vec.write(vectors.tobytes())
        self._idx.write(np.ascontiguousarray(idx).tobytes())
        self.rows += len(vectors)

    def flush(self) -> int:
        """Make every appended row durable; returns the row count to commit."""
        for fh in (self._vec, self._idx):
            fh.flush()
            os.fsync(fh.fileno())
        return self.rows

    def close(self) -> None:
        self._vec.close()
        self._idx.close()


def load_embeddings(root: Path, file: str, dim: int, rows_committed: int) -> EmbeddingArrays:
    """The committed rows of one embedding set (vectors memory-mapped, not read whole)."""
    folder = Path(root) / EMBED_DIR
    vec_path, idx_path = folder / f"{file}.f16", folder / f"{file}.idx"
    if rows_committed == 0 or not vec_path.exists():
        return EmbeddingArrays(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, dim), np.float16))
    vectors = np.memmap(vec_path, dtype=np.float16, mode="r", shape=(rows_committed, dim))
    idx = np.fromfile(idx_path, dtype=np.int64, count=rows_committed * 2).reshape(-1, 2)
    # A frame scored again (new model version) appends again: keep each (frame, tile)'s last row.
    return EmbeddingArrays(idx[:, 0].copy(), idx[:, 1].copy(), vectors)
