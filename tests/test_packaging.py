"""The package as a wheel installs it: every subpackage listed, the model cards, the shipped
tables and the demo inside (a non-editable install has no checkout to read them from)."""

from __future__ import annotations

import os
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


def test_a_wheel_installed_elsewhere_runs_the_headless_demo(tmp_path: Path) -> None:
    """The wheel, installed (not editable) into a fresh environment whose other packages come
    from this one, runs the demo from another folder: cards, tables and footage come from the
    installed package, not from the checkout."""
    try:
        import setuptools  # noqa: F401
    except ImportError:
        pytest.skip("setuptools is not installed here: the wheel cannot be built offline")
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                          str(tmp_path / "dist"), str(REPO)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    wheel = next((tmp_path / "dist").glob("triage_app-*.whl"))
    out = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(bin_dir / "python"), "-c", "import triage_app; print(triage_app.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, timeout=120)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr
    demo = subprocess.run([str(bin_dir / "triage"), "demo", "--headless", "--project", str(elsewhere / "demo")], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "32 frames ingested from flight.mp4" in demo.stdout and "candidates for review" in demo.stdout
    assert (elsewhere / "demo" / "project.db").is_file()


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


def _script_without(packages: tuple[str, ...], score_args: list[str]) -> str:
    """A script that runs ``triage ingest`` and ``triage score SCORE_ARGS`` on a small video as
    on a machine where ``packages`` are not installed."""
    return f"""import sys
class _Missing:  # as on a machine installed without the extra that brings them
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {packages!r}:
            raise ModuleNotFoundError(f"No module named '{{name}}'")
        return None
sys.meta_path.insert(0, _Missing())
import cv2, numpy as np
from triage_app.cli import main
w = cv2.VideoWriter("v.mp4", cv2.VideoWriter_fourcc(*"mp4v"), 5, (320, 240))
for i in range(6):
    w.write(np.full((240, 320, 3), 40 + i * 20, np.uint8))
w.release()
sys.exit(main(["ingest", "p", "v.mp4"]) or main(["score", "p", *{score_args!r}]))
"""


_NO_TORCH = _script_without(("torch", "torchvision", "open_clip", "efficientnet_lite_pytorch"), ["--members", "imagenet"])


def test_scoring_needs_no_pytorch_once_the_member_is_exported(model_cache: Path, tmp_path: Path) -> None:
    """PyTorch is the models extra: it exports a member to ONNX once. Without it, a machine
    handed the exported file scores; one without the file is told what to install."""
    pytest.importorskip("torch")
    from triage_app.core.model.cards import load_cards
    from triage_app.core.scoring.members.onnx_build import export_member
    from triage_app.core.store import Workspace

    export_member(load_cards()["imagenet"], model_cache)
    for cache, works in ((model_cache, True), (tmp_path / "empty-cache", False)):
        run_dir = tmp_path / ("with" if works else "without")
        run_dir.mkdir()
        env = dict(os.environ, TRIAGE_CACHE_DIR=str(cache), PYTHONPATH=str(REPO))
        out = subprocess.run([sys.executable, "-c", _NO_TORCH], cwd=run_dir, env=env, capture_output=True, text=True,
                             timeout=300)
        said = out.stdout + out.stderr
        if works:
            assert out.returncode == 0, said
            with Workspace(run_dir / "p") as ws:
                assert len(ws.scores.score_table()[0]) == 6
        else:
            assert out.returncode != 0 and 'needs PyTorch, which is not installed here: pip install "triage_app[models]"' in said
            assert str(cache / "onnx") in said and "nothing can be scored" in said


def test_pytorch_is_an_extra_and_the_tests_bring_it() -> None:
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = {Requirement(d).name for d in project["dependencies"]}
    extras = {k: {Requirement(d).name for d in v} for k, v in project["optional-dependencies"].items()}
    assert not core & {"torch", "torchvision", "open-clip-torch", "open_clip_torch", "onnxscript"}
    assert {"torch", "torchvision"} <= extras["models"] and "triage_app" in extras["test"]
    readme = (REPO / "README.md").read_text()
    assert 'pip install torch==2.14.1 torchvision==0.29.1 -e ".[models]"' in readme


_NO_RAY = _script_without(("ray",), ["--members", "imagenet", "--cluster", "auto"])


def test_the_cluster_is_an_extra_and_says_how_to_install_it(tmp_path: Path) -> None:
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = {k: {Requirement(d).name for d in v} for k, v in project["optional-dependencies"].items()}
    assert "ray" not in {Requirement(d).name for d in project["dependencies"]} and "ray" in extras["cluster"]
    out = subprocess.run([sys.executable, "-c", _NO_RAY], cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO)),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stdout + out.stderr  # as asked, it cannot be done here
    assert 'scoring on a cluster needs Ray, which is not installed here: pip install "triage_app[cluster]"' in out.stderr
