"""Datasets: synthetic Gaussian mixtures, MNIST, Fashion-MNIST, CIFAR-10/100, SVHN,
Tiny-ImageNet, ImageNet folders, image folders.

Images come out as float32 tensors in ``[0, 1]``, NCHW, with int64 labels;
normalisation belongs inside the model (:class:`landscape.models.Normalize`), never in
the data.

Where the files live: an explicit ``root`` argument, else the ``LANDSCAPE_DATA``
environment variable, else one per-user cache (:func:`default_root`:
``$XDG_CACHE_HOME/landscape``, i.e. ``~/.cache/landscape`` on Linux;
``~/Library/Caches/landscape`` on macOS; ``%LOCALAPPDATA%\\landscape`` on Windows),
so every folder a user works in shares one copy. A download says where it goes (a
``logging`` warning of the ``landscape.data`` logger). Inside the root the standard
layout is used::

    root/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    root/fashion-mnist/  (same four names)
    root/cifar-10-batches-py/{data_batch_1..5,test_batch}
    root/cifar10-jpeg/{train,test}/<class>/*.jpg   or   root/cifar10-jpeg.tar.gz
    root/cifar-100-python/{train,test,meta}
    root/svhn/{train,test}_32x32.mat
    root/tiny-imagenet-200/   or   root/tiny-imagenet-200.zip   (read in place)
    root/imagenet/{train,val}/<wnid>/*.JPEG    (not downloadable: registration)

Missing MNIST / Fashion-MNIST / CIFAR-10 / CIFAR-100 / SVHN / Tiny-ImageNet files are
downloaded from the standard sources (:data:`MIRRORS`) with md5 verification and an
atomic rename; offline, the error names the files, the folder and the command
``python -m landscape.data download NAME --root DIR``. Corrupt files (bad checksum,
truncated gzip, wrong magic number, wrong count) raise
:class:`landscape.io.CorruptFileError`. JPEG data sets are decoded once into the
per-user cache (``<default_root()>/decoded``, verified, see ``_cache``); later loads
read the arrays.

A sample (``num_samples=``) is stratified and in random order, drawn with
``generator=``; the whole split comes in the files' order (image folders: sorted by
class), so never slice ``x[:n]`` of a whole split for a batch.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = gaussian_mixture(100, 2, separable=True, margin=0.3, generator=g)
    >>> loader = batches(x, y, batch_size=32, shuffle=True, seed=0)
    >>> len(loader), sum(len(yb) for _, yb in loader)
    (4, 100)
"""

from __future__ import annotations

from ..io import CorruptFileError
from ._download import MIRRORS, DownloadError
from ._files import md5sum, read_cifar_batches, read_idx, read_svhn_mat
from ._images import read_image_folder, resize_center_crop
from ._load import dataset_files, download, load_dataset, load_image_folder
from ._loader import Batches, batches, subset_indices
from ._roots import default_root, resolve_root
from ._specs import DATASETS, DatasetNotFoundError, DatasetSpec
from ._synthetic import binary_subset, gaussian_mixture

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "MIRRORS",
    "Batches",
    "CorruptFileError",
    "DatasetNotFoundError",
    "DownloadError",
    "batches",
    "binary_subset",
    "dataset_files",
    "download",
    "gaussian_mixture",
    "load_dataset",
    "load_image_folder",
    "md5sum",
    "read_cifar_batches",
    "read_idx",
    "read_image_folder",
    "read_svhn_mat",
    "resize_center_crop",
    "default_root",
    "resolve_root",
    "subset_indices",
]
