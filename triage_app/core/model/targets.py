"""What a project looks for. The model cards say what a model is; the project says what it
looks for: a target from the shipped, editable table (``resources/targets.toml``, with the
user's own ``targets.toml`` beside their settings adding to it) or one of the project's own
classes and prompts. Applying a target to the cards gives the members their ImageNet
classes and CLIP prompts."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from triage_app import data_dir
from triage_app.core.model.cards import ModelCard, imagenet_classes
from triage_app.core.model.errors import SettingsError

TARGETS_FILE = data_dir("resources") / "targets.toml"


@dataclass(frozen=True)
class Target:
    name: str
    label: str = ""
    size_m: float = 1.0  # across, seen from above
    imagenet_classes: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    background_prompts: tuple[str, ...] = ()
    custom: bool = False  # the project's own classes and prompts, not the table's

    def describe(self) -> str:
        return f"{self.label or self.name} ({self.name}, about {self.size_m:g} m across)"


@dataclass
class TargetTable:
    targets: dict[str, Target] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def names(self) -> list[str]:
        return sorted(self.targets)


def user_targets_path() -> Path:
    return Path(platformdirs.user_config_dir("triage_app")) / "targets.toml"


def _read(path: Path) -> dict[str, Target]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: the targets table cannot be read ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: the targets table is not valid TOML ({exc})") from exc
    known = {n.lower() for n in imagenet_classes()}
    out = {}
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise SettingsError(f"{path}: [{name}] is not a table")
        unknown = set(entry) - {"label", "size_m", "imagenet_classes", "prompts", "background_prompts"}
        if unknown:
            raise SettingsError(f"{path}: [{name}] has unknown keys {', '.join(sorted(unknown))}")
        bad = [c for c in entry.get("imagenet_classes", []) if str(c).lower() not in known]
        if bad:
            raise SettingsError(f"{path}: [{name}] names classes that are not ImageNet's: {', '.join(bad)}")
        out[name] = Target(name, str(entry.get("label", name)), float(entry.get("size_m", 1.0)),
                           tuple(entry.get("imagenet_classes", ())), tuple(entry.get("prompts", ())),
                           tuple(entry.get("background_prompts", ())))
    return out


def load_targets(user_file: Path | None = None) -> TargetTable:
    """The shipped table, then the user's (same names replace the shipped entries)."""
    table = TargetTable(_read(TARGETS_FILE), [TARGETS_FILE])
    user = user_file if user_file is not None else user_targets_path()
    if user.is_file():
        table.targets.update(_read(user))
        table.files.append(user)
    return table


def resolve_target(name: str, classes: list[str] | None = None, prompts: list[str] | None = None,
                   background: list[str] | None = None, size_m: float | None = None,
                   table: TargetTable | None = None) -> Target:
    """The target a project names: a table entry, with any of its parts the project gives
    replacing the table's; a name the table lacks needs the project's own classes or prompts."""
    table = table or load_targets()
    base = table.targets.get(name)
    if base is None and not (classes or prompts):
        raise SettingsError(f"unknown target '{name}' (known: {', '.join(table.names())}); for a target of your own "
                            "give its ImageNet classes or CLIP prompts in the project's [target] settings")
    known = {n.lower() for n in imagenet_classes()}
    bad = [c for c in classes or [] if c.lower() not in known]
    if bad:
        raise SettingsError(f"target '{name}': not ImageNet class names: {', '.join(bad)}")
    base = base or Target(name, name, 1.0, custom=True)
    return Target(
        name, base.label, size_m if size_m is not None else base.size_m,
        tuple(classes) if classes else base.imagenet_classes,
        tuple(prompts) if prompts else base.prompts,
        tuple(background) if background else base.background_prompts,
        custom=base.custom or bool(classes or prompts or background),
    )


GENERIC_BACKGROUND = ("an aerial photo of empty ground", "an aerial photo of trees", "an aerial photo of a road",
                      "an aerial photo of buildings", "an aerial photo of a field", "an aerial photo of water")


def apply_target(cards: dict[str, ModelCard], target: Target) -> dict[str, ModelCard]:
    """The cards looking for ``target``: ImageNet members take its classes (none: the member
    gives embeddings and no score of its own), CLIP members its prompts (none: prompts made
    from the target's name; no background prompts: generic ones)."""
    out = {}
    words = target.name.replace("_", " ")
    for name, card in cards.items():
        update: dict[str, object] = {"target": target.name}
        if card.kind == "imagenet":
            update["target_classes"] = list(target.imagenet_classes)
        if card.kind == "clip":
            update["target_prompts"] = list(target.prompts) or [f"an aerial photo of {words}", f"a drone photo of {words}"]
            update["background_prompts"] = list(target.background_prompts) or list(GENERIC_BACKGROUND)
        out[name] = card.model_copy(update=update)
    return out
