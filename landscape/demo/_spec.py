"""What the demo runs: its sizes (:class:`DemoConfig`) and its training runs
(:class:`RunSpec`, typed: a run's eps is a field, never parsed from its name)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

__all__ = ["DemoConfig", "RunSpec", "runs", "train_config"]


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes and settings of the demo (saved as ``demo_config.json`` in the run folder).

    Attributes:
        dataset: dataset name for :func:`landscape.data.load_dataset`.
        model: architecture for :func:`landscape.models.build`; ``width`` its width.
        hidden_size: LeNet's hidden fc units (``model="lenet"`` only): 1,024 (212,234
            parameters at width 1), the demo's model since it was written, which
            learns in its 4 short epochs; None gives the paper's ``64 x width``
            (13,514 parameters), which stalls at eps >= 0.2 at this size.
        num_train / num_test: stratified subset sizes.
        epochs, batch_size, lr: Adam training (constant lr for constant-eps runs).
        eps_list: training budgets of the constant-schedule runs.
        train_steps: PGD steps during training (step ``2.5 eps / steps``).
        periodic_eps / periods: target eps and number of periods of the periodic run
            (eps and lr restart every period; end-of-period models form the ensemble).
        eval_num: test examples for the evaluation; ``eval_eps`` a common budget every
            model is also evaluated at; ``strong_preset`` / ``strong_num``: the stronger
            protocol and its number of examples (on the largest-eps models);
            ``strong_scale`` multiplies its steps, restarts and queries.
        hessian_num: training examples for the Hessian; ``num_eigenvalues`` eigenvalues.
        scatter_num / scatter_directions / scatter_scales: scattering settings.
        surface_eps: training eps of the models that get 2D surfaces.
        surface_points / surface_range / surface_num: grid size, half-width and
            number of examples of the surfaces.
        attack_steps: PGD steps of the analyses' attacks (Hessian, surface).
        seed: seed for data subsets, initialisation, attacks and directions.
    """

    dataset: str = "mnist"
    model: str = "lenet"
    width: float = 1
    hidden_size: int | None = 1024
    num_train: int = 2000
    num_test: int = 500
    epochs: int = 4
    batch_size: int = 50
    lr: float = 1e-3
    eps_list: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3)
    train_steps: int = 5
    periodic_eps: float = 0.3
    periods: int = 2
    eval_num: int = 500
    eval_eps: float = 0.1
    strong_preset: str = "standard"
    strong_num: int = 100
    strong_scale: float = 1.0
    hessian_num: int = 500
    num_eigenvalues: int = 1
    scatter_num: int = 256
    scatter_directions: int = 2
    scatter_scales: tuple[float, ...] = (1e-3, 1e-2, 1e-1)
    surface_eps: tuple[float, ...] = (0.0, 0.2, 0.3)
    surface_points: int = 11
    surface_range: float = 1.0
    surface_num: int = 500
    attack_steps: int = 10
    seed: int = 0

    @classmethod
    def smoke(cls) -> DemoConfig:
        """A tiny configuration that runs in well under a minute on one CPU core."""
        return cls(
            num_train=256,
            num_test=128,
            epochs=2,
            batch_size=64,
            eps_list=(0.0, 0.3),
            train_steps=2,
            eval_num=64,
            strong_num=16,
            strong_scale=0.05,
            hessian_num=64,
            scatter_num=32,
            scatter_directions=1,
            scatter_scales=(1e-2, 1e-1),
            surface_points=5,
            surface_num=64,
            attack_steps=3,
        )

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON types."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One trained model of the demo.

    Attributes:
        tag: folder and table name (``constant_eps0.3``); only a label.
        eps: the training budget (what every stage reads).
        schedule: ``"constant"`` or ``"periodic"``.
        ensemble: the end-of-period ensemble of the (periodic) run ``tag`` names.
    """

    tag: str
    eps: float
    schedule: str
    ensemble: bool = False

    @property
    def folder(self) -> str:
        """The run folder under ``out/train`` (an ensemble uses its run's folder)."""
        return self.tag.removesuffix("+ensemble")


def runs(cfg: DemoConfig, *, ensemble: bool = False) -> list[RunSpec]:
    """The constant-schedule runs, the periodic run and (optionally) its ensemble.

    Example:
        >>> [(r.tag, r.eps) for r in runs(DemoConfig(eps_list=(0.0, 0.1)))]
        [('constant_eps0', 0.0), ('constant_eps0.1', 0.1), ('periodic_eps0.3', 0.3)]
    """
    out = [RunSpec(f"constant_eps{e:g}", float(e), "constant") for e in cfg.eps_list]
    per = RunSpec(f"periodic_eps{cfg.periodic_eps:g}", cfg.periodic_eps, "periodic")
    out.append(per)
    if ensemble:
        out.append(dataclasses.replace(per, tag=per.tag + "+ensemble", ensemble=True))
    return out


def model_kwargs(cfg: DemoConfig) -> dict[str, Any]:
    """``models.build``'s arguments of the demo's model (recorded in each run's
    ``config.json``, so ``checkpoints.load_model(run_folder)`` rebuilds it)."""
    kw: dict[str, Any] = {"width": cfg.width, "dataset": cfg.dataset}
    if cfg.hidden_size is not None:
        kw["hidden_size"] = cfg.hidden_size
    return kw


def train_config(cfg: DemoConfig, run: RunSpec) -> Any:
    """The :class:`landscape.train.TrainConfig` of one run: PGD training at the run's
    eps (step ``2.5 eps / steps``), evaluated per epoch by the quick preset's PGD with
    as many steps."""
    from .. import attacks
    from ..evaluate import preset_attacks
    from ..train import DataRecord, Runtime, TrainConfig

    kw: dict[str, Any] = dict(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        optimizer="adam",
        lr=cfg.lr,
        attack=attacks.PGD(eps=run.eps, steps=cfg.train_steps) if run.eps > 0 else None,
        seed=cfg.seed,
        model=cfg.model,
        model_kwargs=model_kwargs(cfg),
        dataset=DataRecord(cfg.dataset, cfg.num_train, cfg.num_test),
        runtime=Runtime(
            eval_num=min(cfg.eval_num, 200),
            eval_attack=preset_attacks("quick", run.eps, steps=cfg.train_steps)[0],
            co_check_num=min(64, cfg.num_train),
        ),
    )
    if run.schedule == "periodic":
        kw.update(eps_schedule="periodic", lr_schedule="periodic", periods=cfg.periods)
    return TrainConfig(**kw)
