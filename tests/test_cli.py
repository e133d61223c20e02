"""The one CLI layer (issue 13, item 4): every tool takes its parser, entry point,
checkpoint loader, data loader and shared flags from ``landscape._cli``."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import re

import pytest
import torch

from landscape import _cli, checkpoints, models, train
from landscape.attacks._cli import add_attack, attack_from_args

# tool -> module that defines its parser and body
TOOLS = {
    "evaluate": "landscape.evaluate.__main__",
    "hessian": "landscape.hessian._cli",
    "scattering": "landscape.scattering._cli",
    "sharpness": "landscape.sharpness._cli",
    "report": "landscape.report._cli",
    "surface": "landscape.surface._cli",
    "connectivity": "landscape.connectivity.__main__",
    "train": "landscape.train.__main__",
    "data": "landscape.data.__main__",
    "demo": "landscape.demo.__main__",
    "plot": "landscape.plot.__main__",
    "models": "landscape.models.__main__",
}
CHECKPOINT_TOOLS = (
    "evaluate",
    "hessian",
    "scattering",
    "report",
    "surface",
    "sharpness",
)


def _tool_parser(tool: str) -> argparse.ArgumentParser:
    mod = importlib.import_module(TOOLS[tool])
    if tool in ("surface", "plot"):
        return mod.compute_parser() if tool == "surface" else mod._draw_parser()
    return mod._parser()


@pytest.mark.parametrize("tool", CHECKPOINT_TOOLS)
def test_checkpoint_tools_load_through_the_one_loader(tool):
    mod = importlib.import_module(TOOLS[tool])
    source = inspect.getsource(mod)
    # checkpoints.model_and_batches (hessian, sharpness) calls load_model
    assert "checkpoints.load_model(" in source or (
        "checkpoints.model_and_batches(" in source
    )
    body = mod.compute if tool == "surface" else mod._main
    assert "load_torch(" not in inspect.getsource(body)
    flags = _tool_parser(tool)._option_string_actions
    for flag in ("--arch", "--arch-kwargs", "--trust-checkpoint"):
        assert flag in flags, (tool, flag)


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_tool_has_the_shared_flags_and_entry_point(tool):
    mod = importlib.import_module(TOOLS[tool])
    if tool not in ("surface", "plot"):  # these two dispatch a `compute` command
        assert mod.main.__qualname__ == "entry.<locals>.main"
    p = _tool_parser(tool)
    assert isinstance(p, _cli.Parser)
    assert p.description  # from the module docstring (the tool's one description)
    if tool == "connectivity":  # its subcommands carry the flags
        p = p._subparsers._group_actions[0].choices["scan"]
    assert "--debug" in p._option_string_actions
    if tool not in ("data", "plot", "models"):  # these only download, draw or list
        for flag in ("--device", "--no-progress"):
            assert flag in p._option_string_actions, (tool, flag)


def test_parser_description_is_the_docstring_paragraph():
    p = _cli.parser("t", "``python -m t``: does ``X``\n  on two lines.\n\nExample: t")
    assert p.description == "Does X on two lines."
    with pytest.raises(_cli.CLIError, match="see t --help"):
        p.parse_args(["--nope"])


def test_entry_parses_under_the_error_rules(capsys):
    def make():
        p = _cli.parser("t", "does t")
        p.add_argument("--n", type=_cli.positive_int, default=1)
        return p

    main = _cli.entry(make, lambda args: 0 if args.n == 3 else 1)
    assert main(["--n", "3"]) == 0
    assert main(["--n", "0"]) == 2
    assert "must be at least 1, got 0" in capsys.readouterr().err


def test_argparse_types():
    assert _cli.number("8/255") == 8 / 255
    assert _cli.number("0.3") == 0.3
    assert _cli.nonnegative_int("0") == 0
    for parse, bad in ((_cli.number, "1/0"), (_cli.positive_int, "0")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="0 or more"):
        _cli.nonnegative_int("-1")


def _attack_args(argv, **kw):
    p = _cli.parser("t", "t")
    add_attack(p, **kw)
    return p.parse_args(argv)


def test_one_parser_from_flags_to_an_attack_value():
    from landscape import attacks

    args = _attack_args(["--eps", "8/255", "--steps", "7", "--alpha-rel", "0.25"])
    want = attacks.PGD(eps=8 / 255, steps=7, alpha_rel=0.25)
    assert attack_from_args(args) == want
    # a base attack (a preset's) keeps what the flags leave alone
    base = attacks.PGD(eps=0.4, steps=50, alpha=0.01)
    got = attack_from_args(_attack_args(["--eps", "0.3"]), base)
    assert got == attacks.PGD(eps=0.3, steps=50, alpha=0.01)
    got = attack_from_args(_attack_args(["--alpha-rel", "0.1"]), base)
    assert got.alpha is None and got.alpha_rel == 0.1  # one step size, not two
    kinds = dict(kinds=("pgd", "fgsm-rs", "none"))
    fg = attack_from_args(_attack_args(["--attack", "fgsm-rs"], **kinds), base)
    assert fg == attacks.FGSMRS(eps=0.4)
    assert attack_from_args(_attack_args(["--attack", "none"], **kinds), base) is None
    assert attack_from_args(_attack_args([], eps=0.0)) is None  # eps 0: none
    # an evaluation attack: the presets' evaluation PGD
    ev = attack_from_args(_attack_args(["--eps", "0.5", "--norm", "l2"]), keep="best")
    assert (ev.keep, ev.loss, ev.random_start, ev.norm) == ("best", "ce", False, "l2")
    sweep = _attack_args(["--eps", "0", "0.1"], sweep=True, steps=10)
    assert attack_from_args(sweep) == attacks.PGD(eps=0.0, steps=10)
    apgd = _attack_args(["--attack", "apgd", "--eps", "0.1", "--alpha", "0.1"],
                        kinds=("pgd", "apgd"))  # fmt: skip
    with pytest.raises(_cli.CLIError, match="APGD"):
        attack_from_args(apgd)


def test_train_cli_flags_change_the_presets_attack():
    from landscape.train.__main__ import _config, _parser

    args = _parser().parse_args(["mnist-lenet", "--eps", "0.3", "--steps", "40"])
    cfg = _config(args)
    assert cfg.attack == dataclasses.replace(
        train.preset("mnist-lenet").attack, eps=0.3, steps=40
    )
    args = _parser().parse_args(
        ["mnist-lenet", "--attack", "none", "--eval-steps", "5"]
    )
    cfg = _config(args)
    assert cfg.attack is None and cfg.runtime.eval_attack.steps == 5
    args = _parser().parse_args(["cifar10-vgg16", "--norm", "l2", "--eps", "0.5"])
    cfg = _config(args)
    assert cfg.attack.norm == "l2" and cfg.attack.alpha_rel == 0.25


def test_dataset_name_takes_the_flag_then_the_recorded_name_then_the_default():
    args = argparse.Namespace(dataset=None)
    with pytest.raises(_cli.CLIError, match="--dataset"):
        _cli.dataset_name(args, None)
    assert _cli.dataset_name(args, None, default="mnist") == "mnist"
    assert _cli.dataset_name(args, "cifar10", default="mnist") == "cifar10"
    assert _cli.dataset_name(argparse.Namespace(dataset="x"), "cifar10") == "x"


def test_checkpoint_flags_reach_the_one_loader(tmp_path):
    net = models.build("mlp", in_shape=(4,), hidden=(3,))
    torch.save({"model": net.state_dict()}, tmp_path / "sd.pt")
    p = _cli.parser("t", "t")
    _cli.add_checkpoint(p)
    _cli.add_common(p)
    kw = json.dumps({"in_shape": [4], "hidden": [3]})
    args = p.parse_args([str(tmp_path / "sd.pt"), "--arch", "mlp", "--arch-kwargs", kw])
    got = checkpoints.load_model(args.checkpoint, **_cli.checkpoint_options(args))
    assert checkpoints.run_config(args.checkpoint) == {} and not got.training
    for a, b in zip(got.state_dict().values(), net.state_dict().values()):
        assert torch.equal(a, b)


def _all_parsers(tool: str) -> list[argparse.ArgumentParser]:
    """A tool's parser, or the parsers of its subcommands."""
    p = _tool_parser(tool)
    subs = p._subparsers
    if subs is None:
        return [p]
    return list(subs._group_actions[0].choices.values())


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_tool_takes_threads_and_out_is_a_folder(tool):
    for p in [_tool_parser(tool), *_all_parsers(tool)]:
        text = p.format_help()  # plain text: no docstring markup in --help
        assert not re.search(r":[a-z]+:`|``", text), (tool, text)
    for p in _all_parsers(tool):
        flags = p._option_string_actions
        assert "--threads" in flags, (tool, p.prog)
        out = flags.get("-o")
        if out is not None:  # every -o names the folder of the run
            assert out is flags["--out"], (tool, p.prog)
            text = f"{out.metavar} {out.help}"
            assert "folder" in text and "file" not in text.replace("files", ""), text
            assert "data/" not in str(out.default) and "data/" not in out.help, text


def test_threads_flag_and_default(monkeypatch):
    assert _cli.default_threads(cores=2, load=0.2) == 2
    assert _cli.default_threads(cores=2, load=9.0) == 1  # a busy machine: one
    assert _cli.default_threads(cores=64, load=0.0) == 4  # capped
    before = torch.get_num_threads()
    p = _cli.parser("t", "t")
    _cli.add_common(p)
    try:
        assert _cli.set_threads(p.parse_args(["--threads", "3"])) == 3
        assert torch.get_num_threads() == 3
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's choice is kept
        assert _cli.set_threads(p.parse_args([])) is None
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert _cli.set_threads(p.parse_args([])) == _cli.default_threads()
        with pytest.raises(_cli.CLIError, match="--threads"):
            p.parse_args(["--threads", "0"])
        # a tool's main sets it before its work
        seen = []
        main = _cli.entry(lambda: p, lambda a: seen.append(torch.get_num_threads()))
        main(["--threads", "1"])
        assert seen == [1]
    finally:
        torch.set_num_threads(before)


def test_out_folder_default_and_file_names_are_refused(tmp_path):
    p = _cli.parser("t", "t")
    _cli.add_common(p, out="evaluate")
    assert _cli.out_folder(p.parse_args([]), "evaluate", "runs/lenet/final.pt") == (
        __import__("pathlib").Path("runs/evaluate/lenet-final")
    )
    got = _cli.out_folder(p.parse_args(["-o", str(tmp_path / "e")]), "evaluate")
    assert got == tmp_path / "e"
    for bad in (tmp_path / "e.npz", tmp_path / "x.png"):
        with pytest.raises(_cli.CLIError, match="folder of this run"):
            _cli.out_folder(p.parse_args(["-o", str(bad)]), "evaluate")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(_cli.CLIError, match="folder of this run"):
        _cli.out_folder(p.parse_args(["-o", str(tmp_path / "afile")]), "evaluate")
