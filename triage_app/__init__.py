"""triage_app: drone footage triage with a high-recall model ensemble and human review."""

from pathlib import Path

__version__ = "0.1.0"

PACKAGE_ROOT = Path(__file__).resolve().parent
#: The checkout's root (in an installed wheel: the folder the package sits in).
REPO_ROOT = PACKAGE_ROOT.parent


def data_dir(kind: str) -> Path:
    """The shipped ``models`` or ``resources`` folder: inside the package in an installed wheel
    (package data ``triage_app/models``, ``triage_app/resources``), else the checkout's
    top-level folder (an editable install)."""
    inside = PACKAGE_ROOT / kind
    return inside if inside.is_dir() else REPO_ROOT / kind
