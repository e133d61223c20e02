"""``python -m landscape.scattering``."""

from ._cli import main

raise SystemExit(main())
