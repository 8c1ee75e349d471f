"""Per-source counts for the sources list: frames, flagged, candidates, reviewed."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select

from triage_app.core.model.cards import ModelCard
from triage_app.core.review.active_policy import active_policy, candidate_frames
from triage_app.core.review.queue import DecisionStore
from triage_app.core.model.settings import Settings
from triage_app.core.store import Project
from triage_app.core.store.scores import ScoreStore


def source_overview(project: Project, cards: dict[str, ModelCard], settings: Settings) -> list[dict[str, Any]]:
    rows = project.source_summaries()
    store = ScoreStore(project)
    ids, _fused, cand = candidate_frames(store, active_policy(store, cards, settings))
    per_source: dict[int, int] = {}
    if len(ids):
        f = project.frames
        cand_ids = [int(i) for i in ids[np.flatnonzero(cand)]]
        with project.db.read() as conn:
            for (sid,) in conn.execute(select(f.c.source_id).where(f.c.id.in_(cand_ids))):
                per_source[int(sid)] = per_source.get(int(sid), 0) + 1
    reviewed = DecisionStore(project).counts_by_source()
    for r in rows:
        r["candidates"] = per_source.get(r["id"], 0)
        r["reviewed"] = reviewed.get(r["id"], 0)
    return rows
