"""Published robust models: our architectures against the public reference code.

The references are RobustBench's own architecture files (``wide_resnet.py``,
``dm_wide_resnet.py``, ``resnet.py``, ``utils_architectures.py`` of the
``robustbench==1.1.1`` wheel, imported by path: the package's ``__init__`` pulls in
torchvision and timm). The wheel is found in ``$LANDSCAPE_REFERENCE`` or
``.venv/reference/`` (``make install`` downloads it with ``pip download --no-deps``);
without it the tests are skipped (a failure in CI). torchvision cannot be installed
beside this project's CPU torch, so ResNet-50 is checked against the list of names
and shapes of torchvision's ``resnet50()`` state dict kept in
``tests/reference/torchvision_resnet50_state_dict.txt`` and a forward pass whose
blocks are RobustBench's bottlenecks (the same computation as torchvision's, under
other names) behind a functional stem.

Each reference gets random weights and random BatchNorm statistics, is saved in a
published file layout, loaded through :func:`landscape.models.load_published` and
compared on real images in float64 (``1e-10``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import os
import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape import checkpoints, data, models
from landscape.io import UntrustedFileError

REPO = Path(__file__).resolve().parents[1]
WHEEL = "robustbench-1.1.1-py3-none-any.whl"
WHEEL_SHA256 = "1286e83d04eb8f21d787d9d21f39f8d6ec7ed02e1755684dd6b931b976c2017c"
ARCH_FILES = ("wide_resnet", "dm_wide_resnet", "resnet", "utils_architectures")
CIFAR10_DM = models._zoo.CIFAR10_DM
TOL = 1e-10  # float64: |ours - reference| <= TOL * max(1, largest |logit|)


def _find_wheel() -> Path | None:
    folders = [os.environ.get("LANDSCAPE_REFERENCE", ""), REPO / ".venv" / "reference"]
    for f in folders:
        if f and (Path(f) / WHEEL).is_file():
            return Path(f) / WHEEL
    return None


@pytest.fixture(scope="session")
def rb(tmp_path_factory):
    """RobustBench's architecture modules, imported by path from the wheel."""
    wheel = _find_wheel()
    if wheel is None:
        msg = (
            f"{WHEEL} not found: run `pip download robustbench==1.1.1 --no-deps -d "
            ".venv/reference` (make install does) or set LANDSCAPE_REFERENCE"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == WHEEL_SHA256
    out = tmp_path_factory.mktemp("robustbench")
    mods = {}
    with zipfile.ZipFile(wheel) as z:
        for name in ARCH_FILES:
            path = out / f"{name}.py"
            path.write_bytes(z.read(f"robustbench/model_zoo/architectures/{name}.py"))
            spec = importlib.util.spec_from_file_location(f"rb_ref_{name}", path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            mods[name] = mod
    return SimpleNamespace(
        wrn=mods["wide_resnet"],
        dm=mods["dm_wide_resnet"],
        resnet=mods["resnet"],
        utils=mods["utils_architectures"],
    )


def _with_mu_sigma(base: type, mean, std, *args, **kw) -> nn.Module:
    """RobustBench's wrappers (``Rice2020OverfittingNet``, ``Wong2020FastNet``, ...):
    a subclass registering ``mu`` / ``sigma`` buffers and normalising first."""

    class Wrapped(base):
        def __init__(self):
            super().__init__(*args, **kw)
            self.register_buffer("mu", torch.tensor(mean).view(1, 3, 1, 1))
            self.register_buffer("sigma", torch.tensor(std).view(1, 3, 1, 1))

        def forward(self, x):
            return super().forward((x - self.mu) / self.sigma)

    return Wrapped()


# The zoo entries as RobustBench's model_zoo/{cifar10,cifar100,imagenet}.py define them.
def _rb_definition(key: str, rb, small: bool = False):
    r = rb
    s = small  # reduced depth/width with the same code paths, for the fast tests
    c100 = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
    rice100 = models._zoo.CIFAR100_RICE
    eng = models._zoo.ENGSTROM_CIFAR
    wrn = r.wrn.WideResNet
    dm = r.dm.DMWideResNet
    dd = dict(depth=16, width=2) if s else {}
    blocks = [1, 1, 1, 1] if s else [3, 4, 6, 3]
    pre = [1, 1, 1, 1] if s else [2, 2, 2, 2]
    return {
        "cifar10/Linf/Standard": lambda: wrn(depth=16 if s else 28, widen_factor=2 if s else 10),
        "cifar10/Linf/Carmon2019Unlabeled": lambda: wrn(depth=16 if s else 28, widen_factor=2 if s else 10, sub_block1=True),
        "cifar10/Linf/Zhang2019Theoretically": lambda: wrn(depth=16 if s else 34, widen_factor=2 if s else 10, sub_block1=True),
        "cifar10/Linf/Rice2020Overfitting": lambda: _with_mu_sigma(wrn, *CIFAR10_DM, depth=16 if s else 34, widen_factor=2 if s else 20, sub_block1=False),
        "cifar10/Linf/Gowal2020Uncovering_28_10_extra": lambda: dm(num_classes=10, **(dd or dict(depth=28, width=10)), activation_fn=r.dm.Swish, mean=CIFAR10_DM[0], std=CIFAR10_DM[1]),
        "cifar10/Linf/Gowal2020Uncovering_70_16_extra": lambda: dm(num_classes=10, **(dd or dict(depth=70, width=16)), activation_fn=r.dm.Swish, mean=CIFAR10_DM[0], std=CIFAR10_DM[1]),
        "cifar10/Linf/Rebuffi2021Fixing_70_16_cutmix_extra": lambda: dm(num_classes=10, **(dd or dict(depth=70, width=16)), activation_fn=r.dm.Swish, mean=CIFAR10_DM[0], std=CIFAR10_DM[1]),
        "cifar10/Linf/Rebuffi2021Fixing_R18_ddpm": lambda: r.dm.DMPreActResNet(num_classes=10, depth=18, width=0, activation_fn=r.dm.Swish, mean=CIFAR10_DM[0], std=CIFAR10_DM[1]),
        "cifar10/Linf/Wang2023Better_WRN-28-10": lambda: dm(num_classes=10, **(dd or dict(depth=28, width=10)), activation_fn=nn.SiLU, mean=CIFAR10_DM[0], std=CIFAR10_DM[1]),
        "cifar10/Linf/Wong2020Fast": lambda: _with_mu_sigma(r.resnet.PreActResNet, *CIFAR10_DM, r.resnet.PreActBlock, pre),
        "cifar10/Linf/Engstrom2019Robustness": lambda: _with_mu_sigma(r.resnet.ResNet, *eng, r.resnet.Bottleneck, blocks),
        "cifar10/L2/Standard": lambda: wrn(depth=16 if s else 28, widen_factor=2 if s else 10),
        "cifar10/L2/Engstrom2019Robustness": lambda: _with_mu_sigma(r.resnet.ResNet, *eng, r.resnet.Bottleneck, blocks),
        "cifar10/L2/Rice2020Overfitting": lambda: _with_mu_sigma(r.resnet.PreActResNet, *CIFAR10_DM, r.resnet.PreActBlockV2, pre, bn_before_fc=True),
        "cifar10/L2/Rebuffi2021Fixing_70_16_cutmix_extra": lambda: dm(num_classes=10, **(dd or dict(depth=70, width=16)), activation_fn=r.dm.Swish, mean=CIFAR10_DM[0], std=CIFAR10_DM[1]),
        "cifar10/L2/Wang2023Better_WRN-28-10": lambda: dm(num_classes=10, **(dd or dict(depth=28, width=10)), activation_fn=nn.SiLU, mean=CIFAR10_DM[0], std=CIFAR10_DM[1]),
        "cifar100/Linf/Rice2020Overfitting": lambda: _with_mu_sigma(r.resnet.PreActResNet, *rice100, r.resnet.PreActBlock, pre, num_classes=100, bn_before_fc=True, out_shortcut=True),
        "cifar100/Linf/Gowal2020Uncovering_extra": lambda: dm(num_classes=100, **(dd or dict(depth=70, width=16)), activation_fn=r.dm.Swish, mean=c100[0], std=c100[1]),
        "cifar100/Linf/Rebuffi2021Fixing_70_16_cutmix_ddpm": lambda: dm(num_classes=100, **(dd or dict(depth=70, width=16)), activation_fn=r.dm.Swish, mean=c100[0], std=c100[1]),
        "cifar100/Linf/Wang2023Better_WRN-28-10": lambda: dm(num_classes=100, **(dd or dict(depth=28, width=10)), activation_fn=nn.SiLU, mean=c100[0], std=c100[1]),
    }[key]  # fmt: skip


# Published parameter counts (RobustBench's model cards quote 36.5 M for WRN-28-10 and
# 266.8 M for WRN-70-16); exact figures from the reference code, without the
# never-used sub_block1 of the TRADES checkpoints.
PARAMS = {
    "cifar10/Linf/Standard": 36_479_194,
    "cifar10/Linf/Zhang2019Theoretically": 46_160_474,
    "cifar10/Linf/Rice2020Overfitting": 184_531_674,
    "cifar10/Linf/Gowal2020Uncovering_70_16_extra": 266_796_506,
    "cifar10/Linf/Wang2023Better_WRN-28-10": 36_479_194,
    "cifar10/Linf/Wong2020Fast": 11_171_146,
    "cifar10/L2/Rice2020Overfitting": 11_172_170,
    "cifar10/Linf/Engstrom2019Robustness": 23_520_842,
    "imagenet/Linf/Salman2020Do_R50": 25_557_032,
}
CIFAR_KEYS = [k for k in models.ZOO if not k.startswith("imagenet/")]
# One entry per distinct reference definition (the others differ only in depth and
# width, which the full-size slow test covers).
DISTINCT = [
    "cifar10/Linf/Standard",  # TRADES WRN, no normalisation
    "cifar10/Linf/Carmon2019Unlabeled",  # ... with the unused sub_block1
    "cifar10/Linf/Rice2020Overfitting",  # ... with mu / sigma buffers
    "cifar10/Linf/Gowal2020Uncovering_70_16_extra",  # DeepMind WRN, Swish
    "cifar10/Linf/Wang2023Better_WRN-28-10",  # DeepMind WRN, nn.SiLU
    "cifar100/Linf/Gowal2020Uncovering_extra",  # DeepMind WRN, 100 classes
    "cifar10/Linf/Rebuffi2021Fixing_R18_ddpm",  # DeepMind PreAct ResNet-18
    "cifar10/Linf/Wong2020Fast",  # PreActBlock, no final BN
    "cifar10/L2/Rice2020Overfitting",  # PreActBlockV2, final BN
    "cifar100/Linf/Rice2020Overfitting",  # out_shortcut, final BN, 100 classes
    "cifar10/Linf/Engstrom2019Robustness",  # CIFAR ResNet-50 (bottleneck)
]


def _n(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _layout(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BatchNorm statistics (eval-mode BN is then not identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.2, generator=g)
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0, (2 / fan_in) ** 0.5, generator=g)
                if m.bias is not None:
                    m.bias.normal_(0, 0.1, generator=g)
    return model.double().eval()


@pytest.fixture(scope="module")
def images(data_root) -> torch.Tensor:
    """Real 32x32 images in float64: the 20 CIFAR-10 and 20 CIFAR-100 sample PNGs and
    8 test images of the CIFAR-10 JPEG archive."""
    from PIL import Image

    pngs = sorted((data_root / "samples").glob("cifar10*_*.png"))
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in pngs]
    with tarfile.open(data_root / "cifar10-jpeg.tar.gz") as tar:
        for m in tar:
            if "/test/" in m.name and m.name.endswith(".jpg"):
                arrays.append(
                    np.asarray(Image.open(io.BytesIO(tar.extractfile(m).read())))
                )
                if len(arrays) == len(pngs) + 8:
                    break
    assert len(arrays) == 48
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).double() / 255
    return x


@pytest.fixture(scope="module")
def few(images) -> torch.Tensor:
    """10 of them (CIFAR-10 and CIFAR-100 PNGs, two JPEGs): enough for a logit check
    and cheap in float64."""
    return images[::5]


def _check_logits(ours: nn.Module, ref: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == want.shape and got.dtype == torch.float64
    assert float(want.std()) > 1e-3  # the reference is not degenerate
    # random weights give logits up to ~1e5 in the 70-layer nets, where 1e-10 is below
    # float64's resolution: the bound scales with the largest logit (relative 1e-10)
    scale = max(1.0, float(want.abs().max()))
    torch.testing.assert_close(got, want, rtol=0, atol=TOL * scale)


# --------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("key", CIFAR_KEYS)
def test_zoo_entries_have_the_reference_layout(rb, key):
    """Every CIFAR entry builds the state-dict layout of RobustBench's definition."""
    with torch.device("meta"):
        ref = _rb_definition(key, rb)()
        ours = models.build(key)
    want = _layout(ref)
    for k in ("mu", "sigma"):  # RobustBench's wrapper buffers are our normalize.*
        want.pop(k, None)
    want = {k: v for k, v in want.items() if not k.startswith("sub_block1.")}
    got = _layout(ours)
    assert got.pop("normalize.mean") == (3,) and got.pop("normalize.std") == (3,)
    assert got == want and list(got) == list(want)  # names, shapes and order
    entry = models.ZOO[key]
    assert ours.normalize.mean.tolist() == pytest.approx(entry.mean)
    if key in PARAMS:
        assert (
            _n(ours)
            == PARAMS[key]
            == _n(ref)
            - sum(
                p.numel()
                for n, p in ref.named_parameters()
                if n.startswith("sub_block1.")
            )
        )


def test_resnet50_has_torchvisions_layout_and_count():
    ref = [
        line.split()
        for line in (REPO / "tests/reference/torchvision_resnet50_state_dict.txt")
        .read_text()
        .splitlines()
        if line and not line.startswith("#")
    ]
    assert len(ref) == 320
    for key in ("imagenet/Linf/Salman2020Do_R50", "imagenet/Linf/Standard_R50"):
        with torch.device("meta"):
            ours = models.build(key)
        got = [
            [k, "x".join(map(str, s)) or "-"]
            for k, s in _layout(ours).items()
            if not k.startswith("normalize.")
        ]
        assert got == ref
        assert _n(ours) == PARAMS["imagenet/Linf/Salman2020Do_R50"]


# --------------------------------------------------------------------------- logits


def _save(tmp_path: Path, obj, name: str = "ckpt.pt") -> Path:
    p = tmp_path / name
    torch.save(obj, p)
    return p


@pytest.mark.data
@pytest.mark.parametrize("key", DISTINCT)
def test_small_reference_logits_identical(rb, few, tmp_path, key):
    """Each entry's architecture at a reduced depth/width (every code path: equal
    and projecting blocks, both strides, sub_block1, mu/sigma, Swish/SiLU) loads a
    reference-built file and gives the reference's logits."""
    torch.manual_seed(0)
    ref = _randomise(_rb_definition(key, rb, small=True)())
    entry = models.ZOO[key]
    kw = dict(entry.arch_kwargs)
    if entry.arch in ("wide_resnet", "dm_wide_resnet"):
        kw.update(depth=16, widen_factor=2)
    elif entry.arch in ("cifar_resnet", "cifar_preact_resnet"):
        kw.update(num_blocks=(1, 1, 1, 1))
    path = _save(tmp_path, {"state_dict": ref.state_dict(), "epoch": 3})
    ours = models.load_published(
        path,
        entry.arch,
        dataset=entry.dataset,
        mean=entry.mean,
        std=entry.std,
        dtype=torch.float64,
        **kw,
    )
    _check_logits(ours, ref, few)


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("key", CIFAR_KEYS)
def test_full_size_reference_logits_identical(rb, images, tmp_path, key):
    """The published configurations themselves (WRN-70-16 included), by zoo name."""
    ref = _randomise(_rb_definition(key, rb)())
    path = _save(tmp_path, ref.state_dict())
    ours = models.load_published(path, key, dtype=torch.float64)
    assert ours.zoo_entry.key == key
    _check_logits(ours, ref, images[:6])


def _imagenet_images(images: torch.Tensor, size: int) -> torch.Tensor:
    from PIL import Image

    out = []
    for img in images[:6]:
        arr = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        pil = data.resize_center_crop(Image.fromarray(arr), size=size, crop=size)
        out.append(torch.from_numpy(np.array(pil)).permute(2, 0, 1).double() / 255)
    return torch.stack(out)


class _RBBottleneckResNet50(nn.Module):
    """A ResNet-50 forward built from RobustBench's ``Bottleneck`` blocks (torchvision's
    computation: 1x1, 3x3 with the stride, 1x1, projection shortcut) behind a
    functional 7x7 / max-pool stem and a global-average-pool head."""

    def __init__(self, rb, num_blocks):
        super().__init__()
        self.net = rb.resnet.ResNet(rb.resnet.Bottleneck, num_blocks, num_classes=1000)
        self.stem = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn = nn.BatchNorm2d(64)
        self.fc = nn.Linear(2048, 1000)
        self.register_buffer(
            "mean", torch.tensor(models._zoo.IMAGENET[0]).view(1, 3, 1, 1)
        )
        self.register_buffer(
            "std", torch.tensor(models._zoo.IMAGENET[1]).view(1, 3, 1, 1)
        )

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = F.max_pool2d(F.relu(self.bn(self.stem(x))), 3, 2, 1)
        n = self.net
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))

    def torchvision_state_dict(self) -> dict[str, torch.Tensor]:
        """Its weights under torchvision's names (``shortcut`` -> ``downsample``)."""
        sd = {}
        for k, v in self.net.state_dict().items():
            if k.startswith("layer"):
                sd[k.replace(".shortcut.", ".downsample.")] = v
        for k, v in self.stem.state_dict().items():
            sd[f"conv1.{k}"] = v
        for k, v in self.bn.state_dict().items():
            sd[f"bn1.{k}"] = v
        for k, v in self.fc.state_dict().items():
            sd[f"fc.{k}"] = v
        return sd


@pytest.mark.data
@pytest.mark.parametrize(
    "num_blocks", [(1, 1, 1, 1), pytest.param((3, 4, 6, 3), marks=pytest.mark.slow)]
)
def test_resnet50_forward_matches_reference_blocks(rb, few, tmp_path, num_blocks):
    ref = _randomise(_RBBottleneckResNet50(rb, list(num_blocks)))
    sd = ref.torchvision_state_dict()
    # RobustBench's ImageNet layout: normalize_model(resnet50(), mu, sigma)
    norm = {"normalize.mean": ref.mean, "normalize.std": ref.std}
    wrapped = {**norm, **{f"model.{k}": v for k, v in sd.items()}}
    path = _save(tmp_path, wrapped)
    ours = models.load_published(
        path, "resnet50", dataset="imagenet", num_blocks=num_blocks, dtype=torch.float64
    )
    _check_logits(ours, ref, _imagenet_images(few, 64))


# --------------------------------------------------------------------------- file layouts


def _small_wrn(rb, **kw):
    return _randomise(
        _with_mu_sigma(rb.wrn.WideResNet, *CIFAR10_DM, depth=10, widen_factor=1, **kw)
    )


def _robustness_layout(sd: dict, mean, std) -> dict:
    """MadryLab ``robustness``: AttackerModel under DataParallel."""
    mean, std = torch.as_tensor(mean).view(3, 1, 1), torch.as_tensor(std).view(3, 1, 1)
    out = {
        "module.normalizer.new_mean": mean,
        "module.normalizer.new_std": std,
        "module.attacker.normalize.new_mean": mean,
        "module.attacker.normalize.new_std": std,
    }
    for k, v in sd.items():
        out[f"module.model.{k}"] = v
        out[f"module.attacker.model.{k}"] = v
    return {"model": out, "optimizer": {"state": {}}, "epoch": 150}


LAYOUTS = {
    "bare": lambda sd: sd,
    "state_dict": lambda sd: {"state_dict": sd, "epoch": 200, "best_acc": 0.5},
    "model_state_dict": lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {}},
    "model": lambda sd: {"model": sd},
    "dataparallel": lambda sd: {
        "state_dict": {f"module.{k}": v for k, v in sd.items()}
    },
    "ddp_twice": lambda sd: {f"module.module.{k}": v for k, v in sd.items()},
    "no_num_batches_tracked": lambda sd: {
        k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")
    },
    "nested": lambda sd: {"model": {"state_dict": sd}},
}


@pytest.mark.data
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_file_layout_loads(rb, images, tmp_path, layout):
    ref = _small_wrn(rb, sub_block1=True)
    sd = ref.state_dict()
    if layout != "bare":  # files saved from the authors' code hold no mu / sigma
        sd = {k: v for k, v in sd.items() if k not in ("mu", "sigma")}
    path = _save(tmp_path, LAYOUTS[layout](sd))
    ours = models.load_published(
        path, "wide_resnet", dataset="cifar10", depth=10, widen_factor=1,
        mean=CIFAR10_DM[0], std=CIFAR10_DM[1], dtype=torch.float64,
    )  # fmt: skip
    _check_logits(ours, ref, images)
    assert any("sub_block1" in n for n in ours.checkpoint_notes)


@pytest.mark.data
def test_robustness_library_layout(rb, few, tmp_path):
    ref = _randomise(
        _with_mu_sigma(
            rb.resnet.ResNet,
            *models._zoo.ENGSTROM_CIFAR,
            rb.resnet.Bottleneck,
            [1, 1, 1, 1],
        )  # fmt: skip
    )
    sd = {k: v for k, v in ref.state_dict().items() if k not in ("mu", "sigma")}
    path = _save(
        tmp_path, _robustness_layout(sd, ref.mu.flatten(), ref.sigma.flatten())
    )
    ours = models.load_published(
        path, "cifar_resnet", dataset="cifar10", num_blocks=(1, 1, 1, 1),
        dtype=torch.float64,
    )  # fmt: skip
    # the file's normalizer (not cifar10's default statistics) is what ours uses
    assert torch.equal(ours.normalize.std, ref.sigma.flatten())
    _check_logits(ours, ref, few)
    assert any("attacker" in n for n in ours.checkpoint_notes)


def test_registry_normalisation_when_the_file_has_none(tmp_path):
    net = models.build("Wong2020Fast")
    sd = {k: v for k, v in net.state_dict().items() if not k.startswith("normalize.")}
    path = _save(tmp_path, {"state_dict": sd})
    m = models.load_published(path, "Wong2020Fast")
    assert m.normalize.std.tolist() == pytest.approx(models._zoo.CIFAR10_DM[1])
    assert not m.training and m.zoo_entry.eps == pytest.approx(8 / 255)


# --------------------------------------------------------------------------- errors


def test_mismatch_is_one_line_naming_the_keys(tmp_path):
    sd = models.build(
        "wide_resnet", dataset="cifar10", depth=10, widen_factor=2
    ).state_dict()
    path = _save(tmp_path, {"state_dict": sd})
    with pytest.raises(models.CheckpointMismatchError) as info:
        models.load_published(path, "wide_resnet", dataset="cifar100", depth=16,
                              widen_factor=2)  # fmt: skip
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    assert "missing" in msg and "block1.layer.1.bn1.weight" in msg
    assert "shapes differ" in msg and "fc.weight (10, 128) in the file" in msg
    with pytest.raises(models.CheckpointMismatchError, match="unexpected .*extra"):
        sd2 = {**sd, "extra.weight": torch.zeros(1)}
        models.load_published(_save(tmp_path, sd2, "b.pt"), "wide_resnet",
                              dataset="cifar10", depth=10, widen_factor=2)  # fmt: skip
    _save(tmp_path, {"epoch": 3, "args": "x"}, "c.pt")
    with pytest.raises(models.CheckpointMismatchError, match="not a state dict"):
        models.load_published(tmp_path / "c.pt", "Standard")


def test_pickled_objects_are_refused(tmp_path):
    sd = models.build("Wong2020Fast").state_dict()
    path = _save(tmp_path, {"state_dict": sd, "args": argparse.Namespace(lr=0.1)})
    with pytest.raises(UntrustedFileError):
        models.load_published(path, "Wong2020Fast")
    with pytest.warns(UserWarning, match="weights_only=False"):
        m = models.load_published(path, "Wong2020Fast", trust=True)
    assert torch.equal(m.linear.weight, sd["linear.weight"])


def test_zoo_names_and_errors():
    assert models.zoo_entry("Standard").key == "cifar10/Linf/Standard"
    assert models.zoo_entry("Standard", threat_model="l2").eps == 0.5
    assert (
        models.zoo_entry("engstrom2019robustness", dataset="imagenet").arch
        == "resnet50"
    )
    assert (
        models.zoo_entry("Rice2020Overfitting", dataset="cifar10-jpeg").arch
        == "wide_resnet"
    )
    with pytest.raises(ValueError, match="not a cifar100 model"):
        models.zoo_entry("Carmon2019Unlabeled", dataset="cifar100")
    with pytest.raises(ValueError, match="known: .*Carmon2019Unlabeled"):
        models.zoo_entry("Carmon2020")
    with pytest.raises(ValueError, match="fixes its architecture"):
        models.build("Carmon2019Unlabeled", width=2)
    for e in models.ZOO.values():
        assert 0 <= e.autoattack_acc <= e.clean_acc <= 100
        assert e.in_shape[0] == len(e.mean) == len(e.std) == 3
    with torch.device("meta"):
        m = models.build("Gowal2020Uncovering_extra")  # cifar100 only: no dataset
    assert m.logits.out_features == 100 and isinstance(m.relu, nn.SiLU)
    with torch.device("meta"):
        assert models.build(**m.build_config).zoo_entry is m.zoo_entry


def test_checkpoints_load_a_zoo_file_by_name(tmp_path):
    """The one loader of every CLI (``checkpoints.load_model``, ``--arch NAME``) takes
    zoo files; ``published_config`` gives the entry's data set, eps and norm."""
    net = models.build("Wong2020Fast")
    sd = {f"module.{k}": v for k, v in net.state_dict().items() if "normalize" not in k}
    path = _save(tmp_path, {"state_dict": sd, "epoch": 30})
    m = checkpoints.load_model(path, arch="Wong2020Fast")
    assert torch.equal(m.linear.weight, net.linear.weight) and not m.training
    cfg = checkpoints.published_config(m)
    assert cfg["eps"] == pytest.approx(8 / 255) and cfg["norm"] == "linf"
    assert checkpoints.recorded_dataset(cfg) == "cifar10"
    with pytest.raises(ValueError, match="do not fit the architecture .*missing"):
        checkpoints.load_model(path, arch="Rebuffi2021Fixing_R18_ddpm")


@pytest.mark.data
def test_report_cli_end_to_end_on_a_zoo_format_checkpoint(
    data_root, tmp_path, monkeypatch, capsys
):
    """``python -m landscape.report FILE --arch ... --dataset cifar10-jpeg`` on a file in
    Carmon et al.'s layout (state_dict, module. prefix, sub_block1, no normalisation):
    every section, at a tiny budget (the WRN-10-1 of the same code)."""
    import dataclasses
    import json

    from landscape import report

    tiny = dataclasses.replace(
        report.BUDGETS["quick"], name="quick", eval_num=24, eval_scale=0.1,
        check_samples=8, hessian_num=16, num_eigenvalues=1, density_max_iter=4,
        attack_steps=1,
        surface_num=16, grid=3, scatter_num=8, scatter_directions=1,
        scatter_scales=(1e-3, 1e-2),
    )  # fmt: skip
    monkeypatch.setitem(report.BUDGETS, "quick", tiny)
    kw = {"depth": 10, "widen_factor": 1, "mean": [0, 0, 0], "std": [1, 1, 1]}
    net = models.build("wide_resnet", dataset="cifar10", **kw)
    sd = {f"module.{k}": v for k, v in net.state_dict().items() if "normalize" not in k}
    sd.update({f"module.sub_block1.{k[7:]}": v for k, v in net.state_dict().items()
               if k.startswith("block1.")})  # fmt: skip
    path = _save(tmp_path, {"state_dict": sd, "epoch": 10, "prec": 0.5})
    out = tmp_path / "rep"
    argv = [str(path), "--arch", "wide_resnet", "--arch-kwargs", json.dumps(kw),
            "--dataset", "cifar10-jpeg", "--data-root", str(data_root), "-o", str(out),
            "--no-progress"]  # fmt: skip
    assert report.main(argv) == 0, capsys.readouterr().err
    num = json.loads((out / "report.json").read_text())
    assert set(num["sections"]) == {"accuracy", "curvature", "surface", "scattering"}
    assert num["eps"] == pytest.approx(8 / 255)  # cifar10-jpeg's usual budget
    assert (out / "report.html").exists()
