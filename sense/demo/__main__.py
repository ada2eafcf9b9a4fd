"""``python -m sense.demo``: see :mod:`sense.demo.run`."""

import sys

from sense.demo.run import main

# The synthesizer's worker processes are spawned: keep the work under this guard.
if __name__ == "__main__":
    sys.exit(main())
