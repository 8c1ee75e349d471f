"""Decode throughput of a photo survey: 20-megapixel JPEG stills read by ingest and by the
scoring pipeline's decode stage with one thread and with several, and the quality gate's
decode at full and at half size, in one run on the same files.

    python scripts/bench_stills.py [--images 16] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from triage_app.core.evaluation.bench import ORTHO_CANDIDATES
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.ingest.quality import measure
from triage_app.core.ingest.sources import open_source
from triage_app.core.model.records import Sampling
from triage_app.core.model.settings import load_settings
from triage_app.core.scoring.members.ensemble import Ensemble
from triage_app.core.scoring.pipeline import _Stages
from triage_app.core.store import Workspace


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    src = next(p for p in ORTHO_CANDIDATES if p.suffix != ".mp4" and p.exists())
    ortho = cv2.imread(str(src))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="triage-stills-") as tmp:
        folder = Path(tmp) / "survey"
        folder.mkdir()
        for k in range(args.images):  # DJI-sized stills, each a different view with sensor noise
            view = np.roll(ortho, (97 * k, 131 * k), axis=(0, 1))
            big = cv2.resize(view, (5472, 3648), interpolation=cv2.INTER_CUBIC)
            big = cv2.add(big, rng.integers(0, 8, big.shape, dtype=np.uint8))
            cv2.imwrite(str(folder / f"DJI_{k:04d}.JPG"), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
        result: dict[str, object] = {"images": args.images, "megapixels": round(5472 * 3648 / 1e6, 1)}
        for workers in (1, args.workers):
            with Workspace(Path(tmp) / f"p{workers}") as p:
                settings = p.settings
                settings.quality.gate_scoring = False
                settings.scoring.decode_workers = workers
                t0 = time.perf_counter()
                ingest_source(p, folder)  # decode and quality gate of every still
                result[f"ingest_fps_{workers}_threads"] = round(args.images / (time.perf_counter() - t0), 2)
                pending = p.scores.pending_frames({}, include_flagged=True)
                stages = _Stages(p, Ensemble(), pending, [])
                t0 = time.perf_counter()
                n = sum(1 for _ in stages.frames())  # the scoring pipeline's decode stage alone
                result[f"decode_fps_{workers}_threads"] = round(n / (time.perf_counter() - t0), 2)
        # What ingest's half-size decode saves: decode and quality measure of every still, one
        # thread, full size against half size.
        settings = load_settings(None)
        for label, side in (("full", None), ("half", 4 * settings.quality.analysis_size)):
            t0 = time.perf_counter()
            for frame in open_source(folder, min_long_side=side).frames(Sampling()):
                measure(frame.image, settings.quality)
            result[f"gate_fps_{label}_size"] = round(args.images / (time.perf_counter() - t0), 2)
        result["gate_half_size_speed_up"] = round(result["gate_fps_half_size"] / result["gate_fps_full_size"], 2)
        for what in ("ingest", "decode"):
            result[f"{what}_speed_up"] = round(result[f"{what}_fps_{args.workers}_threads"] / result[f"{what}_fps_1_threads"], 2)
    print(json.dumps(result) if args.json else "\n".join(f"{k:>22}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
