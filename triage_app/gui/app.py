"""``triage-app``: the desktop application's entry point. Must start without torch."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triage-app", description="Drone footage triage.")
    parser.add_argument("project", nargs="?", type=Path, help="project folder to open")
    parser.add_argument("--demo", action="store_true", help="build the demo project and open it")
    parser.add_argument("--project", dest="project_opt", type=Path, help="where the demo project goes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from PySide6.QtWidgets import QApplication

    from triage_app.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
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
