"""The one layer under every command-line tool: flags, checkpoint loading, errors.

Every ``python -m landscape.<tool>`` builds its parser with :class:`Parser`, adds the
shared flags with :func:`add_common` and runs its body through :func:`run`:

- an error is ONE line on stderr, ``error: <what> - <how to fix>``, exit status 2; the
  traceback only with ``--debug`` (or ``LANDSCAPE_DEBUG=1``);
- ``--device``, ``--num-samples``, ``--no-progress`` (bars are on by default on a
  terminal), ``-o/--out``, ``--debug``, ``--trust-checkpoint`` mean the same everywhere;
  old spellings (``--num``, ``--progress``, ``--progressbar``, ``--model``) still work;
- :func:`load_checkpoint` is the one loader of a checkpoint file, a run folder of
  ``landscape.train`` or its end-of-period ensemble; it loads with
  ``weights_only=True`` only (see :func:`landscape.io.load_torch`).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import io

__all__ = [
    "CLIError",
    "Parser",
    "run",
    "add_common",
    "add_model_flags",
    "positive_int",
    "nonnegative_int",
    "json_dict",
    "progress",
    "device",
    "load_checkpoint",
    "check_run_folder",
    "lock_if",
]

_FINAL = "final.pt"


class CLIError(Exception):
    """A user error of a command-line tool: what went wrong and how to fix it."""

    def __init__(self, what: str, fix: str):
        super().__init__(f"{what} - {fix}")
        self.what, self.fix = what, fix


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line (a :class:`CLIError`)."""

    def error(self, message: str):
        """Raise instead of printing the usage block and exiting."""
        raise CLIError(f"{self.prog}: {message}", f"see {self.prog} --help")


def _debug(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("LANDSCAPE_DEBUG", "") not in ("", "0")


def _one_line(err: BaseException, prog: str) -> str:
    if isinstance(err, CLIError):
        text = f"{err.what} - {err.fix}"
    else:
        msg = " ".join(str(err).split()) or type(err).__name__
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
    return "error: " + " ".join(text.split())


def run(body: Callable[[list[str]], int], argv: Sequence[str] | None, prog: str) -> int:
    """Run a tool's body; turn every error into one line on stderr and exit status 2.

    Args:
        body: the tool, ``body(argv) -> exit status``.
        argv: the arguments (default ``sys.argv[1:]``).
        prog: the tool's name for messages (``python -m landscape.train``).

    Returns:
        The body's exit status, 2 after an error, 130 after Ctrl-C.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug(argv)
    try:
        return body(argv)
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
        print(_one_line(err, prog), file=sys.stderr)
        return 2


def positive_int(s: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def nonnegative_int(s: str) -> int:
    """An argparse type: an integer >= 0."""
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {v}")
    return v


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
    out: str | None | bool = False,
    out_help: str = "output path",
    out_required: bool = False,
    progress: bool = True,
    device: bool = True,
    trust: bool = False,
) -> None:
    """Add the shared flags (each only where the tool has a use for it).

    Args:
        p: the parser.
        num_samples: add ``--num-samples`` (hidden alias ``--num``) with this default;
            ``False`` leaves it out.
        out: add ``-o/--out`` with this default; ``False`` leaves it out.
        out_help: its help text.
        out_required: ``-o`` must be given.
        progress: add ``--no-progress`` (hidden aliases ``--progress``,
            ``--progressbar`` force the bars on).
        device: add ``--device``.
        trust: add ``--trust-checkpoint``.
    """
    if num_samples is not False:
        p.add_argument(
            "--num-samples",
            type=positive_int,
            default=num_samples,
            help=f"number of examples (default {num_samples})",
        )
        p.add_argument(
            "--num", dest="num_samples", type=positive_int, help=argparse.SUPPRESS
        )
    if out is not False:
        p.add_argument("-o", "--out", default=out, required=out_required, help=out_help)
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
            help="no progress bars (default: bars when stderr is a terminal)",
        )
        for alias in ("--progress", "--progressbar"):
            p.add_argument(
                alias, dest="progress", action="store_true", help=argparse.SUPPRESS
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
    """``--arch NAME`` (hidden alias ``--model``) and ``--arch-kwargs JSON``."""
    p.add_argument(
        "--arch",
        default=None,
        help="landscape.models.build name for a checkpoint that records none "
        "(overrides the checkpoint's)",
    )
    p.add_argument("--model", dest="arch", help=argparse.SUPPRESS)
    p.add_argument(
        "--arch-kwargs",
        type=json_dict,
        default=None,
        help="JSON dict of models.build keyword arguments",
    )
    p.add_argument(
        "--model-kwargs", dest="arch_kwargs", type=json_dict, help=argparse.SUPPRESS
    )


def progress(args: argparse.Namespace) -> bool:
    """Whether to show progress bars: the flag, else whether stderr is a terminal."""
    flag = getattr(args, "progress", None)
    return bool(flag) if flag is not None else sys.stderr.isatty()


def device(args: argparse.Namespace) -> torch.device:
    """``--device``, else cuda when available, else cpu."""
    name = getattr(args, "device", None)
    try:
        return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as err:
        raise CLIError(
            f"--device {name!r} is not a device ({err})", "use cpu or cuda[:N]"
        ) from None


def lock_if(cond: bool, path: str | os.PathLike) -> contextlib.AbstractContextManager:
    """:func:`landscape.io.lock` on ``path`` when ``cond`` (e.g. only on rank 0)."""
    return io.lock(path) if cond else contextlib.nullcontext()


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


def _mismatch(err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines()[1:] if ln.strip()]
    text = "; ".join(lines[:2]) or str(err)
    return text if len(text) <= 300 else text[:297] + "..."


def _fit(net: nn.Module, obj: Any, file: Path, name: str) -> nn.Module:
    state = obj.get("model", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CLIError(
            f"{file} holds no state dict (a dict of tensors, or {{'model': state_dict}})",
            "save model.state_dict() with torch.save",
        )
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise CLIError(
            f"the weights in {file} do not fit --arch {name} ({_mismatch(err)})",
            "pass the --arch and --arch-kwargs the checkpoint was trained with",
        ) from None
    return net


def _build(name: str | None, kwargs: dict, file: Path) -> nn.Module:
    from . import models

    if not name:
        raise CLIError(
            f"{file} records no architecture (no 'arch' or 'config' in it, no "
            "config.json beside it)",
            f"pass --arch NAME (one of {', '.join(models.available())})",
        )
    return models.build(name, **kwargs)


def load_checkpoint(
    path: str | os.PathLike,
    *,
    arch: str | None = None,
    arch_kwargs: dict | None = None,
    ensemble: bool = False,
    device: torch.device | str = "cpu",
    trust: bool = False,
) -> tuple[nn.Module, dict]:
    """Load a model: a run folder, a checkpoint file or a run's ensemble.

    Accepted: a run folder of ``landscape.train`` (``final.pt`` + ``config.json``;
    with ``ensemble`` its end-of-period checkpoints as one :class:`Ensemble`); a
    checkpoint ``{"model": state_dict, "config": {...}}`` or ``{"model": state_dict,
    "arch": name, "arch_kwargs": {...}}``; a bare state dict with ``arch``. The
    architecture is rebuilt by name (``landscape.models.build``). A whole pickled
    ``nn.Module`` loads only with ``trust=True``.

    Returns:
        ``(model on device in eval mode, the run's config dict or {})``.

    Raises:
        CLIError: what is wrong with the path, the file or the architecture.
        landscape.io.UntrustedFileError: a pickled object and ``trust`` is False.
    """
    path = Path(path)
    if not path.exists():
        raise CLIError(
            f"{path} does not exist",
            "pass a checkpoint file (.pt) or a run folder of python -m landscape.train",
        )
    if path.is_dir():
        if not (path / "config.json").exists():
            raise CLIError(
                f"{path} is not a run folder (no config.json)",
                "pass a run folder of python -m landscape.train or a checkpoint file",
            )
        cfg = check_run_folder(path)
        files = sorted(path.glob("ckpt_epoch*.pt")) if ensemble else [path / _FINAL]
        if ensemble and not files:
            raise CLIError(
                f"{path} has no end-of-period checkpoints (ckpt_epoch*.pt)",
                "train with --periods N, or drop --ensemble to use the final model",
            )
        if not files[0].exists():
            raise CLIError(
                f"{path} has no {_FINAL}: the run has not finished",
                "resume it with the same python -m landscape.train command, or pass "
                "one of its checkpoints (ckpt_epoch*.pt)",
            )
    else:
        if ensemble:
            raise CLIError(
                f"--ensemble needs a run folder, got the file {path}",
                f"pass the run folder {path.parent}",
            )
        side = path.parent / "config.json"
        cfg = _read_json(side) if side.exists() else {}
        files = [path]
    objs = [io.load_torch(f, map_location="cpu", trust=trust) for f in files]
    net = io.module_in(objs[0])
    if net is not None and not ensemble:  # only reachable with trust=True
        return net.to(device).eval(), cfg
    if not isinstance(objs[0], dict):
        raise CLIError(
            f"{files[0]} holds a {type(objs[0]).__name__}, not a model checkpoint",
            "save {'model': model.state_dict(), 'arch': NAME} with torch.save",
        )
    first = objs[0]
    if isinstance(first.get("config"), dict):
        cfg = {**cfg, **first["config"]}
    name = arch or first.get("arch") or cfg.get("model")
    base = {}
    if arch is None:
        base = (
            first.get("arch_kwargs") if first.get("arch") else cfg.get("model_kwargs")
        )
    kwargs = {**(base or {}), **(arch_kwargs or {})}
    template = _build(name, kwargs, files[0])
    nets = [_fit(copy.deepcopy(template), o, f, name) for o, f in zip(objs, files)]
    if ensemble:
        from .train import Ensemble

        return Ensemble(nets).to(device).eval(), cfg
    return nets[0].to(device).eval(), cfg
