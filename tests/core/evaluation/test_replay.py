"""Replay evaluation with a ground-truth oracle, and the truth readers it stands on."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import write_flight
from triage_app.cli import main
from triage_app.core.evaluation.replay import first_floor, floor_stop
from triage_app.core.evaluation.truth import TruthError, box_inside_share, crops_from_boxes, read_truth, read_voc

DEEPFOREST = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "aerial" / "deepforest"


def test_csv_truth_by_path_and_by_source_frame(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "t.csv").write_text("path,label\na.png,positive\nsub/b.png,0\n")
    t = read_truth(tmp_path / "t.csv")
    assert t.label(str(tmp_path / "a.png"), "x", "x", 0) is True
    assert t.label("/elsewhere/b.png", "x", "x", 0) is False  # by file name when the folder moved
    assert t.label("/elsewhere/c.png", "x", "x", 0) is None
    (tmp_path / "v.csv").write_text("source,frame,label\nflight.mp4,4,yes\nflight.mp4,5,no\n")
    v = read_truth(tmp_path / "v.csv")
    assert v.label(None, "flight.mp4", "/data/flight.mp4", 4) is True
    assert v.label(None, "flight.mp4", "/data/flight.mp4", 5) is False
    assert v.label(None, "flight.mp4", "/data/flight.mp4", 6) is None


@pytest.mark.parametrize("name, text, problem", [
    ("bad.csv", "path,label\na.png,positive\nb.png,maybe\n", "line 3: label 'maybe'"),
    ("nohead.csv", "file,value\na.png,1\n", "needs a header with path,label"),
    ("frame.csv", "source,frame,label\nv.mp4,four,1\n", "line 2"),
    ("empty.csv", "path,label\n", "holds no labelled row"),
])
def test_bad_truth_csv_names_the_file_and_line(tmp_path: Path, name: str, text: str, problem: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(TruthError, match=problem) as err:
        read_truth(tmp_path / name)
    assert str(tmp_path / name) in str(err.value)


def test_box_folders_yolo_and_voc(tmp_path: Path) -> None:
    (tmp_path / "img1.txt").write_text("0 0.5 0.5 0.2 0.2\n3 0.1 0.1 0.05 0.05\n")
    (tmp_path / "img2.txt").write_text("")
    (tmp_path / "img3.xml").write_text("<annotation><object><name>tree</name><bndbox><xmin>1</xmin><ymin>2</ymin>"
                                       "<xmax>11</xmax><ymax>12</ymax></bndbox></object></annotation>")
    t = read_truth(tmp_path)
    assert t.label(str(tmp_path / "img1.png"), "", "", 0) is True
    assert t.label(str(tmp_path / "img2.png"), "", "", 0) is False
    assert t.label(str(tmp_path / "img3.jpg"), "", "", 0) is True
    assert t.label(str(tmp_path / "img4.jpg"), "", "", 0) is False  # no box file: background
    assert t.boxes_for(str(tmp_path / "img1.png"), 100, 200)[0] == pytest.approx((40, 80, 60, 120))
    only3 = read_truth(tmp_path, classes={"3"})
    assert len(only3.boxes_for(str(tmp_path / "img1.png"), 100, 100)) == 1
    (tmp_path / "img5.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(TruthError, match=r"img5.txt: line 1: expected 'class cx cy w h'"):
        read_truth(tmp_path)
    (tmp_path / "img5.txt").unlink()
    (tmp_path / "img6.xml").write_text("<annotation><object><name>t</name></object>")
    with pytest.raises(TruthError, match="img6.xml: not a readable Pascal VOC"):
        read_truth(tmp_path)
    with pytest.raises(TruthError, match="holds no YOLO"):
        read_truth(tmp_path / "nothing-here" if (tmp_path / "nothing-here").mkdir() is None else tmp_path)


def test_a_crop_holds_a_box_when_half_of_it_is_inside(tmp_path: Path) -> None:
    assert box_inside_share(np.array([[0, 0, 10, 10]]), (5, 0, 20, 20)) == pytest.approx([0.5])
    image = np.zeros((64, 128, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "big.png"), image)
    # Box A lies 60 % in the left crop; box B lies 40 % in the left crop (60 % in the right one).
    n, pos = crops_from_boxes(tmp_path / "big.png", [(54, 10, 64, 20), (60, 30, 70, 40)], 64, tmp_path / "i", tmp_path / "l")
    assert (n, pos) == (2, 2)
    left = (tmp_path / "l" / "big_x00000_y00000.txt").read_text().splitlines()
    right = (tmp_path / "l" / "big_x00064_y00000.txt").read_text().splitlines()
    assert len(left) == 1 and len(right) == 1
    assert float(left[0].split()[3]) == pytest.approx(10 / 64) and float(right[0].split()[3]) == pytest.approx(6 / 64)


@pytest.fixture(scope="module")
def tree_crops(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not DEEPFOREST.is_dir():
        pytest.skip(f"real test data not found at {DEEPFOREST}")
    tmp = tmp_path_factory.mktemp("crops")
    for stem in ("OSBS_029", "SOAP_061"):
        crops_from_boxes(DEEPFOREST / f"{stem}.png", read_voc(DEEPFOREST / f"{stem}.xml"), 50, tmp / "images", tmp / "labels")
    return tmp / "images", tmp / "labels"


def test_replay_with_an_oracle_reports_what_the_database_shows(tree_crops: tuple[Path, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    images, labels = tree_crops
    out, plots, project = tmp_path / "r.json", tmp_path / "plots", tmp_path / "replayed"
    assert main(["evaluate", str(images), "--truth", str(labels), "--members", "imagenet,head", "--target-recall", "0.9",
                 "--retrain-every", "10", "--json", str(out), "--plots", str(plots), "--project", str(project)]) == 0
    text = capsys.readouterr().out
    res = json.loads(out.read_text())
    for key in ("frames", "positives", "shown", "true_recall", "workload_fraction", "estimated_recall",
                "estimated_recall_ci", "decisions"):
        assert key in res
    truth = {p.stem: bool(p.read_text().strip()) for p in labels.iterdir()}
    assert res["frames"] == len(truth) == 128 and res["positives"] == sum(truth.values())
    db = sqlite3.connect(project / "project.db")
    rows = db.execute("SELECT f.path, d.label, d.reviewer FROM decisions d JOIN frames f ON f.id = d.frame_id "
                      "WHERE d.undone_at IS NULL").fetchall()
    assert len(rows) == res["decisions"] > 0
    # The oracle answered every frame from the truth.
    assert all(label == ("accept" if truth[Path(path).stem] else "reject") and who == "oracle" for path, label, who in rows)
    shown = {Path(path).stem for path, _, _ in rows}
    shown_pos = sum(truth[s] for s in shown)
    assert res["shown"] == len(shown) and res["shown_positives"] == shown_pos
    assert res["true_recall"] == pytest.approx(shown_pos / res["positives"])
    assert res["workload_fraction"] == pytest.approx(len(shown) / 128)
    lo, hi = res["estimated_recall_ci"]
    assert 0 <= lo <= hi <= 1 and (res["estimated_recall"] is None or lo <= res["estimated_recall"] <= hi)
    assert res["retrains"] >= 1 and db.execute("SELECT count(*) FROM head_models").fetchone()[0] == res["retrains"]
    assert res["curve"][-1]["decisions"] == res["decisions"]
    png = plots / "replay_curves.png"
    assert png.stat().st_size > 10_000 and cv2.imread(str(png)) is not None
    assert "true recall" in text and "kept in" in text
    # Where a count erring only by chance would have let review stop: the target truly reached there.
    floor = res["stop_floor"]
    assert floor is not None and floor["true_recall"] >= 0.9 and 0.9 <= floor["bound"] <= floor["true_recall"]
    assert f"would have let it stop after {floor['shown']} frames" in text
    # ... where chance keeps or drops the runs the targets left form (crops next to each other
    # in capture order, here name order, none of them shown yet) whole.
    in_order = [(truth[Path(p).stem], i) for p, i in db.execute(
        "SELECT f.path, f.id FROM frames f ORDER BY f.source_id, f.idx")]
    shown_then = {i for (i,) in db.execute("SELECT frame_id FROM decisions WHERE undone_at IS NULL ORDER BY id LIMIT ?",
                                           (floor["shown"],))}
    runs = [len(r) for r in "".join("x" if t and i not in shown_then else " " for t, i in in_order).split()]
    assert floor["spread"] == pytest.approx(sum(k * k for k in runs) / sum(runs) if runs else 1.0)

    # A replay never reuses a project that holds decisions.
    assert main(["evaluate", str(images), "--truth", str(labels), "--project", str(project)]) == 2
    assert "already holds a project" in capsys.readouterr().err


def test_replay_of_a_video_with_a_csv_truth(tmp_path: Path, ortho: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    video = write_flight(tmp_path / "flight.mp4", ortho, frames=30)
    (tmp_path / "truth.csv").write_text("source,frame,label\n" + "".join(
        f"flight.mp4,{i},{'positive' if i % 5 == 0 else 'negative'}\n" for i in range(30)))
    out = tmp_path / "r.json"
    assert main(["evaluate", str(video), "--truth", str(tmp_path / "truth.csv"), "--members", "imagenet",
                 "--retrain-every", "0", "--max-decisions", "2", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["frames"] == 30 and res["positives"] == 6 and res["decisions"] == 2 and res["retrains"] == 0
    assert res["project"] == ""  # not kept unless asked


def test_the_floor_of_the_stop_is_the_poisson_bound_about_the_truth() -> None:
    # 180 found, 4 left: at 95 % a Poisson count about 4 reaches 8, and 180 / 188 = 95.7 %.
    at = floor_stop(180, 4, 600, 1854, 0.95, 0.95, 600)
    assert at is not None and at["bound"] == pytest.approx(180 / 188) and at["true_recall"] == pytest.approx(180 / 184)
    assert at["shown_fraction"] == pytest.approx(600 / 1854)
    # 6 left: the bound (10) leaves 180 / 190 = 94.7 %: not yet.
    assert floor_stop(180, 6, 600, 1854, 0.95, 0.95, 600) is None
    # The same 4 left as one run of four near duplicates are one event that chance keeps or
    # drops whole: a count of runs (variance 4 times the mean) reaches further, 95.7 % is no
    # longer shown; with none left the runs change nothing.
    from scipy import stats

    wide = float(stats.nbinom.ppf(0.95, 4 / 3, 1 / 4))
    assert wide > 8 and floor_stop(180, 4, 600, 1854, 0.95, 0.95, 600, spread=4.0) is None
    assert floor_stop(180, 0, 600, 1854, 0.95, 0.95, 600, spread=4.0)["bound"] == 1.0
    # Nothing left is known at once, but never before review's own minimum of frames.
    assert floor_stop(10, 0, 60, 1000, 0.95, 0.95, 60)["bound"] == 1.0
    assert floor_stop(10, 0, 20, 1000, 0.95, 0.95, 20) is None
    # Along an order (every other frame a target, one never shown): 98 found with 3 left bounds
    # 98 / 104 < 95 %; the 99th target, the 197th frame, leaves 2 (bound 5): 99 / 104 >= 95 %.
    positives = set(range(0, 200, 2)) | {500}
    at = first_floor(list(range(200)), positives, 1000, 0.95, 0.95)
    assert at is not None and at["shown"] == 197 and at["true_recall"] == pytest.approx(99 / 101)
    # The last two targets next to each other in the flight (frames 500 and 501: one run that
    # chance keeps or drops whole) do not let it stop where two frames apart (500 and 600) do:
    # only once one of the two is shown.
    positions = {f: (1, f) for f in range(1000)}
    evens = set(range(0, 200, 2))
    order = list(range(200)) + [500, 501, 600]
    apart = first_floor(order, evens | {500, 600}, 1000, 0.95, 0.95, positions)
    assert apart is not None and apart["shown"] == 199 and apart["spread"] == 1.0
    together = first_floor(order, evens | {500, 501}, 1000, 0.95, 0.95, positions)
    assert together is not None and together["shown"] == 201 and together["true_recall"] == pytest.approx(101 / 102)
    assert first_floor(order, evens | {500, 501}, 1000, 0.95, 0.95)["shown"] == 199  # counted as frames
