"""Schema history. One step per version, each run in its own transaction; a step is frozen
once released (a later change is a new step). ``PRAGMA user_version`` holds the version."""

from __future__ import annotations

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


def _run(statements: list[str]) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        for sql in statements:
            conn.execute(text(sql))

    return step


#: MIGRATIONS[n] upgrades a database from version n to n + 1.
MIGRATIONS: list[Callable[[Connection], None]] = [_run(_V1)]
