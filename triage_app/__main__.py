"""``python -m triage_app``: the command line, as ``triage``."""

import sys

from triage_app.cli import main

sys.exit(main())
