"""Bad-input corpus: telemetry files (DJI SRT) that are empty, binary, huge, hostile or wrong."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.reliability.corpus_harness import Ctx, case, ingest_source_in, srt_text
from triage_app.core.ingest.telemetry.srt import parse_srt, parse_srt_text
from triage_app.core.model.errors import TelemetryParseError


def srt_error(c: Ctx, name: str, data: bytes | str, problem: str) -> str:
    path = c.tmp / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    with pytest.raises(TelemetryParseError) as err:
        parse_srt(path)
    assert name in str(err.value) and problem in str(err.value), str(err.value)
    return str(err.value)


# -- telemetry -----------------------------------------------------------------------------
@case("SRT of zero bytes")
def _(c: Ctx) -> str:
    return srt_error(c, "empty.SRT", b"", "file is empty")


@case("SRT of binary data")
def _(c: Ctx) -> str:
    return srt_error(c, "binary.SRT", b"\x00\x01\x02" * 1000, "binary data")


@case("SRT of cue numbers only")
def _(c: Ctx) -> str:
    return srt_error(c, "numbers.SRT", "1\n\n2\n\n3\n", "no subtitle cues with telemetry")


@case("SRT whose cues carry no time")
def _(c: Ctx) -> str:
    return srt_error(c, "untimed.SRT", "[latitude: 45.0] [longitude: 7.0]\n\n[latitude: 45.1] [longitude: 7.1]\n",
                     "neither a time range nor a date")


@case("telemetry /dev/zero")
def _(c: Ctx) -> str:
    with pytest.raises(TelemetryParseError, match="not a regular file") as err:
        parse_srt("/dev/zero")
    r = ingest_source_in(c, c.video, telemetry=Path("/dev/zero"))
    assert r.ok and any("/dev/zero" in w and "not a regular file" in w for w in r.warnings)
    return str(err.value)


@case("telemetry pointing at a folder")
def _(c: Ctx) -> str:
    with pytest.raises(TelemetryParseError, match="is a folder") as err:
        parse_srt(c.tmp)
    return str(err.value)


@case("SRT larger than any real one")
def _(c: Ctx) -> str:
    big = c.tmp / "huge.SRT"
    with big.open("wb") as fh:
        fh.truncate(300 * 1024 * 1024)  # sparse: nothing is written
    with pytest.raises(TelemetryParseError, match="larger than any real telemetry file") as err:
        parse_srt(big)
    assert "huge.SRT" in str(err.value)
    return str(err.value)


@case("SRT with decimal commas")
def _(c: Ctx) -> str:
    t = parse_srt_text(srt_text(lat="45,037854", lon="7,654321"), "comma.SRT")
    assert t.points[0].lat == pytest.approx(45.037854) and t.points[0].lon == pytest.approx(7.654321)
    warning = next(w for w in t.warnings if "decimal comma" in w)
    assert "comma.SRT" in warning
    return warning


@case("SRT with a 120 kB line")
def _(c: Ctx) -> str:
    text = srt_text(3) + "4\n00:00:04,000 --> 00:00:04,900\n" + "latitudes" * 14_000 + "\n\n"
    t0 = time.perf_counter()
    t = parse_srt_text(text, "long.SRT")
    seconds = time.perf_counter() - t0
    assert seconds < 2.0, seconds  # was 40 s for a 40 kB line before every pattern was made linear
    assert len(t.points) == 3
    return next(w for w in t.warnings if "characters skipped" in w)


@case("SRT in Latin-1 with an unreadable value")
def _(c: Ctx) -> str:
    text = srt_text(3).replace("[iso: 100]", "[iso: abc] [note: caf\xe9]")
    t = parse_srt_text(text.encode("latin-1").decode("latin-1"), "latin.SRT")
    assert len(t.points) == 3 and t.points[0].iso is None
    return f"latin.SRT: {len(t.points)} cues read, the unreadable ISO left empty"


@case("SRT whose times go backwards")
def _(c: Ctx) -> str:
    cues = srt_text(4).split("\n\n")
    t = parse_srt_text("\n\n".join([cues[2], cues[0], cues[1], cues[3]]) + "\n\n", "backwards.SRT")
    assert [p.t for p in t.points] == sorted(p.t for p in t.points)
    return next(w for w in t.warnings if "backwards" in w)


@case("SRT with positions off the globe")
def _(c: Ctx) -> str:
    t = parse_srt_text(srt_text(3, lat="145.0", lon="400.0"), "offglobe.SRT")
    assert all(p.lat is None and p.lon is None for p in t.points)
    return "offglobe.SRT: latitudes past 90 and longitudes past 180 are not stored"


@case("SRT of another flight")
def _(c: Ctx) -> str:
    srt = c.tmp / "other.SRT"
    srt.write_text(srt_text(12).replace("00:00:", "01:30:"))  # an hour and a half later
    r = ingest_source_in(c, c.video, telemetry=srt)
    assert r.ok and r.telemetry_matched == 0
    return f"{srt}: matched {r.telemetry_matched} of {r.frames_total} frames (its times lie past the video's end)"
