"""``python -m sparsolve``: the command line of :mod:`sparsolve.cli` (no arguments: the default fit)."""
import sys

from .cli import main

sys.exit(main())
