"""Model cards: one small TOML file per ensemble member, saying what it is, where its
weights come from, its input size and normalisation, and what counts as the target."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from triage_app import data_dir
from triage_app.core.model.errors import ModelError

DEFAULT_MODELS_DIR = data_dir("models")
IMAGENET_CLASSES_FILE = data_dir("resources") / "imagenet_classes.txt"


def imagenet_classes() -> list[str]:
    return [line.strip() for line in IMAGENET_CLASSES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


class ModelCard(BaseModel):
    """A member's card. Paths are relative to the card's folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["imagenet", "clip", "head", "finetuned"]
    description: str = ""
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="default threshold before a policy sets one")
    input_size: int = Field(224, ge=16, le=1024)
    mean: tuple[float, float, float] = (127.0, 127.0, 127.0)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    target: str = ""
    # imagenet
    architecture: Literal["efficientnet-lite0", "resnet50"] | None = None
    weights: str = ""
    target_classes: list[str] = Field(default_factory=list)
    cpu_int8: bool = Field(False, description="precision 'auto' runs the member in 8 bits on a CPU with 8-bit dot "
                           "products: set where its 8-bit model was checked to keep the ranking on labelled footage")
    # clip
    model: str = ""
    pretrained: str = ""
    checkpoint: str = ""
    model_config_file: str = Field("", alias="model_config_path")
    target_prompts: list[str] = Field(default_factory=list)
    background_prompts: list[str] = Field(default_factory=list)
    # head (the member whose embeddings it reads); finetuned (the card it was tuned from)
    backbone: str = ""
    context_features: bool = False
    # where the card was read from (set by load_card)
    card_path: str = ""

    @model_validator(mode="after")
    def _check(self) -> "ModelCard":
        if self.kind == "imagenet" and not self.architecture:
            raise ValueError("an imagenet card needs 'architecture'")
        if self.kind == "clip":
            if not self.model:
                raise ValueError("a clip card needs 'model' (an open_clip model name)")
            if not self.target_prompts or not self.background_prompts:
                raise ValueError("a clip card needs 'target_prompts' and 'background_prompts'")
        if self.kind == "finetuned":
            if self.architecture != "efficientnet-lite0":
                raise ValueError("a finetuned card needs architecture = 'efficientnet-lite0'")
            if not self.weights or self.weights == "package":
                raise ValueError("a finetuned card needs 'weights': the fine-tuned state dict's path")
        if self.kind == "head" and not self.backbone:
            raise ValueError("a head card needs 'backbone' (the member whose embeddings it reads)")
        return self

    @property
    def folder(self) -> Path:
        return Path(self.card_path).parent if self.card_path else DEFAULT_MODELS_DIR

    def resolve(self, value: str) -> Path | None:
        """A path named in the card, relative to the card's folder; ``None`` if empty."""
        if not value:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.folder / p

    def target_indices(self) -> list[int]:
        names = imagenet_classes()
        lookup = {n.lower(): i for i, n in enumerate(names)}
        out = []
        for c in self.target_classes:
            if c.lower() not in lookup:
                raise ModelError(self.card_path or self.name, f"'{c}' is not an ImageNet class name (see {IMAGENET_CLASSES_FILE.name})")
            out.append(lookup[c.lower()])
        return out

    def content_hash(self) -> str:
        """Hash of everything in the card that changes what the exported model computes (an
        ImageNet member's classes are chosen after the model runs: not in it)."""
        data = self.model_dump(exclude={"card_path", "description", "threshold", "target", "target_classes", "cpu_int8"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def scoring_key(self) -> str:
        """What, beyond the exported model, changes the member's scores: the target's classes."""
        if self.kind != "imagenet":
            return ""
        return hashlib.sha256(json.dumps(sorted(c.lower() for c in self.target_classes)).encode()).hexdigest()[:8]


def load_card(path: str | Path) -> ModelCard:
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ModelError(path, f"model card cannot be read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(path, f"model card is not valid TOML ({exc})") from exc
    data["card_path"] = str(path.resolve())
    try:
        return ModelCard.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'card'}: {e['msg']}" for e in exc.errors())
        raise ModelError(path, f"invalid model card: {problems}") from exc


PROJECT_MODELS = "models"


def project_models_dir(project_root: str | Path) -> Path:
    """Where a project keeps the members trained for it (a deployed fine-tuned backbone)."""
    return Path(project_root) / PROJECT_MODELS


def load_cards(models_dir: Path | None = None, project_root: str | Path | None = None) -> dict[str, ModelCard]:
    """Every card in the models folder, by member name, and, given a project, the cards of
    the members trained for it (which take precedence over a namesake)."""
    folder = Path(models_dir) if models_dir else DEFAULT_MODELS_DIR
    folders = [folder]
    if project_root is not None:
        folders.append(project_models_dir(project_root))
    cards: dict[str, ModelCard] = {}
    for f in folders:
        for path in sorted(f.glob("*.toml")):
            card = load_card(path)
            cards[card.name] = card
    return cards


def project_members(project_root: str | Path) -> list[str]:
    """Names of the members deployed into a project: they join its ensemble."""
    return [load_card(path).name for path in sorted(project_models_dir(project_root).glob("*.toml"))]
