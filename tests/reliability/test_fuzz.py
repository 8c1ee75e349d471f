"""Heavy fuzzing: the SRT parser and the ground-truth readers on many generated inputs
(``RELIABILITY_EXAMPLES`` per test, default 3000). Each either reads the input or raises its
own error naming the file; nothing else escapes. Prints how many inputs were tried."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.ingest.test_telemetry import mutated_srt
from triage_app.core.evaluation.truth import TruthError, read_truth
from triage_app.core.ingest.telemetry.srt import parse_srt_bytes
from triage_app.core.model.errors import TelemetryParseError

pytestmark = pytest.mark.reliability
EXAMPLES = int(os.environ.get("RELIABILITY_EXAMPLES", "3000"))
HEAVY = settings(max_examples=EXAMPLES, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
tried = {"srt": 0, "csv": 0, "yolo": 0, "voc": 0}


@HEAVY
@given(st.one_of(mutated_srt(), st.binary(max_size=4000),
                 st.text(max_size=4000).map(lambda s: s.encode("utf-8", "surrogatepass"))))
def test_srt_parser(data: bytes) -> None:
    tried["srt"] += 1
    try:
        tel = parse_srt_bytes(data, "fuzz.SRT")
    except TelemetryParseError as exc:
        assert "fuzz.SRT" in str(exc)
        return
    assert all(p.t == p.t for p in tel.points)


_LABEL = st.sampled_from(["positive", "negative", "1", "0", "yes", "no", "maybe", "", "accept", "TRUE", "\x00"])
_CSV_ROW = st.tuples(st.text(max_size=30), st.one_of(st.integers(-5, 10**6).map(str), st.text(max_size=8)), _LABEL)


@st.composite
def truth_csv(draw) -> bytes:
    header = draw(st.sampled_from(["path,label", "source,frame,label", "label,path", "path;label", "", "path"]))
    rows = draw(st.lists(_CSV_ROW, max_size=20))
    sep = "," if draw(st.booleans()) else draw(st.sampled_from([";", "\t", ",,", '"']))
    text = header + "\n" + "\n".join(sep.join(r[:2] if header == "path,label" else r) for r in rows)
    data = text.encode("utf-8", "surrogatepass")
    return data if draw(st.booleans()) else data + draw(st.binary(max_size=50))


def _expect_truth_or_error(path: Path) -> None:
    try:
        read_truth(path)
    except TruthError as exc:
        assert str(path.name) in str(exc)


@HEAVY
@given(truth_csv())
def test_truth_csv(data: bytes) -> None:
    tried["csv"] += 1
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "truth.csv"
        path.write_bytes(data)
        _expect_truth_or_error(path)


_NUM = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-3, 3).map(str),
                 st.text(max_size=5))


@HEAVY
@given(st.lists(st.lists(_NUM, max_size=7).map(" ".join), max_size=12).map("\n".join), st.binary(max_size=40))
def test_truth_yolo(text: str, tail: bytes) -> None:
    tried["yolo"] += 1
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "img.txt"
        path.write_bytes(text.encode("utf-8", "surrogatepass") + tail)
        _expect_truth_or_error(path.parent)


@st.composite
def voc(draw) -> bytes:
    objs = []
    for _ in range(draw(st.integers(0, 4))):
        parts = "".join(f"<{k}>{draw(_NUM)}</{k}>" for k in draw(st.permutations(["xmin", "ymin", "xmax", "ymax"]))[
            : draw(st.integers(0, 4))])
        objs.append(f"<object><name>{draw(st.text(max_size=6))}</name><bndbox>{parts}</bndbox></object>")
    xml = "<annotation>" + "".join(objs) + "</annotation>"
    data = xml.encode("utf-8", "surrogatepass")
    cut = draw(st.integers(0, len(data)))
    return data if draw(st.booleans()) else data[:cut] + draw(st.binary(max_size=20))


@HEAVY
@given(voc())
def test_truth_voc(data: bytes) -> None:
    tried["voc"] += 1
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "img.xml"
        path.write_bytes(data)
        _expect_truth_or_error(path.parent)


def test_tally() -> None:
    print("\nfuzzing tally: " + ", ".join(f"{k} {v} inputs" for k, v in tried.items()))
    if any(v == 0 for v in tried.values()):
        pytest.skip("the tally needs the whole file run (pytest -m reliability tests/reliability/test_fuzz.py)")
    assert all(v >= EXAMPLES for v in tried.values())
