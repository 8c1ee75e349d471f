"""Decoding only what the sampled frames need gives the very pictures a full decode gives."""

from __future__ import annotations

import fractions
from pathlib import Path

import cv2
import numpy as np
import pytest

from triage_app.core.ingest.sources import VideoSource
from triage_app.core.model.records import Sampling

av = pytest.importorskip("av")


def _clip(path: Path, ortho: np.ndarray, codec: str, options: dict[str, str], steps_ms: list[int]) -> None:
    """A panning clip written with PyAV: one frame per entry of ``steps_ms`` (the gap to the
    next frame: a variable frame rate where they differ)."""
    out = av.open(str(path), "w")
    stream = out.add_stream(codec, rate=30)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, 1000)
    stream.codec_context.options = options
    ms = 0
    for i, step in enumerate(steps_ms):
        img = np.ascontiguousarray(ortho[300 + 2 * i : 540 + 2 * i, 400 + 4 * i : 720 + 4 * i])
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts, frame.time_base = ms, fractions.Fraction(1, 1000)
        out.mux(stream.encode(frame))
        ms += step
    out.mux(stream.encode())
    out.close()


def full_decode(path: Path) -> list[np.ndarray]:
    """Every frame, as OpenCV decodes them one after the other."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


CLIPS = {
    # B-frames used as references (x264's pyramid), a keyframe every 24 frames
    "b-frames": ("libx264", {"bf": "3", "g": "24", "x264-params": "b-pyramid=normal:scenecut=0"}, [33] * 150),
    # an open GOP: frames shown before a keyframe that refer to the GOP before it
    "open GOP": ("libx264", {"bf": "2", "g": "20", "x264-params": "open-gop=1:scenecut=0"}, [33] * 150),
    # a variable frame rate (33 ms, then 100 ms, then 50 ms apart), B-frames
    "variable rate": ("libx264", {"bf": "2", "g": "30"}, [33] * 40 + [100] * 40 + [50] * 40),
    # no B-frames, a keyframe each second
    "keyframe a second": ("libx264", {"bf": "0", "g": "30", "x264-params": "keyint-min=30:scenecut=0"}, [33] * 150),
    "HEVC": ("libx265", {"x265-params": "bframes=3:keyint=25:log-level=error"}, [33] * 100),
}

SAMPLINGS = [Sampling(), Sampling(fps=1.0), Sampling(fps=3.0), Sampling(fps=0.5), Sampling(every=7), Sampling(every=45)]


@pytest.mark.parametrize("name", list(CLIPS))
def test_sampled_frames_are_those_of_afull_decode(tmp_path: Path, ortho: np.ndarray, name: str) -> None:
    codec, options, steps = CLIPS[name]
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV has no {codec} encoder")
    path = tmp_path / "clip.mp4"
    _clip(path, ortho, codec, options, steps)
    full = full_decode(path)
    assert len(full) == len(steps)
    for sampling in SAMPLINGS:
        every = [(f.idx, f.timestamp_s) for f in VideoSource(path, planned=False).frames(sampling)]
        source = VideoSource(path)
        assert source.packet_index() is not None, "the planned reading is what is under test"
        got = list(source.frames(sampling))
        assert [f.idx for f in got] == [i for i, _ in every], sampling
        assert [f.timestamp_s for f in got] == pytest.approx([t for _, t in every], abs=0.002), sampling
        for f in got:
            assert f.image is not None and np.array_equal(f.image, full[f.idx]), (sampling, f.idx)
        if sampling.fps and sampling.fps <= 1 or sampling.every > 20:
            # sparse sampling decodes a fraction of the frames (whole GOPs are never read)
            assert source.frames_decoded < 0.75 * len(full), (sampling, source.frames_decoded)


def test_a_resumed_or_partial_reading_decodes_only_the_frames_asked_for(tmp_path: Path, ortho: np.ndarray) -> None:
    path = tmp_path / "clip.mp4"
    _clip(path, ortho, *CLIPS["b-frames"])
    full = full_decode(path)
    source = VideoSource(path)
    later = list(source.frames(Sampling(every=3), start_after=100))
    assert [f.idx for f in later] == list(range(102, 150, 3))
    only = {9, 60, 141, 142}  # 142 is not sampled: not given
    some = list(source.frames(Sampling(every=3), only=only))
    assert [f.idx for f in some] == [9, 60, 141]
    assert all(np.array_equal(f.image, full[f.idx]) for f in later + some)
    assert source.frames_decoded < 40  # three frames, each from its GOP's start


def test_full_and_planned_readings_agree_on_a_generated_flight(flight_video: Path) -> None:
    """The demo flight (OpenCV-written): the same frames, times and pictures either way."""
    for sampling in (Sampling(fps=2.0), Sampling(every=5)):
        a = list(VideoSource(flight_video, planned=False).frames(sampling))
        b = list(VideoSource(flight_video).frames(sampling))
        assert [f.idx for f in a] == [f.idx for f in b]
        assert [f.timestamp_s for f in a] == pytest.approx([f.timestamp_s for f in b], abs=0.002)
        assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
