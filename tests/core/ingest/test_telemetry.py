from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage_app.core.ingest.telemetry import parse_srt, parse_srt_text
from triage_app.core.ingest.telemetry.exif import read_exif
from triage_app.core.ingest.telemetry.srt import parse_srt_bytes
from triage_app.core.model.errors import TelemetryParseError


def _srt_files(shared: Path) -> list[Path]:
    return sorted(p for p in (shared / "telemetry").rglob("*") if p.suffix.lower() == ".srt")


def _is_broken(p: Path) -> bool:
    return p.name.startswith("broken_") or "buggy" in p.name


def test_every_real_srt_parses_or_is_rejected_clearly(shared_data: Path) -> None:
    files = _srt_files(shared_data)
    assert len(files) >= 25
    for path in files:
        if _is_broken(path):
            try:
                tel = parse_srt(path)
            except TelemetryParseError as exc:
                assert str(path) in str(exc)
                continue
            # A file that is only partly broken keeps its good cues and says what it skipped.
            assert tel.warnings, f"{path}: broken file accepted without a message"
            assert all(str(path) in w for w in tel.warnings)
            continue
        tel = parse_srt(path)
        assert tel.points, path
        assert not any("cut short" in w for w in tel.warnings), (path, tel.warnings)
        times = [p.t for p in tel.points]
        assert times == sorted(times)
        for p in tel.points:
            if p.lat is not None:
                assert -90 <= p.lat <= 90 and -180 <= p.lon <= 180


def test_broken_files_say_what_is_wrong(shared_data: Path) -> None:
    d = shared_data / "telemetry" / "juanirache"
    with pytest.raises(TelemetryParseError, match="empty"):
        parse_srt(d / "broken_empty.SRT")
    with pytest.raises(TelemetryParseError, match="no subtitle cues"):
        parse_srt(d / "broken_empty2.SRT")
    tel = parse_srt(d / "broken_incomplete.SRT")
    assert any("cut short" in w for w in tel.warnings)
    buggy = parse_srt(d / "mavic_pro_buggy.SRT")
    assert any("no GPS fix" in w for w in buggy.warnings)
    assert sum(p.lat is None for p in buggy.points) == 16


def test_fields_of_several_layouts(shared_data: Path) -> None:
    d = shared_data / "telemetry"
    m3 = parse_srt(d / "juanirache" / "MAVIC3.srt")
    first = m3.points[0]
    assert (first.lat, first.lon, first.rel_alt, first.abs_alt) == (3.41531, -3.37440, -2.4, 0.401)
    assert first.iso == 220 and first.shutter_s == pytest.approx(1 / 8000) and first.fnum == 3.2
    assert first.captured_at.startswith("2021-12-25T12:27:52.373")
    assert len(m3.points) == 12318 and m3.points[1].t == pytest.approx(0.02)
    # Old layout: GPS(lon, lat, satellites); the place is Mackay, Australia.
    pro = parse_srt(d / "juanirache" / "mavic_pro.SRT").points[0]
    assert pro.lat == pytest.approx(-20.2533) and pro.lon == pytest.approx(149.0251) and pro.rel_alt == 1.9
    # Comma layout with gimbal and aircraft attitude.
    rtk = parse_srt(d / "juanirache" / "p4_rtk.SRT").points[0]
    assert (rtk.gimbal_pitch, rtk.gimbal_roll, rtk.gimbal_yaw) == (-24.4, 0.0, 110.4)
    assert rtk.lat == pytest.approx(-34.237922) and rtk.rel_alt == 85.8 and rtk.shutter_s == pytest.approx(1 / 400)
    # Newer layout with gimbal angles in brackets.
    avata = parse_srt(d / "callmarcus" / "samples" / "Avata360" / "clip.SRT").points[0]
    assert avata.gimbal_yaw == -162.8 and avata.gimbal_pitch == 0.0
    # No time ranges at all: times come from the wall clock.
    style = parse_srt(d / "juanirache" / "mavic_2_style.SRT")
    assert style.points[1].t == pytest.approx(1.0, abs=0.01)
    # No GPS: coordinates 0,0 mean no fix.
    nogps = parse_srt(d / "callmarcus" / "samples" / "neo2" / "clip_nogps.SRT")
    assert nogps.points[0].lat is None


def test_matching_by_time() -> None:
    text = "\n\n".join(
        f"{i + 1}\n00:00:0{i},000 --> 00:00:0{i + 1},000\n[latitude: {10 + i}] [longitude: 20] [rel_alt: 5 abs_alt: 9]"
        for i in range(5)
    )
    tel = parse_srt_text(text, "x.SRT")
    assert tel.at(0.0).lat == 10
    assert tel.at(2.5).lat == 12  # inside the third cue
    assert tel.at(4.9).lat == 14
    assert tel.at(5.5, tolerance=2).lat == 14
    assert tel.at(30.0, tolerance=2) is None


def test_exif_gps_from_a_real_dji_photo(shared_data: Path) -> None:
    p = read_exif(shared_data / "aerial" / "deepforest" / "pelicans_DJI_0005.JPG")
    assert p is not None and p.lat == pytest.approx(45.038, abs=1e-3) and p.lon == pytest.approx(-94.349, abs=1e-3)
    assert p.gimbal_pitch == -88.0 and p.rel_alt == 61.1 and p.captured_at.startswith("2020-06-04")
    assert read_exif(shared_data / "telemetry" / "callmarcus" / "samples" / "photos" / "no_gps.jpg").lat is None


_REAL: list[bytes] = []


def _real_files() -> list[bytes]:
    if not _REAL:
        from tests.conftest import SHARED

        for p in sorted((SHARED / "telemetry").rglob("*")):
            if p.suffix.lower() == ".srt" and p.stat().st_size < 200_000:
                _REAL.append(p.read_bytes())
    return _REAL


@st.composite
def mutated_srt(draw: st.DrawFn) -> bytes:
    files = _real_files()
    if not files:
        return draw(st.binary(max_size=2000))
    data = bytearray(draw(st.sampled_from(files)))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            data = data[:pos]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=40))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 200))]
        elif op == "dup":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 300))]
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(mutated_srt(), st.binary(max_size=3000), st.text(max_size=3000).map(lambda s: s.encode("utf-8", "surrogatepass"))))
def test_parser_raises_only_its_own_error(data: bytes) -> None:
    try:
        tel = parse_srt_bytes(data, "fuzz.SRT")
    except TelemetryParseError as exc:
        assert "fuzz.SRT" in str(exc)
        return
    assert tel.points
    for p in tel.points:
        assert p.t == p.t  # never NaN


def test_a_gps_altitude_of_zero_is_no_altitude_while_the_barometer_climbs(shared_data: Path) -> None:
    """Matrice 300 writes GPS(lat,lon,0.0M) on every cue: that zero is no height."""
    pts = parse_srt(shared_data / "telemetry" / "juanirache" / "matrice_300.srt").points
    assert all(p.abs_alt is None for p in pts)
    assert max(p.rel_alt or 0 for p in pts) > 80 and pts[0].lat == pytest.approx(36.6146)


def test_wall_clock_times_use_the_real_calendar_and_keep_their_microseconds() -> None:
    def cue(i: int, stamp: str) -> str:
        return f"{i}\n00:00:0{i},000 --> 00:00:0{i + 1},000\n{stamp}\n[latitude: 10] [longitude: 20]"

    # No cue times worth reading: times come from the wall clock, across the end of February.
    for year, gap in ((2023, 1.0), (2024, 86_401.0)):
        tel = parse_srt_text("\n\n".join([cue(0, f"{year}-02-28 23:59:59.000"), cue(1, f"{year}-03-01 00:00:00.000")]), "x.SRT")
        from triage_app.core.ingest.telemetry.srt import _date

        assert _date(f"{year}-03-01 00:00:00")[1] - _date(f"{year}-02-28 23:59:59")[1] == gap
        assert tel.points[1].captured_at.startswith(f"{year}-03-01T00:00:00")
    one = parse_srt_text(cue(0, "2023-05-01 10:28:08,438,904"), "x.SRT").points[0]
    assert one.captured_at == "2023-05-01T10:28:08.438904"


def test_dji_xmp_in_element_form_and_the_exif_time_zone_are_read(tmp_path: Path) -> None:
    from PIL import Image

    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description>'
           b"<drone-dji:GimbalPitchDegree>-90.0</drone-dji:GimbalPitchDegree>"
           b"<drone-dji:RelativeAltitude>+45.20</drone-dji:RelativeAltitude>"
           b"</rdf:Description></rdf:RDF></x:xmpmeta>")
    img = Image.new("RGB", (32, 32))
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2024:05:01 10:30:02"
    sub[0x9011] = "+02:00"
    path = tmp_path / "DJI_0001.JPG"
    img.save(path, exif=exif, xmp=xmp)
    p = read_exif(path)
    assert p is not None and p.gimbal_pitch == -90.0 and p.rel_alt == 45.2
    assert p.captured_at == "2024-05-01T10:30:02+02:00"
    from triage_app.core.model.text import utc_time

    assert utc_time(p.captured_at) == "2024-05-01T08:30:02Z" and utc_time("2024-05-01T10:30:02") is None


def _cues(rows: list[str], timed: bool = True) -> str:
    out = []
    for i, body in enumerate(rows):
        timing = f"00:00:{i:02d},000 --> 00:00:{i + 1:02d},000\n" if timed else ""
        out.append(f"{i + 1}\n{timing}{body}")
    return "\n\n".join(out)


def test_a_whole_second_clock_shared_by_several_cues_is_spread_within_the_second() -> None:
    """No cue times, a wall clock of whole seconds: three cues in second 1, none in second 2.
    No two cues share a time, and the cues of second 1 fill it up to second 3."""
    seconds = [0, 1, 1, 1, 3, 4]
    text = _cues([f"2023-05-01 10:00:0{s} [latitude: 10.0] [longitude: 20.0]" for s in seconds], timed=False)
    tel = parse_srt_text(text, "x.SRT")
    times = [p.t for p in tel.points]
    assert len(set(times)) == len(times) and times == sorted(times)
    assert times[1:4] == pytest.approx([1.0, 1 + 2 / 3, 1 + 4 / 3])
    assert any("whole-second clock" in w for w in tel.warnings)
    # Cues that carry their own times keep them.
    timed = parse_srt_text(_cues([f"2023-05-01 10:00:0{s} [latitude: 10.0] [longitude: 20.0]" for s in seconds]), "y.SRT")
    assert [p.t for p in timed.points] == [float(i) for i in range(6)]


def test_an_altitude_ten_times_too_large_and_gimbal_radians_are_put_right() -> None:
    """DJI FPV writes its altitude in decimetres, some Mavic Air 2 files their gimbal angles
    in radians: judged by plausibility, corrected, and said."""
    rows = [f"[latitude: 45.0] [longitude: 7.0] [rel_alt: {10 + 3 * i:.1f} abs_alt: {(300 + 10 + 3 * i) * 10:.1f}] "
            f"[gb_yaw: {0.1 * i:.3f} gb_pitch: -1.571 gb_roll: 0.000]" for i in range(12)]
    tel = parse_srt_text(_cues(rows), "fpv.SRT")
    p = tel.points[5]
    assert p.abs_alt == pytest.approx(325.0) and p.rel_alt == pytest.approx(25.0)
    assert p.gimbal_pitch == pytest.approx(-90.0, abs=0.05) and p.gimbal_yaw == pytest.approx(28.65, abs=0.05)
    assert any("ten times" in w for w in tel.warnings) and any("radians" in w for w in tel.warnings)
    # Plausible values are left alone: degrees, and an altitude that climbs with the barometer.
    rows = [f"[latitude: 45.0] [longitude: 7.0] [rel_alt: {10 + 3 * i:.1f} abs_alt: {310 + 3 * i:.1f}] "
            f"[gb_yaw: {12.5 * i:.1f} gb_pitch: -90.0 gb_roll: 0.0]" for i in range(12)]
    tel = parse_srt_text(_cues(rows), "mavic.SRT")
    assert tel.points[5].abs_alt == pytest.approx(325.0) and tel.points[5].gimbal_yaw == pytest.approx(62.5)
    assert not any("ten times" in w or "radians" in w for w in tel.warnings)
