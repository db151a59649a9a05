"""`python -m harness`: the command line."""

import sys

from harness.cli import main

if __name__ == "__main__":  # local engines start worker processes that re-import this module
    sys.exit(main())
