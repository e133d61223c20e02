"""One vocabulary across the public API, and no compatibility layer.

The words (STYLE.md sections 2, 3 and 12): ``num`` for how many results,
``num_matvecs`` for a budget of Hessian-vector products (and the products a result
used), ``max_iter`` for iteration caps, ``generator=`` for randomness (configs saved as
JSON may keep a ``seed`` field), ``data`` for the data (a second data set is named by
its role: ``test_data``, ``train_data``). Public signatures hold no old spelling and no
private parameter, and no module warns about a deprecated call.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest

import landscape

# old spellings and the word that replaced them
OLD = {
    "k": "num",
    "num_points": "num",
    "batch_vectors": "chunk_size",
    "num_probes": "num_matvecs",
    "num_hvps": "num_matvecs",
    "num_iters": "max_iter",
    "seed": "generator",
    "batches": "data",
    "bn_data": "train_data",
    "warn_negative": "(nothing)",
    "batched": "strategy",
}

# configs saved as JSON keep their seed; results record what they used
KEEP = {
    ("train.TrainConfig", "seed"),
    ("demo.DemoConfig", "seed"),
    # a loader that reshuffles every epoch: each epoch's order must follow from the
    # seed alone, so that a resumed run sees the orders of the run it continues
    ("data.Batches", "seed"),
    ("linear.LinearFit", "num_iters"),  # the iterations a fit ran (a result)
    # a density's grid resolution, like numpy's linspace(num); not a count of results
    ("hessian.lanczos_density", "num_points"),
    ("hessian.Density.rebroaden", "num_points"),
    ("hessian.LanczosQuadrature.density", "num_points"),
}

# other owners' parts of issue 23, not done on this branch yet: each entry goes when
# its owner lands the change (none left)
PENDING: set[tuple[str, str]] = set()
PENDING_DEPRECATIONS: set[str] = set()

MODULES = [
    *(m for m in landscape.__all__ if m not in ("seed_everything", "__version__")),
    "demo",  # a runnable application, not a lazy submodule of landscape
]


def _signatures():
    """``(module.name, parameter names)`` of every public callable (functions, the
    constructors and public methods of classes)."""
    for mod_name in MODULES:
        mod = importlib.import_module(f"landscape.{mod_name}")
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            targets = []
            if inspect.isclass(obj):
                targets.append((name, obj))
                targets += [
                    (f"{name}.{m}", f)
                    for m, f in vars(obj).items()
                    if callable(f) and not m.startswith("_")
                ]
            elif callable(obj):
                targets.append((name, obj))
            for where, fn in targets:
                try:
                    params = inspect.signature(fn).parameters
                except (TypeError, ValueError):
                    continue
                yield f"{mod_name}.{where}", list(params)


def test_no_old_word_and_no_private_parameter_in_a_public_signature():
    found = []
    for where, params in _signatures():
        for p in params:
            if (where, p) in KEEP | PENDING:
                continue
            if p in OLD:
                found.append(f"{where}({p}=): say {OLD[p]}")
            elif p.startswith("_"):
                found.append(f"{where}({p}=): a private parameter")
    assert found == []


def test_the_allowances_are_still_needed():
    """An entry of KEEP or PENDING that matches no signature any more is stale."""
    seen = {(w, p) for w, params in _signatures() for p in params}
    assert (KEEP | PENDING) - seen == set()


def test_result_fields_use_num_matvecs():
    from landscape import hessian

    for cls in (hessian.Eigenpairs, hessian.TraceEstimate, hessian.Density):
        assert "num_matvecs" in {f.name for f in dataclasses.fields(cls)}


def test_no_module_warns_about_a_deprecated_call():
    root = Path(landscape.__file__).parent
    found = [
        str(p.relative_to(root))
        for p in sorted(root.rglob("*.py"))
        if re.search(r"\bDeprecationWarning\b", p.read_text())
    ]
    assert set(found) <= PENDING_DEPRECATIONS, found


@pytest.mark.parametrize("gone", ["spectrum"])
def test_removed_alias_modules_stay_gone(gone):
    with pytest.raises(ImportError):
        importlib.import_module(f"landscape.{gone}")
