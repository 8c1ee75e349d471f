"""Policies: every policy a supervisor set, versioned; the one in force. Every statement
about the ``policies`` table lives here."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select

from triage_app.core.model.cards import ModelCard
from triage_app.core.model.policy import Policy, parse_rule
from triage_app.core.store.db import Database, inserted_id
from triage_app.core.store.frames import now_iso


class PolicyStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = db.table("policies")

    def save(self, rule: str, thresholds: dict[str, float], created_by: str, target_recall: float | None = None,
             note: str | None = None, confidence: float | None = None) -> int:
        values = dict(created_at=now_iso(), created_by=created_by, rule=rule, thresholds=json.dumps(thresholds),
                      target_recall=target_recall, note=note, confidence=confidence)
        return self.db.write(lambda c: inserted_id(c.execute(insert(self.table).values(**values))))

    def current(self) -> dict[str, Any] | None:
        """The latest saved policy as stored, or None before any."""
        with self.db.read() as conn:
            row = conn.execute(select(self.table).order_by(self.table.c.id.desc()).limit(1)).mappings().first()
        if row is None:
            return None
        out = dict(row)
        out["thresholds"] = json.loads(out["thresholds"])
        if out.get("confidence") is None and out.get("target_recall") is not None:
            out["confidence"] = 0.95  # set before the assurance could be chosen
        return out

    def active(self, cards: dict[str, ModelCard], default_rule: str) -> Policy:
        """The policy in force: the latest saved one over the cards' default thresholds, or,
        before any is saved, the cards' thresholds with ``default_rule``."""
        saved = self.current()
        thresholds = {name: card.threshold for name, card in cards.items()}
        if saved is None:
            return Policy(None, parse_rule(default_rule), thresholds)
        thresholds.update(saved["thresholds"])
        return Policy(int(saved["id"]), parse_rule(saved["rule"]), thresholds, saved.get("target_recall"),
                      saved.get("confidence"))
