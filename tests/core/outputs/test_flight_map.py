"""The map's layers on a metric plane: the track in capture order, footprints where the
telemetry places the frame's corners, finds at their ground positions with their radii."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from tests.conftest import scored_project
from triage_app.core.outputs.finds import finds
from triage_app.core.outputs.flight_map import flight_map
from triage_app.core.store import Workspace
from triage_app.gui.map.map_view import nice_length


def test_tracks_footprints_and_finds_on_a_metric_plane(tmp_path: Path, ortho: np.ndarray) -> None:
    root = scored_project(tmp_path, ortho, members=("imagenet",))
    with Workspace(root) as p:
        rows = p.frames.frame_rows()
        assert flight_map(p, []).origin is None  # no position yet: nothing to draw, and it says so

        def telemetry(conn):  # flying north at 2 m per frame, 60 m up, camera straight down; the last: no position
            for k, r in enumerate(rows[:-1]):
                conn.execute(update(p.frames.frames).where(p.frames.frames.c.id == r["id"]).values(
                    lat=45.0 + k * 2.0 / 111_132, lon=7.0, rel_alt=60.0, gimbal_pitch=-90.0, gimbal_yaw=0.0))

        p.db.write(telemetry)
        p.decisions.record([dict(frame_id=rows[3]["id"], label="accept", reviewer="ana", seconds_spent=1.0, policy="p",
                                 member_scores="{}")])
        p.notes.set(rows[3]["id"], "person", "", "ana")
        m = flight_map(p, finds(p))
    assert m.origin == (45.0, 7.0) and m.without_position == 1
    (track,) = m.tracks.values()
    assert len(track) == len(rows) - 1 and track[0] == (0.0, 0.0)
    assert [round(y) for _x, y in track[:4]] == [0, 2, 4, 6]  # north, in capture order
    corners = m.footprints[rows[3]["id"]]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    # 60 m straight down with a 72° wide view: about 87 m across, centred under the aircraft
    assert max(xs) - min(xs) == pytest.approx(2 * 60 * np.tan(np.radians(36)), rel=0.05)
    assert np.mean(ys) == pytest.approx(6.0, abs=1.0)
    (find,) = m.finds
    assert find.frame_id == rows[3]["id"] and find.radius_m and "(person)" in find.label
    w, s, e, n = m.extent()
    assert w <= find.x <= e and s <= find.y <= n


def test_the_scale_bar_takes_a_round_length() -> None:
    assert [nice_length(v) for v in (0.7, 3.0, 17.0, 120.0, 4500.0)] == [0.5, 2.0, 10.0, 100.0, 2000.0]
