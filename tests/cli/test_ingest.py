from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from triage_app.cli import main
from triage_app.core.store import Workspace


def test_ingest_reports_each_bad_input_and_carries_on(
    tmp_path: Path, flight_video: Path, ortho: np.ndarray, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "zero.mp4").write_bytes(b"")
    data = flight_video.read_bytes()
    (bad / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (bad / "header_only.mp4").write_bytes(data[:2048])
    (bad / "notes.mp4").write_text("this is a text file, not a video\n" * 40)
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), ortho[900:1200, 900:1200])
    (folder / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 100)
    video = tmp_path / "DJI_0002.mp4"
    shutil.copy(flight_video, video)
    shutil.copy(shared_data / "telemetry" / "juanirache" / "broken_empty2.SRT", tmp_path / "DJI_0002.SRT")

    project = tmp_path / "proj"
    sources = [str(bad / n) for n in ("zero.mp4", "truncated.mp4", "header_only.mp4", "notes.mp4")]
    rc = main(["ingest", str(project), *sources, str(folder), str(video), "--every", "5"])
    out = capsys.readouterr().out
    assert rc == 0
    for name in ("zero.mp4", "truncated.mp4", "header_only.mp4", "notes.mp4"):
        line = next(text for text in out.splitlines() if name in text)
        assert "FAILED" in line
    assert "zero.mp4: file is empty" in out
    assert "b.jpg" in out and "DJI_0002.SRT" in out  # unreadable image and malformed telemetry named
    assert "DJI_0002.mp4: 6 frames" in out and "photos: 2 frames" in out
    assert "undecodable 1" in out
    with Workspace(project) as p:
        assert {s["name"] for s in p.frames.source_summaries()} == {"photos", "DJI_0002.mp4"}
        messages = " ".join(m["message"] for m in p.frames.message_rows())
        assert "zero.mp4: file is empty" in messages and "DJI_0002.SRT" in messages and "b.jpg" in messages


def test_ingest_of_nothing_usable_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "zero.mp4").write_bytes(b"")
    assert main(["ingest", str(tmp_path / "p"), str(tmp_path / "zero.mp4")]) != 0
    assert "zero.mp4" in capsys.readouterr().out


def test_ingest_summary_counts_flags_and_telemetry(tmp_path: Path, ortho: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dark.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for i in range(20):
        frame = np.ascontiguousarray(ortho[900 + i * 5 : 1140 + i * 5, 900:1220])
        if i >= 15:
            frame = (frame * 0.05).astype(np.uint8)
        writer.write(frame)
    writer.release()
    srt = tmp_path / "flight.SRT"
    srt.write_text("\n\n".join(
        f"{i + 1}\n00:00:{i // 10:02d},{i % 10 * 100:03d} --> 00:00:{(i + 1) // 10:02d},{(i + 1) % 10 * 100:03d}\n"
        f"[latitude: 45.{i:04d}] [longitude: 7.5] [rel_alt: 50.0 abs_alt: 400.0]" for i in range(20)))
    assert main(["ingest", str(tmp_path / "p"), str(path), "--telemetry", str(srt), "--fps", "10"]) == 0
    out = capsys.readouterr().out
    assert "20 frames" in out and "under_exposed 5" in out and "telemetry matched 20/20" in out


def test_ingesting_only_missing_files_creates_no_project(tmp_path: Path, capsys) -> None:
    from triage_app.cli import main

    root = tmp_path / "new-project"
    assert main(["ingest", str(root), str(tmp_path / "no-such-flight.mp4")]) == 1
    err = capsys.readouterr().err
    assert "no-such-flight.mp4: no such file or folder" in err and "no project was created" in err
    assert not root.exists()
