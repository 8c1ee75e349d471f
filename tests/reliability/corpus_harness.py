"""What the cases of the second bad-input corpus share: the context a case runs in, the
register of cases (``@case``), and the digest of the recorded decisions checked after each.
The cases live in ``corpus_*.py`` by what they break; ``test_corpus.py`` runs them."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from triage_app.cli import main
from triage_app.core.ingest.footage import ingest_source
from triage_app.core.model.records import Sampling
from triage_app.core.store import Workspace

SRT_CUE = ("{n}\n00:00:{s:02d},000 --> 00:00:{s:02d},900\n<font size=\"28\">FrameCnt: {n}, DiffTime: 1000ms\n"
           "2024-05-01 10:00:{s:02d}.000\n[iso: 100] [shutter: 1/1000.0] [fnum: 280] [ev: 0] [latitude: {lat}] "
           "[longitude: {lon}] [rel_alt: 50.000 abs_alt: 300.000] </font>\n\n")


def srt_text(cues: int = 12, lat: str = "45.037854", lon: str = "7.654321") -> str:
    return "".join(SRT_CUE.format(n=i + 1, s=i, lat=lat, lon=lon) for i in range(cues))


@dataclass
class Ctx:
    root: Path  # a copy of the project, this case's own
    tmp: Path
    video: Path  # the good flight
    ortho: np.ndarray
    capsys: pytest.CaptureFixture[str]

    def cli(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = self.capsys.readouterr()
        return rc, out, err

    def photo(self, path: Path, size: tuple[int, int] = (160, 120), **save: object) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        crop = self.ortho[900:900 + size[1], 900:900 + size[0], ::-1]
        Image.fromarray(np.ascontiguousarray(crop)).save(path, **save)
        return path


def digest(root: Path, first: int | None = None) -> tuple[int, str]:
    """(count, hash) of the recorded decisions (of the ``first`` ones recorded, if given)."""
    db = sqlite3.connect(root / "project.db")
    try:
        rows = db.execute("SELECT id, frame_id, label, reviewer, decided_at FROM decisions ORDER BY id LIMIT ?",
                          (-1 if first is None else first,)).fetchall()
    finally:
        db.close()
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


CASES: dict[str, Callable[[Ctx], str]] = {}


def case(name: str) -> Callable[[Callable[[Ctx], str]], Callable[[Ctx], str]]:
    def put(fn: Callable[[Ctx], str]) -> Callable[[Ctx], str]:
        CASES[name] = fn
        return fn
    return put




def ingest_source_in(c: Ctx, uri: Path | str, telemetry: Path | None = None, every: int = 3):
    with Workspace(c.root) as ws:
        return ingest_source(ws, uri, telemetry, sampling=Sampling(every=every))


