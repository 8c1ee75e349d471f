"""Cached tile embeddings: float16 arrays beside the database, keyed by (frame, tile).

One pair of append-only files per (member, model version): ``<name>.f16`` holds the rows,
``<name>.idx`` holds (frame id, tile index) per row. The database records how many rows
are committed, in the same transaction as the scores of those frames; rows past that count
(a run killed between the two writes) are cut off when the set is next opened, and those
frames are scored again, so no frame is ever counted twice.

A cache *shorter* than the database records (a file cut by a full disk, a copy, a restore
from backup) is found whenever a set is read or written: the record is cut to the whole rows
the files still hold, the scores of the frames whose rows were lost are forgotten (so that
the next scoring run embeds them again), and the project's messages say so. Decisions are
never touched.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, delete, insert, select, update

from triage_app.core.model.errors import TriageError
from triage_app.core.store.db import Database
from triage_app.core.store.frames import now_iso

EMBED_DIR = "embeddings"
log = logging.getLogger(__name__)


def whole_rows(root: Path, file: str, dim: int) -> int:
    """How many whole rows both files of a set hold (0 when either is missing)."""
    folder = Path(root) / EMBED_DIR
    try:
        return min((folder / f"{file}.f16").stat().st_size // (dim * 2), (folder / f"{file}.idx").stat().st_size // 16)
    except OSError:
        return 0


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


def pooled_set(backbone: str) -> str:
    """The name of the embedding set holding a backbone's pooled per-frame features."""
    return f"{backbone}:pooled"


class EmbeddingStore:
    """The embedding sets of a project: which (member, model version) arrays exist, how many
    rows of each are committed, and reading them."""

    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.root = root
        self.table = db.table("embedding_sets")

    def open_set(self, member: str, version_id: int, dim: int, file: str) -> dict[str, Any]:
        """The set of (member, model version), registered if new."""
        t = self.table

        def fn(conn: Connection) -> dict[str, Any]:
            q = select(t).where(and_(t.c.member == member, t.c.model_version_id == version_id))
            row = conn.execute(q).mappings().first()
            if row is None:
                conn.execute(insert(t).values(member=member, model_version_id=version_id, dim=dim, file=file))
                row = conn.execute(q).mappings().one()
            return dict(row)

        return self.db.write(fn)

    def sets(self) -> list[dict[str, Any]]:
        """Every set, each checked against its files first (see :meth:`repair`)."""
        with self.db.read() as conn:
            rows = [dict(r) for r in conn.execute(select(self.table)).mappings()]
        return [self.repair(r) for r in rows]

    def repair(self, s: dict[str, Any]) -> dict[str, Any]:
        """A set whose files hold fewer rows than recorded: cut the record to what they hold
        and forget the scores of the frames that lost their rows (the next scoring run embeds
        them again); said in the log and the project's messages. Returns the set as it stands."""
        committed = int(s["rows_committed"])
        have = whole_rows(self.root, s["file"], int(s["dim"]))
        if have >= committed:
            return s
        kept = load_embeddings(self.root, s["file"], int(s["dim"]), have).frame_ids if have else np.zeros(0, np.int64)
        member = str(s["member"]).removesuffix(":pooled")
        version = int(s["model_version_id"])
        scores, sets = self.db.table("scores"), self.table
        keep = {int(f) for f in kept.tolist()}

        def fn(conn: Connection) -> int:
            scored = [int(r[0]) for r in conn.execute(select(scores.c.frame_id).where(
                and_(scores.c.member == member, scores.c.model_version_id == version)))]
            lost = [f for f in scored if f not in keep]
            for i in range(0, len(lost), 500):
                conn.execute(delete(scores).where(and_(scores.c.member == member, scores.c.frame_id.in_(lost[i:i + 500]))))
            conn.execute(update(sets).where(sets.c.id == s["id"]).values(rows_committed=have))
            return len(lost)

        lost = self.db.write(fn)
        message = (f"{self.root / EMBED_DIR / s['file']}.f16: the embedding cache holds {have} of the {committed} rows "
                   f"the database records (cut short: a full disk, a copy, a restore?). Cut to what it holds; {lost} "
                   f"frames will be embedded again by the next scoring run ({member}). Decisions are untouched.")
        log.warning(message)
        messages = self.db.table("messages")
        self.db.write(lambda c: c.execute(insert(messages).values(created_at=now_iso(), level="warning",
                                                                   path=str(self.root / EMBED_DIR), message=message)))
        return dict(s, rows_committed=have)

    def set_rows_committed(self, set_id: int, rows: int) -> None:
        t = self.table
        self.db.write(lambda c: c.execute(update(t).where(t.c.id == set_id).values(rows_committed=rows)))

    def writer(self, meta: dict[str, Any]) -> EmbeddingWriter:
        meta = self.repair(meta)
        return EmbeddingWriter(self.root, meta["file"], int(meta["dim"]), int(meta["rows_committed"]))

    def newest(self, member: str) -> tuple[EmbeddingArrays, int] | None:
        """The committed rows of a member's newest set and its model version, or None."""
        sets = [s for s in self.sets() if s["member"] == member]
        if not sets:
            return None
        s = max(sets, key=lambda r: r["model_version_id"])
        return load_embeddings(self.root, s["file"], s["dim"], s["rows_committed"]), int(s["model_version_id"])

    def pooled(self, backbone: str) -> tuple[np.ndarray, np.ndarray, int]:
        """(frame ids, pooled features float16 memory-mapped, model version) of the newest
        pooled set of a backbone."""
        found = self.newest(pooled_set(backbone))
        if found is None:
            raise TriageError(f"{self.root}: no cached embeddings for '{backbone}': score the project first")
        arrays, version = found
        return arrays.frame_ids, arrays.vectors, version

    def whole_frame(self, backbone: str, frame_ids: np.ndarray) -> np.ndarray | None:
        """The whole-frame tile's embedding (tile 0, when tiling keeps the whole frame) of each
        frame, from the newest tile set of a backbone; None where any frame lacks one."""
        found = self.newest(backbone)
        if found is None:
            return None
        arrays = found[0]
        at = {int(f): i for i, (f, t) in enumerate(zip(arrays.frame_ids.tolist(), arrays.tiles.tolist(), strict=True))
              if t == 0}
        if any(int(f) not in at for f in frame_ids.tolist()):
            return None
        return np.asarray(arrays.vectors[[at[int(f)] for f in frame_ids.tolist()]], dtype=np.float32)
