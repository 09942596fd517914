"""Checkpoints: a trained model with everything needed to rebuild, convert and report it.

A checkpoint is a ``torch.save`` archive of tensors and plain types only, so it loads with
``torch.load(weights_only=True)`` and loading it never runs code from the file. Before torch sees the file,
``_read`` checks that it is a regular file, that the zip's members are exactly those ``torch.save`` writes (a
TorchScript archive holds ``constants.pkl`` and ``code/``: torch 2.3 hands those to ``torch.jit.load`` and
ignores ``weights_only``, CVE-2025-32434) and that every member's CRC matches. After loading, every value is
checked (finite dense real tensors, BatchNorm variances ≥ 0, sizes and config in range) and the model is built
on PyTorch's ``meta`` device and compared with the state dict before any memory is allocated for it:

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
from ..files import atomic_write, check_input
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


MAX_CHECKPOINT_BYTES = 2 ** 33   # 8 GiB: a VGG-16 checkpoint is ~0.3 GB
MAX_CLASSES = 2 ** 20
MAX_INPUT_SIZE = 4096            # channels, height and width of one image
MAX_WIDTH = 64.0                 # channel multiplier
MAX_STEPS_L = 2 ** 16            # activation steps L
MAX_TEXT = 200                   # characters of the dataset name
_TORCH_SAVE_MEMBERS = re.compile(r"(data\.pkl|byteorder|version|\.data/version|\.data/serialization_id|data/\d+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _check_archive(path: Path) -> None:
    """Refuse a zip that is not exactly a ``torch.save`` archive, or whose members fail their CRC.

    torch 2.3's ``torch.load`` gives a zip holding ``constants.pkl`` to ``torch.jit.load`` (which runs the
    archive's TorchScript, ``weights_only`` notwithstanding), so this runs before torch opens the file.
    """
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            names = [i.filename for i in infos]
            prefix = names[0].split("/", 1)[0] + "/" if names and "/" in names[0] else ""
            rest = [n[len(prefix):] if prefix and n.startswith(prefix) else None for n in names]
            if any(r is not None and (r == "constants.pkl" or r.startswith("code/")) for r in rest):
                raise ModelError(f"{path}: a TorchScript archive (torch.jit.save), not a slipsnn checkpoint; "
                                 "refusing to load it: torch 2.3 would run its code whatever weights_only says "
                                 "(CVE-2025-32434)")
            odd = [n for n, r in zip(names, rest) if r is None or not _TORCH_SAVE_MEMBERS.fullmatch(r)]
            if odd or "data.pkl" not in rest:
                raise ModelError(f"{path}: not a torch.save archive: unexpected member {(odd or names)[:1]} "
                                 "(allowed: data.pkl, byteorder, version, data/<n>, .data/…); refusing to load it")
            unpacked = sum(i.file_size for i in infos)
            if unpacked > 2 * path.stat().st_size + 2 ** 20:
                raise ModelError(f"{path}: its members unpack to {unpacked} bytes, far more than the file holds "
                                 "(torch.save stores them uncompressed); refusing to load it")
            bad = z.testzip()   # reads every member once and checks its CRC-32
    except ModelError:
        raise
    except zipfile.BadZipFile as e:
        raise ModelError(f"{path}: not a readable zip archive ({e})") from None
    except (OSError, EOFError, ValueError, NotImplementedError) as e:   # truncated data, an unknown compression
        raise ModelError(f"{path}: damaged zip archive ({type(e).__name__}: {e})") from None
    if bad is not None:
        raise ModelError(f"{path}: damaged: member {bad!r} fails its CRC-32 check")


_UNSAFE_CLASS = re.compile(r"Unsupported (?:class|global:\s*GLOBAL)\s+(\S+)")


def _read(path: Path) -> Any:
    """``torch.load(weights_only=True)`` of ``path`` with every failure turned into one ``ModelError``."""
    try:
        check_input(path, MAX_CHECKPOINT_BYTES, "checkpoint file")
    except SlipsnnError as e:
        raise ModelError(str(e)) from None
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a slipsnn checkpoint: it is not a torch.save archive (zip); "
                         "refusing to unpickle it")
    _check_archive(path)
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
    for f in ("a", "L", "delta1", "delta2"):
        v = d[f]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ModelError(f"{path}: activation parameter {f} = {v!r}; allowed: a finite number")
    if d["L"] != int(d["L"]) or not 1 <= d["L"] <= MAX_STEPS_L:
        raise ModelError(f"{path}: activation parameter L = {d['L']!r}; allowed: an integer in [1, {MAX_STEPS_L}]")
    if not isinstance(d["a_learnable"], bool):
        raise ModelError(f"{path}: activation parameter a_learnable = {d['a_learnable']!r}; allowed: true or false")
    try:
        act = SlipParams(a=float(d["a"]), L=int(d["L"]), delta1=float(d["delta1"]), delta2=float(d["delta2"]),
                         a_learnable=d["a_learnable"])
    except (TypeError, ValueError, OverflowError) as err:
        raise ModelError(f"{path}: invalid activation parameters: {err}") from None
    return preset_name(act), act   # the name follows from the parameters, whatever the file says


def _check_tensors(path: Path, state: Any) -> None:
    """Every entry a dense real tensor: finite floats (BatchNorm ``running_var`` ≥ 0) or integers."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ModelError(f"{path}: field 'state_dict' must map parameter names to tensors")
    for k, v in state.items():
        if v.layout is not torch.strided:
            raise ModelError(f"{path}: state_dict[{k!r}] is a {str(v.layout).replace('torch.', '')} tensor; "
                             "allowed: dense tensors")
        if v.is_complex() or not (v.is_floating_point() or v.dtype in (torch.int64, torch.int32)):
            raise ModelError(f"{path}: state_dict[{k!r}] has dtype {str(v.dtype).replace('torch.', '')}; "
                             "allowed: real floating point (integer counters)")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            bad = v[~torch.isfinite(v)].reshape(-1)[0].item()
            raise ModelError(f"{path}: state_dict[{k!r}] holds {bad} (not finite); allowed: finite numbers")
        if k.endswith("running_var") and v.numel() and float(v.min()) < 0:
            raise ModelError(f"{path}: state_dict[{k!r}] holds {float(v.min())}; a BatchNorm variance must be ≥ 0")


def _check_config(path: Path, d: Any) -> ModelConfig:
    """``model_config`` checked field by field (before any model is built)."""
    if not isinstance(d, dict):
        raise ModelError(f"{path}: field 'model_config' must be a dict, found {type(d).__name__}")
    missing = [k for k in ("arch", "num_classes", "input_shape", "mean", "std") if k not in d]
    if missing:
        raise ModelError(f"{path}: model_config lacks {missing}")

    def integer(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def finite(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if not isinstance(d["arch"], str):
        raise ModelError(f"{path}: model_config arch = {d['arch']!r}; allowed: a name")
    if not integer(d["num_classes"]) or not 1 <= d["num_classes"] <= MAX_CLASSES:
        raise ModelError(f"{path}: model_config num_classes = {d['num_classes']!r}; allowed: an integer in "
                         f"[1, {MAX_CLASSES}]")
    shape = d["input_shape"]
    if not isinstance(shape, list) or len(shape) != 3 or not all(integer(v) and 1 <= v <= MAX_INPUT_SIZE
                                                                 for v in shape):
        raise ModelError(f"{path}: model_config input_shape = {shape!r}; allowed: [C, H, W], integers in "
                         f"[1, {MAX_INPUT_SIZE}]")
    for key in ("mean", "std"):
        v = d[key]
        if not isinstance(v, list) or len(v) != shape[0] or not all(finite(x) for x in v) or (
                key == "std" and not all(x > 0 for x in v)):
            raise ModelError(f"{path}: model_config {key} = {v!r}; allowed: one finite number"
                             + (" > 0" if key == "std" else "") + f" per input channel ({shape[0]})")
    width = d.get("width", 1.0)
    if not finite(width) or not 0 < width <= MAX_WIDTH:
        raise ModelError(f"{path}: model_config width = {width!r}; allowed: a number in (0, {MAX_WIDTH:g}]")
    try:
        return ModelConfig.from_dict(d)
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise ModelError(f"{path}: invalid model_config ({type(err).__name__}: {err})") from None


def _fit_state(path: Path, model: nn.Module, state: dict, arch: str) -> None:
    """Say which keys/shapes of ``state`` do not fit ``model`` (built on the meta device: nothing allocated)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"{label} {items[:3]}{' …' if len(items) > 3 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                 if items]
        raise ModelError(f"{path}: the state dict does not fit architecture {arch}: {'; '.join(parts)}")


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
    model_cfg = _check_config(path, data["model_config"])
    preset, act = _activation(path, data["activation"])
    dataset = data["dataset"]
    if not isinstance(dataset, str) or len(dataset) > MAX_TEXT or _CONTROL.search(dataset):
        raise ModelError(f"{path}: field 'dataset' = {dataset!r:.80}; allowed: a name of at most {MAX_TEXT} "
                         "characters without control characters")
    _check_tensors(path, data["state_dict"])
    raw_thetas = data["thetas"]
    if not isinstance(raw_thetas, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            for k, v in raw_thetas.items()):
        raise ModelError(f"{path}: field 'thetas' must map module names to numbers")
    arch = f"{model_cfg.arch!r} (width {model_cfg.width:g}, input {list(model_cfg.input_shape)}, " \
           f"{model_cfg.num_classes} classes)"
    try:
        with torch.device("meta"):   # shapes only: a config that asks for billions of weights allocates nothing
            _fit_state(path, build_model(model_cfg, act), data["state_dict"], arch)
        model = build_model(model_cfg, act)   # now as large as the state dict the file holds
        model.load_state_dict(data["state_dict"])
    except SlipsnnError as err:
        if str(err).startswith(str(path)):
            raise
        raise ModelError(f"{path}: {err}") from None
    except (RuntimeError, TypeError, ValueError) as err:   # the architecture cannot take this config
        raise ModelError(f"{path}: model_config cannot build architecture {arch} "
                         f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    try:
        thetas = activation_thetas(model, {k: v for k, v in raw_thetas.items()
                                           if not isinstance(model.get_submodule(k), SlipReLU)})
    except SlipsnnError as err:
        raise ModelError(f"{path}: {err}") from None
    except AttributeError as err:  # a θ key naming no module
        raise ModelError(f"{path}: invalid 'thetas' field: {err}") from None
    metrics, train_config = data["metrics"], data["train_config"]
    if not isinstance(metrics, dict) or not (train_config is None or isinstance(train_config, dict)):
        raise ModelError(f"{path}: fields 'metrics' and 'train_config' must be dicts")
    return Checkpoint(model=model.eval(), model_cfg=model_cfg, act=act, preset=preset, dataset=dataset,
                      metrics=metrics, thetas=thetas, train_config=train_config, path=path)
