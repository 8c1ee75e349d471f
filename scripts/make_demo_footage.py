"""Make the demo flight shipped in ``resources/demo``: a camera window panning across real
aerial imagery (an orthomosaic tile, a marina photo, a second tile), encoded as H.264 with
sensor noise, plus a matching DJI-style .SRT telemetry file.

Run once from the repository root (needs Debian's ffmpeg with libx264):
    python scripts/make_demo_footage.py ../shared/data/aerial resources/demo
"""

from __future__ import annotations

import argparse
import math
import subprocess
from pathlib import Path

import cv2
import numpy as np

W, H, FPS, SECONDS = 1280, 720, 30, 16
STRIP_H = 1080


def _strip(aerial: Path) -> np.ndarray:
    parts = []
    for rel, y0 in (("deepforest/5b90f92da0d7280005fab355_4310.tif", 500), ("sahi/boats.jpg", 0),
                    ("deepforest/5dded5bc0140b80006d2e565_23.tif", 400)):
        img = cv2.imread(str(aerial / rel), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"{aerial / rel}: cannot be read")
        parts.append(img[y0 : y0 + STRIP_H, : min(img.shape[1], 2048)])
    return np.concatenate(parts, axis=1)


def _srt_time(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("aerial", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--telemetry-only", action="store_true", help="write flight.SRT again, not the video")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    strip = _strip(args.aerial)
    n = FPS * SECONDS
    video = args.out / "flight.mp4"
    ff = None if args.telemetry_only else subprocess.Popen(
        ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{W}x{H}", "-r", str(FPS),
         "-i", "-", "-c:v", "libx264", "-preset", "slow", "-b:v", "2500k", "-pix_fmt", "yuv420p", str(video)],
        stdin=subprocess.PIPE,
    )
    rng = np.random.default_rng(7)
    cues = []
    # The telemetry agrees with the pictures: a 24 mm-equivalent camera straight down from
    # 80 m, heading north (the picture's top is north, its right east), so a pixel of the
    # strip is as many metres on the ground as the camera's footprint gives.
    from triage_app.core.ingest.telemetry.geo import horizontal_fov, offset_to_latlon

    height, focal = 80.0, 24.0
    hfov, _ = horizontal_fov({"focal_35mm": focal, "width": W, "height": H}, 70.0)
    metres_per_px = 2 * height * math.tan(math.radians(hfov) / 2) / W
    lat0, lon0 = 45.0380, -94.3490
    for i in range(n):
        t = i / FPS
        x = int((strip.shape[1] - W) * i / (n - 1))
        y = int((STRIP_H - H) / 2 * (1 + math.sin(t / 2.5)))
        if ff is not None:
            frame = strip[y : y + H, x : x + W].astype(np.int16)
            frame += rng.normal(0, 4, frame.shape).astype(np.int16)
            ff.stdin.write(np.clip(frame, 0, 255).astype(np.uint8).tobytes())
        lat, lon = offset_to_latlon(lat0, lon0, x * metres_per_px, -y * metres_per_px)
        cues.append(
            f"{i + 1}\n{_srt_time(t)} --> {_srt_time(t + 1 / FPS)}\n"
            f'<font size="28">FrameCnt: {i + 1}, DiffTime: 33ms\n'
            f"2026-06-04 10:00:{t:06.3f}\n"
            f"[iso: 100] [shutter: 1/1000.0] [fnum: 2.8] [ev: 0] [focal_len: {focal:.2f}] [latitude: {lat:.6f}] "
            f"[longitude: {lon:.6f}] [rel_alt: {height:.3f} abs_alt: 342.500] [gb_yaw: 0.0 gb_pitch: -90.0 gb_roll: 0.0] </font>\n"
        )
    if ff is not None:
        ff.stdin.close()
        if ff.wait() != 0:
            raise SystemExit("ffmpeg failed")
    (args.out / "flight.SRT").write_text("\n".join(cues), encoding="utf-8")
    print(("kept " if ff is None else "wrote ") + f"{video} ({video.stat().st_size / 1e6:.1f} MB); wrote flight.SRT")


if __name__ == "__main__":
    main()
