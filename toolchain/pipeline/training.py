"""Training and scoring: train a checkpoint, score its converted float SNN at several T."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn

from ..ann.models import ModelConfig
from ..backends.simulator import simulate_float
from ..conversion.lower import lower
from ..errors import SlipsnnError

if TYPE_CHECKING:
    from ..ann.training import TrainConfig


def train_and_evaluate(cfg: "TrainConfig", progress: bool = True,
                       timesteps: Sequence[int] = (1, 2, 4, 8), *, resume: bool = False,
                       stop_after: int | None = None) -> dict:
    """Train, evaluate the converted float SNN on the test split, and write ``metrics.json``.

    Args:
        cfg: the training configuration; with ``cfg.out_dir`` the checkpoint and metrics are written there.
        progress: show the training progress bar.
        timesteps: the T at which the converted SNN is evaluated.
        resume, stop_after: as in ``training.train``; an unfinished call evaluates nothing and writes
            no ``metrics.json``. Under torchrun only rank 0 evaluates and writes.

    Returns:
        ``{"ann_accuracy": acc, "snn_accuracy": {"1": acc, …}, …}`` (fractions of 1, test split, without
        the per-epoch history); the checkpoint's metrics hold the same numbers.
    """
    from ..ann.training import train
    from ..files import atomic_write_json

    def evaluate_snn(model: nn.Module, model_cfg: ModelConfig, thetas: dict, x: torch.Tensor,
                     y: torch.Tensor) -> dict[int, float]:
        return snn_accuracies(model, model_cfg, thetas, x, y, timesteps, device=cfg.device)

    res = train(cfg, progress, evaluate_snn=evaluate_snn, resume=resume, stop_after=stop_after)
    metrics = {k: v for k, v in res.metrics.items() if k != "history"}
    if cfg.out_dir and res.is_main and metrics["finished"]:
        atomic_write_json(Path(cfg.out_dir) / "metrics.json", metrics)
    return metrics


def snn_accuracies(model: nn.Module, model_cfg: ModelConfig, thetas: dict[str, float] | None, images: torch.Tensor,
                   labels: torch.Tensor, timesteps: Sequence[int] = (1, 2, 4, 8),
                   batch_size: int | None = None, device: str | None = "cpu") -> dict[int, float]:
    """Accuracy (fraction) of the converted float SNN after each of ``timesteps`` steps, in one simulation.

    Args:
        model: the trained ANN (any device; it is lowered from a CPU copy).
        model_cfg: its architecture (for the input shape).
        thetas: θ of each ``nn.ReLU`` (plain-ReLU models); SlipReLU models need none.
        images: (N, C, H, W), float in [0, 1] with ``images·255`` integral, or uint8 pixels.
        labels: (N,) class labels.
        timesteps: the T values to report; one pass of ``max(timesteps)`` steps serves all.
        batch_size: samples per simulated batch (default: ``simulator.auto_batch_size``).
        device: where the SNN is simulated (``cpu``, ``cuda``, ``cuda:N``, ``auto``).

    Example:
        >>> snn_accuracies(res.model, res.model_cfg, res.thetas, x, y)   # doctest: +SKIP
        {1: 0.91, 2: 0.95, 4: 0.97, 8: 0.97}
    """
    steps = sorted({int(t) for t in timesteps})
    if not steps or steps[0] < 1:
        raise SlipsnnError(f"timesteps {list(timesteps)} must be a non-empty list of integers ≥ 1")
    net = lower(model, model_cfg.input_shape, thetas)   # lower copies the model to the CPU
    pixels = images.to(torch.float32) if images.dtype == torch.uint8 else (images * 255).round()
    acc = simulate_float(net, pixels, steps[-1], batch_size=batch_size, device=device).accuracy(labels.cpu().numpy())
    return {t: float(acc[t - 1]) for t in steps}
