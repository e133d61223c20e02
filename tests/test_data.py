"""Tests for landscape.data: real files, readers, corrupt files, downloads, loaders,
synthetic data."""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import pickle
import shutil
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape import data
from landscape.data import __main__ as cli
from landscape.io import CorruptFileError

MNIST_TRAIN_HIST = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_HIST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_FILES = data.DATASETS["mnist"].files


def _hist(y: torch.Tensor) -> list[int]:
    return torch.bincount(y, minlength=10).tolist()


# --------------------------------------------------------------------------- real data


@pytest.mark.data
@pytest.mark.parametrize(
    "name, split, hist",
    [
        ("mnist", "train", MNIST_TRAIN_HIST),
        ("mnist", "test", MNIST_TEST_HIST),
        ("fashion-mnist", "train", [6000] * 10),
        ("fashion-mnist", "test", [1000] * 10),
    ],
)
def test_idx_datasets_counts_histograms_range(data_root, name, split, hist):
    x, y = data.load_dataset(name, data_root, split=split, download=False)
    n = sum(hist)
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.int64
    assert _hist(y) == hist
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    # values are exactly k/255
    assert torch.equal(torch.round(x[:100] * 255) / 255, x[:100])


@pytest.mark.data
@pytest.mark.parametrize(
    "name, prefix", [("mnist", "mnist"), ("fashion-mnist", "fashionMNIST")]
)
def test_idx_matches_sample_pngs(data_root, name, prefix):
    from PIL import Image

    x, y = data.load_dataset(name, data_root, split="test", download=False)
    pngs = sorted((data_root / "samples").glob(f"{prefix}_*.png"))
    assert len(pngs) == 20
    for p in pngs:
        _, idx, label = p.stem.split("_")
        img = np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255
        assert int(y[int(idx)]) == int(label)
        assert torch.equal(x[int(idx), 0], torch.from_numpy(img)), p.name


@pytest.mark.data
def test_cifar10_jpeg_from_archive(data_root):
    x, y = data.load_dataset("cifar10-jpeg", data_root, split="test", download=False)
    assert x.shape == (10000, 3, 32, 32) and x.dtype == torch.float32
    assert _hist(y) == [1000] * 10
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # cached: second call is instant and equal
    x2, y2 = data.load_dataset("cifar10-jpeg", data_root, split="test", num_samples=50)
    assert _hist(y2) == [5] * 10 and x2.shape == (50, 3, 32, 32)


@pytest.mark.data
def test_cifar10_jpeg_sample_is_stratified_and_mixed(data_root):
    """Issue 28: ``num_samples=1000`` came back sorted by class (``y[:10]`` all 0), so
    ``x[:256]`` held classes 0-2 only."""
    g = torch.Generator().manual_seed(0)
    _, y = data.load_dataset("cifar10-jpeg", data_root, split="test", num_samples=1000,
                             generator=g)  # fmt: skip
    assert _hist(y) == [100] * 10
    assert len(set(y[:10].tolist())) > 3
    assert _hist(y[:256]).count(0) == 0  # the docs' x[:256] idiom covers every class


@pytest.mark.data
def test_subsets_stratified_and_deterministic(data_root):
    (x1, y1), (x2, y2), (x3, _) = (
        data.load_dataset(
            "mnist",
            data_root,
            split="test",
            num_samples=1000,
            generator=torch.Generator().manual_seed(seed),
        )
        for seed in (3, 3, 4)
    )
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    # proportional to the class counts (largest remainders): within one of n * p_k
    expected = np.array(MNIST_TEST_HIST) * 1000 / 10000
    assert np.abs(np.array(_hist(y1)) - expected).max() < 1
    assert len(y1) == 1000
    _, yr = data.load_dataset(
        "mnist", data_root, split="test", num_samples=1000, stratified=False
    )
    assert len(yr) == 1000


def test_missing_dataset_message_names_files_folder_command(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_dataset("mnist", tmp_path, split="test", download=False)
    msg = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and str(tmp_path / "mnist") in msg
    assert f"python -m landscape.data download mnist --root {tmp_path}" in msg


# --------------------------------------------------------------------------- corrupt


def _mnist_copy(data_root: Path, dest: Path) -> Path:
    (dest / "mnist").mkdir(parents=True)
    for f in MNIST_FILES:
        if f.startswith("t10k"):
            shutil.copy(data_root / "mnist" / f, dest / "mnist" / f)
    return dest / "mnist"


@pytest.mark.data
def test_truncated_gzip_bad_md5_clear_errors(data_root, tmp_path):
    folder = _mnist_copy(data_root, tmp_path)
    p = folder / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match="md5"):
        data.load_dataset("mnist", tmp_path, split="test", download=False)
    with pytest.raises(CorruptFileError, match="gzip"):
        data.load_dataset("mnist", tmp_path, split="test", download=False, verify=False)


def _idx_bytes(magic: bytes, dims: tuple[int, ...], payload: bytes) -> bytes:
    head = magic + b"".join(d.to_bytes(4, "big") for d in dims)
    return gzip.compress(head + payload)


def test_idx_wrong_magic_and_wrong_size(tmp_path):
    good = tmp_path / "good.gz"
    good.write_bytes(_idx_bytes(b"\x00\x00\x08\x01", (3,), bytes([1, 2, 3])))
    assert data.read_idx(good).tolist() == [1, 2, 3]
    bad = tmp_path / "magic.gz"
    bad.write_bytes(_idx_bytes(b"\x00\x00\x0d\x01", (3,), bytes([1, 2, 3])))  # float
    with pytest.raises(CorruptFileError, match="magic"):
        data.read_idx(bad)
    short = tmp_path / "short.gz"
    short.write_bytes(_idx_bytes(b"\x00\x00\x08\x01", (4,), bytes([1, 2, 3])))
    with pytest.raises(CorruptFileError, match="truncated"):
        data.read_idx(short)
    notgz = tmp_path / "x.gz"
    notgz.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(CorruptFileError):
        data.read_idx(notgz)


@pytest.mark.data
def test_wrong_count_and_swapped_files(data_root, tmp_path):
    folder = _mnist_copy(data_root, tmp_path)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    y = data.read_idx(data_root / "mnist" / "t10k-labels-idx1-ubyte.gz")
    labels.write_bytes(_idx_bytes(b"\x00\x00\x08\x01", (9999,), y[:9999].tobytes()))
    with pytest.raises(CorruptFileError, match="10000"):
        data.load_dataset("mnist", tmp_path, split="test", download=False, verify=False)
    shutil.copy(folder / "t10k-images-idx3-ubyte.gz", labels)
    with pytest.raises(CorruptFileError, match="swapped"):
        data.load_dataset("mnist", tmp_path, split="test", download=False, verify=False)


# --------------------------------------------------------------------------- downloads


def _mirror(data_root: Path, tmp_path: Path) -> Path:
    src = tmp_path / "mirror"
    src.mkdir()
    for f in MNIST_FILES:
        shutil.copy(data_root / "mnist" / f, src / f)
    return src


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.data
def test_download_file_url_then_load(data_root, tmp_path, monkeypatch):
    src = _mirror(data_root, tmp_path)
    monkeypatch.setitem(
        data.MIRRORS, "mnist", ["http://127.0.0.1:9/nothing/", src.as_uri() + "/"]
    )
    root = tmp_path / "root"
    x, y = data.load_dataset("mnist", root, split="test")  # downloads, 2nd mirror
    assert _hist(y) == MNIST_TEST_HIST and x.shape == (10000, 1, 28, 28)
    assert _leftovers(root / "mnist") == sorted(MNIST_FILES)  # no .part files
    for f, md5 in MNIST_FILES.items():
        assert data.md5sum(root / "mnist" / f) == md5


@pytest.mark.data
def test_download_bad_checksum_leaves_nothing(data_root, tmp_path):
    src = _mirror(data_root, tmp_path)
    p = src / "t10k-labels-idx1-ubyte.gz"
    b = bytearray(p.read_bytes())
    b[100] ^= 0xFF
    p.write_bytes(bytes(b))
    dest = tmp_path / "root" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(data.DownloadError, match="md5"):
        data._download.download_file(
            [src.as_uri() + "/t10k-labels-idx1-ubyte.gz"],
            dest,
            md5=MNIST_FILES["t10k-labels-idx1-ubyte.gz"],
        )
    assert _leftovers(dest.parent) == []


class _HalfHandler(http.server.BaseHTTPRequestHandler):
    """Announces 1000 bytes, sends 500, then drops the connection (a killed transfer)."""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"\x1f\x8b" + b"x" * 498)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_interrupted_download_never_trusted(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _HalfHandler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/f.gz"
        dest = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
        with pytest.raises(data.DownloadError):
            data._download.download_file([url], dest, md5=None, timeout=5)
        assert not dest.parent.exists()  # no temporary file, no empty folder left
    finally:
        server.shutdown()
        server.server_close()
    # a stale temp file from a killed process is never read as the dataset
    dest.parent.mkdir()
    (dest.parent / ".t10k-labels-idx1-ubyte.gz.abc123.part").write_bytes(b"junk")
    with pytest.raises(data.DatasetNotFoundError, match="t10k-labels-idx1-ubyte.gz"):
        data.load_dataset("mnist", tmp_path, split="test", download=False)


def test_offline_error_names_command(tmp_path, monkeypatch):
    monkeypatch.setitem(data.MIRRORS, "mnist", ["http://127.0.0.1:9/"])
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_dataset("mnist", tmp_path, split="test")
    msg = str(info.value)
    assert "python -m landscape.data download mnist --root" in msg
    assert "t10k-labels-idx1-ubyte.gz" in msg and "127.0.0.1:9" in msg


@pytest.mark.data
def test_cli_download_and_info(data_root, tmp_path, capsys):
    src = _mirror(data_root, tmp_path)
    root = tmp_path / "root"
    argv = [
        "download",
        "mnist",
        "--root",
        str(root),
        "--mirror",
        src.as_uri(),
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    assert cli.main(["info", "--root", str(root), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "mnist          ok" in out and "BAD MD5" not in out
    bad = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-10])  # a truncated file is reported ...
    assert cli.main(["info", "--root", str(root), "--verify"]) == 0
    assert "t10k-labels-idx1-ubyte.gz: BAD MD5" in capsys.readouterr().out
    assert cli.main(argv) == 0  # ... and replaced by the next download
    assert data.md5sum(bad) == MNIST_FILES[bad.name]


# --------------------------------------------------------------------------- CIFAR


def _write_cifar(folder: Path, rng: np.random.Generator, n: int = 4):
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = {}, {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, size=n)]
        with open(folder / name, "wb") as f:  # real format: bytes keys, list labels
            pickle.dump({b"batch_label": b"x", b"labels": y, b"data": x}, f, protocol=2)
        xs[name], ys[name] = x, y
    return xs, ys


def test_cifar_pickle_reader(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    xs, ys = _write_cifar(folder, np.random.default_rng(0))
    x, y = data.read_cifar_batches(folder, "train")
    expect = np.concatenate([xs[f"data_batch_{i}"] for i in range(1, 6)])
    assert x.shape == (20, 3, 32, 32)
    assert np.array_equal(x.reshape(20, -1), expect)
    assert y.tolist() == sum((ys[f"data_batch_{i}"] for i in range(1, 6)), [])
    # channel-major: the first 1024 bytes are the red plane
    assert np.array_equal(x[0, 0].ravel(), expect[0, :1024])
    # load_dataset checks the published md5s, then the count
    with pytest.raises(CorruptFileError, match="md5"):
        data.load_dataset("cifar10", tmp_path, split="test", download=False)
    with pytest.raises(CorruptFileError, match="10000"):
        data.load_dataset(
            "cifar10", tmp_path, split="test", download=False, verify=False
        )
    spec = dataclasses.replace(
        data.DATASETS["cifar10"], num_samples={"train": 20, "test": 4}
    )
    monkeypatch.setitem(data.DATASETS, "cifar10", spec)
    xt, yt = data.load_dataset("cifar10", tmp_path, split="test", verify=False)
    assert xt.dtype == torch.float32 and xt.shape == (4, 3, 32, 32)
    ref = (
        torch.from_numpy(xs["test_batch"].reshape(4, 3, 32, 32).astype(np.float32))
        / 255
    )
    assert torch.equal(xt, ref) and yt.tolist() == ys["test_batch"]


def test_cifar_reader_rejects_bad_pickles(tmp_path):
    folder = tmp_path / "c"
    _write_cifar(folder, np.random.default_rng(1))
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(CorruptFileError, match="3072"):
        data.read_cifar_batches(folder, "test")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": 1})[:-3])
    with pytest.raises(CorruptFileError):
        data.read_cifar_batches(folder, "test")
    with open(folder / "test_batch", "wb") as f:  # arbitrary objects are refused
        pickle.dump({b"data": Path("x"), b"labels": []}, f)
    with pytest.raises(CorruptFileError, match="refusing"):
        data.read_cifar_batches(folder, "test")


def test_cifar_download_and_extract(tmp_path, monkeypatch):
    src = tmp_path / "src"
    xs, _ = _write_cifar(src / "cifar-10-batches-py", np.random.default_rng(2))
    archive = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    files = {f: data.md5sum(src / "cifar-10-batches-py" / f) for f in xs}
    spec = dataclasses.replace(
        data.DATASETS["cifar10"],
        files=files,
        num_samples={"train": 20, "test": 4},
        archive=("cifar-10-python.tar.gz", data.md5sum(archive)),
    )
    monkeypatch.setitem(data.DATASETS, "cifar10", spec)
    monkeypatch.setitem(data.MIRRORS, "cifar10", [archive.parent.as_uri()])
    root = tmp_path / "root"
    x, y = data.load_dataset("cifar10", root, split="train")
    assert x.shape == (20, 3, 32, 32)
    assert sorted(p.name for p in root.iterdir()) == [
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
    ]
    # a wrong archive checksum is an error and leaves nothing behind
    spec2 = dataclasses.replace(spec, archive=("cifar-10-python.tar.gz", "0" * 32))
    monkeypatch.setitem(data.DATASETS, "cifar10", spec2)
    with pytest.raises(data.DownloadError, match="md5"):
        data.download("cifar10", tmp_path / "root2")
    assert _leftovers(tmp_path / "root2") == []


# --------------------------------------------------------------------------- folders


def test_image_folder_dir_and_archive(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    truth = {}
    for split, n in (("train", 3), ("test", 2)):
        for c in ("cat", "ant", "bee"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
                Image.fromarray(a).save(root / split / c / f"{i}.png")
                truth[(split, c, i)] = a
    (root / "test" / "ant" / "notes.txt").write_text("ignored")
    archive = tmp_path / "imgs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="imgs")
    for src in (root, archive):
        x, y, classes = data.load_image_folder(src, "test", return_classes=True)
        assert classes == ("ant", "bee", "cat")
        assert x.shape == (6, 3, 5, 6) and y.tolist() == [0, 0, 1, 1, 2, 2]
        a = truth[("test", "bee", 1)].transpose(2, 0, 1).astype(np.float32) / 255
        assert torch.equal(x[3], torch.from_numpy(a))
    xs, ys = data.load_image_folder(
        root, "train", num_samples=3, generator=torch.Generator().manual_seed(0)
    )
    assert sorted(ys.tolist()) == [0, 1, 2]  # one per class, in random order
    # rewriting a file in place is seen (the in-process cache is keyed by mtimes)
    zero = np.zeros((5, 6, 3), np.uint8)
    Image.fromarray(zero).save(root / "test" / "bee" / "1.png")
    x2 = data.load_image_folder(root, "test")[0]
    assert float(x2[3].abs().sum()) == 0.0 and torch.equal(x2[2], x[2])


def test_image_folder_errors(tmp_path):
    from PIL import Image

    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "train" / "a" / "0.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "train" / "a" / "1.png")
    with pytest.raises(ValueError, match="resize"):
        data.load_image_folder(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="test"):
        data.load_image_folder(tmp_path, "test")
    (tmp_path / "train" / "a" / "1.png").write_bytes(b"not a png")
    with pytest.raises(CorruptFileError, match="1.png"):
        data.load_image_folder(tmp_path, "train")


# --------------------------------------------------------------------------- root


def test_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path))
    assert data.resolve_root() == tmp_path
    assert data.resolve_root("/x/y") == Path("/x/y")
    monkeypatch.delenv("LANDSCAPE_DATA")
    assert data.resolve_root() == data.default_root()  # one per-user cache
    with pytest.raises(ValueError, match="available"):
        data.load_dataset("places365", tmp_path)


# --------------------------------------------------------------------------- loaders


def test_batches_cover_each_epoch_deterministically():
    x = torch.arange(50.0)[:, None]
    y = torch.arange(50)
    loader = data.batches(x, y, batch_size=8, shuffle=True, seed=5)
    assert len(loader) == 7
    e0 = torch.cat([yb for _, yb in loader])
    e1 = torch.cat([yb for _, yb in loader])
    assert sorted(e0.tolist()) == list(range(50)) and sorted(e1.tolist()) == list(
        range(50)
    )
    assert not torch.equal(e0, e1)  # a new permutation per epoch
    loader.set_epoch(1)
    assert torch.equal(torch.cat([yb for _, yb in loader]), e1)
    other = data.batches(x, y, batch_size=8, shuffle=True, seed=5)
    assert torch.equal(torch.cat([yb for _, yb in other]), e0)  # same seed, same order
    for xb, yb in loader:  # pairs stay aligned
        assert torch.equal(xb[:, 0].long(), yb)
    dl = data.batches(x, y, batch_size=8, drop_last=True)
    assert len(dl) == 6 and [len(b[1]) for b in dl] == [8] * 6
    plain = torch.cat([yb for _, yb in data.batches(x, y, batch_size=16)])
    assert torch.equal(plain, y)


def test_batches_copy_not_view_and_device():
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    loader = data.batches(x, y, batch_size=2, device="cpu")
    xb, _ = next(iter(loader))
    xb.add_(1)
    assert float(loader.x.abs().sum()) == 0.0
    assert loader.device == torch.device("cpu")
    with pytest.raises(ValueError, match="samples"):
        data.batches(x, y[:3], batch_size=2)


@pytest.mark.gpu
def test_batches_live_on_cuda():
    x, y = torch.rand(100, 1, 28, 28), torch.randint(0, 10, (100,))
    loader = data.batches(x, y, batch_size=32, device="cuda", shuffle=True)
    assert loader.x.is_cuda
    assert all(xb.is_cuda and yb.is_cuda for xb, yb in loader)


def test_subset_indices_properties():
    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    idx = data.subset_indices(y, 20, generator=torch.Generator().manual_seed(1))
    assert torch.bincount(y[idx]).tolist() == [12, 6, 2]
    assert len(set(idx.tolist())) == 20
    assert torch.equal(
        idx, data.subset_indices(y, 20, generator=torch.Generator().manual_seed(1))
    )
    assert not torch.equal(
        idx, data.subset_indices(y, 20, generator=torch.Generator().manual_seed(2))
    )
    full = data.subset_indices(y, 100, generator=torch.Generator().manual_seed(0))
    assert sorted(full.tolist()) == list(range(100))
    with pytest.raises(ValueError):
        data.subset_indices(y, 101)


def test_subset_of_class_sorted_data_is_mixed():
    """A data set stored sorted by class (an image folder) gives a sample whose
    prefixes are random samples too (the old sorted indices gave x[:n] of the first
    classes only)."""
    y = torch.arange(10).repeat_interleave(100)  # sorted by class
    idx = data.subset_indices(y, 500, generator=torch.Generator().manual_seed(0))
    assert torch.bincount(y[idx]).tolist() == [50] * 10
    assert len(set(y[idx[:50]].tolist())) >= 8
    assert not torch.equal(idx, idx.sort().values)
    # the same set as the selection of earlier versions (sorted indices, one seed)
    g = torch.Generator().manual_seed(0)
    old = torch.cat(
        [(y == c).nonzero().flatten()[torch.randperm(100, generator=g)[:50]]
         for c in range(10)]
    )  # fmt: skip
    assert torch.equal(idx.sort().values, old.sort().values)


# --------------------------------------------------------------------------- synthetic


@pytest.mark.parametrize("margin, noise", [(0.1, 1.0), (1.0, 0.3), (0.0, 2.0)])
def test_separable_binary_mixture_has_the_margin(margin, noise):
    x, y = data.gaussian_mixture(500, 10, margin=margin, noise=noise, separable=True,
                                 labels="pm1", generator=torch.Generator().manual_seed(1))  # fmt: skip
    m = y * x[:, 0]
    assert bool((m >= margin).all())
    assert float(m.min()) < margin + 0.05 * noise + 1e-6  # the margin is tight
    assert x.dtype == torch.float32 and sorted(set(y.tolist())) == [-1.0, 1.0]
    assert int((y > 0).sum()) == 250


def test_overlapping_mixture_means_and_overlap():
    x, y = data.gaussian_mixture(
        20000, 3, margin=0.5, noise=1.0, generator=torch.Generator().manual_seed(0)
    )
    s = 2 * y.double() - 1
    mean_dist = (s * x[:, 0].double()).mean()
    assert abs(float(mean_dist) - 0.5) < 0.03  # class means at +-margin e_0
    assert float(x[:, 1:].std()) == pytest.approx(1.0, abs=0.03)
    assert bool(((s * x[:, 0]) < 0).any())  # not separable by e_0
    xs, _ = data.gaussian_mixture(
        10, 3, separable=True, generator=torch.Generator().manual_seed(0)
    )
    assert xs.shape == (10, 3)


def test_multiclass_separable_margin_and_balance():
    k, margin = 4, 0.3
    x, y = data.gaussian_mixture(
        403,
        6,
        num_classes=k,
        margin=margin,
        separable=True,
        generator=torch.Generator().manual_seed(2),
    )
    assert torch.bincount(y).tolist() == [101, 101, 101, 100]
    head = x[:, :k].double()
    gap = (head.gather(1, y[:, None]) - head) / 2**0.5
    gap.scatter_(1, y[:, None], float("inf"))
    assert bool((gap.min(dim=1).values >= margin - 1e-6).all())
    assert torch.equal(head.argmax(1), y)


def test_mixture_seeds_and_errors():
    a = data.gaussian_mixture(64, 5, generator=torch.Generator().manual_seed(7))
    b = data.gaussian_mixture(64, 5, generator=torch.Generator().manual_seed(7))
    c = data.gaussian_mixture(64, 5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    x64, _ = data.gaussian_mixture(8, 2, dtype=torch.float64)
    assert x64.dtype == torch.float64
    with pytest.raises(ValueError, match="pm1"):
        data.gaussian_mixture(10, 5, num_classes=3, labels="pm1")
    with pytest.raises(ValueError, match="dim"):
        data.gaussian_mixture(10, 2, num_classes=3)


def test_binary_subset():
    x = torch.arange(12.0).view(6, 2)
    y = torch.tensor([3, 1, 3, 0, 1, 3])
    xs, ys = data.binary_subset(x, y, classes=(1, 3))
    assert xs[:, 0].tolist() == [0.0, 2.0, 4.0, 8.0, 10.0]
    assert ys.tolist() == [1.0, -1.0, 1.0, -1.0, 1.0] and ys.dtype == torch.float32
    _, yi = data.binary_subset(x, y, classes=(1, 3), labels="index")
    assert yi.tolist() == [1, 0, 1, 0, 1] and yi.dtype == torch.int64
    with pytest.raises(ValueError):
        data.binary_subset(x, y, classes=(7, 8))
