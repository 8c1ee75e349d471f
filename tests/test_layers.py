"""The architecture's rules, checked by the tools that enforce them: the import-linter
contracts in ``pyproject.toml`` (layers, no Qt in the core, torch only where models are
built, SQL only in the store, views that know only the records, no import circles), ruff
and mypy; and two that a contract cannot say: importing all of the core loads no Qt, and
the window starts without torch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import triage_app

REPO = Path(__file__).resolve().parents[1]
CORE = Path(triage_app.__file__).parent / "core"
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6")


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return subprocess.run([exe, *args], cwd=REPO, capture_output=True, text=True, timeout=900)


def test_import_contracts_hold() -> None:
    out = _tool("lint-imports", "--no-cache")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "BROKEN" not in out.stdout and "Contracts: " in out.stdout


def test_ruff_is_clean() -> None:
    out = _tool("ruff", "check", "triage_app", "tests", "scripts")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_mypy_is_clean_on_the_core() -> None:
    out = _tool("mypy")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True, text=True, check=True, env={"QT_QPA_PLATFORM": "offscreen", "PATH": ""},
    )
    return set(out.stdout.split())


def test_importing_all_of_core_loads_no_qt() -> None:
    mods = [
        "triage_app.core." + ".".join(p.relative_to(CORE).with_suffix("").parts)
        for p in CORE.rglob("*.py")
        if p.name != "__init__.py"
    ]
    loaded = _modules_after("\n".join(f"import {m}" for m in mods))
    assert len(mods) > 40 and not {m for m in loaded if m.split(".")[0] in QT}


def test_gui_entry_starts_without_torch() -> None:
    loaded = _modules_after(
        "import triage_app.gui.app, triage_app.gui.main_window\n"
        "from PySide6.QtWidgets import QApplication\napp = QApplication([])\n"
        "w = triage_app.gui.main_window.MainWindow()"
    )
    assert "triage_app.gui.main_window" in loaded and "PySide6.QtWidgets" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("torch", "open_clip", "torchvision")}
