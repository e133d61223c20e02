"""``python -m landscape.surface compute ...``: see :mod:`landscape.surface._cli`."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
