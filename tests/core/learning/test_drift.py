"""Drift per flight: the population stability index, and flights over other terrain
flagged against the labelled ones while a flight over the same terrain is not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from triage_app.cli import main
from triage_app.core.learning.drift import flight_drift, psi
from triage_app.core.model.settings import load_settings
from triage_app.core.store import Workspace


def test_psi_follows_its_definition() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 5000)
    assert psi(ref, rng.normal(0, 1, 5000)) < 0.02
    assert psi(ref, rng.normal(1.0, 1, 5000)) > 0.5
    # Two bins by hand: the reference's median splits it in half; the flight puts 90 % above.
    ref2 = np.array([0.0, 1.0, 2.0, 3.0])
    cur = np.array([2.5] * 9 + [0.5])
    p, q = np.array([0.5, 0.5]), np.array([0.1, 0.9])
    assert psi(ref2, cur, bins=2) == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    assert psi(np.full(50, 0.3), np.full(50, 0.3)) == pytest.approx(0.0)
    assert np.isnan(psi(ref, np.array([])))


def test_a_flight_over_other_terrain_is_flagged(three_flights: Path) -> None:
    settings = load_settings(three_flights)
    with Workspace(three_flights) as p:
        report = {d.name: d for d in flight_drift(p)}
    a, b, harbour = report["forest-a.mp4"], report["forest-b.mp4"], report["harbour.mp4"]
    print({k: (v.drift, v.member_psi, v.embedding_psi, v.centroid_distance) for k, v in report.items()})
    assert b.reference == "labelled flights" and harbour.reference == "labelled flights"
    assert a.labelled and a.reference.startswith("itself") and a.drift is None and not a.alert
    assert b.drift is not None and b.drift < settings.drift.alert_psi and not b.alert
    assert harbour.drift is not None and harbour.drift > settings.drift.alert_psi and harbour.alert
    assert harbour.drift > 3 * b.drift
    assert harbour.centroid_distance > b.centroid_distance
    assert a.accept_rate == pytest.approx(0.25) and a.decisions == 40 and b.reference_accept_rate == pytest.approx(0.25)
    assert b.accept_rate is None and b.flag_rate == 0.0
    assert harbour.reasons() and "PSI" in harbour.reasons()[0]


def test_without_labels_each_flight_is_compared_with_the_others(tmp_path: Path, three_flights: Path) -> None:
    import shutil

    root = tmp_path / "p"
    shutil.copytree(three_flights, root)
    with Workspace(root) as p:
        p.db.write(lambda conn: conn.exec_driver_sql("DELETE FROM decisions"))
        report = {d.name: d for d in flight_drift(p)}
    assert all(d.reference.startswith("all other flights") for d in report.values())
    # The harbour stands out from the two forest flights more than either forest flight does.
    assert report["harbour.mp4"].drift > max(report["forest-a.mp4"].drift, report["forest-b.mp4"].drift)


def test_drift_command(three_flights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drift", str(three_flights), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["forest-a.mp4", "forest-b.mp4", "harbour.mp4"]
    assert [r["alert"] for r in rows] == [False, False, True]
    assert main(["drift", str(three_flights)]) == 0
    out = capsys.readouterr().out
    assert "harbour.mp4" in out and "ALERT" in out
    # A stricter alert level is a setting.
    assert main(["drift", str(three_flights), "--alert", "100"]) == 0
    assert "ALERT" not in capsys.readouterr().out


def test_sampling_noise_alone_is_not_drift() -> None:
    from triage_app.core.learning.drift import corrected_psi

    rng = np.random.default_rng(2)
    plain = [psi(rng.normal(size=40), rng.normal(size=40)) for _ in range(200)]
    fixed = [corrected_psi(rng.normal(size=40), rng.normal(size=40)) for _ in range(200)]
    assert np.mean(plain) > 0.3  # ten bins on 40 frames: noise alone looks like a shift
    assert np.mean(fixed) < 0.1 and np.quantile(fixed, 0.95) < 0.25
    assert corrected_psi(rng.normal(size=400), rng.normal(1.5, 1, size=400)) > 1.0


def test_drift_is_computed_again_only_when_its_inputs_change(tmp_path: Path, three_flights: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from triage_app.core.learning import drift

    root = tmp_path / "p"
    shutil.copytree(three_flights, root)
    runs = []
    real = drift._flight_drift
    monkeypatch.setattr(drift, "_flight_drift", lambda *a: runs.append(1) or real(*a))
    with Workspace(root) as p:
        first = flight_drift(p)
        again = flight_drift(p)  # the supervisor view refreshing: nothing changed
        assert len(runs) == 1 and [d.as_dict() for d in again] == [d.as_dict() for d in first]
        again[0].drift = 123.0  # a caller's copy: the cache keeps its own
        assert flight_drift(p)[0].drift == first[0].drift and len(runs) == 1
        harbour = next(d.source_id for d in first if d.name == "harbour.mp4")
        frame = next(f for f in p.frames.frame_rows() if f["source_id"] == harbour)
        p.decisions.record([dict(frame_id=frame["id"], label="accept", reviewer="t", seconds_spent=1,
                                      policy="p", member_scores="{}")])
        after = {d.name: d for d in flight_drift(p)}  # a new decision: computed again
        assert len(runs) == 2 and after["harbour.mp4"].labelled
        p.settings.drift.bins = 5
        flight_drift(p)
        assert len(runs) == 3  # other settings: computed again
