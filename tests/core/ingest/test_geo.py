from __future__ import annotations

import math

import pytest

from triage_app.core.ingest.telemetry.geo import locate, locate_box, offset_to_latlon

W, H, HFOV = 1920, 1080, 70.0
F_PX = (W / 2) / math.tan(math.radians(HFOV) / 2)


def _frame(**kw) -> dict:
    row = dict(lat=45.0, lon=7.0, rel_alt=100.0, gimbal_pitch=-90.0, gimbal_yaw=0.0, gimbal_roll=0.0, width=W, height=H)
    row.update(kw)
    return row


def test_wgs84_offsets_match_the_published_lengths_of_a_degree() -> None:
    lat, lon = offset_to_latlon(45.0, 7.0, 78_846.8, 0.0)  # a degree of longitude at 45°: 78,846.8 m
    assert lat == pytest.approx(45.0) and lon == pytest.approx(8.0, abs=2e-5)
    lat, _ = offset_to_latlon(0.0, 0.0, 0.0, 110_574.3)  # a degree of latitude at the equator: 110,574.3 m
    assert lat == pytest.approx(1.0, abs=2e-5)
    from triage_app.core.ingest.telemetry.geo import latlon_to_offset

    east, north = latlon_to_offset(45.0, 7.0, *offset_to_latlon(45.0, 7.0, 350.0, -120.0))
    assert (east, north) == pytest.approx((350.0, -120.0), abs=1e-6)  # the way back


def test_straight_down_the_frame_centre_is_below_the_aircraft_and_its_edges_are_as_wide_as_the_view() -> None:
    centre = locate(_frame(), W / 2, H / 2, HFOV).point
    assert centre.distance_m == pytest.approx(0.0, abs=1e-6)
    assert (centre.lat, centre.lon) == pytest.approx((45.0, 7.0))
    right = locate(_frame(), W, H / 2, HFOV).point  # heading north: the right edge is east
    assert right.distance_m == pytest.approx(100.0 * math.tan(math.radians(35.0)))
    assert right.bearing_deg == pytest.approx(90.0)
    assert right.lon > 7.0 and right.lat == pytest.approx(45.0)
    top = locate(_frame(), W / 2, 0, HFOV).point  # the top of the picture is ahead
    assert top.distance_m == pytest.approx(100.0 * (H / 2) / F_PX) and top.bearing_deg == pytest.approx(0.0, abs=1e-6)
    east = locate(_frame(gimbal_yaw=90.0), W / 2, 0, HFOV).point  # heading east: ahead is east
    assert east.bearing_deg == pytest.approx(90.0) and east.distance_m == pytest.approx(top.distance_m)
    twice_as_high = locate(_frame(rel_alt=200.0), W, H / 2, HFOV).point
    assert twice_as_high.distance_m == pytest.approx(2 * right.distance_m)


def test_an_oblique_camera_places_its_centre_ahead_by_the_height_over_the_tangent_of_the_pitch() -> None:
    for pitch in (-45.0, -30.0, -60.0):
        p = locate(_frame(gimbal_pitch=pitch, gimbal_yaw=200.0), W / 2, H / 2, HFOV).point
        assert p.distance_m == pytest.approx(100.0 / math.tan(math.radians(-pitch)))
        assert p.bearing_deg == pytest.approx(200.0)
    # Below the centre of an oblique picture the ground is nearer; above it, farther.
    near = locate(_frame(gimbal_pitch=-45.0), W / 2, H, HFOV).point
    far = locate(_frame(gimbal_pitch=-45.0), W / 2, 0, HFOV).point
    assert near.distance_m < 100.0 < far.distance_m


def test_roll_turns_the_picture_about_its_centre() -> None:
    level = locate(_frame(), W, H / 2, HFOV).point
    rolled = locate(_frame(gimbal_roll=10.0), W, H / 2, HFOV).point
    assert rolled.distance_m == pytest.approx(level.distance_m)
    assert rolled.bearing_deg == pytest.approx(100.0)
    assert locate(_frame(gimbal_roll=10.0), W / 2, H / 2, HFOV).point.distance_m == pytest.approx(0.0, abs=1e-6)


def test_points_that_cannot_be_placed_say_why() -> None:
    assert "horizon" in locate(_frame(gimbal_pitch=0.0), W / 2, H / 2, HFOV).reason
    assert "horizon" in locate(_frame(gimbal_pitch=-10.0), W / 2, 0, HFOV).reason  # the top edge looks up
    far = locate(_frame(gimbal_pitch=-1.0), W / 2, H / 2, HFOV)  # 5.7 km ahead
    assert far.point is None and "too near the horizon" in far.reason
    assert locate(_frame(gimbal_pitch=-1.0), W / 2, H / 2, HFOV, max_distance_m=10_000).point is not None
    assert locate(_frame(gimbal_pitch=None), W / 2, H / 2, HFOV).reason == "no gimbal pitch"
    assert locate(_frame(lat=None), W / 2, H / 2, HFOV).reason == "no position"
    assert "on or near the ground" in locate(_frame(rel_alt=0.0), W / 2, H / 2, HFOV).reason
    assert "heading" in locate(_frame(gimbal_yaw=None), W / 2, H / 2, HFOV).reason
    with_aircraft_yaw = locate(_frame(gimbal_yaw=None, aircraft_yaw=90.0), W / 2, 0, HFOV).point
    assert with_aircraft_yaw.bearing_deg == pytest.approx(90.0)  # the gimbal follows the aircraft


def test_a_box_is_placed_by_its_centre_and_no_box_by_the_frame_centre() -> None:
    frame = _frame(gimbal_pitch=-45.0)
    assert locate_box(frame, (W - 200, 0, W, 200), HFOV).point == locate(frame, W - 100, 100, HFOV).point
    assert locate_box(frame, None, HFOV).point.distance_m == pytest.approx(100.0)


def test_the_focal_length_gives_the_field_of_view_where_the_telemetry_has_one() -> None:
    from triage_app.core.ingest.telemetry.geo import horizontal_fov

    # A 3:2 photo at 24 mm equivalent spans 36 mm: 73.7°; a 4:3 one 34.6 mm: 71.6°, as does
    # 16:9 video cut from a 4:3 sensor; 28 mm (Mavic 2 Pro) is narrower; no focal length:
    # the settings' value.
    assert horizontal_fov(_frame(focal_35mm=24.0, width=5472, height=3648), HFOV)[0] == pytest.approx(73.74, abs=0.01)
    assert horizontal_fov(_frame(focal_35mm=24.0, width=4000, height=3000), HFOV)[0] == pytest.approx(71.6, abs=0.1)
    assert horizontal_fov(_frame(focal_35mm=24.0), HFOV)[0] == pytest.approx(71.6, abs=0.1)
    assert horizontal_fov(_frame(focal_35mm=28.0), HFOV) == (pytest.approx(63.4, abs=0.1), "28 mm focal length")
    assert horizontal_fov(_frame(), HFOV) == (HFOV, "settings")
    cropped = horizontal_fov(_frame(focal_35mm=24.0, width=1058, height=997), HFOV)  # cut out of a photo
    assert cropped[0] == HFOV and "cropped" in cropped[1]
    assert horizontal_fov(_frame(focal_35mm=24.0, width=3648, height=5472), HFOV)[0] == pytest.approx(
        math.degrees(2 * math.atan(43.27 * 3648 / math.hypot(3648, 5472) / 48)), abs=0.05)  # a portrait photo
    p = locate(_frame(focal_35mm=28.0), W, H / 2, HFOV).point
    assert p.hfov_deg == pytest.approx(63.4, abs=0.1)
    assert p.distance_m == pytest.approx(100.0 * math.tan(math.radians(p.hfov_deg / 2)))


def test_dji_focal_lengths_are_read_in_both_notations(shared_data) -> None:
    from triage_app.core.ingest.telemetry import parse_srt
    from triage_app.core.ingest.telemetry.exif import read_exif

    srt = shared_data / "telemetry" / "juanirache"
    assert parse_srt(srt / "MAVIC3.srt").points[0].focal_35mm == 24.0  # "focal_len: 24.00"
    assert parse_srt(srt / "mavic_2pro_new.SRT").points[0].focal_35mm == 28.0  # "focal_len : 280"
    assert parse_srt(srt / "p4_rtk.SRT").points[0].focal_35mm is None  # not written
    photo = read_exif(shared_data / "aerial" / "deepforest" / "pelicans_DJI_0005.JPG")
    assert photo.focal_35mm == 24.0  # Phantom 4 Pro, EXIF FocalLengthIn35mmFilm


def test_a_find_comes_with_how_far_it_may_be_from_its_point() -> None:
    from triage_app.core.ingest.telemetry.geo import Errors, locate_box

    e = Errors(angle_deg=2.0, height_share=0.1, fov_share=0.03, position_m=3.0)
    # Straight down, a point at the centre: only the position and the pitch move it (yaw turns
    # it on the spot, height and field of view scale a zero offset): sqrt(3² + (100 tan 2°)²).
    centre = locate_box(_frame(), (W / 2, H / 2, W / 2, H / 2), HFOV, errors=e).point
    assert centre.radius_m == pytest.approx(math.hypot(3.0, 100 * math.tan(math.radians(2.0))), rel=1e-3)
    # The find is somewhere in its tile: the tile's farthest corner adds to the radius.
    tile = locate_box(_frame(), (W / 2 - 224, H / 2 - 224, W / 2 + 224, H / 2 + 224), HFOV, errors=e).point
    corner = locate(_frame(), W / 2 + 224, H / 2 + 224, HFOV).point.distance_m
    assert tile.radius_m == pytest.approx(centre.radius_m + corner, rel=1e-3)
    # Looking obliquely, the same errors move the point much farther.
    oblique = locate_box(_frame(gimbal_pitch=-30.0), (W / 2, H / 2, W / 2, H / 2), HFOV, errors=e).point
    assert oblique.radius_m > 5 * centre.radius_m
    # An error that would lift the ray above the horizon leaves the point unbounded.
    grazing = locate_box(_frame(gimbal_pitch=-1.5), (W / 2, H / 2, W / 2, H / 2), HFOV, max_distance_m=1e5, errors=e)
    assert grazing.point is not None and grazing.point.radius_m is None
    assert locate_box(_frame(), None, HFOV).point.radius_m is None  # no errors asked: no radius
