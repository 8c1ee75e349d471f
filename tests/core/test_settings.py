from __future__ import annotations

from pathlib import Path

import pytest

from triage_app.core.errors import SettingsError
from triage_app.core.settings import load_settings


def test_layers_apply_in_order(tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text("[quality]\nblur_min_sharpness = 5.0\nunder_exposed_mean = 10.0\n")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "settings.toml").write_text("[quality]\nblur_min_sharpness = 7.0\n")
    env = {"TRIAGE_QUALITY__UNDER_EXPOSED_MEAN": "12", "TRIAGE_SCORING__MEMBERS": '["imagenet"]'}
    s = load_settings(project, overrides={"scoring": {"batch": 8}}, environ=env, user_file=user)
    assert s.quality.blur_min_sharpness == 7.0  # project beats user
    assert s.quality.under_exposed_mean == 12.0  # environment beats files
    assert s.scoring.members == ["imagenet"] and s.scoring.batch == 8
    assert load_settings(None, overrides={"quality": {"under_exposed_mean": 3}}, environ=env, user_file=user).quality.under_exposed_mean == 3


def test_unknown_keys_and_bad_values_are_errors(tmp_path: Path) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text("[quality]\nblur_treshold = 5\n")
    with pytest.raises(SettingsError, match="blur_treshold"):
        load_settings(None, environ={}, user_file=bad)
    with pytest.raises(SettingsError, match="batch"):
        load_settings(None, overrides={"scoring": {"batch": 0}}, environ={}, user_file=tmp_path / "none.toml")
    bad.write_text("not = [valid")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(None, environ={}, user_file=bad)
