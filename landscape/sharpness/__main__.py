"""``python -m landscape.sharpness``: see :mod:`landscape.sharpness._cli`."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
