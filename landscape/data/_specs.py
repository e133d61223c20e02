"""The datasets ``load_dataset`` knows: folders, files, published md5s, counts."""

from __future__ import annotations

import dataclasses

from ._imagenet_classes import IMAGENET_WNIDS

__all__ = ["DATASETS", "DatasetNotFoundError", "DatasetSpec"]


class DatasetNotFoundError(FileNotFoundError):
    """Dataset files are missing and could not (or may not) be downloaded."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives and how to check it.

    ``reader`` picks the decoder: ``"idx"`` (MNIST layout), ``"cifar"`` (python
    pickles), ``"svhn"`` (``.mat`` files), ``"jpeg-folder"`` (an image folder or its
    archive, decoded once into the per-user cache), ``"tiny-imagenet"`` and
    ``"imagenet"`` (class folders decoded per sample with the standard resize 256 /
    centre-crop 224). ``num_samples`` of None: any count (a partial folder).
    """

    name: str
    folder: str  # inside the root
    files: dict[str, str]  # file name (inside folder) -> md5 of the file on disk
    splits: dict[str, tuple[str, ...]]  # split -> the files it reads
    num_samples: dict[str, int] | None
    shape: tuple[int, int, int]
    classes: tuple[str, ...]  # empty: named by the files (tiny-imagenet's wnids.txt)
    archive: tuple[str, str] | None = None  # (file name in root, md5) to download
    downloadable: bool = True
    reader: str = "idx"
    n_classes: int = 0  # when ``classes`` is empty

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes) or self.n_classes


_IDX = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _idx_dataset(
    name: str, md5s: tuple[str, ...], classes: tuple[str, ...]
) -> DatasetSpec:
    """A dataset in MNIST's layout: the four idx files of ``_IDX`` (train images,
    train labels, test images, test labels, with these md5s) in the folder ``name``."""
    return DatasetSpec(
        name=name,
        folder=name,
        files=dict(zip(_IDX["train"] + _IDX["test"], md5s)),
        splits=_IDX,
        num_samples={"train": 60000, "test": 10000},
        shape=(1, 28, 28),
        classes=classes,
    )


_CIFAR100_CLASSES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge
    bus butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud
    cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox
    girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster
    man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter
    palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit
    raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake
    spider squirrel streetcar sunflower sweet_pepper table tank telephone television
    tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman
    worm""".split()
)

_CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

#: The datasets ``load_dataset`` knows, with their published md5 checksums.
DATASETS: dict[str, DatasetSpec] = {
    "mnist": _idx_dataset(
        "mnist",
        (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
        tuple(str(i) for i in range(10)),
    ),
    "fashion-mnist": _idx_dataset(
        "fashion-mnist",
        (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        folder="cifar-10-batches-py",
        files={
            "data_batch_1": "c99cafc152244af753f735de768cd75f",
            "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
            "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
            "test_batch": "40351d587109b95175f43aff81a1287e",
        },
        splits={
            "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
            "test": ("test_batch",),
        },
        num_samples={"train": 50000, "test": 10000},
        shape=(3, 32, 32),
        classes=_CIFAR10_CLASSES,
        archive=("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
        reader="cifar",
    ),
    "cifar10-jpeg": DatasetSpec(
        name="cifar10-jpeg",
        folder="cifar10-jpeg",
        files={},
        splits={"train": (), "test": ()},
        num_samples={"train": 50000, "test": 10000},
        shape=(3, 32, 32),
        classes=_CIFAR10_CLASSES,
        downloadable=False,
        reader="jpeg-folder",
    ),
    "cifar100": DatasetSpec(
        name="cifar100",
        folder="cifar-100-python",
        files={
            "train": "16019d7e3df5f24257cddd939b257f8d",
            "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
            "meta": "7973b15100ade9c7d40fb424638fde48",
        },
        splits={"train": ("train",), "test": ("test",)},
        num_samples={"train": 50000, "test": 10000},
        shape=(3, 32, 32),
        classes=_CIFAR100_CLASSES,
        archive=("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
        reader="cifar",
    ),
    "svhn": DatasetSpec(
        name="svhn",
        folder="svhn",
        files={
            "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
            "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
        },
        splits={"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)},
        num_samples={"train": 73257, "test": 26032},
        shape=(3, 32, 32),
        classes=tuple(str(i) for i in range(10)),
        reader="svhn",
    ),
    "tiny-imagenet": DatasetSpec(
        name="tiny-imagenet",
        folder="tiny-imagenet-200",
        files={},
        splits={"train": (), "test": ()},
        num_samples={"train": 100000, "test": 10000},
        shape=(3, 64, 64),
        classes=(),
        archive=("tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de"),
        reader="tiny-imagenet",
        n_classes=200,
    ),
    "imagenet": DatasetSpec(
        name="imagenet",
        folder="imagenet",
        files={},
        splits={"train": (), "test": ()},
        num_samples=None,
        shape=(3, 224, 224),
        classes=IMAGENET_WNIDS,
        downloadable=False,
        reader="imagenet",
    ),
}

_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar10_jpeg": "cifar10-jpeg",
    "cifar-100": "cifar100",
    "tiny_imagenet": "tiny-imagenet",
    "tinyimagenet": "tiny-imagenet",
    "tiny-imagenet-200": "tiny-imagenet",
    "imagenet-val": "imagenet",
    "imagenet1k": "imagenet",
}


def _spec(name: str) -> DatasetSpec:
    key = _ALIASES.get(name.lower(), name.lower())
    key = _ALIASES.get(key.replace("_", "-"), key.replace("_", "-"))
    if key not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; available: {', '.join(DATASETS)} "
            "(or load_image_folder(path) for any image folder)"
        )
    return DATASETS[key]


def _check_split(split: str) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split
