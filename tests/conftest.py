"""Shared fixtures: the real data in ../shared/data and small videos written by the tests."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
ORTHO = SHARED / "aerial" / "deepforest" / "5b90f92da0d7280005fab355_4310.tif"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the session: each member is exported once (TEST_TRIAGE_MODEL_CACHE
    names a folder kept between sessions instead)."""
    kept = os.environ.get("TEST_TRIAGE_MODEL_CACHE")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=True)
        return Path(kept)
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, model_cache: Path) -> None:
    """Tests never read the developer's own settings file or write to their cache."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("TRIAGE_SETTINGS", str(home / "settings.toml"))
    monkeypatch.setenv("TRIAGE_CACHE_DIR", str(model_cache))
    monkeypatch.delenv("TRIAGE_ALLOW_DOWNLOADS", raising=False)
    monkeypatch.setenv("TRIAGE_GEO__MAP_TILES", "")  # no tile server is asked unless a test serves one


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real test data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def ortho(shared_data: Path) -> np.ndarray:
    image = cv2.imread(str(ORTHO), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def write_flight(path: Path, background: np.ndarray, frames: int = 30, size: tuple[int, int] = (320, 240),
                 fps: float = 10.0, step: int = 12) -> Path:
    """A simulated flight: a camera window panning across a real orthomosaic (mp4v),
    starting inside the mapped area (the tile's top-left corner is no-data black)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    x0, y0 = 600, 900
    for i in range(frames):
        x = x0 + (i * step) % (background.shape[1] - w - x0)
        y = y0 + (i * step // 2) % (background.shape[0] - h - y0)
        writer.write(np.ascontiguousarray(background[y : y + h, x : x + w]))
    writer.release()
    return path


@pytest.fixture(scope="session")
def flight_video(tmp_path_factory: pytest.TempPathFactory, ortho: np.ndarray) -> Path:
    return write_flight(tmp_path_factory.mktemp("video") / "flight.mp4", ortho)


def scored_project(tmp_path: Path, ortho: np.ndarray, frames: int = 24, members: tuple[str, ...] = ("imagenet", "head"),
                   overrides: dict | None = None) -> Path:
    """A project over a small flight (every second frame ingested), scored on the CPU, the
    audit brought up to date as every caller of scoring does."""
    from triage_app.core.ingest.footage import ingest_source
    from triage_app.core.model.records import Sampling
    from triage_app.core.model.settings import load_settings
    from triage_app.core.review.audit import refresh_audit
    from triage_app.core.scoring.pipeline import score_project
    from triage_app.core.store import Workspace

    video = write_flight(tmp_path / "f.mp4", ortho, frames=frames, size=(480, 270))
    root = tmp_path / "p"
    root.mkdir()
    names = ", ".join(f'"{m}"' for m in members)
    # Frames 0.2 s apart: events (what cross-validation folds keep together) of half a second.
    (root / "settings.toml").write_text(f'[scoring]\nmembers = [{names}]\ndevice = "cpu"\n[review]\nevent_gap_s = 0.5\n')
    with Workspace(root, settings=load_settings(root, overrides=overrides)) as ws:
        ingest_source(ws, video, sampling=Sampling(every=2))
        score_project(ws)
        refresh_audit(ws)
    return root


@pytest.fixture(scope="session")
def three_flights(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, model_cache: Path) -> Path:
    """Two flights over the same forest (one labelled) and one over a harbour, scored by the
    imagenet member. Built once; tests that change it work on a copy."""
    from triage_app.core.ingest.footage import ingest_source
    from triage_app.core.model.records import Sampling
    from triage_app.core.review.audit import refresh_audit
    from triage_app.core.scoring.pipeline import score_project
    from triage_app.core.store import Workspace

    tmp = tmp_path_factory.mktemp("drift")
    forest = cv2.imread(str(shared_data / "aerial/deepforest/5b90f92da0d7280005fab355_4310.tif"), cv2.IMREAD_COLOR)
    harbour = cv2.resize(cv2.imread(str(shared_data / "aerial/sahi/boats.jpg"), cv2.IMREAD_COLOR), (2048, 2048))
    videos = [write_flight(tmp / "forest-a.mp4", forest, frames=40, step=40),
              write_flight(tmp / "forest-b.mp4", forest, frames=40, step=37),
              write_flight(tmp / "harbour.mp4", harbour, frames=40, step=40)]
    root = tmp / "p"
    root.mkdir()
    (root / "settings.toml").write_text('[scoring]\nmembers = ["imagenet"]\ndevice = "cpu"\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRIAGE_SETTINGS", str(tmp / "user-settings.toml"))
        mp.setenv("TRIAGE_CACHE_DIR", str(model_cache))
        with Workspace(root) as ws:
            for v in videos:
                ingest_source(ws, v, sampling=Sampling(every=1))
            score_project(ws)
            refresh_audit(ws)
            frames = [f for f in ws.frames.frame_rows() if f["source_id"] == 1]
            ws.decisions.record([dict(frame_id=f["id"], label="accept" if i % 4 == 0 else "reject", reviewer="ana",
                                      seconds_spent=1.0, policy="p", member_scores="{}") for i, f in enumerate(frames)])
    return root


#: The PostgreSQL server the team-store tests use (trust authentication on the development and
#: CI machines); TRIAGE_TEST_PG names another (no password in it: libpq's files hold that).
PG_ADMIN_URL = os.environ.get("TRIAGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin():  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    engine = create_engine(PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT",
                           connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except (OperationalError, ImportError) as exc:
        engine.dispose()
        pytest.skip(f"no PostgreSQL server at {PG_ADMIN_URL} ({str(exc).splitlines()[0]})")
    return engine


@pytest.fixture(scope="session")
def pg_admin():  # type: ignore[no-untyped-def]
    """An autocommit engine on the test server's maintenance database (skips without a server)."""
    engine = _pg_admin()
    yield engine
    engine.dispose()


@pytest.fixture
def pg_database(pg_admin):  # type: ignore[no-untyped-def]
    """Make fresh, empty PostgreSQL databases (URLs without a password), dropped after the test."""
    import uuid

    from sqlalchemy import make_url

    made: list[str] = []

    def make() -> str:
        name = f"triage_test_{uuid.uuid4().hex[:12]}"
        with pg_admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        made.append(name)
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    yield make
    with pg_admin.connect() as conn:
        for name in made:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def project_at(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Where a new project goes, on both stores: ``project_at(name)`` is a folder (SQLite) or a
    PostgreSQL URL whose shared folder is set up (``triage team init``'s work)."""
    if request.param == "sqlite":
        return lambda name="p": str(tmp_path / name)
    make = request.getfixturevalue("pg_database")

    def at(name: str = "p") -> str:
        from triage_app.core.store import Workspace

        url = make()
        Workspace(url, shared=tmp_path / f"{name}-shared").close()
        return url

    return at


class TileServer(http.server.BaseHTTPRequestHandler):
    """Serves ``/z/x/y.png`` and keeps the paths asked for."""

    asked: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the server's name
        TileServer.asked.append(self.path)
        parts = self.path.strip("/").removesuffix(".png").split("/")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            self.send_error(404)
            return
        z, x, y = (int(p) for p in parts)
        picture = np.full((256, 256, 3), (z * 10 % 255, x % 255, y % 255), np.uint8)
        data = cv2.imencode(".png", picture)[1].tobytes()
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tile_server() -> Iterator[str]:
    """A web map tile server on this machine (each tile one colour, from its z, x, y): its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TileServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    TileServer.asked = []
    yield f"http://127.0.0.1:{server.server_address[1]}/{{z}}/{{x}}/{{y}}.png"
    server.shutdown()
    server.server_close()
