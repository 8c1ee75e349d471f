"""The package as a wheel installs it: every subpackage listed, the model cards, the shipped
tables and the demo inside (a non-editable install has no checkout to read them from)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


def test_every_package_of_the_tree_is_listed_for_the_wheel() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    tree = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "triage_app").rglob("__init__.py")}
    assert tree <= listed, f"add to [tool.setuptools] packages: {sorted(tree - listed)}"
    assert {"triage_app.models", "triage_app.resources"} <= listed


def test_the_wheel_carries_the_cards_the_tables_and_the_demo(tmp_path: Path) -> None:
    try:
        import setuptools  # noqa: F401
    except ImportError:
        pytest.skip("setuptools is not installed here: the wheel cannot be built offline")
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                          str(tmp_path), str(REPO)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    wheel = next(tmp_path.glob("triage_app-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [f"triage_app/{p.relative_to(REPO).as_posix()}" for d in ("models", "resources")
               for p in (REPO / d).rglob("*") if p.is_file()]
    assert shipped and set(shipped) <= names, sorted(set(shipped) - names)
    assert "triage_app/py.typed" in names and "triage_app/__main__.py" in names


def test_every_platform_gets_exactly_one_onnx_runtime() -> None:
    """The GPU build where it has wheels (Linux, Windows on x86-64), the plain one elsewhere."""
    from packaging.requirements import Requirement

    deps = [Requirement(d) for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
    runtimes = [d for d in deps if d.name.startswith("onnxruntime")]
    for platform, machine, want in (("linux", "x86_64", "onnxruntime-gpu"), ("win32", "AMD64", "onnxruntime-gpu"),
                                    ("darwin", "arm64", "onnxruntime"), ("darwin", "x86_64", "onnxruntime"),
                                    ("linux", "aarch64", "onnxruntime")):
        env = {"sys_platform": platform, "platform_machine": machine}
        chosen = [d.name for d in runtimes if d.marker is None or d.marker.evaluate(env)]
        assert chosen == [want], (platform, machine, chosen)
