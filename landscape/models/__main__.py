"""``python -m landscape.models``: the published robust models this package knows,
what RobustBench reports for them, and how to download their weights.

Examples::

    python -m landscape.models                       # the registry, one line each
    python -m landscape.models Carmon2019Unlabeled   # one entry and its download command
    python -m landscape.models --dataset cifar100
"""

from __future__ import annotations

import argparse

from .. import _cli
from . import ZOO, zoo_entry
from ._zoo import _zoo_dataset

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = _cli.parser("python -m landscape.models", __doc__)
    p.add_argument("names", nargs="*", help="zoo names (default: list them all)")
    p.add_argument("--dataset", default=None, help="only this data set's entries")
    p.add_argument(
        "--threat-model", default=None, help="Linf or L2 (narrows a shared name)"
    )
    p.add_argument(
        "--debug", action="store_true", help="show the traceback of an error"
    )
    _cli.add_threads(p)
    return p


def _main(args: argparse.Namespace) -> int:
    if not args.names:
        rows = [
            e
            for e in ZOO.values()
            if args.dataset is None or e.dataset == _zoo_dataset(args.dataset)
        ]
        print(f"{'name (dataset/threat/name)':<50} {'architecture':<17} clean  AA")
        for e in rows:
            print(
                f"{e.key:<50} {e.architecture:<17} {e.clean_acc:5.2f} "
                f"{e.autoattack_acc:5.2f}"
            )
        print(
            "\nclean / AA: RobustBench's reported clean and AutoAttack accuracy (%) "
            "at the entry's eps; `python -m landscape.models NAME` says how to "
            "download one"
        )
        return 0
    for name in args.names:
        try:
            e = zoo_entry(name, dataset=args.dataset, threat_model=args.threat_model)
        except ValueError as err:
            raise _cli.CLIError(str(err), "see python -m landscape.models") from None
        print(f"{e.key}: {e.architecture} ({e.arch} {e.arch_kwargs})")
        print(f"  paper          {e.paper}")
        print(f"  threat model   {e.threat_model}, eps {e.eps:.6g}")
        print(
            f"  reported       clean {e.clean_acc:.2f} %, AutoAttack {e.autoattack_acc:.2f} %"
        )
        print(f"  normalisation  mean {e.mean}, std {e.std} (inside the model)")
        if e.preprocessing != "none":
            print(f"  preprocessing  {e.preprocessing}")
        if e.gdrive_id:
            print(f"  download       gdown {e.gdrive_id} -O {e.name}.pt")
            print(f"                 (or open {e.download_url} in a browser)")
        else:
            print("  download       torchvision's ImageNet weights (IMAGENET1K_V1)")
        print(
            f"  analyse        python -m landscape.report {e.name}.pt --arch {e.name} "
            f"--dataset {e.dataset}"
        )
    return 0


main = _cli.entry(_parser, _main)

if __name__ == "__main__":
    raise SystemExit(main())
