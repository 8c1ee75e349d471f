"""The architecture's two rules: the core never imports Qt, and the GUI starts without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import triage_app

CORE = Path(triage_app.__file__).parent / "core"
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6")


def test_no_core_module_imports_qt() -> None:
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in QT]
    assert not offenders


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
        if p.name != "__init__.py" and "export" not in p.name
    ]
    loaded = _modules_after("\n".join(f"import {m}" for m in mods))
    assert not {m for m in loaded if m.split(".")[0] in QT}


def test_gui_entry_starts_without_torch() -> None:
    loaded = _modules_after(
        "import triage_app.gui.app, triage_app.gui.main_window\n"
        "from PySide6.QtWidgets import QApplication\napp = QApplication([])\n"
        "w = triage_app.gui.main_window.MainWindow()"
    )
    assert "triage_app.gui.main_window" in loaded and "PySide6.QtWidgets" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("torch", "open_clip", "torchvision")}
