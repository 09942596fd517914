"""The data set registry: names, image shapes, classes and normalization (no torch import, so the CLI
can list the names quickly). The loaders are in ``data.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a data set.

    Attributes:
        name: Registry key, e.g. ``"cifar10"``.
        input_shape: ``(C, H, W)`` of one image, in pixels.
        num_classes: Number of labels; labels are ``0 .. num_classes - 1``.
        mean: Per-channel mean of ``pixel / 255`` over the train split (for the model's Normalize).
        std: Per-channel population standard deviation of ``pixel / 255`` over the train split.
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


# digits: np.mean / np.std of load_tensors("digits", "train")[0], rounded to 6 digits (checked by
# tests/test_data.py); fashion-mnist: the same over its 60000 official train images (Debian's
# dataset-fashion-mnist files); the others are the usual published train-set values.
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("digits", (1, 8, 8), 10, (0.305275,), (0.375844,)),
        DatasetInfo("mnist", (1, 28, 28), 10, (0.1307,), (0.3081,)),
        DatasetInfo("fashion-mnist", (1, 28, 28), 10, (0.286041,), (0.353024,)),
        DatasetInfo("cifar10", (3, 32, 32), 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        DatasetInfo("cifar100", (3, 32, 32), 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
        DatasetInfo("tiny-imagenet", (3, 64, 64), 200, (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
    )
}

def dataset_info(name: str) -> DatasetInfo:
    """Return the registry entry of data set ``name``.

    Raises:
        DataError: ``name`` is not a key of ``DATASETS`` (the message lists the allowed names).
    """
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]
