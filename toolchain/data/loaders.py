"""Data sets: loaders for local files in their official layouts (``docs/datasets.md``); nothing is downloaded.

Images are float32 ``[C, H, W]`` in ``[0, 1]`` with ``x * 255`` an exact integer, augmented or not (the
spiking network feeds ``round(x * 255)`` as 8-bit graded spikes): they are held and augmented as uint8
(``slipsnn.toolchain.data.augment``) and divided by 255 last. Normalisation (``DatasetInfo``) is in the model.
"""

from __future__ import annotations

import gzip
import os
import pickle
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from numpy.core.multiarray import _reconstruct  # type: ignore[attr-defined]  # numpy < 2 (pinned by lava)
from numpy.core.numeric import _frombuffer  # type: ignore[attr-defined]
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor
from torch.utils.data import Dataset

from .augment import Transform, train_transforms
from .registry import DATASETS, DatasetInfo, dataset_info
from ..errors import DataError

SPLITS = ("train", "test")
DATA_ENV = "SLIPSNN_DATA"  # environment variable with the default data root; else ./data
#: where Debian's ``dataset-fashion-mnist`` package puts the four official files (``dpkg -L dataset-fashion-mnist``)
FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


_LAYOUTS: dict[str, str] = {
    "mnist": "{root} (or {root}/mnist, {root}/MNIST/raw) holding train-images-idx3-ubyte, train-labels-idx1-ubyte,"
    " t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each optionally .gz (http://yann.lecun.com/exdb/mnist/)",
    "fashion-mnist": "{root} (or {root}/fashion-mnist, {root}/FashionMNIST/raw) holding the four official idx"
    " files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte,"
    " each optionally .gz; on Debian/Ubuntu `apt-get install dataset-fashion-mnist` puts them in"
    f" {FASHION_MNIST_DEBIAN}, the default root",
    "cifar10": "{root}/cifar-10-batches-py/data_batch_1..5 and test_batch (the official 'python version' from"
    " https://www.cs.toronto.edu/~kriz/cifar.html)",
    "cifar100": "{root}/cifar-100-python/train and test (the official 'python version' from"
    " https://www.cs.toronto.edu/~kriz/cifar.html)",
    "tiny-imagenet": "{root}/tiny-imagenet-200/wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and"
    " val/val_annotations.txt (http://cs231n.stanford.edu/tiny-imagenet-200.zip)",
}


class ImageDataset(Dataset, ABC):
    """Labelled 8-bit images; an item is ``(float32 [C, H, W] in [0, 1], int label)``.

    Args:
        labels: int64 ``[N]``.
        shape: ``(C, H, W)`` of every image.
        transform: Applied to each uint8 ``[C, H, W]`` image before the division by 255, or None.
    """

    def __init__(self, labels: Tensor, shape: tuple[int, int, int], transform: Transform | None = None) -> None:
        self.labels, self.shape, self.transform = labels, shape, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.image(index)
        if self.transform is not None:
            image = self.transform(image)
        return image.to(torch.float32).div_(255), int(self.labels[index])

    @abstractmethod
    def image(self, index: int) -> Tensor:
        """Return image ``index`` as uint8 ``[C, H, W]``, not augmented."""

    def raw(self, limit: int | None = None) -> tuple[Tensor, Tensor]:
        """Return the first ``limit`` (all if None) images, uint8 ``[n, C, H, W]``, and labels int64 ``[n]``."""
        images = [self.image(i) for i in range(len(self))[:limit]]
        empty = torch.empty((0, *self.shape), dtype=torch.uint8)
        return (torch.stack(images) if images else empty), self.labels[: len(images)]


class TensorImageDataset(ImageDataset):
    """Images held in memory: ``images`` is uint8 ``[N, C, H, W]``; see ``ImageDataset``."""

    def __init__(self, images: Tensor, labels: Tensor, transform: Transform | None = None) -> None:
        super().__init__(labels, tuple(images.shape[1:]), transform)  # type: ignore[arg-type]
        self.images = images

    def image(self, index: int) -> Tensor:
        return self.images[index]

    def raw(self, limit: int | None = None) -> tuple[Tensor, Tensor]:
        return self.images[:limit], self.labels[:limit]


class ImageFileDataset(ImageDataset):
    """Images decoded from files on access (converted to RGB); each must decode to ``shape`` ``(C, H, W)``."""

    def __init__(self, paths: list[Path], labels: Tensor, shape: tuple[int, int, int],
                 transform: Transform | None = None) -> None:
        super().__init__(labels, shape, transform)
        self.paths = paths

    def image(self, index: int) -> Tensor:
        with Image.open(self.paths[index]) as img:
            image = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).contiguous()
        if tuple(image.shape) != self.shape:
            raise DataError(f"{self.paths[index]}: image of shape {tuple(image.shape)}, expected {self.shape}")
        return image


def _find_files(root: Path, name: str, subdirs: tuple[str, ...], files: list[str], gz: bool = False) -> list[Path]:
    """Return ``files`` from the first folder ``root/<subdir>`` that holds all of them (or their .gz if ``gz``)."""
    for folder in (root / subdir for subdir in subdirs):
        found = [next((p for p in (folder / f, folder / f"{f}.gz")[: 1 + gz] if p.is_file()), None) for f in files]
        if all(p is not None for p in found):
            return found  # type: ignore[return-value]
    raise DataError(f"{name} not found under {root}: expected {_LAYOUTS[name].format(root=root)};"
                    " slipsnn downloads nothing")


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """Parse an idx file: int32 big-endian magic and ``ndim`` sizes, then uint8 data; returns uint8 ``[sizes]``."""
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as file:
        raw = file.read()
    header_bytes = 4 * (1 + ndim)
    if len(raw) < header_bytes:
        raise DataError(f"{path}: {len(raw)} bytes, too short for an idx header ({header_bytes} bytes)")
    header = np.frombuffer(raw, dtype=">i4", count=1 + ndim)
    if header[0] != magic:
        raise DataError(f"{path}: idx magic number {header[0]}, expected {magic}")
    sizes = tuple(int(s) for s in header[1:])
    if len(raw) != header_bytes + int(np.prod(sizes)):
        raise DataError(f"{path}: {len(raw)} bytes, expected {header_bytes + int(np.prod(sizes))} for sizes {sizes}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(sizes)


def _checked(images: np.ndarray, labels: np.ndarray, info: DatasetInfo, source: Path | str) -> TensorImageDataset:
    """Validate uint8 ``[N, C, H, W]`` images and ``[N]`` labels against ``info``; wrap them in a data set."""
    if images.dtype != np.uint8 or images.shape[1:] != info.input_shape:
        raise DataError(f"{source}: images {images.dtype} of shape {list(images.shape)},"
                        f" expected uint8 of shape [N, {', '.join(map(str, info.input_shape))}]")
    if labels.dtype.kind not in "iu" or len(labels) != len(images) or (
            len(labels) and not 0 <= labels.min() <= labels.max() < info.num_classes):
        raise DataError(f"{source}: {len(labels)} labels ({labels.dtype}) for {len(images)} images;"
                        f" expected one integer label in 0..{info.num_classes - 1} per image")
    return TensorImageDataset(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))


def _digits(root: Path, split: str) -> ImageDataset:
    """scikit-learn digits as 8-bit pixels ``round(v * 255 / 16)``, fixed stratified 75/25 split."""
    digits = load_digits()
    pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)[:, None]
    train_x, test_x, train_y, test_y = train_test_split(pixels, digits.target, test_size=0.25, random_state=0,
                                                        stratify=digits.target)
    images, labels = (train_x, train_y) if split == "train" else (test_x, test_y)
    return _checked(images, labels, DATASETS["digits"], "sklearn load_digits")


def _idx_pair(root: Path, name: str, subdirs: tuple[str, ...], split: str) -> ImageDataset:
    """The official idx image/label pair of an MNIST-format data set (``t10k`` is ``test``)."""
    names = [f"{'train' if split == 'train' else 't10k'}-{kind}" for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]
    image_path, label_path = _find_files(root, name, subdirs, names, gz=True)
    images = _read_idx(image_path, 2051, 3)[:, None]
    return _checked(images, _read_idx(label_path, 2049, 1), DATASETS[name], image_path)


def _mnist(root: Path, split: str) -> ImageDataset:
    return _idx_pair(root, "mnist", ("", "mnist", "MNIST/raw"), split)


def _fashion_mnist(root: Path, split: str) -> ImageDataset:
    """Zalando's Fashion-MNIST: the MNIST idx format, 28×28 grey clothing images, 10 classes."""
    return _idx_pair(root, "fashion-mnist", ("", "fashion-mnist", "FashionMNIST/raw"), split)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's ndarray reconstruction and refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # numpy 2's name of the same function
        ("numpy.core.numeric", "_frombuffer"): _frombuffer,  # arrays pickled with protocol 5
        ("numpy._core.numeric", "_frombuffer"): _frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise DataError(f"pickle asks for {module}.{name}; refused, only numpy arrays are allowed")
        return self._ALLOWED[(module, name)]


def _load_pickle(path: Path) -> object:
    """Unpickle a CIFAR batch with ``_NumpyOnlyUnpickler``; any failure becomes a ``DataError`` naming ``path``."""
    with open(path, "rb") as file:
        try:
            return _NumpyOnlyUnpickler(file, encoding="bytes").load()
        except Exception as err:  # a malformed pickle can fail in many ways; all mean "not a CIFAR batch"
            reason = err if isinstance(err, DataError) else f"not a readable CIFAR pickle ({type(err).__name__}: {err})"
            raise DataError(f"{path}: {reason}") from err


def _cifar(paths: list[Path], label_key: bytes, info: DatasetInfo) -> ImageDataset:
    """Concatenate CIFAR batches: dicts with ``b'data'`` uint8 ``[N, 3072]`` (row-major C, H, W) and ``label_key``."""
    width, parts = int(np.prod(info.input_shape)), []
    for path in paths:
        batch = _load_pickle(path)
        data = batch.get(b"data") if isinstance(batch, dict) else None
        if not isinstance(data, np.ndarray) or data.shape[1:] != (width,) or label_key not in batch:
            found = list(batch) if isinstance(batch, dict) else type(batch).__name__
            raise DataError(f"{path}: expected a dict with b'data' (numpy [N, {width}]) and {label_key!r},"
                            f" found {found}")
        parts.append(_checked(data.reshape(len(data), *info.input_shape), np.asarray(batch[label_key]), info, path))
    return TensorImageDataset(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))


def _cifar10(root: Path, split: str) -> ImageDataset:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    return _cifar(_find_files(root, "cifar10", ("cifar-10-batches-py", ""), names), b"labels", DATASETS["cifar10"])


def _cifar100(root: Path, split: str) -> ImageDataset:
    paths = _find_files(root, "cifar100", ("cifar-100-python", ""), [split])
    return _cifar(paths, b"fine_labels", DATASETS["cifar100"])


def _tiny_train(base: Path, wnids: list[str]) -> list[tuple[Path, int]]:
    """List ``train/<wnid>/images/*.JPEG`` as (path, label = line of the wnid in wnids.txt)."""
    per_class = [sorted((base / "train" / wnid / "images").glob("*.JPEG")) for wnid in wnids]
    empty = [wnid for wnid, paths in zip(wnids, per_class) if not paths]
    if empty:
        raise DataError(f"tiny-imagenet: no images in {base}/train/<wnid>/images/*.JPEG for {len(empty)} wnids,"
                        f" first {empty[:3]}")
    return [(path, label) for label, paths in enumerate(per_class) for path in paths]


def _tiny_val(base: Path, wnids: list[str]) -> list[tuple[Path, int]]:
    """Parse ``val/val_annotations.txt`` (``file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1``) into (path, label)."""
    annotations, index = base / "val" / "val_annotations.txt", {wnid: i for i, wnid in enumerate(wnids)}
    rows = [line.split("\t") for line in annotations.read_text().splitlines() if line.strip()]
    bad = [row for row in rows if len(row) < 2 or row[1] not in index]
    if not rows or bad:
        raise DataError(f"{annotations}: {len(rows)} rows, {len(bad)} without a wnid from wnids.txt {bad[:1]}")
    pairs = [(base / "val" / "images" / row[0], index[row[1]]) for row in rows]
    missing = [str(path) for path, _ in pairs if not path.is_file()]
    if missing:
        raise DataError(f"{annotations} lists {len(missing)} missing images, first {missing[:3]}")
    return pairs


def _tiny_imagenet(root: Path, split: str) -> ImageDataset:
    """Index Tiny-ImageNet; split ``test`` is the official ``val`` folder (test labels are not public)."""
    names = ["wnids.txt"] + ([] if split == "train" else ["val/val_annotations.txt"])
    wnids_file = _find_files(root, "tiny-imagenet", ("tiny-imagenet-200", ""), names)[0]
    wnids = [line.strip() for line in wnids_file.read_text().splitlines() if line.strip()]
    pairs = (_tiny_train if split == "train" else _tiny_val)(wnids_file.parent, wnids)
    labels = torch.tensor([label for _, label in pairs], dtype=torch.int64)
    return ImageFileDataset([path for path, _ in pairs], labels, DATASETS["tiny-imagenet"].input_shape)


_LOADERS: dict[str, Callable[[Path, str], ImageDataset]] = {
    "digits": _digits, "mnist": _mnist, "fashion-mnist": _fashion_mnist, "cifar10": _cifar10, "cifar100": _cifar100,
    "tiny-imagenet": _tiny_imagenet,
}


def _open(name: str, split: str, root: str | Path | None) -> ImageDataset:
    dataset_info(name)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} of {name}; allowed: {', '.join(SPLITS)}")
    return _LOADERS[name](default_root(name, root), split)


def default_root(name: str, root: str | Path | None = None) -> Path:
    """The folder data set ``name`` is read from: ``root``, else ``$SLIPSNN_DATA``, else ``./data``.

    Fashion-MNIST alone falls back to Debian's package folder (``FASHION_MNIST_DEBIAN``) instead of ``./data``.
    """
    if root is None and DATA_ENV not in os.environ and name == "fashion-mnist":
        return FASHION_MNIST_DEBIAN
    return Path(root if root is not None else os.environ.get(DATA_ENV, "data")).expanduser()


def load_dataset(name: str, split: str, root: str | Path | None = None, augment: bool = False) -> ImageDataset:
    """Load one split of a data set from local files.

    Args:
        name: A key of ``DATASETS``.
        split: ``"train"`` or ``"test"`` (Tiny-ImageNet's ``test`` is its official ``val`` folder).
        root: Folder holding the data set in its official layout (``docs/datasets.md``); default
            ``$SLIPSNN_DATA``, else ``./data`` (Fashion-MNIST: else ``/usr/share/datasets/fashion-mnist``).
            Ignored by ``digits`` (bundled with scikit-learn).
        augment: Apply the training augmentation of ``slipsnn.toolchain.data.augment`` (train split only;
            digits has none, so it is a no-op there).

    Returns:
        Items ``(image float32 [C, H, W] in [0, 1] with image * 255 integral, label int)``; images are held
        in memory as uint8, except Tiny-ImageNet's, which are decoded on access.

    Raises:
        DataError: Unknown name or split, ``augment`` on the test split, files missing or malformed.

    Example:
        >>> image, label = load_dataset("digits", "train", augment=True)[0]
        >>> image.shape, image.dtype, label
        (torch.Size([1, 8, 8]), torch.float32, 7)
    """
    if augment and split != "train":
        raise DataError(f"augmentation applies to the train split only, got split {split!r}")
    dataset = _open(name, split, root)
    dataset.transform = train_transforms(name) if augment else None
    return dataset


def load_tensors(name: str, split: str, root: str | Path | None = None,
                 limit: int | None = None) -> tuple[Tensor, Tensor]:
    """Load a whole split (or its first ``limit`` samples) as tensors, without augmentation.

    Args:
        name, split, root: As in ``load_dataset``.
        limit: Number of leading samples to return; None for all.

    Returns:
        ``(images, labels)``: float32 ``[N, C, H, W]`` in ``[0, 1]`` (``images * 255`` integral), int64 ``[N]``.

    Raises:
        DataError: As ``load_dataset``, or a negative ``limit``.

    Example:
        >>> x, y = load_tensors("digits", "test", limit=8)
        >>> x.shape, y.dtype
        (torch.Size([8, 1, 8, 8]), torch.int64)
    """
    if limit is not None and limit < 0:
        raise DataError(f"limit must be None or >= 0, got {limit}")
    images, labels = _open(name, split, root).raw(limit)
    return images.to(torch.float32).div_(255), labels


def load_pixels(name: str, split: str, root: str | Path | None = None,
                limit: int | None = None) -> tuple[Tensor, Tensor]:
    """A whole split as 8-bit pixel values, what the spiking network takes as input.

    Returns:
        ``(pixels, labels)``: float32 ``[N, C, H, W]`` holding the integers 0..255, int64 ``[N]``.

    Raises:
        DataError: As ``load_dataset``, or ``limit`` < 1.
    """
    if limit is not None and limit < 1:
        raise DataError(f"limit must be None or ≥ 1, got {limit}")
    images, labels = _open(name, split, root).raw(limit)
    return images.to(torch.float32), labels
