"""Training augmentation of each data set, on uint8 ``[C, H, W]`` tensors.

Every transform maps 8-bit pixels to 8-bit pixels (crops pad with 0, flips and AutoAugment keep uint8,
Cutout writes 0), so the loaders' final division by 255 keeps ``x * 255`` integral. All randomness comes
from the torch RNG: ``torch.manual_seed`` makes an augmented sample reproducible. The recipes follow
the paper (SPEC section 2): CIFAR-10 crop 32 pad 4, horizontal flip, AutoAugment (CIFAR-10 policy),
Cutout 16; CIFAR-100 the same without AutoAugment.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..errors import DataError

Transform = Callable[[Tensor], Tensor]  # uint8 [C, H, W] -> uint8 [C, H, W]


class Cutout:
    """Zero one ``size`` x ``size`` square at a uniformly random centre, clipped at the image borders.

    As in DeVries & Taylor 2017 ("Improved Regularization of Convolutional Neural Networks with
    Cutout"): the centre ``(cy, cx)`` is uniform over all pixels and rows ``cy - size//2 .. cy + size//2 - 1``
    (columns likewise) are set to 0, here before normalisation, so the hole is black.

    Args:
        size: Side of the square in pixels (16 for CIFAR).

    Example:
        >>> Cutout(16)(torch.full((3, 32, 32), 255, dtype=torch.uint8)).dtype
        torch.uint8
    """

    def __init__(self, size: int = 16) -> None:
        if size < 1:
            raise DataError(f"Cutout size must be at least 1 pixel, got {size}")
        self.size = size

    def __call__(self, image: Tensor) -> Tensor:
        """Return a copy of ``image`` (``[..., H, W]``, any dtype) with the square zeroed."""
        height, width = image.shape[-2:]
        cy = int(torch.randint(height, ()).item())
        cx = int(torch.randint(width, ()).item())
        half = self.size // 2
        out = image.clone()
        out[..., max(cy - half, 0) : min(cy + half, height), max(cx - half, 0) : min(cx + half, width)] = 0
        return out

    def __repr__(self) -> str:
        return f"Cutout(size={self.size})"


def _transforms():  # noqa: ANN202 (torchvision's module)
    """torchvision's transforms, imported on first use: digits trains and every other command runs without it."""
    try:
        from torchvision import transforms
    except Exception as err:   # a torchvision built for another torch fails with RuntimeError, not ImportError
        raise DataError(f"training augmentation needs torchvision matching torch {torch.__version__} "
                        f"(pip install torchvision): {err}") from None
    return transforms


def _cifar10() -> Transform:
    T = _transforms()
    policy = T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)
    return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), policy, Cutout(16)])


def _cifar100() -> Transform:
    T = _transforms()
    return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), Cutout(16)])


def _mnist() -> Transform:
    T = _transforms()
    return T.RandomCrop(28, padding=2)  # no flip: digits are not mirror-symmetric


def _tiny_imagenet() -> Transform:
    T = _transforms()
    return T.Compose([T.RandomCrop(64, padding=8), T.RandomHorizontalFlip()])


def _identity(image: Tensor) -> Tensor:
    return image


# digits (8x8) is not augmented: a crop or shift would lose a large part of the digit.
_RECIPES: dict[str, Callable[[], Transform]] = {
    "digits": lambda: _identity,
    "mnist": _mnist,
    "fashion-mnist": _mnist,   # the same 2-pixel shifts; no flip, so one recipe for both 28×28 sets
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "tiny-imagenet": _tiny_imagenet,
}


def train_transforms(name: str) -> Transform:
    """Return a fresh training augmentation for data set ``name`` (uint8 ``[C, H, W]`` in and out).

    Raises:
        DataError: ``name`` has no recipe (the message lists the names that have one).
    """
    if name not in _RECIPES:
        raise DataError(f"no augmentation for data set {name!r}; allowed: {', '.join(_RECIPES)}")
    return _RECIPES[name]()
