"""Turn boxed aerial stills into a video that pans like a flight, with a truth per frame, for
replaying review on footage whose frames come in runs of near duplicates (as a drone's do)
and whose targets drift into and out of view:

    python scripts/stills_to_flight.py ../shared/data/aerial/hit-uav /tmp/hit_pan.mp4 \\
        --classes Car,OtherVehicle --prevalence 0.1
    triage evaluate /tmp/hit_pan.mp4 --truth /tmp/hit_pan_truth.csv --target vehicle --target-recall 0.95

Each still (in name order, which for most datasets is capture order) becomes ``--steps``
consecutive frames: a window of ``--crop`` of its width and height slides in a straight line
between two random places, so each frame shares most of its picture with the one before. A
frame is positive when the window holds at least half of the area of some box of the chosen
classes (a box it only grazes does not count, as a person reviewing would not see it). Stills
whose frames are all negative are all kept; stills with a positive frame are kept at random
until the positive frames are about ``--prevalence`` of all (real targets are rare). Boxes are
read from a Pascal VOC ``.xml`` or YOLO ``.txt`` of the same stem anywhere under the source.
The truth is written beside the video as ``<stem>_truth.csv`` (source,frame,label).
"""

from __future__ import annotations

import argparse
import csv
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}
Box = tuple[float, float, float, float]


def read_boxes(note: Path, classes: set[str], width: int, height: int) -> list[Box]:
    """Boxes (x0, y0, x1, y1 in pixels) of the chosen classes (all where ``classes`` is empty)."""
    out: list[Box] = []
    if note.suffix == ".xml":
        for obj in ET.parse(note).getroot().iter("object"):
            name = (obj.findtext("name") or "").strip().lower()
            box = obj.find("bndbox")
            if box is None or (classes and name not in classes):
                continue
            out.append(tuple(float(box.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax")))  # type: ignore[arg-type]
        return out
    for line in note.read_text().splitlines():
        parts = line.split()
        if len(parts) != 5 or (classes and parts[0].lower() not in classes):
            continue
        cx, cy, bw, bh = (float(v) for v in parts[1:])
        out.append(((cx - bw / 2) * width, (cy - bh / 2) * height, (cx + bw / 2) * width, (cy + bh / 2) * height))
    return out


def holds_target(window: Box, boxes: list[Box]) -> bool:
    """At least half of some box's area lies inside the window."""
    wx0, wy0, wx1, wy1 = window
    for x0, y0, x1, y1 in boxes:
        area = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
        inside = max(min(x1, wx1) - max(x0, wx0), 0.0) * max(min(y1, wy1) - max(y0, wy0), 0.0)
        if area > 0 and inside >= 0.5 * area:
            return True
    return False


def pan(width: int, height: int, crop: float, steps: int, rng: random.Random) -> list[tuple[int, int, int, int]]:
    """Windows (x, y, w, h) along a straight line between two random places of the still."""
    w, h = max(1, round(width * crop)), max(1, round(height * crop))
    x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
    x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
    out = []
    for i in range(steps):
        t = i / max(steps - 1, 1)
        out.append((round(x0 + t * (x1 - x0)), round(y0 + t * (y1 - y0)), w, h))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="folder holding the stills and their .xml / .txt boxes")
    ap.add_argument("video", type=Path, help="the .mp4 to write; its truth goes beside it as <stem>_truth.csv")
    ap.add_argument("--classes", default="", help="comma-separated class names (VOC) or ids (YOLO); default all")
    ap.add_argument("--crop", type=float, default=0.5, help="the window's share of the still's width and height")
    ap.add_argument("--steps", type=int, default=6, help="frames per still")
    ap.add_argument("--prevalence", type=float, default=0.1, help="about this share of the frames positive")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not 0 < args.crop <= 1 or args.steps < 1 or not 0 < args.prevalence < 1:
        raise SystemExit("--crop must be in (0, 1], --steps at least 1, --prevalence in (0, 1)")
    classes = {c.strip().lower() for c in args.classes.split(",") if c.strip()}
    notes = {p.stem: p for p in args.source.rglob("*") if p.suffix in (".xml", ".txt")}
    stills = sorted((p for p in args.source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in notes),
                    key=lambda p: p.name)
    if not stills:
        raise SystemExit(f"{args.source}: no images with a .xml or .txt of boxes beside them")
    rng = random.Random(args.seed)
    runs = []  # (still, windows, labels)
    size = None
    for path in stills:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            print(f"{path}: not an image, left out")
            continue
        height, width = img.shape[:2]
        boxes = read_boxes(notes[path.stem], classes, width, height)
        windows = pan(width, height, args.crop, args.steps, rng)
        if size is None:
            size = windows[0][2:]
        labels = [int(holds_target((x, y, x + w, y + h), boxes)) for x, y, w, h in windows]
        runs.append((path, windows, labels))
    negative = [r for r in runs if not any(r[2])]
    positive = [r for r in runs if any(r[2])]
    rng.shuffle(positive)
    kept_pos, pos_frames = [], 0
    total_neg = sum(len(r[2]) for r in negative)
    for r in positive:  # keep positive stills until the positive frames reach the prevalence
        if pos_frames / max(total_neg + sum(len(k[2]) for k in kept_pos), 1) >= args.prevalence:
            break
        kept_pos.append(r)
        pos_frames += sum(r[2])
    kept = sorted(negative + kept_pos, key=lambda r: r[0].name)
    assert size is not None
    out_w, out_h = size
    writer = cv2.VideoWriter(str(args.video), cv2.VideoWriter_fourcc(*"mp4v"), args.fps, (out_w, out_h))
    truth = args.video.with_name(args.video.stem + "_truth.csv")
    n = positives = 0
    with truth.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["source", "frame", "label"])
        for path, windows, labels in kept:
            img = cv2.imread(str(path))
            for (x, y, w, h), label in zip(windows, labels, strict=True):
                frame = cv2.resize(np.ascontiguousarray(img[y:y + h, x:x + w]), (out_w, out_h),
                                   interpolation=cv2.INTER_AREA)
                writer.write(frame)
                out.writerow([args.video.name, n, label])
                n += 1
                positives += label
    writer.release()
    print(f"{n} frames ({len(kept)} stills, {args.steps} frames each; {positives} positive, {positives / max(n, 1):.1%}) "
          f"-> {args.video}; truth -> {truth}")


if __name__ == "__main__":
    main()
