"""The ranking of active review: each version the learning made (with its metrics), every
frame's rank score under the latest one and the decided frames' out-of-fold scores; each
decided frame's forecast (its rank score under the ranking in force when it was decided);
and the blind audit's draws from the frames not yet reviewed. Every statement about the
``rankings``, ``rank_scores``, ``forecasts`` and ``audit_draws`` tables lives here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, insert, select, text

from triage_app.core.store.db import Database, inserted_id
from triage_app.core.store.frames import now_iso

#: Before a ranking is replaced: each frame decided after it was learnt (a standing decision,
#: and none the ranking could have learnt from) keeps the outgoing ranking's score as its
#: forecast, unless it has one already.
FORECAST_SQL = """INSERT INTO forecasts (frame_id, ranking_id, score)
SELECT r.frame_id, r.ranking_id, r.score FROM rank_scores r JOIN rankings k ON k.id = r.ranking_id
WHERE r.frame_id IN (SELECT d.frame_id FROM decisions d WHERE d.undone_at IS NULL AND d.id > k.last_decision)
  AND NOT EXISTS (SELECT 1 FROM decisions e WHERE e.frame_id = r.frame_id AND e.id <= k.last_decision)
ON CONFLICT (frame_id) DO NOTHING"""

#: Before a ranking is replaced: its scores are kept, as a later ranking's reference may be it.
KEEP_SQL = "INSERT INTO past_scores (ranking_id, frame_id, score) SELECT ranking_id, frame_id, score FROM rank_scores"


@dataclass
class RankScores:
    """Frame ids with their rank score and, for decided frames, out-of-fold score (NaN else)."""

    ranking_id: int | None
    frame_ids: np.ndarray
    scores: np.ndarray
    oof: np.ndarray
    previous: np.ndarray  # the score under the latest ranking's reference (NaN where none): see RankingStore.save


@dataclass
class Forecasts:
    """Decided frames with the rank score the ranking in force when each was decided gave it
    (before its label was known), and that ranking's id."""

    frame_ids: np.ndarray
    scores: np.ndarray
    ranking_ids: np.ndarray


@dataclass
class AuditDraw:
    frame_id: int
    reviewed_before: int  # frames reviewed when it was drawn
    pool: int  # frames not yet reviewed then
    stratum: int
    stratum_size: int
    probability: float  # the chance it had of being the one drawn
    ranking_id: int | None


class RankingStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.rankings = db.table("rankings")
        self.scores = db.table("rank_scores")
        self.draws = db.table("audit_draws")
        self.forecasts = db.table("forecasts")
        self.past = db.table("past_scores")

    # -- the ranking ----------------------------------------------------------------------
    def save(self, frame_ids: Sequence[int], scores: Sequence[float], oof: dict[int, float], decisions: int,
             positives: int, negatives: int, metrics: dict[str, Any], last_decision: int | None = None,
             guard: int = 0) -> int:
        """A new ranking version replacing every rank score, in one transaction; it was learnt
        from ``decisions`` decisions, up to id ``last_decision``. The frames decided under the
        ranking it replaces keep that ranking's score for them as their forecast (a frame
        decided before any ranking has none). Its reference is the latest ranking learnt from
        at least ``guard`` fewer decisions (0: the ranking before): each frame keeps its score
        under it, so that the estimate made then can be read again; the scores of the rankings
        since are kept for the references still to come, older ones dropped."""
        stamp = now_iso()
        mark = "?" if self.db.engine.dialect.paramstyle == "qmark" else "%s"
        sql = (f"INSERT INTO rank_scores (frame_id, ranking_id, score, oof, previous) "
               f"VALUES ({mark}, {mark}, {mark}, {mark}, {mark})")
        r, past = self.rankings, self.past

        def fn(conn: Connection) -> int:
            conn.execute(text(FORECAST_SQL))
            outgoing = conn.execute(select(func.max(self.scores.c.ranking_id))).scalar()
            if outgoing is not None:
                conn.execute(past.delete().where(past.c.ranking_id == outgoing))
                conn.execute(text(KEEP_SQL))
            reference = conn.execute(select(func.max(r.c.id)).where(r.c.decisions <= decisions - guard)).scalar()
            rid = inserted_id(conn.execute(insert(r).values(
                created_at=stamp, decisions=decisions, positives=positives, negatives=negatives,
                metrics=json.dumps(metrics), last_decision=last_decision, reference_id=reference)))
            before: dict[int, float] = {}
            if reference is not None:
                before = dict(conn.execute(select(past.c.frame_id, past.c.score).where(past.c.ranking_id == reference))
                              .all())
                conn.execute(past.delete().where(past.c.ranking_id < reference))
            conn.execute(self.scores.delete())
            params = [(int(f), rid, float(s), oof.get(int(f)), before.get(int(f)))
                      for f, s in zip(frame_ids, scores, strict=True)]
            if params:
                conn.exec_driver_sql(sql, params)
            return rid

        return self.db.write(fn)

    def latest(self) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = conn.execute(select(self.rankings).order_by(self.rankings.c.id.desc()).limit(1)).mappings().first()
        if row is None:
            return None
        out = dict(row)
        out["metrics"] = json.loads(out["metrics"] or "{}")
        return out

    def rank_scores(self) -> RankScores:
        with self.db.read() as conn:
            rows = conn.execute(select(self.scores.c.frame_id, self.scores.c.score, self.scores.c.oof,
                                       self.scores.c.ranking_id, self.scores.c.previous)).all()
        if not rows:
            return RankScores(None, np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0))
        ids = np.array([r[0] for r in rows], np.int64)
        order = np.argsort(ids)
        return RankScores(int(max(r[3] for r in rows)), ids[order], np.array([r[1] for r in rows], float)[order],
                          np.array([np.nan if r[2] is None else r[2] for r in rows], float)[order],
                          np.array([np.nan if r[4] is None else r[4] for r in rows], float)[order])

    def previous(self) -> dict[str, Any] | None:
        """The latest ranking's reference (id, decisions, last_decision): the ranking whose
        scores ``rank_scores().previous`` holds, the latest learnt from at least the stop's
        guard fewer decisions; None where there is none."""
        t = self.rankings
        with self.db.read() as conn:
            ref = conn.execute(select(t.c.reference_id).order_by(t.c.id.desc()).limit(1)).scalar()
            if ref is None:
                return None
            row = conn.execute(select(t.c.id, t.c.decisions, t.c.last_decision).where(t.c.id == ref)).mappings().first()
        return None if row is None else dict(row)

    def forecasts_made(self) -> Forecasts:
        """Every recorded forecast, by frame id."""
        f = self.forecasts
        with self.db.read() as conn:
            rows = conn.execute(select(f.c.frame_id, f.c.score, f.c.ranking_id).order_by(f.c.frame_id)).all()
        return Forecasts(np.array([x[0] for x in rows], np.int64), np.array([x[1] for x in rows], float),
                         np.array([x[2] for x in rows], np.int64))

    # -- the blind audit of what is not yet reviewed ------------------------------------
    def record_draws(self, draws: Sequence[AuditDraw]) -> None:
        if not draws:
            return
        stamp = now_iso()
        rows = [dict(frame_id=d.frame_id, drawn_at=stamp, reviewed_before=d.reviewed_before, pool=d.pool,
                     stratum=d.stratum, stratum_size=d.stratum_size, probability=d.probability,
                     ranking_id=d.ranking_id) for d in draws]
        self.db.write(lambda conn: conn.execute(insert(self.draws), rows))

    def audit_draws(self) -> list[AuditDraw]:
        """Every draw, oldest first (a frame is drawn at most once)."""
        t = self.draws
        with self.db.read() as conn:
            rows = conn.execute(select(t).order_by(t.c.id)).mappings().all()
        return [AuditDraw(int(r["frame_id"]), int(r["reviewed_before"]), int(r["pool"]), int(r["stratum"]),
                          int(r["stratum_size"]), float(r["probability"]), r["ranking_id"]) for r in rows]

    def draw_count(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(self.draws)).scalar_one())
