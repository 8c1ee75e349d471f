from __future__ import annotations

from pathlib import Path

import pytest

from triage_app.core.model.errors import SettingsError
from triage_app.core.model.settings import load_settings


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


def test_a_setting_saved_from_the_window_keeps_the_users_file_and_is_checked(tmp_path: Path) -> None:
    from triage_app.core.model.errors import SettingsError
    from triage_app.core.model.settings import save_user_setting

    f = tmp_path / "settings.toml"
    f.write_text("# my own notes\n[review]\n# who I am\nreviewer = \"x\"\naudit_share = 0.1\n")
    assert save_user_setting("review", "reviewer", "ana", f) == f
    text = f.read_text()
    assert "# my own notes" in text and "# who I am" in text and 'reviewer = "ana"' in text
    assert load_settings(None, user_file=f, environ={}).review.reviewer == "ana"
    assert load_settings(None, user_file=f, environ={}).review.audit_share == 0.1
    with pytest.raises(SettingsError, match="settings.toml: review.audit_share = 5.0 is not a valid setting"):
        save_user_setting("review", "audit_share", 5.0, f)
    assert "audit_share = 0.1" in f.read_text()  # a refused value leaves the file as it was
    new = tmp_path / "fresh" / "settings.toml"  # no file yet: made, with its folder
    save_user_setting("geo", "hfov_deg", 63.4, new)
    assert load_settings(None, user_file=new, environ={}).geo.hfov_deg == 63.4
    bad = tmp_path / "bad.toml"
    bad.write_text("[review\n")
    with pytest.raises(SettingsError, match="bad.toml: cannot be read as TOML"):
        save_user_setting("review", "reviewer", "ana", bad)


def test_only_declared_settings_are_read_from_the_environment(tmp_path: Path) -> None:
    """The app's own switches (TRIAGE_ALLOW_DOWNLOADS, TRIAGE_TENSORRT) are not settings and
    break nothing; a variable shaped as a setting that names none is an error naming it."""
    from triage_app.core.model.errors import SettingsError

    none = tmp_path / "none.toml"
    env = {"TRIAGE_ALLOW_DOWNLOADS": "1", "TRIAGE_TENSORRT": "0", "TRIAGE_SCORING__BATCH": "4"}
    assert load_settings(None, environ=env, user_file=none).scoring.batch == 4
    with pytest.raises(SettingsError, match="TRIAGE_SCORING__BATCHX"):
        load_settings(None, environ={"TRIAGE_SCORING__BATCHX": "4"}, user_file=none)


def test_the_commands_start_with_the_documented_download_switch_set(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    env = dict(__import__("os").environ, TRIAGE_ALLOW_DOWNLOADS="1", TRIAGE_TENSORRT="0")
    for cmd in (["-m", "triage_app", "--version"], ["-m", "triage_app.gui.app", "--version"]):
        out = subprocess.run([sys.executable, *cmd], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert out.returncode == 0 and "0." in out.stdout, out.stderr
    # -v and -q after the command's name as well as before it; a folder that is no project is named.
    out = subprocess.run([sys.executable, "-m", "triage_app", "report", str(tmp_path / "nope"), "-v"], cwd=REPO,
                         env=env, capture_output=True, text=True)
    assert "nope" in out.stderr and "Traceback" not in out.stderr and "unrecognized" not in out.stderr
