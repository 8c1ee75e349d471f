"""triage_app: drone footage triage with a high-recall model ensemble and human review."""

from pathlib import Path

__version__ = "0.1.0"

#: The checkout (or installed tree) root holding ``models/`` and ``resources/``.
PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent
