"""``python -m qlinear.cli``: the ``qlinear`` command."""

import sys

from . import main

sys.exit(main())
