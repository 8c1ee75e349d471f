"""Head models: each version of the ``head`` member trained on the decisions (weights,
scaler, metrics). Every statement about the ``head_models`` table lives here."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sqlalchemy import insert, select

from triage_app.core.store.db import Database, inserted_id
from triage_app.core.store.frames import now_iso


class HeadStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("head_models")

    def save(self, backbone: str, backbone_version_id: int | None, coef: np.ndarray, intercept: float,
             mean: np.ndarray | None = None, scale: np.ndarray | None = None, metrics: dict[str, Any] | None = None,
             n_pos: int = 0, n_neg: int = 0) -> int:
        values = dict(
            created_at=now_iso(), backbone=backbone, backbone_version_id=backbone_version_id, dim=int(coef.size),
            coef=np.asarray(coef, np.float32).tobytes(), intercept=float(intercept),
            feature_mean=None if mean is None else np.asarray(mean, np.float32).tobytes(),
            feature_scale=None if scale is None else np.asarray(scale, np.float32).tobytes(),
            metrics=json.dumps(metrics or {}), n_pos=n_pos, n_neg=n_neg,
        )
        return self.db.write(lambda c: inserted_id(c.execute(insert(self.table).values(**values))))

    def latest(self) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = conn.execute(select(self.table).order_by(self.table.c.id.desc()).limit(1)).mappings().first()
        if row is None:
            return None
        out = dict(row)
        for k in ("coef", "feature_mean", "feature_scale"):
            out[k] = None if out[k] is None else np.frombuffer(out[k], dtype=np.float32)
        out["metrics"] = json.loads(out["metrics"] or "{}")
        return out
