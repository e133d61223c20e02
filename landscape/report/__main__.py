"""``python -m landscape.report``."""

from ._cli import main

raise SystemExit(main())
