"""`python -m harness`: the command line.

SIGINT and SIGTERM are made KeyboardInterrupt before anything heavy is imported, so a signal
while the harness is still starting says `interrupted` and exits 130, as it does later.
"""

import signal
import sys


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":  # local engines start worker processes that re-import this module
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        from harness.cli.main import main

        code = main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
