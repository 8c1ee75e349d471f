"""The project's target: the shipped table maps each target to ImageNet classes and CLIP
prompts, a project may bring its own, and the cards look for what the project names."""

from __future__ import annotations

from pathlib import Path

import pytest

from triage_app.core.model.cards import load_cards
from triage_app.core.model.errors import SettingsError
from triage_app.core.model.settings import load_settings
from triage_app.core.model.targets import apply_target, load_targets, resolve_target
from triage_app.core.store import Workspace

CARS = {817: "sports car", 511: "convertible", 468: "taxicab", 609: "jeep", 656: "minivan", 717: "pickup truck",
        436: "station wagon", 867: "semi-trailer truck"}
WATERCRAFT = {814, 472, 484, 576, 625, 724, 780, 833, 914}  # motorboat, canoe, catamaran, gondola, lifeboat, ...


def test_the_table_maps_vehicle_to_the_imagenet_classes_of_cars_and_trucks(tmp_path: Path) -> None:
    table = load_targets(user_file=tmp_path / "none.toml")
    assert {"person", "vehicle", "boat", "animal", "building_damage"} <= set(table.names())
    cards = apply_target(load_cards(load_settings(None).models_dir), resolve_target("vehicle", table=table))
    indices = set(cards["imagenet"].target_indices())
    assert set(CARS) <= indices
    assert not indices & WATERCRAFT
    assert cards["clip"].target_prompts and all("boat" not in p for p in cards["clip"].target_prompts)
    boat = set(apply_target(cards, resolve_target("boat", table=table))["imagenet"].target_indices())
    assert {814, 472} <= boat and not boat & set(CARS)
    # The classes are part of what the member's scores depend on: a new target rescoring them.
    assert cards["imagenet"].scoring_key() != apply_target(cards, resolve_target("boat", table=table))["imagenet"].scoring_key()


def test_a_project_names_its_target_and_another_project_keeps_its_own(tmp_path: Path) -> None:
    with Workspace(tmp_path / "a") as a, Workspace(tmp_path / "b") as b:
        assert not a.target_chosen
        a.set_target("person")
        assert a.target_chosen and a.target.name == "person" and a.target.size_m == 0.5
        assert "target" in (tmp_path / "a" / "settings.toml").read_text()
        assert b.target.name != "person"  # nothing install-wide changed
    with Workspace(tmp_path / "a") as again:
        assert again.target.name == "person"
        assert again.cards["imagenet"].target_classes == list(again.target.imagenet_classes)


def test_a_target_of_the_users_own_takes_their_prompts_and_classes(tmp_path: Path) -> None:
    with Workspace(tmp_path / "p") as ws:
        t = ws.set_target("life_raft", imagenet_classes=["lifeboat"], prompts=["an aerial photo of an orange life raft"],
                          size_m=2.5)
        assert t.custom and t.imagenet_classes == ("lifeboat",) and t.size_m == 2.5
        assert ws.cards["clip"].target_prompts == ["an aerial photo of an orange life raft"]
        with pytest.raises(SettingsError, match="unknown target 'kayak'"):
            ws.set_target("kayak")
        with pytest.raises(SettingsError, match="not ImageNet class names: flying saucer"):
            ws.set_target("ufo", imagenet_classes=["flying saucer"])
        assert ws.target.name == "life_raft"  # a refused target changes nothing


def test_the_users_targets_table_adds_and_replaces_entries(tmp_path: Path) -> None:
    user = tmp_path / "targets.toml"
    user.write_text('[swimmer]\nlabel = "Swimmers"\nsize_m = 0.6\nimagenet_classes = ["scuba diver"]\n'
                    'prompts = ["a drone photo of a swimmer"]\n')
    table = load_targets(user_file=user)
    assert table.targets["swimmer"].imagenet_classes == ("scuba diver",) and user in table.files
    user.write_text('[swimmer]\nimagenet_classes = ["mermaid"]\n')
    with pytest.raises(SettingsError, match="targets.toml.*not ImageNet's: mermaid"):
        load_targets(user_file=user)
