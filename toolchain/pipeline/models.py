"""From a trained model to the networks slipsnn deploys: checkpoints and user models → float SNN → integers."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..ann.checkpoint import Checkpoint, load_checkpoint
from ..conversion.lower import lower
from ..conversion.quantize import QuantConfig, quantize
from ..errors import SlipsnnError
from ..ir.floating import SpikingNetwork
from ..ir.integer import IntNetwork


def convert_checkpoint(ckpt: Checkpoint | str | Path) -> SpikingNetwork:
    """The float converted SNN of a checkpoint, with its provenance in ``meta``."""
    ckpt = ckpt if isinstance(ckpt, Checkpoint) else load_checkpoint(ckpt)
    act = ckpt.act.to_dict() if ckpt.act is not None else None
    meta = {"dataset": ckpt.dataset, "num_classes": ckpt.model_cfg.num_classes, "arch": ckpt.model_cfg.arch,
            "model_config": ckpt.model_cfg.to_dict(), "activation": {"preset": ckpt.preset, "params": act},
            "thetas": ckpt.thetas, "metrics": {k: v for k, v in ckpt.metrics.items() if k != "history"},
            "checkpoint": str(ckpt.path), "slipsnn_version": __version__}
    return lower(ckpt.model, ckpt.model_cfg.input_shape, ckpt.thetas, meta)


def load_converted(path: str | Path) -> SpikingNetwork:
    """The converted float network of a checkpoint (``model.pt``) or of a model file (``save_model``).

    A model file is read without the model's Python class and without unpickling anything
    (``slipsnn.exporters.floatnet``); a checkpoint is loaded weights-only and lowered.
    """
    from slipsnn.exporters.floatnet import is_float_network, read_float_network
    return read_float_network(path) if is_float_network(path) else convert_checkpoint(path)


def dataset_of(snn: SpikingNetwork, path: str | Path) -> str:
    dataset = snn.meta.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        raise SlipsnnError(f"{path} does not record its data set; save it with save_model(..., dataset=NAME)")
    return dataset


def _user_meta(model: nn.Module, snn: SpikingNetwork, dataset: str | None, metrics: dict | None) -> dict:
    from ..ir.activation import preset_name
    acts = [layer.act for layer in snn.layers if layer.spiking]
    uniform = all(a == acts[0] for a in acts)   # SlipParams compare by value
    act = acts[0] if uniform else None
    return {"dataset": dataset, "num_classes": int(snn.layers[-1].shape[0]), "arch": type(model).__name__,
            "activation": {"preset": preset_name(act) if uniform else "mixed",
                           "params": act.to_dict() if act is not None else None},
            "thetas": {layer.name: layer.theta for layer in snn.layers if layer.spiking},
            "metrics": dict(metrics or {}), "source": "user model", "slipsnn_version": __version__}


def lower_model(model: nn.Module, input_shape: tuple[int, int, int], *, dataset: str | None = None,
                thetas: dict[str, float] | None = None, images: torch.Tensor | None = None,
                metrics: dict | None = None) -> SpikingNetwork:
    """A user's trained model as the converted float network, with the provenance the commands read.

    Args:
        model: any model ``check_convertible`` accepts (``slipify``-ed and trained, or with plain ReLUs).
        input_shape: (C, H, W) of one image.
        dataset: the registry name the commands evaluate on (``digits``, ``mnist``, …), stored in ``meta``.
        thetas: θ of each plain ``nn.ReLU`` by module name; calibrated from ``images`` when missing.
        images: training images as the model sees them, (N, C, H, W) in [0, 1] (or uint8): for the θ of plain
            ReLUs and for the check that they are not normalized outside a model without ``Normalize``.
        metrics: e.g. ``{"ann_accuracy": 0.98}`` (shown by the report).
    """
    import warnings

    from ..ann.calibration import calibrate_thresholds
    from ..conversion.check import input_warning
    from ..data.registry import dataset_info
    if dataset is not None:
        dataset_info(dataset)   # a registry name, or a DataError listing them
    if images is not None:
        if (why := input_warning(model, images)) is not None:
            warnings.warn(why, stacklevel=3)
        if thetas is None and any(isinstance(m, nn.ReLU) for m in model.modules()):
            thetas = calibrate_thresholds(model, images)
    snn = lower(model, input_shape, thetas)
    return SpikingNetwork(snn.input_shape, snn.layers, _user_meta(model, snn, dataset, metrics))


def save_model(model: nn.Module | SpikingNetwork, path: str | Path, input_shape: tuple[int, int, int] | None = None,
               *, dataset: str | None = None, thetas: dict[str, float] | None = None,
               images: torch.Tensor | None = None, metrics: dict | None = None) -> Path:
    """Write a user's model as a model file that ``slipsnn-export``, ``chain`` and ``analyze`` accept.

    The file holds the converted float network (arrays + JSON, docs/format.md "The model file"), so it is
    read back without the model's class and without unpickling. Arguments as ``lower_model``; a
    ``SpikingNetwork`` is written as it is.

    Example:
        >>> save_model(model, "runs/mine/model.snn.npz", (1, 28, 28), dataset="mnist")   # doctest: +SKIP
    """
    from slipsnn.exporters.floatnet import write_float_network
    if isinstance(model, SpikingNetwork):
        snn = model
    else:
        if input_shape is None:
            raise SlipsnnError("save_model needs input_shape=(C, H, W) to convert a torch model")
        snn = lower_model(model, input_shape, dataset=dataset, thetas=thetas, images=images, metrics=metrics)
    return write_float_network(snn, path)


def load_model(path: str | Path) -> SpikingNetwork:
    """Read a model file written by ``save_model`` (never runs code from the file)."""
    from slipsnn.exporters.floatnet import read_float_network
    return read_float_network(path)


def convert_model(model: nn.Module | SpikingNetwork, input_shape: tuple[int, int, int] | None = None,
                  timesteps: int = 4, *, max_timesteps: int | None = None, neuron: str = "if_soft",
                  dataset: str | None = None, thetas: dict[str, float] | None = None,
                  images: torch.Tensor | None = None) -> IntNetwork:
    """One call from a trained model to the deployable integer network.

    Lowers (``lower_model``), quantizes to Loihi integers and proves the 24-bit bound for ``max_timesteps``.

    Args:
        model: the trained model (or an already converted ``SpikingNetwork``).
        input_shape: (C, H, W) of one image (not needed for a ``SpikingNetwork``).
        timesteps: default T stored in the network.
        max_timesteps: horizon proven free of 24-bit overflow (default max(``timesteps``, 8)).
        neuron: ``if_soft`` (slipsnn's neuron) or ``cuba`` (stock netx, exact at T = 1).
        dataset, thetas, images: as ``lower_model``.

    Returns:
        The ``IntNetwork``; ``write_netx`` writes it, ``run`` runs it.

    Example:
        >>> net = convert_model(model, (1, 28, 28), timesteps=4, dataset="mnist")   # doctest: +SKIP
    """
    cfg = quant_config(timesteps, max_timesteps, neuron)
    if isinstance(model, SpikingNetwork):
        snn = model
    else:
        if input_shape is None:
            raise SlipsnnError("convert needs input_shape=(C, H, W) to convert a torch model")
        snn = lower_model(model, input_shape, dataset=dataset, thetas=thetas, images=images)
    return quantize(snn, cfg)


def quant_config(timesteps: int, max_timesteps: int | None, neuron: str) -> QuantConfig:
    """The quantization for a file of ``neuron`` (``if_soft`` or ``cuba``): its limits are the netx
    exporter's (``exporters.netx.QUANT_LIMITS``).

    Raises:
        SlipsnnError: an unknown neuron (the message lists the allowed ones).
    """
    from slipsnn.exporters.netx import QUANT_LIMITS
    if neuron not in QUANT_LIMITS:
        raise SlipsnnError(f"unknown neuron {neuron!r}; allowed: {', '.join(QUANT_LIMITS)}")
    return QuantConfig(timesteps, max_timesteps, **QUANT_LIMITS[neuron])
