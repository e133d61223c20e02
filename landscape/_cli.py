"""The one layer under every command-line tool: flags, checkpoint loading, errors.

Every ``python -m landscape.<tool>`` builds its parser with :func:`parser`, adds the
shared flags with :func:`add_common` (:func:`add_checkpoint`, :func:`add_data` where
it reads a checkpoint or a dataset) and gets its ``main(argv)`` from :func:`entry`
(which runs the body through :func:`run`):

- an error is ONE line on stderr, ``error: <what> - <how to fix>``, exit status 2; the
  traceback only with ``--debug`` (or ``LANDSCAPE_DEBUG=1``);
- ``--device``, ``--num-samples``, ``--threads``, ``--no-progress``, ``-o/--out``,
  ``--debug``, ``--trust-checkpoint`` mean the same everywhere: progress is on by
  default (a bar on a terminal, plain lines with an ETA in a log,
  :mod:`landscape._progress`); ``--threads`` sets torch's CPU threads (default
  :func:`default_threads`: no more than the cores the load average leaves free);
  ``-o/--out`` is the folder of one tool run, where the tool writes all its files
  (default ``runs/<tool>/<name of the checkpoint>``, :func:`out_folder`);
- under ``torchrun`` (``WORLD_SIZE > 1`` in the environment) every tool sets up the
  process group itself (:func:`process_group`: NCCL on CUDA with one GPU per process,
  ``cuda:LOCAL_RANK``; gloo on CPU), the analysis shares its work out over the
  processes (:mod:`landscape._dist`: every process computes its share and returns the
  whole answer) and only rank 0 prints and writes the outputs (:func:`is_main`); the
  others show no progress;
- the flags of :func:`add_checkpoint` become the keyword arguments of the one loader,
  :func:`landscape.checkpoints.load_model` (:func:`checkpoint_options`), and those of
  :func:`add_data` the keyword arguments of :func:`landscape.data.load_dataset`
  (:func:`data_options`; by default the dataset the run records).

This module is the lowest layer of the tools: it imports nothing of ``landscape`` but
:mod:`landscape.io`, so every package's command line can use it (the layers:
``tests/test_imports.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from . import _dist, io

__all__ = [
    "CLIError",
    "Parser",
    "parser",
    "run",
    "entry",
    "add_common",
    "add_model_flags",
    "add_checkpoint",
    "checkpoint_options",
    "add_data",
    "data_options",
    "add_choice",
    "positive_int",
    "nonnegative_int",
    "number",
    "json_dict",
    "pick",
    "progress",
    "process_group",
    "is_main",
    "plain",
    "default_threads",
    "set_threads",
    "out_folder",
    "run_name",
    "device",
    "dataset_name",
    "check_run_folder",
    "has_option",
    "TRUST_FLAG",
]


TRUST_FLAG = "--trust-checkpoint"  # the flag that loads a pickled checkpoint


class CLIError(Exception):
    """A user error of a command-line tool: what went wrong and how to fix it."""

    def __init__(self, what: str, fix: str):
        super().__init__(f"{what} - {fix}")
        self.what, self.fix = what, fix


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line (a :class:`CLIError`) and that
    takes every flag only as it is spelled (no abbreviations: ``--num`` is not
    ``--num-samples``)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("allow_abbrev", False)
        super().__init__(*args, **kw)

    def error(self, message: str):
        """Raise instead of printing the usage block and exiting."""
        raise CLIError(f"{self.prog}: {message}", f"see {self.prog} --help")

    def _get_value(self, action: argparse.Action, arg_string: str) -> Any:
        """Every number a flag takes is finite: ``nan``, ``inf`` and ``1e400`` are
        refused where they enter (whatever the flag's ``type``)."""
        value = super()._get_value(action, arg_string)
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentError(action, f"not a finite number: {arg_string!r}")
        return value

    def format_help(self) -> str:
        """The help text as plain text: docstring markup (``:mod:`x```, double
        backquotes) shows as its name (:func:`plain`)."""
        return plain(super().format_help())


_ROLE = re.compile(r":(?:[a-z]+:)+`[~.]?([^`<]+?)(?:\s*<[^>]+>)?`")


def plain(text: str) -> str:
    """Docstring markup as plain text for a terminal: Sphinx roles become their target's
    name, double backquotes go.

    Example:
        >>> plain("See :mod:`landscape.demo` and :func:`~landscape.hessian.hvp`, ``-o``.")
        'See landscape.demo and landscape.hessian.hvp, -o.'
    """
    return re.sub(r"``(.+?)``", r"\1", _ROLE.sub(r"\1", text))


def parser(prog: str, doc: str, *, examples: bool = False, **kw: Any) -> Parser:
    """A tool's :class:`Parser`; its description is the first paragraph of ``doc``
    (the tool module's docstring, the one home of what the tool does) and, with
    ``examples``, its help ends with the indented block after the docstring's
    ``Examples::`` line.

    Example:
        >>> parser("tool", "``tool``: does X with ``Y``.\\n\\nExample: ...").description
        'Does X with Y.'
        >>> doc = "``tool``: does X.\\n\\nExamples::\\n\\n    tool a\\n    tool b\\n"
        >>> print(parser("tool", doc, examples=True).epilog)
        examples:
          tool a
          tool b
    """
    about = " ".join(doc.strip().split("\n\n")[0].split())
    about = re.sub(r"^``[^`]+``: ", "", about)  # the tool's name leads the docstring
    about = plain(about)
    if examples:
        block = re.search(r"^Examples::\n\n((?:    .*\n|\n)+)", doc, re.M)
        if block is None:
            raise ValueError(f"{prog}: its docstring has no Examples:: block")
        lines = textwrap.dedent(block.group(1)).strip("\n")
        kw["epilog"] = "examples:\n" + textwrap.indent(lines, "  ")
        kw["formatter_class"] = argparse.RawDescriptionHelpFormatter
    return Parser(prog=prog, description=about[:1].upper() + about[1:], **kw)


def _debug(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("LANDSCAPE_DEBUG", "") not in ("", "0")


def _one_line(err: BaseException, prog: str, trust_flag: str | None = None) -> str:
    if isinstance(err, CLIError):
        text = f"{err.what} - {err.fix}"
    elif isinstance(err, io.UntrustedFileError):
        text = err.describe(trust_flag)  # offer the flag only where the tool has it
    else:
        msg = io.plain(str(err)) or type(err).__name__
        known = (ValueError, TypeError, OSError, RuntimeError, io.CorruptFileError)
        if not isinstance(err, known) or isinstance(err, NotImplementedError):
            msg = f"{type(err).__name__}: {msg}"
        if " - " not in msg:
            fix = (
                "check the path"
                if isinstance(err, FileNotFoundError)
                else f"rerun with --debug for the traceback (see {prog} --help)"
            )
            msg = f"{msg} - {fix}"
        text = msg
    return "error: " + io.plain(text)


def has_option(p: argparse.ArgumentParser, flag: str) -> bool:
    """Whether ``p`` or one of its subcommands takes ``flag``."""
    if flag in p._option_string_actions:
        return True
    return any(
        has_option(sub, flag)
        for a in p._actions
        if isinstance(a, argparse._SubParsersAction)
        for sub in a.choices.values()
    )


def run(
    body: Callable[[list[str]], int],
    argv: Sequence[str] | None,
    prog: str,
    *,
    trust_flag: str | None = None,
) -> int:
    """Run a tool's body; turn every error into one line on stderr and exit status 2.

    Args:
        body: the tool, ``body(argv) -> exit status``.
        argv: the arguments (default ``sys.argv[1:]``).
        prog: the tool's name for messages (``python -m landscape.train``).
        trust_flag: the tool's flag that loads a pickled checkpoint
            (``--trust-checkpoint``), offered by the refusal of an untrusted file;
            None: the tool has none, so the refusal offers none.

    Returns:
        The body's exit status, 2 after an error, ``128 + signal`` after SIGTERM
        (143) or Ctrl-C (130), with a line that says where the tool stopped.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug(argv)
    try:
        with io.stop_signals():  # SIGTERM / SIGINT: finish the write, say where
            return body(argv)
    except io.Interrupted as err:
        if debug:
            raise
        print(f"error: {err.describe('rerun the same command')}", file=sys.stderr)
        return err.exit_status
    except KeyboardInterrupt:
        if debug:
            raise
        print(
            "error: interrupted - rerun the same command to resume where possible",
            file=sys.stderr,
        )
        return 130
    except Exception as err:
        if debug:
            raise
        print(_one_line(err, prog, trust_flag), file=sys.stderr)
        return 2


def entry(
    make_parser: Callable[[], argparse.ArgumentParser],
    body: Callable[[argparse.Namespace], int],
) -> Callable[[Sequence[str] | None], int]:
    """A tool's ``main(argv=None) -> exit status``: parse ``argv`` with
    ``make_parser()``, set torch's threads (:func:`set_threads`) and run
    ``body(args)``, all under :func:`run`'s error rules."""

    def main(argv: Sequence[str] | None = None) -> int:
        p = make_parser()
        flag = TRUST_FLAG if has_option(p, TRUST_FLAG) else None

        def parse_and_run(a: list[str]) -> int:
            args = p.parse_args(a)
            set_threads(args)
            with process_group(args):
                return body(args)

        return run(parse_and_run, argv, p.prog, trust_flag=flag)

    main.__doc__ = (
        "Command-line entry point; returns the exit status (2 after an error)."
    )
    return main


def _int_at_least(low: int, words: str) -> Callable[[str], int]:
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be {words}, got {v}")
        return v

    return parse


positive_int = _int_at_least(1, "at least 1")
positive_int.__name__ = positive_int.__qualname__ = "positive_int"
positive_int.__doc__ = "An argparse type: an integer >= 1."
nonnegative_int = _int_at_least(0, "0 or more")
nonnegative_int.__name__ = nonnegative_int.__qualname__ = "nonnegative_int"
nonnegative_int.__doc__ = "An argparse type: an integer >= 0."


def number(s: str) -> float:
    """An argparse type: a finite float, also written as a fraction (``8/255``).

    Example:
        >>> number("8/255") == 8 / 255
        True
        >>> number("1e400")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: not a finite number: '1e400' (e.g. 0.3 or 8/255)
    """
    try:
        v = float(Fraction(s))
    except (ValueError, ZeroDivisionError, OverflowError):
        v = math.nan
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(
            f"not a finite number: {s!r} (e.g. 0.3 or 8/255)"
        ) from None
    return v


def pick(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The flags ``names`` as keyword arguments of the same names (``eps=args.eps``)."""
    return {n: getattr(args, n) for n in names}


def json_dict(s: str) -> dict:
    """An argparse type: a JSON object (``'{"width": 2}'``)."""
    try:
        d = json.loads(s)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {s!r} ({err})") from None
    if not isinstance(d, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {s!r}")
    return d


def add_common(
    p: argparse.ArgumentParser,
    *,
    num_samples: int | None | bool = False,
    out: str | None = None,
    out_default: str = "runs/{tool}/<name of the checkpoint>",
    progress: bool = True,
    device: bool = True,
    threads: bool = True,
    trust: bool = False,
) -> None:
    """Add the shared flags (each only where the tool has a use for it).

    Args:
        p: the parser.
        num_samples: add ``--num-samples`` with this default; ``False`` leaves it out.
        out: the tool's name: add ``-o/--out DIR``, the folder of the tool run
            (:func:`out_folder`); None leaves it out.
        out_default: the default folder, as ``--help`` states it.
        progress: add ``--no-progress``.
        device: add ``--device``.
        threads: add ``--threads``.
        trust: add ``--trust-checkpoint``.
    """
    if num_samples is not False:
        p.add_argument(
            "--num-samples",
            type=positive_int,
            default=num_samples,
            help=f"number of examples (default {num_samples})",
        )
    if out is not None:
        where = out_default.format(tool=out)
        p.add_argument(
            "-o",
            "--out",
            type=Path,
            default=None,
            metavar="DIR",
            help=f"folder for this run's files (default {where}, relative to the "
            "current folder)",
        )
    if threads:
        add_threads(p)
    if device:
        p.add_argument(
            "--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if any)"
        )
    if progress:
        p.add_argument(
            "--no-progress",
            dest="progress",
            action="store_false",
            default=None,
            help="no progress (default: a bar on a terminal, a line every 30 s with "
            "an ETA when stderr goes to a file or pipe)",
        )
    if trust:
        p.add_argument(
            "--trust-checkpoint",
            action="store_true",
            help="load checkpoints that hold pickled objects (a whole nn.Module); "
            "unpickling can run code, so only for files you trust",
        )
    p.add_argument(
        "--debug", action="store_true", help="show the traceback of an error"
    )


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """``--arch NAME`` and ``--arch-kwargs JSON``."""
    p.add_argument(
        "--arch",
        default=None,
        help="landscape.models.build name for a checkpoint that records none "
        "(overrides the checkpoint's), or a published model of the zoo "
        "(Carmon2019Unlabeled, Salman2020Do_R50, ...; landscape.models.ZOO)",
    )
    p.add_argument(
        "--arch-kwargs",
        type=json_dict,
        default=None,
        help="JSON dict of models.build keyword arguments",
    )


_CHECKPOINT_HELP = (
    "a run folder of python -m landscape.train (final.pt + config.json), a checkpoint "
    "of it, or a file {'model': state_dict, 'arch': NAME, 'arch_kwargs': {...}} "
    "(a bare state dict with --arch); a downloaded zoo checkpoint with --arch ZOO_NAME"
)


def add_checkpoint(
    p: argparse.ArgumentParser,
    *,
    name: str = "checkpoint",
    help: str = _CHECKPOINT_HELP,
    ensemble: bool = False,
) -> None:
    """The checkpoint argument and its flags, read by :func:`checkpoint_options`: the
    positional ``name``, ``--arch`` / ``--arch-kwargs`` (:func:`add_model_flags`),
    ``--trust-checkpoint`` and, with ``ensemble``, ``--ensemble``."""
    p.add_argument(name, help=help)
    add_model_flags(p)
    if ensemble:
        p.add_argument(
            "--ensemble",
            action="store_true",
            help="the end-of-period ensemble of a run folder",
        )
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load checkpoints that hold pickled objects (a whole nn.Module); "
        "unpickling can run code, so only for files you trust",
    )


def checkpoint_options(
    args: argparse.Namespace, *, arch_kwargs: dict | None = None
) -> dict[str, Any]:
    """The flags of :func:`add_checkpoint` as the keyword arguments of
    :func:`landscape.checkpoints.load_model`: ``arch``, ``arch_kwargs`` (``--arch-kwargs``,
    or ``arch_kwargs`` when given), ``ensemble`` (where the tool has ``--ensemble``),
    ``device`` (:func:`device`) and ``trust`` (``--trust-checkpoint``).

    Example:
        >>> p = parser("tool", "``tool``: loads a model.")
        >>> add_checkpoint(p)
        >>> add_common(p)
        >>> a = p.parse_args(["w.pt", "--arch", "lenet", "--device", "cpu"])
        >>> checkpoint_options(a)
        {'arch': 'lenet', 'arch_kwargs': None, 'device': device(type='cpu'), 'trust': False}
    """
    kwargs = args.arch_kwargs if arch_kwargs is None else arch_kwargs
    out: dict[str, Any] = {"arch": args.arch, "arch_kwargs": _arch_kwargs(args, kwargs)}
    if hasattr(args, "ensemble"):
        out["ensemble"] = args.ensemble
    out.update(device=device(args), trust=args.trust_checkpoint)
    return out


def _arch_kwargs(args: argparse.Namespace, kwargs: dict | None) -> dict | None:
    """With ``--arch``, ``--dataset`` also goes to ``models.build``: it picks among zoo
    entries of one name (``--arch Standard``) and sets a plain architecture's input
    shape, class count and normalisation (unless ``--arch-kwargs`` sets them)."""
    arch, dataset = getattr(args, "arch", None), getattr(args, "dataset", None)
    given = set(kwargs or {})
    if arch and dataset and not given & {"dataset", "in_shape", "num_classes"}:
        return {**(kwargs or {}), "dataset": dataset}
    return kwargs


def add_data(
    p: argparse.ArgumentParser,
    *,
    dataset: str | None = "mnist",
    split: str | None = None,
    splits: Sequence[str] | None = None,
) -> None:
    """``--dataset`` (default ``dataset``; None: the run's), ``--data-root`` and, with
    ``split``, ``--split`` (default ``split``, one of ``splits`` when given), read by
    :func:`data_options`."""
    default = dataset or "the run's"
    p.add_argument(
        "--dataset",
        default=dataset,
        help="mnist, fashion-mnist, cifar10, cifar10-jpeg, cifar100, svhn, "
        f"tiny-imagenet, imagenet (default {default})",
    )
    p.add_argument(
        "--data-root",
        default=None,
        help="data folder (default $LANDSCAPE_DATA, else the per-user cache)",
    )
    if split is not None:
        p.add_argument(
            "--split", default=split, choices=splits, help=f"dataset split ({split})"
        )


def dataset_name(
    args: argparse.Namespace,
    recorded: str | None = None,
    *,
    default: str | None = None,
) -> str:
    """``--dataset``, else the dataset the run records (``recorded``, from
    :func:`landscape.checkpoints.recorded_dataset`), else ``default``.

    Raises:
        CLIError: none of them names one.
    """
    name = getattr(args, "dataset", None) or recorded or default
    if not name:
        raise CLIError("the run records no dataset", "pass --dataset NAME")
    return str(name)


def data_options(
    args: argparse.Namespace,
    recorded: str | None = None,
    *,
    split: str | None = None,
    num_samples: Any = ...,
    seed: int = 0,
    default: str | None = "mnist",
) -> dict[str, Any]:
    """The flags of :func:`add_data` as the keyword arguments of
    :func:`landscape.data.load_dataset`: the dataset of :func:`dataset_name`
    (``default`` when neither the flag nor the run names one), ``--data-root``,
    ``split`` (default ``--split``) and ``num_samples`` examples (default
    ``--num-samples``; None: all) chosen with ``seed``.

    Example:
        >>> p = parser("tool", "``tool``: reads data.")
        >>> add_data(p, dataset=None, split="test")
        >>> add_common(p, num_samples=100)
        >>> data_options(p.parse_args([]), "fashion-mnist")["name"]
        'fashion-mnist'
    """
    return {
        "name": dataset_name(args, recorded, default=default),
        "root": args.data_root,
        "split": split or args.split,
        "num_samples": args.num_samples if num_samples is ... else num_samples,
        "generator": torch.Generator().manual_seed(seed),
    }


def add_choice(
    p: argparse.ArgumentParser,
    flag: str,
    choices: Sequence[str],
    help: str,
    *,
    optional: bool = False,
    dest: str | None = None,
) -> None:
    """A flag that takes one of ``choices``; the first is its default, or with
    ``optional`` None (the tool decides, as ``help`` says). ``dest``: the attribute
    of the parsed arguments (default from the flag)."""
    default = None if optional else choices[0]
    kw = {} if dest is None else {"dest": dest}
    p.add_argument(flag, default=default, choices=list(choices), help=help, **kw)


def progress(args: argparse.Namespace) -> bool:
    """Whether to show progress: not with ``--no-progress`` nor on a rank other than
    0 under ``torchrun``, else always (a bar on a terminal, plain lines in a log:
    :mod:`landscape._progress`)."""
    return getattr(args, "progress", None) is not False and is_main()


def _torchrun() -> bool:
    """Started by ``torchrun`` (or another launcher) with several processes."""
    return int(os.environ.get("WORLD_SIZE", "1") or "1") > 1


def is_main() -> bool:
    """Whether this process prints and writes a tool's outputs: rank 0 of an
    initialised process group, or the only process."""
    return _dist.is_main(_dist.info()[0])


@contextlib.contextmanager
def process_group(args: argparse.Namespace) -> Iterator[None]:
    """The process group of a tool started by ``torchrun`` (``WORLD_SIZE > 1``):
    initialised from the environment for the tool's run (NCCL on CUDA, gloo on CPU:
    ``--device``) and destroyed at its end (a group that already exists, the
    caller's, is used as it is); a rank other than 0 prints nothing to stdout."""
    own = (
        _torchrun()
        and torch.distributed.is_available()
        and not torch.distributed.is_initialized()
    )
    if own:
        _dist.setup(device(args))
    quiet = (
        contextlib.redirect_stdout(open(os.devnull, "w"))  # noqa: SIM115
        if not is_main()
        else contextlib.nullcontext()
    )
    try:
        with quiet:  # the results are printed once, by rank 0
            yield
    finally:
        if own:
            torch.distributed.destroy_process_group()


def add_threads(p: argparse.ArgumentParser) -> None:
    """``--threads N``: torch's CPU threads for the run (:func:`set_threads`)."""
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch CPU threads (default: OMP_NUM_THREADS when set, else the cores "
        "that the load average leaves free, at least 1 and at most 4)",
    )


def default_threads(
    cores: int | None = None, load: float | None = None, cap: int = 4
) -> int:
    """The CPU threads a tool uses unless told: the cores the machine's load leaves
    free, at least 1 and at most ``cap``.

    torch's own default (one thread per core) oversubscribes a busy machine: issue 28
    reported the demo's adversarial epochs at ~10x the CPU of one thread at load 10-15
    on 2 cores. ``benchmarks/bench_threads.py`` times a training epoch with 1, 2 and 4
    threads; its numbers, busy and quiet, are in ``benchmarks/README.md``. Beyond 4
    threads the small models of this package gain little.

    Args:
        cores: usable cores (default: this process's CPU affinity).
        load: the 1-minute load average (default: ``os.getloadavg()``, 0 where the
            system has none).
        cap: the most threads.

    Example:
        >>> default_threads(cores=2, load=0.1), default_threads(cores=2, load=3.7)
        (2, 1)
        >>> default_threads(cores=16, load=2.0), default_threads(cores=16, load=14.0)
        (4, 2)
    """
    if cores is None:
        affinity = getattr(os, "sched_getaffinity", None)
        cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):
            load = 0.0
    return max(1, min(cap, cores - int(load)))


def set_threads(args: argparse.Namespace) -> int | None:
    """Set torch's CPU threads from ``--threads``, else to :func:`default_threads`
    unless ``OMP_NUM_THREADS`` says how many (then torch already follows it). Tools
    without ``--threads`` are left alone. Returns the number set, or None."""
    if not hasattr(args, "threads"):
        return None
    n = args.threads
    if n is None:
        if os.environ.get("OMP_NUM_THREADS", "").strip():
            return None
        n = default_threads()
    torch.set_num_threads(int(n))
    return int(n)


_FILE_SUFFIXES = (".npz", ".json", ".txt", ".pt", ".pth", ".png", ".pdf", ".svg",
                  ".html", ".md")  # fmt: skip


def run_name(path: str | os.PathLike) -> str:
    """A short name for what a tool reads, for its default output folder: a run
    folder's name (``runs/lenet`` -> ``lenet``), else the file's stem with its
    folder's name (``runs/lenet/final.pt`` -> ``lenet-final``; ``w.pt`` -> ``w``).

    Example:
        >>> run_name("runs/lenet/"), run_name("runs/lenet/final.pt"), run_name("w.pt")
        ('lenet', 'lenet-final', 'w')
    """
    p = Path(path)
    if p.suffix == "" or p.is_dir():
        return p.name or "run"
    parent = p.parent.name
    return f"{parent}-{p.stem}" if parent and parent not in (".", "..") else p.stem


def out_folder(
    args: argparse.Namespace, tool: str, source: str | os.PathLike | None = None
) -> Path:
    """The folder of one tool run: ``-o/--out``, else ``runs/<tool>/<run_name(source)>``
    (``runs/<tool>`` without a source). Tools call it before any work, so a bad ``-o``
    fails at once (a file name, a path through a file, a folder that cannot be
    written: :func:`landscape.io.check_writable`); the folder is created by the first
    file written into it.

    Raises:
        CLIError: ``-o`` names a file (an existing one, or a name ending in a file
            suffix such as ``.npz``: every tool writes its files into a folder).
    """
    out = getattr(args, "out", None)
    if out is None:
        folder = Path("runs") / tool
        if source is not None:
            folder = folder / run_name(source)
    else:
        folder = Path(out)
        if folder.suffix.lower() in _FILE_SUFFIXES or folder.is_file():
            raise CLIError(
                f"-o/--out takes the folder of this run, got the file name {folder}",
                f"pass a folder, e.g. -o {folder.with_suffix('')} (the tool writes "
                "its files into it)",
            )
    return io.check_writable(folder, folder=True, what="-o/--out")


def write_summary(out: Path, checkpoint: Any, rows: list[dict]) -> None:
    """Write ``out/summary.json`` (``{"checkpoint": ..., "rows": rows}``, atomically;
    under torchrun rank 0 only) and say on stdout where the tool's files are."""
    if is_main():
        with io.atomic_write(out / "summary.json", "w") as f:
            json.dump({"checkpoint": str(checkpoint), "rows": rows}, f, indent=1)
    print(f"wrote {out}/")


def device(args: argparse.Namespace) -> torch.device:
    """``--device``, else cuda when available, else cpu (``cuda`` under ``torchrun``:
    ``cuda:LOCAL_RANK``, one GPU per process); a device this machine does
    not have (``cuda`` without CUDA, ``cuda:3`` on one GPU) is a :class:`CLIError`."""
    name = getattr(args, "device", None)
    try:
        dev = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dev.type == "cuda" and dev.index is None and _torchrun():
            # torchrun: one GPU per process
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    except RuntimeError as err:
        raise CLIError(
            f"--device {name!r} is not a device ({io.plain(str(err))})",
            "use cpu or cuda[:N]",
        ) from None
    try:
        torch.empty(0, device=dev)
    except Exception as err:  # e.g. AssertionError: Torch not compiled with CUDA
        have = (
            f"{torch.cuda.device_count()} CUDA device(s)"
            if torch.cuda.is_available()
            else "no CUDA device"
        )
        raise CLIError(
            f"--device {name}: this machine cannot use it ({have}; "
            f"{type(err).__name__}: {io.plain(str(err))[:120]})",
            "use --device cpu" + (" or cuda[:N]" if torch.cuda.is_available() else ""),
        ) from None
    return dev


def check_run_folder(folder: str | os.PathLike) -> dict:
    """Read a run folder's ``config.json`` (and check ``metrics.jsonl``), naming any
    truncated file; ``{}`` for a folder that holds no run yet.

    Raises:
        CLIError: the path is a file, or a file of the run is truncated.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CLIError(
            f"{folder} is a file, not a run folder",
            "pass a folder (it is created if missing)",
        )
    io.check_writable(folder, folder=True, what="--run-dir")
    cfg: dict = {}
    if (folder / "config.json").exists():
        cfg = _read_json(folder / "config.json")
    metrics = folder / "metrics.jsonl"
    if metrics.exists():
        for i, line in enumerate(metrics.read_text().splitlines(), 1):
            try:
                json.loads(line) if line.strip() else None
            except ValueError:
                raise CLIError(
                    f"{metrics} is truncated or corrupt (line {i} is not JSON)",
                    "delete it: it is rewritten from the resume state",
                ) from None
    return cfg


def _read_json(path: Path) -> dict:
    try:
        obj = io.read_json(path)
    except io.CorruptFileError:
        raise CLIError(
            f"{path} is truncated or not valid JSON",
            "restore it from a backup or delete the run folder and retrain",
        ) from None
    if not isinstance(obj, dict):
        raise CLIError(f"{path} does not hold a JSON object", "restore or delete it")
    return obj
