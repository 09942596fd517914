"""Checkpoints: a trained model with everything needed to rebuild, convert and report it.

A checkpoint is a ``torch.save`` archive of tensors and plain types only, so it loads with
``torch.load(weights_only=True)`` and loading it never runs code from the file:

    {"format": "slipsnn-checkpoint", "version": 1, "slipsnn_version": str,
     "model_config": ModelConfig.to_dict(), "activation": {"preset": str, a, L, delta1, delta2, a_learnable}
     (just {"preset": "relu"} for a plain-ReLU model), "state_dict": {name: tensor},
     "thetas": {activation module name: θ}, "normalization": {"mean": [...], "std": [...]},
     "input_shape": [C, H, W], "num_classes": int, "dataset": str, "metrics": dict, "train_config": dict | None}

``thetas`` holds every activation's θ: a SlipReLU's is read from the module, a ReLU's comes from data
calibration (``train.calibrate_thresholds``).
"""

from __future__ import annotations

import math
import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..ir.activation import PRESETS, SlipParams, preset_name
from .activations import SlipReLU
from ..files import atomic_write
from ..errors import ModelError, SlipsnnError
from .models import ModelConfig, build_model

FORMAT = "slipsnn-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("format", "version", "slipsnn_version", "model_config", "activation", "state_dict", "thetas",
                 "normalization", "input_shape", "num_classes", "dataset", "metrics", "train_config")


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model: the rebuilt model with the stored weights, in eval mode, on the CPU.
        model_cfg: its architecture.
        act: the activation parameters (None for a plain-ReLU model).
        preset: the activation's preset name (``slip``, ``qcfs``, ``clipfloor``, ``clip`` or ``relu``).
        dataset: name of the data set it was trained on.
        metrics: what training measured (``ann_accuracy`` as a fraction, ``history``, …).
        thetas: θ of every activation by module name (units of the activation's input).
        train_config: the ``TrainConfig`` as a dict, or None.
        path: the file it came from.
    """

    model: nn.Module
    model_cfg: ModelConfig
    act: SlipParams | None
    preset: str
    dataset: str
    metrics: dict
    thetas: dict[str, float]
    train_config: dict | None
    path: Path


def activation_thetas(model: nn.Module, relu_thetas: dict[str, float] | None = None) -> dict[str, float]:
    """θ of every activation of ``model`` by qualified module name.

    Args:
        model: a model whose activations are ``SlipReLU`` or ``nn.ReLU``.
        relu_thetas: θ of each ``nn.ReLU`` (from calibration). Entries naming a SlipReLU are ignored:
            its θ is the module's own parameter.

    Raises:
        ModelError: a ReLU has no θ, a θ is not a finite positive number, or a name is no activation.
    """
    relu_thetas = dict(relu_thetas or {})
    thetas: dict[str, float] = {}
    for name, m in model.named_modules():
        if isinstance(m, SlipReLU):
            thetas[name] = float(m.theta.detach())
            relu_thetas.pop(name, None)
        elif isinstance(m, nn.ReLU):
            if name not in relu_thetas:
                raise ModelError(f"ReLU {name!r} has no threshold θ; calibrate it first "
                                 "(slipsnn.toolchain.ann.training.calibrate_thresholds)")
            thetas[name] = float(relu_thetas.pop(name))
    if relu_thetas:
        raise ModelError(f"thresholds given for modules that are not activations of the model: {sorted(relu_thetas)}")
    bad = {k: v for k, v in thetas.items() if not (math.isfinite(v) and v > 0)}
    if bad:
        raise ModelError(f"thresholds must be finite and > 0, got {bad}")
    return thetas


def _plain(obj: Any, where: str) -> Any:
    """``obj`` with numpy scalars/arrays, tuples and paths turned into plain types (what weights_only loads)."""
    if isinstance(obj, np.generic):  # before float: np.float64 is a float subclass that pickles as numpy
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise ModelError(f"checkpoint field {where} has a key of type {type(k).__name__}; allowed: str, int")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    raise ModelError(f"checkpoint field {where} holds a {type(obj).__name__}; allowed: tensors, numbers, str, "
                     "bool, None, lists and dicts of these")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, model_cfg: ModelConfig, act: SlipParams | None, *,
                    dataset: str, metrics: dict, thetas: dict[str, float] | None = None,
                    train_cfg: dict | None = None) -> Path:
    """Save ``model`` as a slipsnn checkpoint, atomically.

    Args:
        path: destination file (``.pt``); parent folders are created.
        model: the trained model (built by ``models.build_model(model_cfg, act)``).
        model_cfg: its architecture.
        act: its activation parameters; None for a plain-ReLU model.
        dataset: data set name.
        metrics: training results (plain types; numpy scalars are converted).
        thetas: θ of each ``nn.ReLU`` by module name (required for a ReLU model); a SlipReLU's θ is
            always read from the module.
        train_cfg: the training configuration as a dict.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ModelError: a ReLU without θ, or metrics/config holding objects a weights-only load could not read.

    Example:
        >>> save_checkpoint("runs/digits/model.pt", model, cfg, act, dataset="digits",
        ...                 metrics={"ann_accuracy": 0.97})   # doctest: +SKIP
    """
    preset = preset_name(act)   # stored for readers; derived again from the parameters on load
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "slipsnn_version": __version__,
        "model_config": model_cfg.to_dict(),
        "activation": {"preset": preset} if act is None else {"preset": preset, **act.to_dict()},
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "thetas": activation_thetas(model, thetas),
        "normalization": {"mean": list(model_cfg.mean), "std": list(model_cfg.std)},
        "input_shape": list(model_cfg.input_shape),
        "num_classes": model_cfg.num_classes,
        "dataset": str(dataset),
        "metrics": _plain(metrics, "metrics"),
        "train_config": _plain(train_cfg, "train_config"),
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


_UNSAFE_CLASS = re.compile(r"Unsupported (?:class|global:\s*GLOBAL)\s+(\S+)")


def _read(path: Path) -> Any:
    """``torch.load(weights_only=True)`` of ``path`` with every failure turned into one ``ModelError``."""
    if not path.exists():
        raise ModelError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise ModelError(f"{path}: is not a file (expected a slipsnn checkpoint .pt)")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a slipsnn checkpoint: it is not a torch.save archive (zip); "
                         "refusing to unpickle it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = _UNSAFE_CLASS.search(str(err))
        if found is None:
            raise ModelError(f"{path}: not a readable checkpoint: its pickle is corrupt or not weights-only "
                             f"({str(err).rsplit('error: ', 1)[-1]})") from None
        raise ModelError(f"{path}: refusing to load: it contains Python objects beyond tensors and plain types "
                         f"(first: {found.group(1)}; weights_only=True); slipsnn checkpoints never need that") from None
    except Exception as err:  # a damaged archive fails in many ways (RuntimeError, EOFError, KeyError, …)
        raise ModelError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else 'no detail'})") from None


def _activation(path: Path, d: Any) -> tuple[str, SlipParams | None]:
    if not isinstance(d, dict) or d.get("preset") not in PRESETS:
        raise ModelError(f"{path}: field 'activation' must be a dict whose 'preset' is one of "
                         f"{', '.join(PRESETS)}; found {d!r}")
    preset = str(d["preset"])
    if preset == "relu":
        return preset, None
    fields = ("a", "L", "delta1", "delta2", "a_learnable")
    missing = [f for f in fields if f not in d]
    if missing:
        raise ModelError(f"{path}: activation {preset!r} lacks the parameters {missing}")
    try:
        act = SlipParams(a=float(d["a"]), L=int(d["L"]), delta1=float(d["delta1"]), delta2=float(d["delta2"]),
                         a_learnable=bool(d["a_learnable"]))
    except (TypeError, ValueError) as err:
        raise ModelError(f"{path}: invalid activation parameters: {err}") from None
    return preset_name(act), act   # the name follows from the parameters, whatever the file says


def _fit_state(path: Path, model: nn.Module, state: Any, arch: str) -> None:
    """Load ``state`` into ``model`` or say which keys/shapes do not fit."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ModelError(f"{path}: field 'state_dict' must map parameter names to tensors")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"{label} {items[:3]}{' …' if len(items) > 3 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                 if items]
        raise ModelError(f"{path}: the state dict does not fit architecture {arch!r}: {'; '.join(parts)}")
    model.load_state_dict(state)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a slipsnn checkpoint safely (``weights_only=True``) and rebuild its model.

    Args:
        path: a file written by ``save_checkpoint``.

    Returns:
        The ``Checkpoint``; its model is in eval mode on the CPU.

    Raises:
        ModelError: the file is missing, not a torch archive, asks to unpickle Python objects, lacks
            fields, or its state dict does not fit its architecture (one sentence naming the file).

    Example:
        >>> ckpt = load_checkpoint("runs/digits/model.pt")   # doctest: +SKIP
        >>> ckpt.preset, ckpt.metrics["ann_accuracy"]        # doctest: +SKIP
        ('slip', 0.9733)
    """
    path = Path(path)
    data = _read(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path}: not a slipsnn checkpoint (no 'format': {FORMAT!r} field)")
    if data.get("version") != VERSION:
        raise ModelError(f"{path}: checkpoint format version {data.get('version')!r}; this slipsnn "
                         f"({__version__}) reads version {VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ModelError(f"{path}: checkpoint lacks the fields {missing}")
    try:
        model_cfg = ModelConfig.from_dict(data["model_config"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"{path}: invalid model_config ({type(err).__name__}: {err})") from None
    preset, act = _activation(path, data["activation"])
    try:
        model = build_model(model_cfg, act)
        _fit_state(path, model, data["state_dict"], model_cfg.arch)
        thetas = activation_thetas(model, {k: v for k, v in dict(data["thetas"]).items()
                                           if not isinstance(model.get_submodule(k), SlipReLU)})
    except SlipsnnError as err:
        if str(err).startswith(str(path)):
            raise
        raise ModelError(f"{path}: {err}") from None
    except (AttributeError, TypeError, ValueError) as err:  # a θ key naming no module, a non-numeric θ
        raise ModelError(f"{path}: invalid 'thetas' field ({type(err).__name__}: {err})") from None
    metrics, train_config = data["metrics"], data["train_config"]
    if not isinstance(metrics, dict) or not (train_config is None or isinstance(train_config, dict)):
        raise ModelError(f"{path}: fields 'metrics' and 'train_config' must be dicts")
    return Checkpoint(model=model.eval(), model_cfg=model_cfg, act=act, preset=preset, dataset=str(data["dataset"]),
                      metrics=metrics, thetas=thetas, train_config=train_config, path=path)
