"""Scores: model versions, scoring runs, each frame's score per member (with the tile that
drove it) and the trained members' out-of-fold scores. Every statement about the
``model_versions``, ``scoring_runs``, ``scores`` and ``oof_scores`` tables lives here."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from sqlalchemy import Connection, and_, func, insert, or_, select, update

from triage_app.core.model.records import Frame
from triage_app.core.store.db import Database, inserted_id
from triage_app.core.store.frames import now_iso, path_from_db


class ScoreStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        t = self.db.table
        self.versions, self.scores, self.runs = t("model_versions"), t("scores"), t("scoring_runs")
        self.frames, self.emb_sets, self.oof = t("frames"), t("embedding_sets"), t("oof_scores")

    # -- versions -------------------------------------------------------------------
    def model_version(self, member: str, kind: str, key: str, details: dict[str, Any] | None = None) -> int:
        """The id of (member, version key), registering it if new."""

        def fn(conn: Connection) -> int:
            row = conn.execute(
                select(self.versions.c.id).where(and_(self.versions.c.member == member, self.versions.c.version_key == key))
            ).first()
            if row:
                return int(row[0])
            res = conn.execute(insert(self.versions).values(
                member=member, kind=kind, version_key=key, created_at=now_iso(), details=json.dumps(details or {})))
            return inserted_id(res)

        return self.db.write(fn)

    def scored_version_keys(self, member: str) -> list[str]:
        """The version keys the member's stored scores were made with, the one holding the most
        frames first (none: the member has scored nothing here yet)."""
        s, v = self.scores, self.versions
        q = (select(v.c.version_key, func.count()).select_from(s.join(v, s.c.model_version_id == v.c.id))
             .where(s.c.member == member).group_by(v.c.version_key).order_by(func.count().desc(), v.c.version_key))
        with self.db.read() as conn:
            return [str(r[0]) for r in conn.execute(q).all()]

    # -- runs -----------------------------------------------------------------------
    def start_run(self, members: Sequence[str], provider: str, device: str) -> int:
        return self.db.write(lambda c: inserted_id(c.execute(insert(self.runs).values(
            started_at=now_iso(), members=",".join(members), provider=provider, device=device, status="running"))))

    def finish_run(self, run_id: int, frames: int, status: str) -> None:
        self.db.write(lambda c: c.execute(update(self.runs).where(self.runs.c.id == run_id).values(
            finished_at=now_iso(), frames_scored=frames, status=status)))

    def recent_speed(self, min_frames: int = 20, min_seconds: float = 5.0) -> tuple[float, str] | None:
        """(frames per second, provider) of the latest finished run long enough to say (start-up
        included), for estimating how long new footage will take; None before any."""
        r = self.runs
        with self.db.read() as conn:
            rows = conn.execute(select(r.c.started_at, r.c.finished_at, r.c.frames_scored, r.c.provider)
                                .where(r.c.status == "done").where(r.c.frames_scored >= min_frames)
                                .order_by(r.c.id.desc()).limit(5)).all()
        for started, finished, frames, provider in rows:
            try:
                seconds = (dt.datetime.fromisoformat(finished) - dt.datetime.fromisoformat(started)).total_seconds()
            except (TypeError, ValueError):
                continue
            if seconds >= min_seconds:
                return frames / seconds, str(provider)
        return None

    # -- what is left to score ---------------------------------------------------------
    def pending_frames(self, versions: dict[str, int], include_flagged: bool = False) -> list[Frame]:
        """Frames lacking a score from the current version of any of the members, in
        source and index order."""
        f, s = self.frames, self.scores
        done = (
            select(s.c.frame_id)
            .where(s.c.member.in_(list(versions)))
            .where(s.c.model_version_id.in_(list(versions.values())))
            .group_by(s.c.frame_id)
            .having(func.count() >= len(versions))
        )
        q = select(f.c.id, f.c.source_id, f.c.idx, f.c.path, f.c.timestamp_s, f.c.quality_flag, f.c.width, f.c.height,
                   f.c.rel_alt, f.c.gimbal_pitch, f.c.focal_35mm).where(f.c.id.not_in(done))
        if not include_flagged:
            q = q.where(f.c.quality_flag.is_(None))
        else:  # a frame that could not be decoded at ingest is counted, never decoded again here
            q = q.where(or_(f.c.quality_flag.is_(None), f.c.quality_flag != "undecodable"))
        q = q.order_by(f.c.source_id, f.c.idx)
        with self.db.read() as conn:
            return [cast(Frame, dict(r, path=path_from_db(r["path"]))) for r in conn.execute(q).mappings()]

    # -- writing results -----------------------------------------------------------------
    _SCORE_COLS = ("frame_id", "member", "model_version_id", "score", "tile", "x0", "y0", "x1", "y1", "tiles", "scored_at")

    def _insert_scores_sql(self, upsert: bool) -> str:
        """The driver-level INSERT for score rows (ON CONFLICT is shared by SQLite and PostgreSQL)."""
        cols = self._SCORE_COLS
        mark = "?" if self.db.engine.dialect.paramstyle == "qmark" else "%s"
        sql = f"INSERT INTO scores ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
        if upsert:
            sql += " ON CONFLICT (frame_id, member) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in cols[2:])
        return sql

    def commit_scores(self, rows: Sequence[dict[str, Any]], embedding_rows: dict[int, int]) -> None:
        """Write the scores of a batch of frames and advance the embedding sets' committed
        row counts, in one transaction: either both are recorded or neither is.

        The upsert is written out once and executed by the driver for all rows (standard
        ``ON CONFLICT`` that SQLite and PostgreSQL share): SQLAlchemy's per-row parameter
        handling would otherwise dominate re-scoring 100k frames from the cache."""
        if not rows and not embedding_rows:
            return
        stamp = now_iso()
        sql = self._insert_scores_sql(upsert=True)
        params = [tuple(r.get(c) for c in self._SCORE_COLS[:-1]) + (stamp,) for r in rows]

        def fn(conn: Connection) -> None:
            if params:
                conn.exec_driver_sql(sql, params)
            for set_id, committed in embedding_rows.items():
                conn.execute(update(self.emb_sets).where(self.emb_sets.c.id == set_id).values(rows_committed=committed))

        self.db.write(fn)

    def replace_member_scores(self, member: str, version_id: int, frame_ids: Sequence[int], scores: Sequence[float]) -> None:
        """Replace every score of one member at once (a re-score from the cache, with no
        tile attribution), in one transaction: a delete and a plain insert."""
        sql = self._insert_scores_sql(upsert=False)
        stamp = now_iso()
        params = [(f, member, version_id, s, 0, None, None, None, None, 1, stamp) for f, s in zip(frame_ids, scores, strict=True)]

        def fn(conn: Connection) -> None:
            conn.execute(self.scores.delete().where(self.scores.c.member == member))
            if params:
                conn.exec_driver_sql(sql, params)

        self.db.write(fn)

    def replace_oof(self, member: str, frame_ids: Sequence[int], scores: Sequence[float]) -> None:
        """Replace a trained member's out-of-fold scores of the decided frames, at once."""
        t = self.oof
        rows = [dict(member=member, frame_id=int(f), score=float(s)) for f, s in zip(frame_ids, scores, strict=True)]

        def fn(conn: Connection) -> None:
            conn.execute(t.delete().where(t.c.member == member))
            if rows:
                conn.execute(insert(t), rows)

        self.db.write(fn)

    def oof_scores(self) -> dict[str, dict[int, float]]:
        """Out-of-fold scores by member and frame."""
        t = self.oof
        out: dict[str, dict[int, float]] = {}
        with self.db.read() as conn:
            for member, fid, score in conn.execute(select(t.c.member, t.c.frame_id, t.c.score)):
                out.setdefault(member, {})[int(fid)] = float(score)
        return out

    def with_oof(self, ids: np.ndarray, names: Sequence[str], mat: np.ndarray, decided: set[int]) -> np.ndarray:
        """A copy of a score matrix in which the ``decided`` frames carry the trained members'
        out-of-fold scores: what those members predict for frames like them, where their own
        scores are memorised. Everything that reads scores as evidence about unseen frames
        (recall estimates, the learned order, drift) reads them so."""
        out = np.array(mat, dtype=np.float64, copy=True)
        oof_all = self.oof_scores()
        if not oof_all or not decided:
            return out
        row = {int(f): i for i, f in enumerate(np.asarray(ids).tolist())}
        for member, oof in oof_all.items():
            if member not in names:
                continue
            j = list(names).index(member)
            for fid, score in oof.items():
                i = row.get(fid)
                if i is not None and fid in decided:
                    out[i, j] = score
        return out

    def drop_member(self, member: str) -> int:
        """Remove every score of a member taken out of the ensemble; the number removed."""
        t = self.oof

        def fn(conn: Connection) -> int:
            conn.execute(t.delete().where(t.c.member == member))
            return int(conn.execute(self.scores.delete().where(self.scores.c.member == member)).rowcount or 0)

        return self.db.write(fn)

    def score_table(self, members: Sequence[str] | None = None) -> tuple[np.ndarray, list[str], np.ndarray, dict[str, Any]]:
        """(frame ids, member names, scores matrix (frames x members, NaN = not scored),
        best tiles) for every scored frame."""
        s = self.scores
        q = select(s.c.frame_id, s.c.member, s.c.score, s.c.tile)
        if members:
            q = q.where(s.c.member.in_(list(members)))
        with self.db.read() as conn:
            rows = conn.execute(q).all()
        names = sorted({r[1] for r in rows}) if not members else [m for m in members if any(r[1] == m for r in rows)]
        ids = np.array(sorted({r[0] for r in rows}), dtype=np.int64)
        pos = {int(fid): i for i, fid in enumerate(ids)}
        col = {m: j for j, m in enumerate(names)}
        mat = np.full((len(ids), len(names)), np.nan, dtype=np.float64)
        tiles = np.full((len(ids), len(names)), -1, dtype=np.int32)
        for fid, member, score, tile in rows:
            if member in col:
                mat[pos[fid], col[member]] = score
                tiles[pos[fid], col[member]] = tile
        return ids, names, mat, {"tiles": tiles}

    def scored_count(self) -> int:
        """How many frames hold at least one score."""
        with self.db.read() as conn:
            return int(conn.execute(select(func.count(func.distinct(self.scores.c.frame_id)))).scalar_one())

    def frame_scores(self, frame_id: int) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return [dict(r) for r in conn.execute(select(self.scores).where(self.scores.c.frame_id == frame_id)).mappings()]

    def frame_score_rows(self, frame_ids: Sequence[int]) -> dict[int, dict[str, dict[str, Any]]]:
        """Per frame, per member: the stored score row (score, tile, box, version)."""
        out: dict[int, dict[str, dict[str, Any]]] = {}
        ids = [int(f) for f in frame_ids]
        with self.db.read() as conn:
            for k in range(0, len(ids), 900):  # SQLite's bound-parameter limit
                q = select(self.scores).where(self.scores.c.frame_id.in_(ids[k : k + 900]))
                for r in conn.execute(q).mappings():
                    out.setdefault(int(r["frame_id"]), {})[str(r["member"])] = dict(r)
        return out
