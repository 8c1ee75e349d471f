"""Schema history. One step per version, each run in its own transaction; a step is frozen
once released (a later change is a new step). ``PRAGMA user_version`` holds the version on
SQLite, the table ``triage_schema`` on PostgreSQL. The statements are written once, in
SQLite's words; :func:`for_dialect` says them in PostgreSQL's (identity keys, double
precision, byte strings)."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import Connection, text

_V1 = [
    """CREATE TABLE sources (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('video', 'images', 'stream')),
        uri TEXT NOT NULL,
        name TEXT NOT NULL,
        added_at TEXT NOT NULL,
        sampling TEXT NOT NULL,
        fps REAL,
        frame_count INTEGER,
        width INTEGER,
        height INTEGER,
        telemetry_path TEXT,
        telemetry_points INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'new',
        message TEXT,
        UNIQUE (uri, sampling)
    )""",
    """CREATE TABLE frames (
        id INTEGER PRIMARY KEY,
        source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        timestamp_s REAL NOT NULL,
        path TEXT,
        width INTEGER,
        height INTEGER,
        captured_at TEXT,
        lat REAL, lon REAL, rel_alt REAL, abs_alt REAL,
        gimbal_pitch REAL, gimbal_yaw REAL, gimbal_roll REAL,
        aircraft_pitch REAL, aircraft_yaw REAL, aircraft_roll REAL,
        iso REAL, shutter_s REAL, fnum REAL,
        telemetry_matched INTEGER NOT NULL DEFAULT 0,
        brightness REAL, dark_fraction REAL, bright_fraction REAL, sharpness REAL,
        quality_flag TEXT,
        quality_note TEXT,
        UNIQUE (source_id, idx)
    )""",
    "CREATE INDEX frames_flag ON frames (quality_flag)",
    """CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        level TEXT NOT NULL,
        path TEXT,
        message TEXT NOT NULL,
        source_id INTEGER REFERENCES sources(id) ON DELETE CASCADE
    )""",
]


_V2 = [
    """CREATE TABLE model_versions (
        id INTEGER PRIMARY KEY,
        member TEXT NOT NULL,
        kind TEXT NOT NULL,
        version_key TEXT NOT NULL,
        created_at TEXT NOT NULL,
        details TEXT,
        UNIQUE (member, version_key)
    )""",
    """CREATE TABLE scores (
        frame_id INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
        member TEXT NOT NULL,
        model_version_id INTEGER NOT NULL REFERENCES model_versions(id),
        score REAL NOT NULL,
        tile INTEGER NOT NULL,
        x0 INTEGER, y0 INTEGER, x1 INTEGER, y1 INTEGER,
        tiles INTEGER NOT NULL,
        scored_at TEXT NOT NULL,
        PRIMARY KEY (frame_id, member)
    )""",
    "CREATE INDEX scores_member_score ON scores (member, score)",
    """CREATE TABLE scoring_runs (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        members TEXT NOT NULL,
        provider TEXT,
        device TEXT,
        frames_scored INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL
    )""",
    """CREATE TABLE embedding_sets (
        id INTEGER PRIMARY KEY,
        member TEXT NOT NULL,
        model_version_id INTEGER NOT NULL REFERENCES model_versions(id),
        dim INTEGER NOT NULL,
        file TEXT NOT NULL,
        rows_committed INTEGER NOT NULL DEFAULT 0,
        UNIQUE (member, model_version_id)
    )""",
    """CREATE TABLE head_models (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        backbone TEXT NOT NULL,
        backbone_version_id INTEGER REFERENCES model_versions(id),
        dim INTEGER NOT NULL,
        coef BLOB NOT NULL,
        intercept REAL NOT NULL,
        feature_mean BLOB,
        feature_scale BLOB,
        metrics TEXT,
        n_pos INTEGER NOT NULL DEFAULT 0,
        n_neg INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE policies (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        rule TEXT NOT NULL,
        thresholds TEXT NOT NULL,
        target_recall REAL,
        note TEXT
    )""",
]


_V3 = [
    """CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        frame_id INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
        label TEXT NOT NULL CHECK (label IN ('accept', 'reject', 'unsure')),
        reviewer TEXT NOT NULL,
        decided_at TEXT NOT NULL,
        seconds_spent REAL NOT NULL,
        policy_id INTEGER REFERENCES policies(id),
        policy TEXT NOT NULL,
        member_scores TEXT NOT NULL,
        fused_score REAL,
        sample_kind TEXT NOT NULL DEFAULT 'candidate',
        via TEXT NOT NULL DEFAULT 'single',
        undone_at TEXT
    )""",
    "CREATE INDEX decisions_frame ON decisions (frame_id, undone_at)",
]


_V4 = [
    """CREATE TABLE audit_frames (
        frame_id INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
        policy_key TEXT NOT NULL,
        stratum INTEGER NOT NULL,
        rate REAL NOT NULL,
        sampled INTEGER NOT NULL,
        considered_at TEXT NOT NULL,
        PRIMARY KEY (frame_id, policy_key)
    )""",
]


# No query reads scores by (member, score); the index only slowed every re-score down.
_V5 = ["DROP INDEX IF EXISTS scores_member_score"]


# Decisions that the label check doubts: the frame comes back to the queue until a newer
# decision stands (decision_id is the one doubted).
_V6 = [
    """CREATE TABLE label_flags (
        frame_id INTEGER PRIMARY KEY REFERENCES frames(id) ON DELETE CASCADE,
        decision_id INTEGER NOT NULL REFERENCES decisions(id),
        probability REAL NOT NULL,
        flagged_at TEXT NOT NULL
    )""",
]


# The assurance a policy was set with (the one-sided confidence of reaching its target
# recall); NULL for policies set before it could be chosen, which used 0.95. And the
# out-of-fold scores of the members trained on the decisions (head, fine-tuned): each
# decided frame scored by a model that did not see its label, which is what recall
# estimates must read for those frames.
_V7 = [
    "ALTER TABLE policies ADD COLUMN confidence REAL",
    """CREATE TABLE oof_scores (
        member TEXT NOT NULL,
        frame_id INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
        score REAL NOT NULL,
        PRIMARY KEY (member, frame_id)
    )""",
]


# The camera's 35 mm-equivalent focal length per frame (DJI SRT ``focal_len``, EXIF
# FocalLengthIn35mmFilm): its field of view, for placing finds on the ground.
_V8 = [
    "ALTER TABLE frames ADD COLUMN focal_35mm REAL",
]


# Active review: the ranking learnt from the decisions (each version, with how it was made and
# how well it cross-validated), each frame's rank score under the latest one and, for decided
# frames, its out-of-fold score (what a ranking that did not see the frame's label gave it);
# and the blind audit of the frames not yet reviewed: each draw with the chance it had.
_V9 = [
    """CREATE TABLE rankings (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        decisions INTEGER NOT NULL,
        positives INTEGER NOT NULL,
        negatives INTEGER NOT NULL,
        metrics TEXT NOT NULL
    )""",
    """CREATE TABLE rank_scores (
        frame_id INTEGER PRIMARY KEY REFERENCES frames(id) ON DELETE CASCADE,
        ranking_id INTEGER NOT NULL REFERENCES rankings(id),
        score REAL NOT NULL,
        oof REAL
    )""",
    """CREATE TABLE audit_draws (
        id INTEGER PRIMARY KEY,
        frame_id INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
        drawn_at TEXT NOT NULL,
        reviewed_before INTEGER NOT NULL,
        pool INTEGER NOT NULL,
        stratum INTEGER NOT NULL,
        stratum_size INTEGER NOT NULL,
        probability REAL NOT NULL,
        ranking_id INTEGER
    )""",
    "CREATE INDEX audit_draws_frame ON audit_draws (frame_id)",
]


# A team on one project: what the project knows of itself (the shared folder of a PostgreSQL
# project), and the leases of the frames analysts have on screen, so that two never review
# the same frame at once (``expires_at``: seconds since the epoch; a holder that stops
# renewing, a process that died, gives its frames back when its leases expire).
_V10 = [
    """CREATE TABLE project_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE leases (
        frame_id INTEGER PRIMARY KEY REFERENCES frames(id) ON DELETE CASCADE,
        holder TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        expires_at REAL NOT NULL
    )""",
    "CREATE INDEX leases_holder ON leases (holder)",
]


# Boxes drawn in an annotation tool (CVAT, Label Studio) and brought back: each frame's latest
# import is its annotation (``annotation_sets``: who drew it, where it came from; a set with no
# box says the annotator saw nothing to box), its boxes in the frame's pixels.
_V11 = [
    """CREATE TABLE annotation_sets (
        frame_id INTEGER PRIMARY KEY REFERENCES frames(id) ON DELETE CASCADE,
        tool TEXT NOT NULL,
        annotator TEXT,
        file TEXT NOT NULL,
        imported_at TEXT NOT NULL
    )""",
    """CREATE TABLE annotation_boxes (
        id INTEGER PRIMARY KEY,
        frame_id INTEGER NOT NULL REFERENCES annotation_sets(frame_id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL
    )""",
    "CREATE INDEX annotation_boxes_frame ON annotation_boxes (frame_id)",
]


def for_dialect(sql: str, dialect: str) -> str:
    """A statement written for SQLite, in the words of ``dialect``."""
    if dialect != "postgresql":
        return sql
    sql = re.sub(r"\bid INTEGER PRIMARY KEY\b", "id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", sql)
    sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)
    return re.sub(r"\bBLOB\b", "BYTEA", sql)


def _run(statements: list[str]) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        for sql in statements:
            conn.execute(text(for_dialect(sql, conn.dialect.name)))

    return step


# What an analyst says of a find (a class, "two people, one waving", "debris, not a boat"): one
# per frame, the latest word standing, with who wrote it and when.
_V12 = [
    """CREATE TABLE find_notes (
        frame_id INTEGER PRIMARY KEY REFERENCES frames(id) ON DELETE CASCADE,
        what TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT '',
        author TEXT NOT NULL,
        noted_at TEXT NOT NULL
    )""",
]


# Active review's forecasts: each decided frame's rank score under the ranking in force when it
# was decided, given before its label was known (recorded when the next ranking replaces that
# one): the stopping estimate calibrates the ranking's scores on them. A ranking keeps the last
# decision it was learnt from, so that a frame it learnt from never counts as forecast by it;
# each frame keeps its score under the ranking before the latest, so that the estimate made at
# the previous learning can be read again (review stops only where two learnings agree; since
# version 14, the learning the stop's guard refers to).
_V13 = [
    "ALTER TABLE rankings ADD COLUMN last_decision INTEGER",
    "ALTER TABLE rank_scores ADD COLUMN previous REAL",
    """CREATE TABLE forecasts (
        frame_id INTEGER PRIMARY KEY REFERENCES frames(id) ON DELETE CASCADE,
        ranking_id INTEGER NOT NULL REFERENCES rankings(id),
        score REAL NOT NULL
    )""",
]


# The guard of the stop: review stops only where the estimate also reached the target at the
# latest learning made at least ``review.stop_guard`` decisions before this one (its reference),
# not merely at the learning before (a Learn asked for soon after another), so the scores of the
# rankings in between are kept until a later reference no longer needs them. A project
# migrated keeps the ranking before its latest as that one's reference, as it was.
_V14 = [
    "ALTER TABLE rankings ADD COLUMN reference_id INTEGER",
    """CREATE TABLE past_scores (
        ranking_id INTEGER NOT NULL REFERENCES rankings(id),
        frame_id INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
        score REAL NOT NULL,
        PRIMARY KEY (ranking_id, frame_id)
    )""",
    "UPDATE rankings SET reference_id = (SELECT MAX(r.id) FROM rankings r WHERE r.id < rankings.id)",
]


def _grant_analysts(table: str, steps: list[str]) -> Callable[[Connection], None]:
    """A migration that makes a table analysts write as they write the ranking (on a team
    store whose roles exist; their learning writes it)."""
    def fn(conn: Connection) -> None:
        _run(steps)(conn)
        if conn.dialect.name == "postgresql":
            analyst = f"{conn.engine.url.database}_analyst"
            if conn.exec_driver_sql("SELECT 1 FROM pg_roles WHERE rolname = %s", (analyst,)).scalar():
                quoted = '"' + analyst.replace('"', '""') + '"'
                conn.exec_driver_sql(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {quoted}")
    return fn


#: MIGRATIONS[n] upgrades a database from version n to n + 1.
MIGRATIONS: list[Callable[[Connection], None]] = [
    *(_run(v) for v in (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11, _V12)),
    _grant_analysts("forecasts", _V13), _grant_analysts("past_scores", _V14)]
