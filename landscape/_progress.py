"""The one progress mechanism of the package: a bar on a terminal, lines in a log.

Every long loop of the library builds its progress display with :func:`bar` (library
functions take ``progressbar: bool = False``: progress is opt-in, and the command-line
tools turn it on). Where it shows depends on where the output goes:

- a terminal (stderr is a tty): a ``tqdm`` bar, as before;
- a Jupyter kernel: ``tqdm.auto``'s widget;
- anything else (a log file, a pipe, a batch job): plain lines on stderr, because a
  bar that redraws itself with carriage returns is unreadable there and tqdm
  disables itself on a non-terminal. A loop prints a start line with the size of
  its work, a progress line at most every :func:`interval` seconds (what, how far,
  elapsed time, ETA) and a line when it is done::

      adversarial_train: start, 4 epochs (63 batches per epoch)
      epoch 1: 40/63 batches (63%), 0:30 elapsed, ETA 0:17, 1.3 batches/s
      adversarial_train: 1/4 epochs (25%), 0:48 elapsed, ETA 2:24, loss=2.05
      adversarial_train: done, 4/4 epochs in 3:11

  A loop inside another loop's bar (an epoch's batches, a Lanczos run inside a
  Hessian analysis) prints only its progress lines, unless it is meant to stay
  (``leave=True``).

The interval is 30 seconds; ``LANDSCAPE_PROGRESS_INTERVAL=SECONDS`` changes it (0:
a line at every step, as the tests use).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["bar", "write", "interval", "interactive", "length", "Lines"]

INTERVAL_ENV = "LANDSCAPE_PROGRESS_INTERVAL"
_DEFAULT_INTERVAL = 30.0
_active: list[Lines] = []  # the open plain-line bars, outermost first


def interval() -> float:
    """Seconds between two progress lines of one loop in a log
    (``$LANDSCAPE_PROGRESS_INTERVAL``, default 30).

    Raises:
        ValueError: the variable is not a number >= 0.
    """
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return _DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(
            f"{INTERVAL_ENV}={raw!r} is not a number of seconds >= 0 - set it to "
            "e.g. 30, or unset it"
        )
    return value


def _jupyter() -> bool:
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def interactive() -> bool:
    """Whether progress shows as a redrawn bar (a terminal or Jupyter) rather than as
    lines in a log."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty is not None and isatty()) or _jupyter()


def length(obj: Any) -> int | None:
    """``len(obj)``, or None where it has no length (a generator, a loader of
    unknown size)."""
    try:
        return len(obj)
    except TypeError:
        return None


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _count(n: float) -> str:
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"


class Lines:
    """A progress display for a log: the subset of tqdm's interface the package uses
    (iteration, ``update``, ``set_postfix``, ``close``, a context manager), writing
    plain lines to ``file`` (default stderr).

    Args:
        iterable: what to iterate over (or None, then call :meth:`update`).
        desc: what the work is (the function's name).
        total: how many steps (default ``len(iterable)`` where it has one).
        unit: the name of a step, plural (``"batches"``).
        initial: steps already done (a resumed run).
        leave: print the start and done lines even inside another loop's display.
        about: more on the size of the work, for the start line.
        file: where the lines go (default ``sys.stderr`` at each line).
        every: seconds between progress lines (default :func:`interval`).
    """

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        desc: str,
        total: float | None = None,
        unit: str = "steps",
        initial: float = 0,
        leave: bool = True,
        about: str = "",
        file: Any = None,
        every: float | None = None,
    ) -> None:
        if total is None and iterable is not None:
            total = length(iterable)
        self.iterable, self.desc, self.total, self.unit = iterable, desc, total, unit
        self.n = self.n0 = initial
        self.file, self.postfix = file, ""
        self.every = interval() if every is None else float(every)
        self.t0 = self.last = time.monotonic()
        self.closed = False
        self.ends = leave or not _active  # start and done lines
        _active.append(self)
        if self.ends:
            parts = [f"{desc}: start"]
            if total is not None:
                parts.append(
                    f"{_count(total)} {unit}" + (f" ({about})" if about else "")
                )
            elif about:
                parts.append(about)
            if initial:
                parts.append(f"{_count(initial)} done before")
            self._print(", ".join(parts))

    # -- tqdm's interface ------------------------------------------------------------
    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("this progress display has nothing to iterate over")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        """``n`` more steps done; a progress line when the interval has passed."""
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every and not self.closed:
            self.last = now
            self._print(self._status(now))

    def set_postfix(self, ordered_dict: dict | None = None, **kwargs: Any) -> None:
        """Numbers shown after the progress (``loss=0.51``)."""
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "") -> None:
        """Text shown after the progress."""
        self.postfix = s

    def set_description(self, desc: str | None = None) -> None:
        """Rename the work."""
        self.desc = desc or ""

    def refresh(self) -> None:
        """Print the progress line now."""
        self._print(self._status(time.monotonic()))

    def close(self) -> None:
        """The done line (where it has one); the display prints nothing after it."""
        if self.closed:
            return
        self.closed = True
        if self in _active:
            _active.remove(self)
        if self.ends:
            took = _clock(time.monotonic() - self.t0)
            of = "" if self.total is None else f"/{_count(self.total)}"
            more = f" ({self.postfix})" if self.postfix else ""
            self._print(
                f"{self.desc}: done, {_count(self.n)}{of} {self.unit} in {took}{more}"
            )

    # -- the lines -------------------------------------------------------------------
    def _status(self, now: float) -> str:
        elapsed = now - self.t0
        parts = [f"{self.desc}: {_count(self.n)}"]
        if self.total:
            parts[0] += (
                f"/{_count(self.total)} {self.unit} ({100 * self.n / self.total:.0f}%)"
            )
        else:
            parts[0] += f" {self.unit}"
        parts.append(f"{_clock(elapsed)} elapsed")
        done = self.n - self.n0
        if done > 0 and elapsed > 0:
            rate = done / elapsed
            if self.total:
                parts.append(f"ETA {_clock(max(self.total - self.n, 0) / rate)}")
            speed = (
                f"{rate:.3g} {self.unit}/s" if rate >= 1 else f"{1 / rate:.3g} s each"
            )
            parts.append(speed)
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _print(self, line: str) -> None:
        f = self.file or sys.stderr
        f.write(line + "\n")
        f.flush()


def bar(
    iterable: Iterable | None = None,
    *,
    desc: str,
    total: float | None = None,
    unit: str = "steps",
    enabled: bool = True,
    leave: bool = True,
    initial: float = 0,
    about: str = "",
    **tqdm_kwargs: Any,
) -> Any:
    """The progress display of one loop: a tqdm bar on a terminal or in Jupyter,
    :class:`Lines` in a log, a silent tqdm when ``enabled`` is False.

    Args:
        iterable: what to iterate over (or None: call ``update``).
        desc: what the work is, e.g. the function's name (``"top_eigenvalues"``).
        total: the number of steps (default ``len(iterable)`` where it has one).
        unit: the name of a step, plural (``"batches"``).
        enabled: show anything at all (a function's ``progressbar``).
        leave: keep the finished bar on a terminal; in a log, print the start and
            done lines even when another loop's display is open.
        initial: steps already done (a resumed run).
        about: more on the size of the work, for a log's start line.
        **tqdm_kwargs: further options of a terminal bar (``unit_scale``).

    Returns:
        An object with tqdm's interface: iterate over it, or ``update(n)`` and
        ``close()`` it.
    """
    if enabled and not interactive():
        return Lines(
            iterable,
            desc=desc,
            total=total,
            unit=unit,
            initial=initial,
            leave=leave,
            about=about,
        )
    from tqdm.auto import tqdm

    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        disable=not enabled,
        leave=leave,
        initial=initial,
        **tqdm_kwargs,
    )


def write(msg: str, file: Any = None) -> None:
    """One line of text (default on stdout) that does not break an open terminal bar."""
    from tqdm.auto import tqdm

    tqdm.write(msg, file=file or sys.stdout)
