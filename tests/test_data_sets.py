"""The data sets of the published models: CIFAR-100, SVHN, Tiny-ImageNet, ImageNet
folders, and the decoded-array cache. Each reader is tested on small files written in
the real format (the real files are not on this machine), with checksum and
corrupt-file cases."""

from __future__ import annotations

import dataclasses
import logging
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape import _cli, data
from landscape.data import _cache, _load
from landscape.io import CorruptFileError

G = torch.Generator


def _g(seed: int = 0) -> torch.Generator:
    return G().manual_seed(seed)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Decoded arrays go to a per-test cache (never the user's)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    _cache._MEMO.clear()


def _small(name: str, monkeypatch, **changes) -> data.DatasetSpec:
    spec = dataclasses.replace(data.DATASETS[name], **changes)
    monkeypatch.setitem(data.DATASETS, name, spec)
    return spec


# --------------------------------------------------------------------------- CIFAR-100


def _write_cifar100(folder: Path, rng, n_train=30, n_test=10) -> dict:
    folder.mkdir(parents=True)
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, size=n)]
        batch = {  # the real file: bytes keys, list labels, coarse labels too
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
            b"batch_label": f"{name} batch".encode(),
            b"fine_labels": fine,
            b"coarse_labels": [v // 5 for v in fine],
            b"data": x,
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        out[name] = (x, fine)
    names = list(data.DATASETS["cifar100"].classes)
    with open(folder / "meta", "wb") as f:
        pickle.dump(
            {
                b"fine_label_names": [n.encode() for n in names],
                b"coarse_label_names": [],
            },
            f,
        )
    return out


def test_cifar100_reader_checksums_and_download(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    src = tmp_path / "src" / "cifar-100-python"
    truth = _write_cifar100(src, rng)
    # the published md5s reject these files
    with pytest.raises(CorruptFileError, match="md5"):
        data.load_dataset("cifar100", tmp_path / "src", split="test", download=False)
    files = {f: data.md5sum(src / f) for f in ("train", "test", "meta")}
    archive = tmp_path / "mirror" / "cifar-100-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar-100-python")
    _small(
        "cifar100",
        monkeypatch,
        files=files,
        num_samples={"train": 30, "test": 10},
        archive=("cifar-100-python.tar.gz", data.md5sum(archive)),
    )
    monkeypatch.setitem(data.MIRRORS, "cifar100", [archive.parent.as_uri()])
    root = tmp_path / "root"
    x, y = data.load_dataset("cifar100", root, split="test")  # downloads, extracts
    xs, fine = truth["test"]
    assert x.shape == (10, 3, 32, 32) and y.tolist() == fine  # the fine labels
    ref = torch.from_numpy(xs.reshape(10, 3, 32, 32).astype(np.float32)) / 255
    assert torch.equal(x, ref)
    xt, yt = data.load_dataset("cifar100", root, num_samples=15, generator=_g())
    assert len(yt) == 15 and xt.dtype == torch.float32
    # a truncated batch is a clear error
    raw = (root / "cifar-100-python" / "train").read_bytes()
    (root / "cifar-100-python" / "train").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="md5"):
        data.load_dataset("cifar100", root, download=False)
    with pytest.raises(CorruptFileError, match="pickle"):
        data.load_dataset("cifar100", root, download=False, verify=False)


# --------------------------------------------------------------------------- SVHN


def _write_svhn(path: Path, rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    path.parent.mkdir(parents=True, exist_ok=True)
    X = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)  # 10 means the digit 0
    y[0, 0] = 10
    scipy.io.savemat(path, {"X": X, "y": y})  # MATLAB v5, as the published files
    return X, y


def test_svhn_reader_layout_labels_and_corruption(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    folder = tmp_path / "svhn"
    X, ym = _write_svhn(folder / "train_32x32.mat", rng, 12)
    _write_svhn(folder / "test_32x32.mat", rng, 5)
    x, y = data.read_svhn_mat(folder / "train_32x32.mat")
    assert x.shape == (12, 3, 32, 32) and x.dtype == np.uint8
    assert np.array_equal(x[3, 1], X[:, :, 1, 3])  # (H, W, C, N) -> (N, C, H, W)
    assert y[0] == 0 and np.array_equal(y, ym.ravel() % 10)
    with pytest.raises(CorruptFileError, match="md5"):
        data.load_dataset("svhn", tmp_path, download=False)
    files = {f: data.md5sum(folder / f) for f in ("train_32x32.mat", "test_32x32.mat")}
    _small("svhn", monkeypatch, files=files, num_samples={"train": 12, "test": 5})
    xt, yt = data.load_dataset("svhn", tmp_path, split="test", download=False)
    assert xt.shape == (5, 3, 32, 32) and 0 <= int(yt.min()) and int(yt.max()) <= 9
    raw = (folder / "test_32x32.mat").read_bytes()
    (folder / "test_32x32.mat").write_bytes(raw[:300])
    with pytest.raises(CorruptFileError, match="not a readable MATLAB file"):
        data.read_svhn_mat(folder / "test_32x32.mat")
    import scipy.io

    scipy.io.savemat(folder / "other.mat", {"images": np.zeros((2, 2))})
    with pytest.raises(CorruptFileError, match="'X' and 'y'"):
        data.read_svhn_mat(folder / "other.mat")
    with pytest.raises(data.DatasetNotFoundError, match="download svhn"):
        data.load_dataset("svhn", tmp_path / "empty", download=False)


# --------------------------------------------------------------------------- Tiny-ImageNet

WNIDS = ("n02124075", "n01443537", "n09246464")  # wnids.txt order is not sorted


def _jpeg(path: Path, rng, size=64, gray=False) -> np.ndarray:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size) if gray else (size, size, 3)
    a = rng.integers(0, 256, size=shape, dtype=np.uint8)
    Image.fromarray(a).save(path, quality=95)
    return a


def _write_tiny(root: Path, rng) -> Path:
    top = root / "tiny-imagenet-200"
    (top).mkdir(parents=True)
    (top / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (top / "words.txt").write_text("".join(f"{w}\tthing {w}\n" for w in WNIDS))
    for w in WNIDS:
        for i in range(3):
            _jpeg(top / "train" / w / "images" / f"{w}_{i}.JPEG", rng, gray=i == 1)
        (top / "train" / w / f"{w}_boxes.txt").write_text("")
    lines = []
    for i, w in enumerate(["n09246464", "n02124075", "n02124075", "n01443537"]):
        _jpeg(top / "val" / "images" / f"val_{i}.JPEG", rng)
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (top / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    _jpeg(top / "test" / "images" / "test_0.JPEG", rng)
    return top


def test_tiny_imagenet_folder_and_zip(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    top = _write_tiny(tmp_path / "dir", rng)
    entries, wnids = data._images.tiny_imagenet_entries(top, "test")
    assert wnids == tuple(sorted(WNIDS))  # ImageFolder's class order
    # val_annotations.txt gives the labels: n09246464 -> 2, n02124075 -> 1, n01443537 -> 0
    assert sorted((e[1].rsplit("/", 1)[-1], e[0]) for e in entries) == [
        ("val_0.JPEG", 2), ("val_1.JPEG", 1), ("val_2.JPEG", 1), ("val_3.JPEG", 0)
    ]  # fmt: skip
    zpath = tmp_path / "zip" / "tiny-imagenet-200.zip"
    zpath.parent.mkdir()
    with zipfile.ZipFile(zpath, "w") as z:
        for p in sorted(top.rglob("*")):
            z.write(p, p.relative_to(top.parent).as_posix())
    _small(
        "tiny-imagenet",
        monkeypatch,
        num_samples={"train": 9, "test": 4},
        archive=("tiny-imagenet-200.zip", data.md5sum(zpath)),
        n_classes=3,
    )
    xd, yd = data.load_dataset("tiny-imagenet", tmp_path / "dir", download=False)
    xz, yz = data.load_dataset("tiny-imagenet", tmp_path / "zip", download=False)
    assert xd.shape == (9, 3, 64, 64) and torch.equal(xd, xz) and torch.equal(yd, yz)
    assert yd.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    gray = xd[1]  # n01443537_1 was written grayscale: converted to RGB
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    xs, ys = data.load_dataset("tiny-imagenet", tmp_path / "zip", num_samples=3,
                               generator=_g())  # fmt: skip
    assert sorted(ys.tolist()) == [0, 1, 2]
    # the zip's checksum is verified; a bad annotation is named
    _small("tiny-imagenet", monkeypatch, archive=("tiny-imagenet-200.zip", "0" * 32))
    with pytest.raises(CorruptFileError, match="md5"):
        data.load_dataset("tiny-imagenet", tmp_path / "zip", download=False)
    (top / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn00000000\t0\n")
    with pytest.raises(CorruptFileError, match="line 1"):
        data._images.tiny_imagenet_entries(top, "test")
    zpath.write_bytes(zpath.read_bytes()[:200])
    with pytest.raises(CorruptFileError, match="zip"):
        data._images.tiny_imagenet_entries(zpath, "train")
    with pytest.raises(data.DatasetNotFoundError, match="download tiny-imagenet"):
        data.load_dataset("tiny-imagenet", tmp_path / "none", download=False)


# --------------------------------------------------------------------------- ImageNet


def test_resize_center_crop_is_torchvisions():
    from PIL import Image

    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, size=(300, 256, 3), dtype=np.uint8)  # short side 256
    out = np.asarray(data.resize_center_crop(Image.fromarray(a)))
    top, left = int(round((300 - 224) / 2)), int(round((256 - 224) / 2))
    assert np.array_equal(out, a[top : top + 224, left : left + 224])  # a pure crop
    b = Image.fromarray(rng.integers(0, 256, size=(375, 500, 3), dtype=np.uint8))
    # shorter side 375 -> 256, longer int(256 * 500 / 375) = 341; crop at round(58.5)
    want = np.asarray(b.resize((341, 256), Image.BILINEAR))[16:240, 58:282]
    assert np.array_equal(np.asarray(data.resize_center_crop(b)), want)


def test_imagenet_folder_standard_labels(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    val = tmp_path / "imagenet" / "val"
    sizes = {"n01440764": (300, 260), "n01443537": (230, 400), "n15075141": (256, 256)}
    for w, (h, wd) in sizes.items():
        for i in range(2):
            from PIL import Image

            p = val / w / f"ILSVRC2012_val_{i:08d}_{w}.JPEG"
            p.parent.mkdir(parents=True, exist_ok=True)
            img = rng.integers(0, 256, size=(h, wd, 3), dtype=np.uint8)
            Image.fromarray(img).save(p)
    x, y = data.load_dataset("imagenet", tmp_path, split="test")
    assert x.shape == (6, 3, 224, 224) and y.tolist() == [0, 0, 1, 1, 999, 999]
    xs, ys = data.load_dataset("imagenet", tmp_path, split="test", num_samples=3,
                               generator=_g())  # fmt: skip
    assert sorted(ys.tolist()) == [0, 1, 999]
    monkeypatch.setattr(_load, "IMAGENET_MAX_FULL", 4)
    with pytest.raises(ValueError, match="pass num_samples"):
        data.load_dataset("imagenet", tmp_path, split="test")
    (val / "cats").mkdir()
    with pytest.raises(ValueError, match="not an ILSVRC-2012 class folder"):
        data.load_dataset("imagenet", tmp_path, split="test", num_samples=3)
    with pytest.raises(FileNotFoundError, match="val/<wnid>"):
        data.load_dataset("imagenet", tmp_path / "nothing", split="test")


# --------------------------------------------------------------------------- the cache


def _jpeg_folder(root: Path, rng, per_class: int = 2) -> Path:
    classes = data.DATASETS["cifar10-jpeg"].classes
    src = root / "cifar10-jpeg"
    for split in ("train", "test"):
        for c in classes:
            for i in range(per_class):
                _jpeg(src / split / c / f"{i:04d}.jpg", rng, size=32)
    archive = root / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar10-jpeg")
    return archive


def test_decoded_cache_written_once_verified_and_renewed(tmp_path, monkeypatch, caplog):
    rng = np.random.default_rng(5)
    root = tmp_path / "data"
    archive = _jpeg_folder(root, rng)
    import shutil

    shutil.rmtree(root / "cifar10-jpeg")  # the archive alone, as in ../shared/data
    _small("cifar10-jpeg", monkeypatch, num_samples={"train": 20, "test": 20})
    caplog.set_level(logging.WARNING, logger="landscape.data")
    x1, y1 = data.load_dataset("cifar10-jpeg", root, split="test")
    cached = _cache.cache_folder() / "cifar10-jpeg-test.npz"
    assert cached.exists() and "decoding cifar10-jpeg test" in caplog.text
    assert not list(cached.parent.glob(".*.part"))  # written atomically
    # a later process reads the cache and decodes nothing
    _cache._MEMO.clear()

    def no_decode(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(_load, "read_image_folder", no_decode)
    x2, y2 = data.load_dataset("cifar10-jpeg", root, split="test")
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    # a changed source is decoded again
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    _small("cifar10-jpeg", monkeypatch, num_samples={"train": 20, "test": 20})
    _cache._MEMO.clear()
    caplog.clear()
    archive.write_bytes(b"")
    _jpeg_folder(root, np.random.default_rng(6))
    shutil.rmtree(root / "cifar10-jpeg")
    x3, _ = data.load_dataset("cifar10-jpeg", root, split="test")
    assert "changed since it was decoded" in caplog.text and not torch.equal(x1, x3)
    # a damaged cache file is replaced, never trusted
    _cache._MEMO.clear()
    caplog.clear()
    with np.load(cached) as f:  # arrays changed behind the record's back
        parts = {k: f[k] for k in f.files}
    parts["x"] = parts["x"].copy()
    parts["x"][0, 0, 0, 0] ^= 1
    np.savez(cached, **parts)
    x4, _ = data.load_dataset("cifar10-jpeg", root, split="test")
    assert torch.equal(x3, x4) and "fails its checksum" in caplog.text
    _cache._MEMO.clear()
    raw = bytearray(cached.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a flipped byte: the zip's own CRC refuses it
    cached.write_bytes(bytes(raw))
    x5, _ = data.load_dataset("cifar10-jpeg", root, split="test")
    assert torch.equal(x3, x5) and "unreadable" in caplog.text
    _cache._MEMO.clear()
    cached.write_bytes(b"PK\x03\x04 truncated")
    x6, _ = data.load_dataset("cifar10-jpeg", root, split="test")
    assert torch.equal(x3, x6)


# --------------------------------------------------------------------------- CLIs


def test_every_cli_dataset_flag_takes_the_new_sets(tmp_path, monkeypatch):
    """``--dataset`` reaches ``data.load_dataset`` through ``_cli.data_options`` in
    every tool."""
    rng = np.random.default_rng(7)
    folder = tmp_path / "svhn"
    _write_svhn(folder / "train_32x32.mat", rng, 12)
    _write_svhn(folder / "test_32x32.mat", rng, 5)
    files = {f: data.md5sum(folder / f) for f in ("train_32x32.mat", "test_32x32.mat")}
    _small("svhn", monkeypatch, files=files, num_samples={"train": 12, "test": 5})
    p = _cli.parser("tool", "``tool``: test.")
    _cli.add_data(p, split="test")
    _cli.add_common(p, num_samples=4)
    args = p.parse_args(["--dataset", "svhn", "--data-root", str(tmp_path)])
    x, y = data.load_dataset(**_cli.data_options(args))
    assert x.shape == (4, 3, 32, 32) and len(y) == 4
    assert "tiny-imagenet" in " ".join(p.format_help().split())
