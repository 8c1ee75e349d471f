"""Cut box-annotated images (orthomosaics, say) into crops with a YOLO box file each, for
``triage evaluate``: a crop holds an object when at least half of the object's box lies in it.

    python scripts/make_crops.py OUT --size 64 IMAGE.png[:BOXES.xml] ...

Boxes are read from the Pascal VOC xml beside each image (same stem) unless named after a
colon. Crops go to OUT/images, box files to OUT/labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from triage_app.core.evaluation.truth import crops_from_boxes, read_voc


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("images", nargs="+")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--min-inside", type=float, default=0.5)
    args = p.parse_args()
    total = positive = 0
    for spec in args.images:
        image, _, boxes = spec.partition(":")
        xml = Path(boxes) if boxes else Path(image).with_suffix(".xml")
        n, pos = crops_from_boxes(image, read_voc(xml), args.size, args.out / "images", args.out / "labels", args.min_inside)
        print(f"{image}: {n} crops, {pos} holding an object")
        total, positive = total + n, positive + pos
    print(f"{total} crops, {positive} positive ({positive / max(total, 1):.1%}) in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
