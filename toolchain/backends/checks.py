"""Validation shared by every backend: the input images and the run's horizon."""

from __future__ import annotations

import torch

from ..conversion.overflow import prove_no_overflow
from ..errors import QuantizationError, SlipsnnError
from ..ir.integer import IntNetwork


def check_pixels(pixels: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Validate a batch of input images (N ≥ 1, (C, H, W) = ``shape``, integers 0..255) and return it as a tensor."""
    pixels = torch.as_tensor(pixels)
    if pixels.dim() == 0 or tuple(pixels.shape[1:]) != tuple(shape):
        raise SlipsnnError(f"input images have shape {tuple(pixels.shape[1:])}; the network takes {tuple(shape)}")
    if len(pixels) == 0:
        raise SlipsnnError("no input images: nothing to run")
    if pixels.min() < 0 or pixels.max() > 255 or (pixels != torch.round(pixels)).any():
        raise SlipsnnError("input pixels must be 8-bit integers 0..255 (round(image·255))")
    return pixels


def check_horizon(net: IntNetwork, timesteps: int) -> None:
    """Refuse a run longer than the file's proven horizon unless the overflow proof holds for it too.

    Raises:
        QuantizationError: a layer can overflow within ``timesteps`` steps (re-export with a longer horizon).
    """
    if timesteps > net.max_timesteps:
        try:
            prove_no_overflow(net, timesteps)
        except QuantizationError as err:
            raise QuantizationError(f"{err}; the file is proven for T ≤ {net.max_timesteps}: re-export with "
                                    f"--max-timesteps {timesteps}") from None


def check_batch_size(batch_size: int) -> int:
    """Validate a batch size (samples per vectorized batch): an integer ≥ 1."""
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or int(batch_size) < 1:
        raise SlipsnnError(f"batch size {batch_size!r}: must be an integer ≥ 1")
    return int(batch_size)
