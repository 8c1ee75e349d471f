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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from triage_app.core.model.errors import SettingsError

APP_NAME = "triage_app"
ENV_PREFIX = "TRIAGE_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class QualitySettings(_Section):
    """Thresholds of the quality gate. Measured on a copy of the frame scaled so its
    long side is ``analysis_size`` pixels, which makes the blur measure comparable
    across resolutions.

    A source with at least ``relative_min_frames`` frames is also judged against itself:
    thermal and night footage is smooth and dark by nature, so a frame is flagged only when
    it is poor by the absolute thresholds and also far from its own flight's median. A source
    too short to have a norm (a few stills) is judged by the absolute thresholds alone, grey
    (thermal) pictures being allowed less texture.
    Flagged frames are still scored and reviewed (``gate_scoring`` keeps them out instead)."""

    analysis_size: int = Field(640, ge=64)
    under_exposed_mean: float = Field(28.0, description="mean luminance (0-255) below which a frame is too dark")
    over_exposed_mean: float = Field(230.0, description="mean luminance above which a frame is washed out")
    clipped_fraction: float = Field(0.6, gt=0, le=1, description="share of pixels at 0-8 or 247-255 that flags exposure")
    blur_min_sharpness: float = Field(12.0, description="variance of the Laplacian below which a frame is blurred")
    grey_blur_factor: float = Field(0.25, gt=0, le=1, description="grey (thermal) pictures: the blur threshold times this")
    relative_min_frames: int = Field(8, ge=2, description="a source with this many frames is judged against its own median")
    blur_relative: float = Field(0.125, gt=0, lt=1, description="blurred: sharpness also below this share of the source's median")
    dark_relative: float = Field(0.35, gt=0, lt=1, description="under-exposed: brightness also below this share of the source's median")
    bright_relative: float = Field(0.65, gt=0, lt=1, description="over-exposed: brightness also this share of the way "
                                   "from the source's median to white")
    max_pixels: int = Field(250_000_000, description="images larger than this are refused as unsafe to decode")
    gate_scoring: bool = Field(False, description="keep flagged frames out of scoring (by default they are scored and "
                               "reviewed like any other: a frame the gate flags may still hold the target)")


class IngestSettings(_Section):
    every: int = Field(1, ge=1, description="keep every Nth frame of a video")
    fps: float | None = Field(None, gt=0, description="keep this many frames per second of video time")
    stream_max_frames: int = Field(100_000, ge=1)
    telemetry_tolerance_s: float = Field(2.0, ge=0, description="farthest a telemetry cue may be from a frame")


class TilingSettings(_Section):
    """How frames are cut into tiles. Where the telemetry gives the height (and the field of
    view), the scale is chosen from the ground sampling distance so that the project's
    target spans ``target_pixels`` at the members' input: never shrunk below that (people
    from 100 m are a few pixels), shrunk further where the target is large in the frame (fewer
    tiles, same view of it). Without a height, frames are shrunk to a long side of
    ``keep_long_side`` (small frames not at all), no further than ``downscale``."""

    overlap: float = Field(0.2, ge=0, lt=0.9)
    downscale: float = Field(0.5, gt=0, le=1, description="without a height in the telemetry: the most a frame is shrunk "
                             "before cutting tiles")
    keep_long_side: int = Field(1024, ge=64, description="without a height in the telemetry: frames whose long side is at "
                                "most this are not shrunk, larger ones are shrunk towards it")
    whole_frame: bool = Field(True, description="also score the whole frame squeezed to one tile")
    from_telemetry: bool = Field(True, description="choose the scale from the height and the field of view where known")
    target_pixels: float = Field(32.0, gt=0, description="pixels the target should span at the members' input")
    min_downscale: float = Field(0.2, gt=0, le=1, description="the most a frame is shrunk for a large target")


class ScoringSettings(_Section):
    members: list[str] = Field(default_factory=lambda: ["imagenet", "clip", "head"])
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch: int = Field(32, ge=1, le=4096, description="tiles per inference call on a GPU (on the CPU at most 8: larger "
                       "calls are no faster there and only take memory)")
    precision: Literal["auto", "fp32", "fp16", "int8"] = Field(
        "auto", description="auto: fp16 models on a GPU; on the CPU 8 bits for the members whose card allows it where "
                            "the CPU has 8-bit dot products (VNNI, AMX, ARM's), else fp32, and a project scored already "
                            "keeps its precision; int8: the members quantized to 8 bits for the CPU (calibrated on "
                            "aerial tiles, biases corrected, checked against fp32)")
    cuda_graph: bool = Field(True, description="on the CUDA provider, replay each member as one captured CUDA graph per "
                             "batch (kept only where it gives the plain session's outputs)")
    tile_workers: int = Field(0, ge=0, le=32, description="threads cutting tiles (0: a quarter of the cores, 1 to 4)")
    decode_workers: int = Field(0, ge=0, le=32, description="threads decoding still images, at ingest and "
                                "when scoring (0: half the cores, 1 to 8); a video is decoded as one stream")
    sources_at_once: int = Field(0, ge=0, le=32, description="with several sources to score, how many are decoded at once, "
                                 "each by a decoder of its own, all feeding one inference stage (0: one per four cores, "
                                 "1 to 4)")
    queue_frames: int = Field(8, ge=1, description="frames buffered between pipeline stages")
    commit_every: int = Field(16, ge=1, description="frames per store transaction")
    cluster_unit_frames: int = Field(256, ge=1, description="on a Ray cluster (triage score --cluster): frames per work "
                                     "unit handed to a worker (a long video is cut into runs of this many sampled frames)")
    cluster_cpus_per_worker: int = Field(4, ge=1, description="on a Ray cluster without GPUs: CPUs each worker takes (its "
                                         "ONNX Runtime threads); with GPUs each worker takes one GPU")
    rule: str = Field("any", description="any, all, or K-of-N")


class ReviewSettings(_Section):
    reviewer: str = Field(default_factory=lambda: os.environ.get("USER", "analyst"))
    event_gap_s: float = Field(5.0, ge=0)
    order: Literal["active", "time", "score"] = Field(
        "active", description="active: every unreviewed frame, the most likely to hold the target first, ranked by a "
        "model of the decisions so far and retrained as they come (continuous active learning), with the blind audit "
        "mixed in and a stopping point for the target recall; time: the policy's candidates, events in capture order; "
        "score: the policy's candidates, highest fused score first")
    target_recall: float = Field(0.95, gt=0, lt=1, description="the share of the targets review should reach before it "
                                 "stops offering frames (the supervisor's policy sets it for the project)")
    recall_confidence: float = Field(
        0.95, ge=0.5, lt=1, description="assurance: how sure the recall estimate must be of the target before review "
        "stops (the one-sided confidence of its lower bound; 0.5 is the point estimate), and the confidence of the "
        "policy's thresholds")
    retrain_every: int = Field(25, ge=0, description="retrain the ranking (and the head) after every N decisions, in the "
                               "background (0: only when asked)")
    stop_guard: int = Field(25, ge=0, description="review stops only where the recall estimate reaches the target both at "
                            "this learning and at the latest learning at least this many decisions earlier: targets come in "
                            "clusters, and between two of them the frames shown yield little for a while, which a single "
                            "estimate can take for the end (a Learn asked for soon after another does not count as a "
                            "second look)")
    random_share: float = Field(0.1, ge=0, le=1, description="until decisions give the ranking both kinds of label, this "
                                "share of the frames offered is drawn at random (the first labels are not all of one kind)")
    audit_share: float = Field(0.05, ge=0, le=1, description="share of the frames offered that are a blind random audit "
                               "of the frames not yet reviewed (active order), or of the frames the policy drops")
    audit_strata: int = Field(4, ge=1, le=10)
    audit_seed: int = 0
    second_review_share: float = Field(0.05, ge=0, le=1, description="share of decided frames shown blindly to a "
                                       "second reviewer (a different reviewer name)")
    cold_start_share: float = Field(0.02, ge=0, le=1, description="time and score orders: until a head is trained, this "
                                    "share of the dropped frames closest to the threshold joins the queue")
    picture_px: int = Field(1280, ge=0, le=8192, description="scoring keeps a JPEG of each frame it decodes, this many "
                            "pixels on the long side, in the project's pictures/ folder (about 0.1-0.3 MB a frame): review "
                            "shows it at once, whatever order the frames come in, and the exact frame replaces it a moment "
                            "later (0: none kept; review decodes every frame from the footage)")

    @field_validator("order", mode="before")
    @classmethod
    def _learned_is_active(cls, value: object) -> object:
        return "active" if value == "learned" else value  # the name this order had before


class TargetSettings(_Section):
    """What the project looks for: a name from the targets table (``resources/targets.toml``,
    and the user's own ``targets.toml``), or the project's own ImageNet classes and CLIP prompts."""

    name: str = Field("boat", description="person, vehicle, boat, animal, building_damage, ... or a name of your own")
    imagenet_classes: list[str] = Field(default_factory=list, description="replace the table's ImageNet classes")
    prompts: list[str] = Field(default_factory=list, description="replace the table's CLIP prompts for the target")
    background_prompts: list[str] = Field(default_factory=list, description="replace the table's background prompts")
    size_m: float | None = Field(None, gt=0, description="the target's size on the ground, metres across")


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
    map_tiles: str = Field("https://tile.openstreetmap.org/{z}/{x}/{y}.png", description="the Map tab's base map where "
                           "the machine is online: a tile server's address with {z}, {x} and {y} (XYZ web map tiles); "
                           "tiles are kept on disk and shown again offline; empty: the offline base alone")
    map_attribution: str = Field("© OpenStreetMap contributors", description="the tiles' credit, shown on the map")


class Settings(_Section):
    quality: QualitySettings = Field(default_factory=QualitySettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    tiling: TilingSettings = Field(default_factory=TilingSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    geo: GeoSettings = Field(default_factory=GeoSettings)
    target: TargetSettings = Field(default_factory=TargetSettings)
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


def _declared(model: type[BaseModel], parts: list[str]) -> bool:
    """Whether ``parts`` (section, key) name a declared field of ``model``."""
    fields = model.model_fields
    if not parts or parts[0] not in fields:
        return False
    if len(parts) == 1:
        return True
    sub = fields[parts[0]].annotation
    return isinstance(sub, type) and issubclass(sub, BaseModel) and _declared(sub, parts[1:])


def _env_layer(environ: dict[str, str]) -> dict[str, Any]:
    """The settings given in the environment: only ``TRIAGE_SECTION__KEY`` (or a top-level
    ``TRIAGE_KEY``) naming a declared field. Other ``TRIAGE_*`` variables are switches of their
    own (``TRIAGE_ALLOW_DOWNLOADS``, ``TRIAGE_TENSORRT``, ``TRIAGE_SETTINGS``) and are left
    alone; one shaped as a setting (``SECTION__KEY``) that names none is an error, with its name."""
    layer: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in {"TRIAGE_SETTINGS"}:
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        if not _declared(Settings, parts):
            if len(parts) > 1:
                raise SettingsError(f"environment variable {name}: no such setting "
                                    f"([{parts[0]}] {'.'.join(parts[1:])})")
            continue
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
    return save_section(section, {key: value}, path, environ, replace=False)


def save_section(section: str, values: dict[str, Any], path: Path | None = None, environ: dict[str, str] | None = None,
                 replace: bool = True) -> Path:
    """Write ``[section]`` of a settings file (the user's by default): with ``replace`` the
    section holds exactly ``values`` (keys set to None are left out), otherwise they are set
    in it; the rest of the file stays as it was, comments included."""
    import tomlkit

    environ = dict(os.environ if environ is None else environ)
    if path is None:
        path = Path(environ["TRIAGE_SETTINGS"]) if environ.get("TRIAGE_SETTINGS") else user_settings_path()
    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.is_file() else tomlkit.document()
    except (OSError, tomlkit.exceptions.TOMLKitError) as exc:
        raise SettingsError(f"{path}: cannot be read as TOML ({exc})") from exc
    if section not in doc or replace:
        doc[section] = tomlkit.table()
    for key, value in values.items():
        if value is not None:
            doc[section][key] = value
    said = ", ".join(f"{section}.{k} = {v!r}" for k, v in values.items() if v is not None)
    try:
        Settings.model_validate(_merge({}, doc.unwrap()))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"{path}: {said} is not a valid setting ({problems})") from exc
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot be written ({exc.strerror or exc})") from exc
    return path
