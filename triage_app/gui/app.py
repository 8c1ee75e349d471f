"""``triage-app``: the desktop application's entry point. Must start without torch."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import sys
from pathlib import Path

from triage_app import __version__


def _log_to_file() -> Path | None:
    """Also log to a file under the platform's log folder, so a window started from a desktop
    launcher (no terminal) leaves a trace of what went wrong; rotated at 5 MB, three kept."""
    import platformdirs

    folder = Path(platformdirs.user_log_dir("triage_app"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(folder / "triage-app.log", maxBytes=5_000_000, backupCount=3,
                                                       encoding="utf-8")
    except OSError as exc:
        logging.getLogger(__name__).warning("no log file in %s: %s", folder, exc.strerror or exc)
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return folder / "triage-app.log"


def missing_xcb_libraries(environ: dict[str, str] | None = None) -> list[str]:
    """The system libraries Qt's X11 platform plugin needs and cannot find, where that plugin
    will be used (Linux with an X display, no other platform asked for). Qt aborts the process
    with a bare "could not load the Qt platform plugin xcb" when one is missing; asked first,
    the window can say which. Empty when nothing is missing or the check does not apply."""
    import os
    import re
    import subprocess

    env = dict(os.environ if environ is None else environ)
    if not sys.platform.startswith("linux") or not env.get("DISPLAY") or env.get("QT_QPA_PLATFORM", "xcb") != "xcb" \
            or env.get("WAYLAND_DISPLAY"):
        return []
    try:
        import PySide6

        plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if not plugin.is_file():
            return []
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=20).stdout
    except (ImportError, OSError, subprocess.SubprocessError):
        return []
    return sorted(set(re.findall(r"^\s*(\S+) => not found", out, flags=re.MULTILINE)))


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships a library: ``libxcb-icccm.so.4`` -> ``libxcb-icccm4``,
    ``libxkbcommon-x11.so.0`` -> ``libxkbcommon-x11-0``."""
    name, _, version = soname.partition(".so.")
    version = version.split(".")[0]
    return f"{name}{'-' if name[-1:].isdigit() else ''}{version}" if version else name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triage-app", description="Drone footage triage.")
    parser.add_argument("project", nargs="?", help="project folder to open (or a team store's postgresql:// URL)")
    parser.add_argument("--store", metavar="URL", help="open a team's project: postgresql://[user@]host/database (the "
                        "password from ~/.pgpass or PGPASSWORD)")
    parser.add_argument("--demo", action="store_true", help="build the demo project and open it")
    parser.add_argument("--project", dest="project_opt", type=Path, help="where the demo project goes")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    log_file = _log_to_file()

    missing = missing_xcb_libraries()
    if missing:
        print("error: the window cannot open on this X display: Qt's xcb platform plugin needs "
              f"{', '.join(missing)}, which this system lacks. On Debian or Ubuntu: sudo apt-get install "
              + " ".join(debian_package(m) for m in missing)
              + " (or run the window under Wayland, or `triage demo --headless` without one)", file=sys.stderr)
        return 1
    from PySide6.QtWidgets import QApplication

    from triage_app.core.store.db import is_store_url
    from triage_app.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    if log_file is not None:
        logging.getLogger(__name__).info("this session's log: %s", log_file)
    window = MainWindow()
    target = args.project_opt or args.project
    if args.store:
        if args.demo:
            parser.error("--store opens a team's project; the demo is built in a folder")
        target = args.store
    window.restore_layout()
    window.show()
    if args.demo:
        from triage_app.core.evaluation.demo import default_demo_dir

        window.controller.build_demo(Path(str(target)) if target else default_demo_dir())
        window.controller.demo_did_open.connect(lambda _root: window.show_review())
    elif target is not None:
        # A folder named on the command line is opened as Open project does: one with no project
        # (a mistyped path) becomes one only once the user says so.
        if window.controller.open_project(target) if is_store_url(target) else window.open_or_create(Path(target)):
            window.show_review()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
