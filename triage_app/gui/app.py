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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triage-app", description="Drone footage triage.")
    parser.add_argument("project", nargs="?", type=Path, help="project folder to open")
    parser.add_argument("--demo", action="store_true", help="build the demo project and open it")
    parser.add_argument("--project", dest="project_opt", type=Path, help="where the demo project goes")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    log_file = _log_to_file()

    from PySide6.QtWidgets import QApplication

    from triage_app.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    if log_file is not None:
        logging.getLogger(__name__).info("this session's log: %s", log_file)
    window = MainWindow()
    target = args.project_opt or args.project
    window.show()
    if args.demo:
        from triage_app.core.evaluation.demo import default_demo_dir

        window.controller.build_demo(Path(target or default_demo_dir()))
        window.controller.demo_did_open.connect(lambda _root: window.show_review())
    elif target is not None:
        window.controller.open_project(Path(target))
        window.show_review()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
