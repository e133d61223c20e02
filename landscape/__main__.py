"""``python -m landscape``: list the command-line tools."""

from __future__ import annotations

import argparse

from . import _cli

__all__ = ["main", "TOOLS"]

TOOLS = {
    "demo": "the main job: a small real study on MNIST (train, evaluate, curvature, "
    "scattering, surface, figures + summary)",
    "data": "download and verify datasets (MNIST, Fashion-MNIST, CIFAR-10/100, SVHN, "
    "Tiny-ImageNet)",
    "models": "published robust models (RobustBench): reported accuracy, download",
    "train": "adversarial training with eps/lr schedules, presets, resume, ensembles",
    "evaluate": "robust evaluation protocol (quick / standard / reviewer presets)",
    "hessian": "top Hessian eigenvalues, spectral density and trace of a checkpoint",
    "scattering": "gradient-scattering statistics of a checkpoint",
    "surface": "compute a loss surface or line around a checkpoint",
    "connectivity": "mode connectivity: train a curve between two models, scan "
    "clean / robust loss and accuracy along it",
    "plot": "draw saved surfaces and other saved results",
    "report": "one self-contained HTML report on a checkpoint (accuracy, curvature, "
    "surfaces, scattering)",
}


def main(argv: list[str] | None = None) -> int:
    """List the tools; returns the exit status (2 after an error)."""
    return _cli.run(_main, argv, "python -m landscape")


def _main(argv: list[str]) -> int:
    parser = _cli.Parser(
        prog="python -m landscape",
        description="landscape: the loss landscape of adversarial training.",
        epilog="Run `python -m landscape.<tool> --help` for a tool's options.",
    )
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    parser.parse_args(argv)
    print("landscape tools (run as `python -m landscape.<tool>`):\n")
    for name, text in TOOLS.items():
        print(f"  {name:<11} {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
