"""Thresholds of a plain-ReLU model from data: θ per ReLU at a high percentile of its activations."""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from ..errors import SlipsnnError


def as_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels → float in [0, 1]; float images are returned as they are."""
    return images.to(torch.float32).div_(255) if images.dtype == torch.uint8 else images


class _TopPercentile:
    """Exact ``np.percentile`` (linear interpolation) of the positive values seen, in bounded memory.

    Keeps only the largest ``k`` values, where ``k`` is large enough for the ``q``-quantile of at most
    ``n_max`` values: the interpolation reads sorted positions ``⌊q(P−1)⌋`` and the next one, which
    lie within the top ``(1 − q)(n_max − 1) + 2`` of ``P ≤ n_max`` values.
    """

    def __init__(self, q: float) -> None:
        self.q, self.k, self.count = q, 0, 0
        self.top: torch.Tensor | None = None

    def add(self, out: torch.Tensor, n_max: int) -> None:
        if self.top is None:
            self.k = int(math.floor((1.0 - self.q) * (n_max - 1))) + 3
            self.top = torch.empty(0, dtype=torch.float64, device=out.device)
        pos = out.detach()[out > 0].to(torch.float64)
        self.count += pos.numel()
        merged = torch.cat([self.top, pos])
        self.top = torch.topk(merged, min(self.k, merged.numel())).values

    def value(self) -> float | None:
        if not self.count:
            return None
        top = self.top.cpu().numpy()  # descending
        pos = self.q * (self.count - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, self.count - 1)
        v_lo, v_hi = top[self.count - 1 - lo], top[self.count - 1 - hi]
        return float(v_lo + (pos - lo) * (v_hi - v_lo))


@torch.no_grad()
def calibrate_thresholds(model: nn.Module, images: torch.Tensor, percentile: float = 99.9,
                         max_images: int = 1024, batch_size: int = 256) -> dict[str, float]:
    """θ of every ``nn.ReLU``: a high percentile of its positive outputs on data (Rueckauer et al. 2017).

    The data-based normalization of Rueckauer et al., "Conversion of continuous-valued deep networks
    to efficient event-driven networks for image classification" (Front. Neurosci. 2017): θ is the
    ``percentile`` of the layer's positive activations, robust to rare outliers.

    Args:
        model: the trained ANN (evaluated in eval mode; its mode is restored after).
        images: training images (N, C, H, W), float in [0, 1] or uint8; the first ``max_images`` are used.
        percentile: in (0, 100]; 100 is the maximum activation.
        max_images: cap on the images used.
        batch_size: images per forward pass.

    Returns:
        ``{module name: θ}`` for every ``nn.ReLU``, the names of ``model.named_modules()``. A ReLU that
        never fires on the data gets θ = 1.0 (any θ is exact there) and a warning.

    Example:
        >>> thetas = calibrate_thresholds(relu_model, train_images)   # doctest: +SKIP
        >>> snn = lower(relu_model, (1, 8, 8), thetas)                # doctest: +SKIP
    """
    if not 0.0 < percentile <= 100.0:
        raise SlipsnnError(f"percentile={percentile} must lie in (0, 100]")
    images = images[:max_images]
    if len(images) == 0:
        raise SlipsnnError("calibrate_thresholds needs at least one image")
    relus = {name: m for name, m in model.named_modules() if isinstance(m, nn.ReLU)}
    trackers = {name: _TopPercentile(percentile / 100.0) for name in relus}
    n_total = len(images)

    def hook(name: str):
        return lambda _m, _inp, out: trackers[name].add(out, n_total * out[0].numel())

    handles = [m.register_forward_hook(hook(name)) for name, m in relus.items()]
    device, was_training = next(model.parameters()).device, model.training
    model.eval()
    try:
        for i in range(0, n_total, batch_size):
            model(as_unit_float(images[i:i + batch_size].to(device)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    thetas = {}
    for name, tracker in trackers.items():
        value = tracker.value()
        if value is None:
            warnings.warn(f"ReLU {name!r} has no positive output on {n_total} calibration images; θ set to 1.0")
            value = 1.0
        thetas[name] = value
    return thetas
