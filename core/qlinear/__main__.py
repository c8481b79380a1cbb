"""``python -m qlinear ...`` works like the ``qlinear`` command."""

from .cli import main

raise SystemExit(main())
