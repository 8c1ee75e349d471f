"""Typed settings: defaults, then the user's file, then the project's file, then the
environment (``TRIAGE_SECTION__KEY=value``), then command-line overrides.

Unknown keys are an error at every layer, so a typo never silently does nothing.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triage_app.core.model.errors import SettingsError

APP_NAME = "triage_app"
ENV_PREFIX = "TRIAGE_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class QualitySettings(_Section):
    """Thresholds of the quality gate. Measured on a copy of the frame scaled so its
    long side is ``analysis_size`` pixels, which makes the blur measure comparable
    across resolutions."""

    analysis_size: int = Field(640, ge=64)
    under_exposed_mean: float = Field(28.0, description="mean luminance (0-255) below which a frame is too dark")
    over_exposed_mean: float = Field(230.0, description="mean luminance above which a frame is washed out")
    clipped_fraction: float = Field(0.6, gt=0, le=1, description="share of pixels at 0-8 or 247-255 that flags exposure")
    blur_min_sharpness: float = Field(12.0, description="variance of the Laplacian below which a frame is blurred")
    max_pixels: int = Field(250_000_000, description="images larger than this are refused as unsafe to decode")
    gate_scoring: bool = Field(True, description="keep flagged frames out of scoring")


class IngestSettings(_Section):
    every: int = Field(1, ge=1, description="keep every Nth frame of a video")
    fps: float | None = Field(None, gt=0, description="keep this many frames per second of video time")
    stream_max_frames: int = Field(100_000, ge=1)
    telemetry_tolerance_s: float = Field(2.0, ge=0, description="farthest a telemetry cue may be from a frame")


class TilingSettings(_Section):
    overlap: float = Field(0.2, ge=0, lt=0.9)
    downscale: float = Field(0.5, gt=0, le=1, description="scale a frame by this before cutting tiles")
    whole_frame: bool = Field(True, description="also score the whole frame squeezed to one tile")


class ScoringSettings(_Section):
    members: list[str] = Field(default_factory=lambda: ["imagenet", "clip", "head"])
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch: int = Field(32, ge=1, le=4096, description="tiles per inference call on a GPU (on the CPU at most 8: larger "
                       "calls are no faster there and only take memory)")
    precision: Literal["auto", "fp32", "fp16"] = Field(
        "auto", description="auto: fp16 models on a GPU, fp32 on the CPU (where fp16 is slower)")
    cuda_graph: bool = Field(True, description="on the CUDA provider, replay each member as one captured CUDA graph per "
                             "batch (kept only where it gives the plain session's outputs)")
    tile_workers: int = Field(0, ge=0, le=32, description="threads cutting tiles (0: a quarter of the cores, 1 to 4)")
    decode_workers: int = Field(0, ge=0, le=32, description="threads decoding still images, at ingest and "
                                "when scoring (0: half the cores, 1 to 8); a video is decoded as one stream")
    queue_frames: int = Field(8, ge=1, description="frames buffered between pipeline stages")
    commit_every: int = Field(16, ge=1, description="frames per store transaction")
    rule: str = Field("any", description="any, all, or K-of-N")


class ReviewSettings(_Section):
    reviewer: str = Field(default_factory=lambda: os.environ.get("USER", "analyst"))
    event_gap_s: float = Field(5.0, ge=0)
    order: Literal["time", "score", "learned"] = Field(
        "time", description="time: events in capture order; score: highest fused score first; learned: most likely "
        "positive first, by a model of the members' scores fitted on the decisions so far (fused score until then)")
    recall_confidence: float = Field(
        0.95, ge=0.5, lt=1, description="how sure a policy must be of reaching its target recall: thresholds are set "
        "where this one-sided confidence bound of the recall meets the target (0.95 strict; 0.5 the point estimate: "
        "far less work while labels are few, and about even odds of falling short)")
    audit_share: float = Field(0.05, ge=0, le=1, description="share of dropped frames mixed blindly into the queue")
    audit_strata: int = Field(4, ge=1, le=10)
    audit_seed: int = 0
    second_review_share: float = Field(0.05, ge=0, le=1, description="share of decided frames shown blindly to a "
                                       "second reviewer (a different reviewer name)")
    retrain_every: int = Field(0, ge=0, description="retrain the head after every N decisions in the window (0: off)")
    cold_start_share: float = Field(0.02, ge=0, le=1, description="until a head is trained, this share of the dropped "
                                    "frames closest to the threshold joins the queue")


class DriftSettings(_Section):
    alert_psi: float = Field(0.25, gt=0, description="drift score (population stability index) past which a flight is flagged")
    bins: int = Field(10, ge=2, le=100, description="quantile bins of the reference for the PSI")
    components: int = Field(5, ge=1, le=64, description="principal components of the embeddings compared")
    min_frames: int = Field(20, ge=2, description="flights with fewer scored frames get no drift score")
    sample: int = Field(5000, ge=100, description="most frames per side used for the embedding comparison")


class GeoSettings(_Section):
    """Placing a find on the ground (``core/ingest/telemetry/geo.py``): the camera and how far to trust it."""

    hfov_deg: float = Field(70.0, gt=1, lt=179, description="horizontal field of view of the camera as the footage "
                            "shows it, degrees (a DJI 24 mm-equivalent wide camera: about 70 in 16:9 video, 74 in "
                            "3:2 photos; set it for your camera or zoom)")
    max_distance_m: float = Field(2000.0, gt=0, description="points farther than this from the aircraft are not placed "
                                  "(near the horizon a small error in pitch moves them far)")
    angle_error_deg: float = Field(2.0, ge=0, le=20, description="how far the gimbal's pitch and yaw may be off, degrees")
    height_error: float = Field(0.1, ge=0, le=1, description="how far the height above the ground may be off, as a share "
                                "(barometric drift, and ground higher or lower than the take-off point)")
    position_error_m: float = Field(3.0, ge=0, description="how far the aircraft's GNSS position may be off, metres")


class Settings(_Section):
    quality: QualitySettings = Field(default_factory=QualitySettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    tiling: TilingSettings = Field(default_factory=TilingSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    geo: GeoSettings = Field(default_factory=GeoSettings)
    cache_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_cache_dir(APP_NAME)))
    models_dir: Path | None = None


def user_settings_path() -> Path:
    """Where the user's own settings file lives."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "settings.toml"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from exc
    except OSError as exc:
        raise SettingsError(f"{path}: cannot be read ({exc.strerror})") from exc


def _env_layer(environ: dict[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in {"TRIAGE_SETTINGS"}:
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = layer
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return layer


def load_settings(
    project_dir: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    user_file: Path | None = None,
) -> Settings:
    """Build the settings from every layer; raise ``SettingsError`` naming the bad key."""
    environ = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    sources: list[str] = []
    if user_file is None:
        user_file = Path(environ["TRIAGE_SETTINGS"]) if environ.get("TRIAGE_SETTINGS") else user_settings_path()
    files: list[Path] = [user_file]
    if project_dir is not None:
        files.append(Path(project_dir) / "settings.toml")
    for path in files:
        if path is not None and path.is_file():
            data = _merge(data, _read_toml(path))
            sources.append(str(path))
    data = _merge(data, _env_layer(environ))
    if overrides:
        data = _merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        where = ", ".join(sources) or "defaults"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings (from {where}, environment, command line): {problems}") from exc


def save_user_setting(section: str, key: str, value: Any, path: Path | None = None,
                      environ: dict[str, str] | None = None) -> Path:
    """Set ``[section] key = value`` in the user's settings file (``TRIAGE_SETTINGS`` or the
    platform's config folder), keeping the rest of the file, its comments included; the
    result is checked like any settings file before it replaces the old one. Returns the
    file; raises ``SettingsError`` naming it."""
    import tomlkit

    environ = dict(os.environ if environ is None else environ)
    if path is None:
        path = Path(environ["TRIAGE_SETTINGS"]) if environ.get("TRIAGE_SETTINGS") else user_settings_path()
    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.is_file() else tomlkit.document()
    except (OSError, tomlkit.exceptions.TOMLKitError) as exc:
        raise SettingsError(f"{path}: cannot be read as TOML ({exc})") from exc
    if section not in doc:
        doc[section] = tomlkit.table()
    doc[section][key] = value
    try:
        Settings.model_validate(_merge({}, doc.unwrap()))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"{path}: {section}.{key} = {value!r} is not a valid setting ({problems})") from exc
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot be written ({exc.strerror or exc})") from exc
    return path
