"""``python -m landscape.hessian``: see :func:`landscape.hessian.main`."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
