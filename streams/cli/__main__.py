"""``python -m streams.cli``: the ``tierflow`` command."""

import sys

from streams.cli import main

sys.exit(main())
