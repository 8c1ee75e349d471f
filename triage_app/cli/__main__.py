"""``python -m triage_app.cli``: the ``triage`` command."""

import sys

from triage_app.cli import main

sys.exit(main())
