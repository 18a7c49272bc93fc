"""`python -m app`: the `pocketkb` command line.

The same entry point as the installed `pocketkb` script.
"""
import sys

from app.cli import main

sys.exit(main())
