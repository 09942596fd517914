"""Tests of slipsnn.toolchain.data.loaders and .augment on tiny files written here in the official formats."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from slipsnn.toolchain.data import augment
from slipsnn.toolchain.data import loaders as data
from slipsnn.toolchain.data.augment import Cutout
from slipsnn.toolchain.data.loaders import DATASETS, dataset_info, load_dataset, load_tensors
from slipsnn.toolchain.errors import DataError

WNIDS = ["n01443537", "n01629819", "n01641577"]


def assert_8bit(images: torch.Tensor) -> None:
    """Float32 in [0, 1] with images * 255 an exact integer."""
    assert images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    scaled = images * 255
    bad = torch.nonzero(scaled != scaled.round())
    assert bad.numel() == 0, f"{bad[:5]=}"


def assert_equal_uint8(images: torch.Tensor, expected: np.ndarray) -> None:
    got = (images * 255).round().to(torch.uint8).numpy()
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert (got == expected).all(), f"{np.argwhere(got != expected)[:5]=}"


# ---------------------------------------------------------------- writers of the official formats


def write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    """idx: big-endian int32 magic, one big-endian int32 per dimension, then the uint8 data."""
    payload = struct.pack(f">{1 + array.ndim}i", magic, *array.shape) + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as file:
            file.write(payload)
    else:
        path.write_bytes(payload)


def write_mnist(folder: Path, gz: bool = False, n_train: int = 6, n_test: int = 4) -> dict[str, tuple]:
    folder.mkdir(parents=True, exist_ok=True)
    rng, suffix, written = np.random.default_rng(1), ".gz" if gz else "", {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", 2051, images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", 2049, labels)
        written["train" if prefix == "train" else "test"] = (images, labels)
    return written


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pickles like Python 2's ``cPickle.dump(obj, f, 2)``, which made the official CIFAR files.

    Python 2 strings are byte strings (opcodes SHORT_BINSTRING / BINSTRING); Python 3 reads them as
    ``bytes`` with ``encoding='bytes'``, hence the bytes keys of the batch dicts.
    """

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2_string(self, obj: str | bytes) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string


def py2_pickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def write_cifar_batch(path: Path, rows: np.ndarray, labels: list[int], label_key: bytes) -> None:
    """The official batch dict: b'batch_label', b'labels' (CIFAR-100: b'fine_labels'), b'data', b'filenames'."""
    batch = {b"batch_label": b"testing batch 1 of 1", label_key: labels, b"data": rows,
             b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}
    path.write_bytes(py2_pickle(batch))


def write_cifar10(folder: Path, per_batch: int = 2) -> dict[str, tuple]:
    folder.mkdir(parents=True, exist_ok=True)
    rng, written = np.random.default_rng(2), {}
    for split, names in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        rows = rng.integers(0, 256, (per_batch * len(names), 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, len(rows)).tolist()
        for i, name in enumerate(names):
            part = slice(i * per_batch, (i + 1) * per_batch)
            write_cifar_batch(folder / name, rows[part], labels[part], b"labels")
        written[split] = (rows, labels)
    return written


def write_cifar100(folder: Path) -> dict[str, tuple]:
    folder.mkdir(parents=True, exist_ok=True)
    rng, written = np.random.default_rng(3), {}
    for split, n in (("train", 5), ("test", 3)):
        rows = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [99, 0] + rng.integers(0, 100, n - 2).tolist()
        batch = {b"filenames": [b"x.png"] * n, b"batch_label": split.encode(), b"fine_labels": labels,
                 b"coarse_labels": [label // 5 for label in labels], b"data": rows}
        (folder / split).write_bytes(py2_pickle(batch))
        written[split] = (rows, labels)
    return written


def smooth_image(rng: np.random.Generator, mode: str) -> Image.Image:
    """A 64x64 gradient (so that JPEG changes it little)."""
    ramp = np.linspace(0, 1, 64)
    base = np.add.outer(ramp, ramp) * rng.uniform(50, 120) + rng.uniform(0, 10)
    if mode == "L":
        return Image.fromarray(base.astype(np.uint8), "L")
    return Image.fromarray(np.stack([base, base[::-1], base.T], axis=-1).astype(np.uint8), "RGB")


def write_tiny_imagenet(folder: Path) -> dict[str, list[tuple[Path, int]]]:
    """Official layout; the first training image of each class and one val image are grayscale."""
    rng = np.random.default_rng(4)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    train = []
    for label, wnid in enumerate(WNIDS):
        (folder / "train" / wnid / "images").mkdir(parents=True)
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(2):
            path = folder / "train" / wnid / "images" / f"{wnid}_{i}.JPEG"
            smooth_image(rng, "L" if i == 0 else "RGB").save(path, quality=95)
            train.append((path, label))
    (folder / "val" / "images").mkdir(parents=True)
    val, rows = [], []
    for i, label in enumerate([2, 0, 1, 2]):
        path = folder / "val" / "images" / f"val_{i}.JPEG"
        smooth_image(rng, "L" if i == 1 else "RGB").save(path, quality=95)
        rows.append(f"val_{i}.JPEG\t{WNIDS[label]}\t0\t3\t60\t55")
        val.append((path, label))
    (folder / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")
    return {"train": train, "test": val}


def decoded_rgb(path: Path) -> np.ndarray:
    """Independent decode: PIL -> RGB -> uint8 [3, H, W]."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).transpose(2, 0, 1)


# ---------------------------------------------------------------- registry and arguments


def test_registry_and_unknown_name() -> None:
    assert set(DATASETS) == {"digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "tiny-imagenet"}
    for name, info in DATASETS.items():
        assert dataset_info(name) is info and info.name == name
        assert len(info.mean) == len(info.std) == info.input_shape[0]
        assert callable(augment.train_transforms(name)), f"{name} has no augmentation recipe"
    with pytest.raises(DataError) as err:
        load_dataset("imagenet", "train")
    assert all(name in str(err.value) for name in DATASETS), str(err.value)


@pytest.mark.parametrize("call", [
    lambda: load_dataset("digits", "validation"),
    lambda: load_tensors("digits", "train", limit=-1),
    lambda: load_dataset("digits", "test", augment=True),
    lambda: Cutout(0),
])
def test_bad_arguments(call: Callable[[], object]) -> None:
    with pytest.raises(DataError):
        call()


# ---------------------------------------------------------------- digits


def test_digits_split_is_fixed_stratified_and_8bit() -> None:
    x_train, y_train = load_tensors("digits", "train")
    x_test, y_test = load_tensors("digits", "test")
    assert x_train.shape == (1347, 1, 8, 8) and x_test.shape == (450, 1, 8, 8)
    assert y_train.dtype == torch.int64 and y_test.shape == (450,)
    assert_8bit(x_train)
    assert_8bit(x_test)
    again = load_tensors("digits", "test")
    assert torch.equal(again[0], x_test) and torch.equal(again[1], y_test)

    digits = load_digits()
    _, test_index = train_test_split(np.arange(1797), test_size=0.25, random_state=0, stratify=digits.target)
    expected = np.floor(digits.images[test_index] * 255 / 16 + 0.5).astype(np.uint8)[:, None]
    assert_equal_uint8(x_test, expected)
    assert (y_test.numpy() == digits.target[test_index]).all()
    share = np.bincount(y_test.numpy(), minlength=10) / 450 - np.bincount(digits.target) / 1797
    assert np.abs(share).max() < 0.01, share


def test_digits_statistics_match_registry() -> None:
    pixels = load_tensors("digits", "train")[0].numpy().astype(np.float64)
    assert DATASETS["digits"].mean == pytest.approx((pixels.mean(),), abs=1e-6)
    assert DATASETS["digits"].std == pytest.approx((pixels.std(),), abs=1e-6)


def test_digits_augment_is_a_no_op() -> None:
    plain, augmented = load_dataset("digits", "train"), load_dataset("digits", "train", augment=True)
    assert torch.equal(plain[3][0], augmented[3][0]) and plain[3][1] == augmented[3][1]


# ---------------------------------------------------------------- MNIST


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("subdir", ["", "MNIST/raw"])
def test_mnist_reads_idx_exactly(tmp_path: Path, gz: bool, subdir: str) -> None:
    written = write_mnist(tmp_path / subdir, gz=gz)
    for split, (images, labels) in written.items():
        x, y = load_tensors("mnist", split, root=tmp_path)
        assert x.shape == (len(images), 1, 28, 28)
        assert_8bit(x)
        assert_equal_uint8(x, images[:, None])
        assert (y.numpy() == labels).all() and y.dtype == torch.int64
    item, label = load_dataset("mnist", "test", root=str(tmp_path))[2]
    assert_equal_uint8(item, written["test"][0][2][None])
    assert label == written["test"][1][2]


@pytest.mark.parametrize("subdir", ["", "fashion-mnist", "FashionMNIST/raw"])
def test_fashion_mnist_reads_the_official_idx_files(tmp_path: Path, subdir: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    written = write_mnist(tmp_path / subdir, gz=True, n_train=7, n_test=3)
    monkeypatch.setenv("SLIPSNN_DATA", str(tmp_path))
    for split, (images, labels) in written.items():
        x, y = load_tensors("fashion-mnist", split)   # root from $SLIPSNN_DATA
        assert x.shape == (len(images), 1, 28, 28)
        assert_8bit(x)
        assert_equal_uint8(x, images[:, None])
        assert (y.numpy() == labels).all()
    assert dataset_info("fashion-mnist").input_shape == (1, 28, 28)


def test_fashion_mnist_defaults_to_the_debian_folder_and_names_the_package(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from slipsnn.toolchain.data import loaders
    monkeypatch.delenv("SLIPSNN_DATA", raising=False)
    assert loaders.default_root("fashion-mnist") == Path("/usr/share/datasets/fashion-mnist")
    assert loaders.default_root("mnist") == Path("data")
    monkeypatch.setattr(loaders, "FASHION_MNIST_DEBIAN", tmp_path / "absent")
    with pytest.raises(DataError) as err:
        load_tensors("fashion-mnist", "train")
    msg = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "t10k-images-idx3-ubyte" in msg, msg
    write_mnist(tmp_path / "absent", n_train=2, n_test=2)
    assert len(load_tensors("fashion-mnist", "test")[1]) == 2


def test_mnist_limit_takes_the_first_samples(tmp_path: Path) -> None:
    images, labels = write_mnist(tmp_path)["train"]
    x, y = load_tensors("mnist", "train", root=tmp_path, limit=3)
    assert_equal_uint8(x, images[:3, None])
    assert (y.numpy() == labels[:3]).all()


def test_mnist_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images, _ = write_mnist(tmp_path)["test"]
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    assert_equal_uint8(load_tensors("mnist", "test")[0], images[:, None])


def test_mnist_bad_magic_number(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", 2049, np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: idx magic number 2049, expected 2051"):
        load_tensors("mnist", "test", root=tmp_path)


def test_mnist_truncated_file(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="train-images-idx3-ubyte: .* bytes, expected"):
        load_tensors("mnist", "train", root=tmp_path)


def test_mnist_label_count_mismatch(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", 2049, np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="3 labels .* for 4 images"):
        load_tensors("mnist", "test", root=tmp_path)


# ---------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("root_is_batch_folder", [False, True])
def test_cifar10_reads_batches_exactly(tmp_path: Path, root_is_batch_folder: bool) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    written = write_cifar10(folder)
    root = folder if root_is_batch_folder else tmp_path
    for split, (rows, labels) in written.items():
        x, y = load_tensors("cifar10", split, root=root)
        assert x.shape == (len(rows), 3, 32, 32)
        assert_8bit(x)
        assert_equal_uint8(x, rows.reshape(-1, 3, 32, 32))
        assert y.tolist() == labels
    # row-major C, H, W: channel c, row h, column w of image n is byte c * 1024 + h * 32 + w of row n
    x_train, rows = load_tensors("cifar10", "train", root=root)[0], written["train"][0]
    assert round(float(x_train[9, 2, 31, 5]) * 255) == rows[9, 2 * 1024 + 31 * 32 + 5]
    assert round(float(x_train[4, 1, 7, 30]) * 255) == rows[4, 1 * 1024 + 7 * 32 + 30]


def test_cifar100_reads_fine_labels(tmp_path: Path) -> None:
    written = write_cifar100(tmp_path / "cifar-100-python")
    for split, (rows, labels) in written.items():
        x, y = load_tensors("cifar100", split, root=tmp_path)
        assert_equal_uint8(x, rows.reshape(-1, 3, 32, 32))
        assert y.tolist() == labels


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_cifar_batches_re_pickled_by_python3(tmp_path: Path, protocol: int) -> None:
    rows = np.random.default_rng(5).integers(0, 256, (3, 3072), dtype=np.uint8)
    write_cifar100(tmp_path)
    batch = {b"data": rows, b"fine_labels": [5, 6, 7], b"coarse_labels": [1, 1, 1]}
    (tmp_path / "test").write_bytes(pickle.dumps(batch, protocol=protocol))
    x, y = load_tensors("cifar100", "test", root=tmp_path)
    assert_equal_uint8(x, rows.reshape(3, 3, 32, 32))
    assert y.tolist() == [5, 6, 7]


class _Exploit:
    """Unpickling this calls os.system(command)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return os.system, (self.command,)


def test_cifar_pickle_refuses_foreign_classes(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    marker = tmp_path / "hacked"
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Exploit(f"touch {marker}")}
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(DataError) as err:
        load_tensors("cifar10", "test", root=tmp_path)
    assert str(folder / "test_batch") in str(err.value) and "system" in str(err.value), str(err.value)
    assert not marker.exists(), "the pickle ran its payload"


@pytest.mark.parametrize("content", [b"not a pickle", pickle.dumps([1, 2]), pickle.dumps({b"data": [1]})],
                         ids=["garbage", "list", "data-not-array"])
def test_cifar_malformed_batch(tmp_path: Path, content: bytes) -> None:
    write_cifar100(tmp_path)
    (tmp_path / "test").write_bytes(content)
    with pytest.raises(DataError, match=str(tmp_path / "test")):
        load_tensors("cifar100", "test", root=tmp_path)


# ---------------------------------------------------------------- Tiny-ImageNet


@pytest.mark.parametrize("root_is_dataset_folder", [False, True])
def test_tiny_imagenet_reads_official_layout(tmp_path: Path, root_is_dataset_folder: bool) -> None:
    folder = tmp_path / "tiny-imagenet-200"
    written = write_tiny_imagenet(folder)
    root = folder if root_is_dataset_folder else tmp_path
    for split, pairs in written.items():
        x, y = load_tensors("tiny-imagenet", split, root=root)
        assert x.shape == (len(pairs), 3, 64, 64)
        assert_8bit(x)
        assert_equal_uint8(x, np.stack([decoded_rgb(path) for path, _ in pairs]))
        assert y.tolist() == [label for _, label in pairs]
    gray = load_dataset("tiny-imagenet", "test", root=root)[1][0]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    with Image.open(written["test"][1][0]) as img:
        assert img.mode == "L", "the fixture should store this image as grayscale"
    # JPEG is lossy, but at quality 95 a smooth image changes by a few levels: check against the drawing
    drawn = np.asarray(smooth_image(np.random.default_rng(4), "L"), dtype=np.int16)
    first = load_tensors("tiny-imagenet", "train", root=root, limit=1)[0][0]
    assert np.abs(drawn - (first.numpy() * 255).round()).max() <= 4


def test_tiny_imagenet_unknown_wnid(tmp_path: Path) -> None:
    write_tiny_imagenet(tmp_path)
    annotations = tmp_path / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text() + "val_9.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="val_annotations.txt: 5 rows, 1 without a wnid"):
        load_tensors("tiny-imagenet", "test", root=tmp_path)


def test_tiny_imagenet_missing_image(tmp_path: Path) -> None:
    write_tiny_imagenet(tmp_path)
    (tmp_path / "val" / "images" / "val_3.JPEG").unlink()
    with pytest.raises(DataError, match="val_3.JPEG"):
        load_tensors("tiny-imagenet", "test", root=tmp_path)


# ---------------------------------------------------------------- missing data


@pytest.mark.parametrize("name, expected", [
    ("mnist", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte"]),
    ("cifar10", ["cifar-10-batches-py/data_batch_1..5", "test_batch", "https://www.cs.toronto.edu/~kriz/cifar.html"]),
    ("cifar100", ["cifar-100-python/train", "test"]),
    ("tiny-imagenet", ["tiny-imagenet-200/wnids.txt", "train/<wnid>/images/*.JPEG", "val/val_annotations.txt"]),
])
def test_missing_data_names_the_expected_layout(tmp_path: Path, name: str, expected: list[str]) -> None:
    with pytest.raises(DataError) as err:
        load_dataset(name, "train", root=tmp_path / "nowhere")
    message = str(err.value)
    assert f"not found under {tmp_path / 'nowhere'}" in message and "downloads nothing" in message, message
    assert all(text in message for text in expected), message


def test_one_missing_cifar_batch(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataError, match="data_batch_1..5"):
        load_tensors("cifar10", "train", root=tmp_path)
    assert load_tensors("cifar10", "test", root=tmp_path)[0].shape == (2, 3, 32, 32)


# ---------------------------------------------------------------- augmentation


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    write_mnist(tmp_path)
    write_cifar10(tmp_path / "cifar-10-batches-py")
    write_cifar100(tmp_path / "cifar-100-python")
    write_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    return tmp_path


def augmented(name: str, root: Path, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    dataset = load_dataset(name, "train", root=root, augment=True)
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "tiny-imagenet"])
def test_augmentation_keeps_8bit_and_is_seeded(data_root: Path, name: str) -> None:
    plain = load_tensors(name, "train", root=data_root)[0]
    first, second = augmented(name, data_root, 0), augmented(name, data_root, 0)
    assert first.shape == plain.shape
    assert_8bit(first)
    assert torch.equal(first, second), "same seed, different augmentation"
    assert not torch.equal(first, plain), "augmentation changed nothing"
    assert not torch.equal(first, augmented(name, data_root, 1)), "the seed has no effect"


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "tiny-imagenet"])
def test_every_augmentation_branch_stays_uint8(name: str) -> None:
    """Many draws (AutoAugment's CIFAR-10 policy has 25 sub-policies); uint8 out keeps x * 255 integral."""
    torch.manual_seed(0)
    shape = DATASETS[name].input_shape
    image = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(6))
    transform = augment.train_transforms(name)
    for _ in range(60):
        out = transform(image)
        assert out.dtype == torch.uint8 and out.shape == shape


def test_cutout_zeroes_one_clipped_square() -> None:
    torch.manual_seed(0)
    image = torch.full((3, 32, 32), 200, dtype=torch.uint8)
    for _ in range(50):
        out = Cutout(16)(image)
        assert out.dtype == torch.uint8 and torch.equal(image, torch.full_like(image, 200))
        hole = out == 0
        assert torch.equal(hole[0], hole[1]) and torch.equal(hole[1], hole[2])
        rows, cols = hole[0].any(dim=1).nonzero().flatten(), hole[0].any(dim=0).nonzero().flatten()
        height, width = len(rows), len(cols)
        assert 8 <= height <= 16 and 8 <= width <= 16, (height, width)
        assert int(hole[0].sum()) == height * width  # one filled rectangle
        assert rows[-1] - rows[0] + 1 == height and cols[-1] - cols[0] + 1 == width
        assert ((out == 200) | hole).all()
