"""``python -m sense.cli``: the ``sense`` command."""

import sys

from sense.cli import main

sys.exit(main())
