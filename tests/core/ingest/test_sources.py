from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.core.ingest.test_video import full_decode
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.ingest.reader import FrameReader
from triage_app.core.ingest.sources import ImageFolderSource, open_source
from triage_app.core.model.errors import SourceError
from triage_app.core.model.records import Sampling
from triage_app.core.model.settings import Settings
from triage_app.core.store import Workspace


def test_video_sampling_every_and_fps(flight_video: Path) -> None:
    src = open_source(flight_video)
    assert src.kind == "video" and src.fps == pytest.approx(10.0)
    assert [f.idx for f in src.frames(Sampling())] == list(range(30))
    assert [f.idx for f in src.frames(Sampling(every=7))] == [0, 7, 14, 21, 28]
    two = list(src.frames(Sampling(fps=2.0)))  # 10 fps video: one frame in five
    assert [f.idx for f in two] == [0, 5, 10, 15, 20, 25]
    assert [f.timestamp_s for f in two] == pytest.approx([0, 0.5, 1.0, 1.5, 2.0, 2.5])


@pytest.fixture
def http_stream(flight_video: Path) -> Iterator[str]:
    """The flight as MPEG-TS served over HTTP on this machine: a live stream's URL as FFmpeg
    reads one (in order, no seeking)."""
    import av

    folder = flight_video.parent / "served"
    folder.mkdir(exist_ok=True)
    ts = folder / "live.ts"
    if not ts.exists():
        cap = cv2.VideoCapture(str(flight_video))
        with av.open(str(ts), "w", format="mpegts") as out:
            stream = out.add_stream("mpeg2video", rate=10)
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            stream.bit_rate = 4_000_000
            ok, image = cap.read()
            while ok:
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                    out.mux(packet)
                ok, image = cap.read()
            for packet in stream.encode():
                out.mux(packet)
        cap.release()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/live.ts"
    finally:
        server.shutdown()


def test_stream_url_is_read_and_frames_kept_in_the_project(tmp_path: Path, flight_video: Path, http_stream: str) -> None:
    url = http_stream
    with Workspace(tmp_path / "p", settings=Settings()) as project:
        res = ingest_source(project, url, sampling=Sampling(every=3))
        assert res.ok and res.frames_total == 10
        src = project.frames.source(res.source_id)
        assert src["kind"] == "stream"
        frames = project.frames.frame_rows(res.source_id)
        reader = FrameReader(project.root)
        again = reader.read(src, frames[2])
        direct = list(open_source(flight_video).frames(Sampling(every=3)))[2].image
        assert again.shape == direct.shape
        assert np.abs(again.astype(int) - direct.astype(int)).mean() < 3  # JPEG copy of the same frame


def test_frames_are_read_again_by_identity(tmp_path: Path, flight_video: Path) -> None:
    with Workspace(tmp_path, settings=Settings()) as project:
        res = ingest_source(project, flight_video, sampling=Sampling(every=4))
        rows = project.frames.frame_rows(res.source_id)
        src = project.frames.source(res.source_id)
        originals = {f.idx: f.image for f in open_source(flight_video).frames(Sampling(every=4))}
        reader = FrameReader(project.root)
        for row in reversed(rows):  # out of order: forces seeks
            assert np.array_equal(reader.read(src, row), originals[row["idx"]])
        reader.close()


def _jpeg_with_time(path: Path, image: np.ndarray, when: str) -> None:
    img = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = when
    img.save(path, exif=exif)


def test_image_folder_order_by_capture_time_then_name(tmp_path: Path, ortho: np.ndarray) -> None:
    tile = ortho[:200, :200]
    _jpeg_with_time(tmp_path / "a.jpg", tile, "2024:05:01 10:00:30")
    _jpeg_with_time(tmp_path / "b.jpg", tile, "2024:05:01 10:00:10")
    cv2.imwrite(str(tmp_path / "img10.png"), tile)
    cv2.imwrite(str(tmp_path / "img9.png"), tile)
    (tmp_path / "notes.txt").write_text("not an image")
    src = ImageFolderSource(tmp_path)
    frames = list(src.frames(Sampling()))
    assert [f.path for f in frames] == ["b.jpg", "a.jpg", "img9.png", "img10.png"]
    assert frames[1].timestamp_s == pytest.approx(20.0)


def test_bad_images_in_a_folder_are_listed_with_a_reason(tmp_path: Path, ortho: np.ndarray) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "01.png"), ortho[800:1100, 800:1100])
    good = (folder / "01.png").read_bytes()
    (folder / "02.png").write_bytes(good[: len(good) // 3])  # truncated
    (folder / "03.jpg").write_bytes(b"\xff\xd8\xff\xe0 garbage" * 10)  # corrupt
    Image.new("L", (30000, 30000)).save(folder / "04.png", optimize=False)  # 900 Mpx: a bomb
    with Workspace(tmp_path / "p", settings=Settings()) as project:
        project.settings.quality.max_pixels = 100_000_000
        res = ingest_source(project, folder)
        assert res.ok and res.frames_total == 4
        rows = {r["path"]: r for r in project.frames.frame_rows(res.source_id)}
        assert rows["01.png"]["quality_flag"] is None
        for name in ("02.png", "03.jpg", "04.png"):
            assert rows[name]["quality_flag"] == "undecodable" and rows[name]["quality_note"]
        assert "safe limit" in rows["04.png"]["quality_note"]
        assert any("03.jpg" in w for w in res.warnings)


def test_missing_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "nothing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(SourceError, match="empty"):
        open_source(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("hello, I am not a video\n" * 50)
    with pytest.raises(SourceError, match="text.mp4"):
        open_source(tmp_path / "text.mp4")
    empty_dir = tmp_path / "d"
    empty_dir.mkdir()
    with pytest.raises(SourceError, match="no jpg, png or tif"):
        open_source(empty_dir)


def test_ingest_resumes_without_duplicates(tmp_path: Path, flight_video: Path) -> None:
    class StopAfter:
        def __init__(self) -> None:
            self.n = 0

        def is_set(self) -> bool:
            self.n += 1
            return self.n > 12

    with Workspace(tmp_path, settings=Settings()) as project:
        first = ingest_source(project, flight_video, cancel=StopAfter(), batch=5)
        assert first.cancelled and 0 < first.frames_total < 30
        second = ingest_source(project, flight_video)
        assert second.frames_total == 30 and second.frames_new == 30 - first.frames_total
        assert sorted(r["idx"] for r in project.frames.frame_rows()) == list(range(30))


def test_sidecar_telemetry_is_matched_by_time(tmp_path: Path, flight_video: Path, shared_data: Path) -> None:
    video = tmp_path / "DJI_0001.mp4"
    shutil.copy(flight_video, video)
    shutil.copy(shared_data / "telemetry" / "juanirache" / "MAVIC3.srt", tmp_path / "DJI_0001.SRT")
    with Workspace(tmp_path / "p", settings=Settings()) as project:
        res = ingest_source(project, video, sampling=Sampling(every=10))
        assert res.telemetry_matched == res.frames_total == 3
        rows = project.frames.frame_rows(res.source_id)
        # MAVIC3.srt has a cue every 20 ms; the frame at 1.0 s gets the cue starting at 1.0 s.
        assert rows[1]["timestamp_s"] == pytest.approx(1.0)
        assert rows[1]["captured_at"].startswith("2021-12-25T12:27:53.3")
        assert rows[1]["lat"] == pytest.approx(3.4153, abs=1e-3) and rows[1]["abs_alt"] is not None


def test_a_video_is_read_from_the_capture_its_check_opened_and_then_afresh(flight_video: Path) -> None:
    """Opening a video checks that it decodes; the first reading goes on from that capture
    (no second start-up) and gives exactly what a fresh reading gives, whatever the sampling."""
    from triage_app.core.ingest.sources import VideoSource

    fresh = VideoSource(flight_video)
    fresh.close()  # nothing kept: every reading below opens the file again
    for sampling, start_after in ((Sampling(), -1), (Sampling(every=7), -1), (Sampling(fps=2.0), -1), (Sampling(every=3), 0),
                                  (Sampling(every=3), 5)):
        expected = [(f.idx, f.image) for f in fresh.frames(sampling, start_after=start_after)]
        source = VideoSource(flight_video)
        first = [(f.idx, f.image) for f in source.frames(sampling, start_after=start_after)]
        again = [(f.idx, f.image) for f in source.frames(sampling, start_after=start_after)]
        assert [i for i, _ in first] == [i for i, _ in expected] == [i for i, _ in again]
        assert all(np.array_equal(a[1], b[1]) and np.array_equal(a[1], c[1]) for a, b, c in zip(first, expected, again, strict=True))
    assert [f.idx for f in VideoSource(flight_video).frames(Sampling(every=3), start_after=5)][:2] == [6, 9]


def _variable_rate_video(path: Path, ortho: np.ndarray, codec: str = "libx264") -> list[float]:
    """A clip whose frames are 33 ms apart for a second, then 100 ms (a variable frame rate),
    with B-frames, written with PyAV; returns each frame's presentation time in seconds."""
    av = pytest.importorskip("av", reason="PyAV writes the variable-rate test clip")
    import fractions

    out = av.open(str(path), "w")
    stream = out.add_stream(codec, rate=30)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, 1000)
    stream.codec_context.options = {"bf": "2", "g": "24"}
    times, ms = [], 0
    for i in range(90):
        img = np.ascontiguousarray(ortho[400 + 3 * i : 640 + 3 * i, 500 + 5 * i : 820 + 5 * i])
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts, frame.time_base = ms, fractions.Fraction(1, 1000)
        times.append(ms / 1000)
        out.mux(stream.encode(frame))
        ms += 33 if i < 30 else 100
    out.mux(stream.encode())
    out.close()
    return times


def test_a_variable_rate_clip_keeps_its_true_times_and_every_reread_is_its_own_frame(tmp_path: Path,
                                                                                       ortho: np.ndarray) -> None:
    """Frame times are the container's (index / fps would be seconds off by the end), and a
    frame read again in any order is the same frame the ingest saw, B-frames and all."""
    video = tmp_path / "vfr.mp4"
    truth = _variable_rate_video(video, ortho)
    sequential = full_decode(video)
    assert len(sequential) == len(truth) == 90
    with Workspace(tmp_path / "p") as ws:
        ingest_source(ws, video)
        rows = sorted(ws.frames.frame_rows(), key=lambda r: r["idx"])
        assert [r["idx"] for r in rows] == list(range(90))
        assert [r["timestamp_s"] for r in rows] == pytest.approx(truth, abs=0.002)
        fps = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS)  # the clip's average rate
        assert abs(30 / fps - truth[30]) > 1.0  # what index / fps would have said at frame 30
        source = ws.frames.source_summaries()[0]
        reader = FrameReader(ws.root)
        order = np.random.default_rng(3).permutation(90).tolist() + [5, 6, 7, 80, 2, 89, 0]
        try:
            for k in order:
                assert np.array_equal(reader.read(source, rows[k]), sequential[k]), k
        finally:
            reader.close()
