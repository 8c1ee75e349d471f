"""``triage``: the core from a terminal. One module per group of commands:
:mod:`~triage_app.cli.project` (ingest, score, policy, report, finds, export),
:mod:`~triage_app.cli.learning` (retrain, finetune, labels, agreement, drift) and
:mod:`~triage_app.cli.evaluation` (evaluate, bench, demo)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from triage_app import __version__
from triage_app.cli import evaluation, learning, project, team
from triage_app.cli.common import (  # noqa: F401 - the exit statuses are part of the command line's interface
    EXIT_BROKEN_PIPE,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_NOTHING_DONE,
    EXIT_STORE,
    EXIT_USAGE,
    exit_status,
)
from triage_app.core.model.errors import TriageError
from triage_app.core.model.text import terminal_safe

log = logging.getLogger("triage_app")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="triage", description="Drone footage triage from the terminal.")
    p.add_argument("--version", action="version", version=f"triage_app {__version__}")
    _log_options(p, False)
    sub = p.add_subparsers(dest="command", required=True)
    for group in (project, learning, team, evaluation):
        group.add_parsers(sub)
    for command in sub.choices.values():  # -v / -q also after the command's name
        _log_options(command, argparse.SUPPRESS)
    return p


def _log_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log details")
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="log only errors")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except TriageError as exc:
        print("error: " + "\n".join(terminal_safe(line) for line in str(exc).splitlines()), file=sys.stderr)
        return exit_status(exc)
    except BrokenPipeError:  # `triage ... | head` closed the pipe: nothing more to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("interrupted; everything already recorded is kept", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
