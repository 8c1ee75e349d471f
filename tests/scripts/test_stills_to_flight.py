"""scripts/stills_to_flight.py: boxed stills become a panning video with a truth per frame."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "stills_to_flight.py"


def _still(folder: Path, name: str, boxes: list[tuple[int, int, int, int, str]]) -> None:
    img = np.full((128, 160, 3), 40, np.uint8)
    objects = ""
    for x0, y0, x1, y1, cls in boxes:
        img[y0:y1, x0:x1] = 220
        objects += (f"<object><name>{cls}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
                    f"<ymax>{y1}</ymax></bndbox></object>")
    cv2.imwrite(str(folder / "images" / f"{name}.png"), img)
    (folder / "annotations" / f"{name}.xml").write_text(f"<annotation>{objects}</annotation>")


def test_a_flight_is_made_of_panned_windows_with_the_truth_of_each(tmp_path: Path) -> None:
    src = tmp_path / "set"
    (src / "images").mkdir(parents=True)
    (src / "annotations").mkdir()
    # a car in the middle: every window of 3/4 of the still holds it -> every frame positive
    _still(src, "a_car", [(60, 45, 80, 60, "Car")])
    for i in range(9):  # stills with no car (a person does not count)
        _still(src, f"b_empty{i}", [(10, 10, 20, 20, "Person")] if i == 0 else [])
    video = tmp_path / "flight.mp4"
    done = subprocess.run([sys.executable, str(SCRIPT), str(src), str(video), "--classes", "Car", "--steps", "4",
                           "--crop", "0.75", "--prevalence", "0.1"], capture_output=True, text=True, check=True)
    assert "40 frames" in done.stdout
    rows = list(csv.DictReader((tmp_path / "flight_truth.csv").open()))
    assert [int(r["frame"]) for r in rows] == list(range(40))
    assert [int(r["label"]) for r in rows] == [1] * 4 + [0] * 36  # name order, the car's still first
    cap = cv2.VideoCapture(str(video))
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape[:2] == (96, 120)  # 3/4 of the still each way
        frames += 1
    assert frames == 40


def test_positive_stills_are_thinned_to_the_prevalence_and_negatives_all_kept(tmp_path: Path) -> None:
    src = tmp_path / "set"
    (src / "images").mkdir(parents=True)
    (src / "annotations").mkdir()
    for i in range(10):
        _still(src, f"p{i}", [(60, 45, 80, 60, "Car")])
    for i in range(20):
        _still(src, f"n{i}", [])
    video = tmp_path / "flight.mp4"
    subprocess.run([sys.executable, str(SCRIPT), str(src), str(video), "--classes", "car", "--steps", "3",
                    "--crop", "0.75", "--prevalence", "0.1"], capture_output=True, text=True, check=True)
    labels = [int(r["label"]) for r in csv.DictReader((tmp_path / "flight_truth.csv").open())]
    assert labels.count(0) == 60  # every negative still, 3 frames each
    assert 6 <= labels.count(1) <= 9  # positive stills kept only until about 10 % of the frames
