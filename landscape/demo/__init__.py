"""``python -m landscape.demo``: a real, small version of the study on MNIST.

The main job (``make demo``). On 2 CPU cores it takes a few minutes:

1. **data**: a stratified MNIST subset (read from ``--data-root`` /
   ``$LANDSCAPE_DATA``, else downloaded and md5-verified into the per-user cache).
2. **train**: LeNet adversarially trained (PGD) at several eps with a constant eps
   schedule, and one run with the periodic eps / lr schedule whose end-of-period
   checkpoints form an ensemble (:mod:`landscape.train`).
3. **evaluate**: clean and robust accuracy under the quick protocol (PGD-20) at each
   model's training eps and at a common eps, and one stronger attack (the "standard"
   protocol: APGD-CE, APGD-T, Square) on the largest-eps models
   (:mod:`landscape.evaluate`).
4. **hessian**: top Hessian eigenvalue of the clean and of the adversarial loss
   (Lanczos, :mod:`landscape.hessian`).
5. **scattering**: gradient scattering of the adversarial loss per eps
   (:mod:`landscape.scattering`).
6. **surface**: 2D filter-normalised loss surfaces (clean and adversarial) around the
   models of ``surface_eps`` (:mod:`landscape.surface`).
7. **figures + summary**: figures drawn by :mod:`landscape.plot` (PNG, PDF, one
   interactive HTML), ``summary.md`` and ``summary.json``.

Parts: ``_spec`` (the typed :class:`DemoConfig` and :class:`RunSpec`), ``_stages``
(one short function per stage over one cache: :func:`landscape.io.cached` files under
``out/results``), ``_figures``, ``_summary``, ``_run`` (:func:`run_demo`).

Everything goes to a run folder (default ``runs/demo/``, relative to the current
folder), locked while a demo runs there. Each finished item is cached (atomic writes),
so an interrupted demo resumes where it stopped; training resumes mid-run through the
trainer's own checkpoints. ``--smoke`` is a tiny version used by the tests.

Example:
    ``python -m landscape.demo --out runs/demo``  then open ``runs/demo/summary.md``.
"""

from ._run import run_demo
from ._spec import DemoConfig, RunSpec

__all__ = ["DemoConfig", "RunSpec", "run_demo"]
