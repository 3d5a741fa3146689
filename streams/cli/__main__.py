"""``python -m streams.cli``: the ``tierflow`` command."""

import sys

from tierflow.streams.cli import main

sys.exit(main())
