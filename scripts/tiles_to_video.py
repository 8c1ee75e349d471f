"""Turn a triage set of stills (a folder with ``images/`` and ``truth.csv`` as
``make_triage_set.py`` writes it) into a video and a per-frame truth, for replaying a video
with ``triage evaluate VIDEO --truth VIDEO_truth.csv --every N``: the stills in name order
(the tiles of one picture side by side, as consecutive frames of a flight would be), each
held for ``--hold`` frames at ``--fps``.

    python scripts/tiles_to_video.py /tmp/hit_vehicle /tmp/hit_vehicle.mp4 --hold 3
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("triage_set", type=Path, help="folder with truth.csv (path,label) and the images it names")
    ap.add_argument("video", type=Path, help="the .mp4 to write; its truth goes beside it as <stem>_truth.csv")
    ap.add_argument("--hold", type=int, default=3, help="frames each still is held for")
    ap.add_argument("--fps", type=float, default=30.0)
    args = ap.parse_args()
    with (args.triage_set / "truth.csv").open(newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["path"])
    if not rows:
        raise SystemExit(f"{args.triage_set / 'truth.csv'}: no rows")
    first = cv2.imread(str(args.triage_set / rows[0]["path"]))
    if first is None:
        raise SystemExit(f"{args.triage_set / rows[0]['path']}: not an image")
    h, w = first.shape[:2]
    writer = cv2.VideoWriter(str(args.video), cv2.VideoWriter_fourcc(*"mp4v"), args.fps, (w, h))
    truth = args.video.with_name(args.video.stem + "_truth.csv")
    n = 0
    with truth.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["source", "frame", "label"])
        for r in rows:
            img = cv2.imread(str(args.triage_set / r["path"]))
            if img is None or img.shape[:2] != (h, w):
                raise SystemExit(f"{args.triage_set / r['path']}: not an image of {w}x{h}")
            for _ in range(args.hold):
                writer.write(img)
                out.writerow([args.video.name, n, r["label"]])
                n += 1
    writer.release()
    print(f"{n} frames ({len(rows)} stills held {args.hold} frames each) -> {args.video}; truth -> {truth}")


if __name__ == "__main__":
    main()
