"""``python -m vudo_runtime``: the ``vudo`` command, where the script is not on PATH."""

import sys

from vudo_runtime.cli import main

sys.exit(main())
