"""Training of SlipReLU (or ReLU) ANNs with the paper's recipe, plus ANN/SNN evaluation helpers.

The recipe (SPEC §2): SGD with momentum 0.9 and weight decay 5e-4 on every parameter (θ included),
cosine learning-rate schedule over the run, activations clamped after every optimiser step
(θ > 0, a ∈ [0, 1]). Unlike the paper's code, which keeps the epoch of the best *test* accuracy, the
model is selected on a seeded validation split held out from train; the test split is scored once.
A plain-ReLU model gets its thresholds from data afterwards (``calibrate_thresholds``).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from ..ir.activation import SlipParams, preset_params
from .activations import clamp_activations_
from .calibration import as_unit_float, calibrate_thresholds
from .checkpoint import activation_thetas, save_checkpoint
from ..files import atomic_write
from ..ir.activation import preset_name
from ..data.loaders import dataset_info, load_dataset
from ..errors import ModelError, SlipsnnError
from ..kernels.device import DEVICES, resolve_device  # noqa: F401  (resolve_device: also this module's API)
from .models import ARCHS, ModelConfig, build_model

#: ``(model, model_cfg, thetas, test_images, test_labels) -> {T: accuracy}``: how ``train`` scores the converted SNN.
SnnEvaluator = Callable[[nn.Module, ModelConfig, dict, torch.Tensor, torch.Tensor], dict]

CHECKPOINT_NAME = "model.pt"
RESUME_NAME = "resume.pt"
# TrainConfig fields that may change between the calls of a resumed run (where and how, not what)
_RUN_CONTROL = ("device", "num_workers", "data_root", "out_dir", "threads")

# Per-data-set defaults of ``TrainConfig`` (fields left at None).
#
# digits (sklearn, 1347 train / 450 test 8×8 images; one test image = 0.22 %): 30 epochs, batch 64,
# lr 0.1, cosine. Measured with torch 2.3.1 on the CPU, mean of seeds 0, 1, 2, accuracy in %:
#
#   activation  L   θ₀    ANN    float SNN T=1    T=2    T=4    T=8
#   slip        4   1.0   99.41       98.07  99.04  99.33  99.19   ← default
#   slip        8   1.0   99.41       97.63  99.04  99.18  99.18
#   slip       16   1.0   99.41       97.63  98.89  99.04  99.04
#   slip        4   0.5   99.41       97.85  98.74  99.11  99.19
#   slip        8   0.5   99.48       97.19  99.19  99.11  99.41
#   slip       16   0.5   99.41       95.56  98.15  98.81  99.26
#   slip        4   2.0   99.63       93.26  98.74  99.56  99.63
#   slip        8   2.0   99.63       88.08  99.04  99.41  99.63
#   slip       16   2.0   99.63       87.78  98.00  99.56  99.48
#   slip        8   4.0   99.56       29.56  74.67  97.56  98.89   (seed 0 only)
#   slip        8   8.0   99.78        9.56  36.89  81.11  96.00   (seed 0 only; the paper's θ₀ for CIFAR)
#   qcfs        4   1.0   99.63       98.29  99.11  99.33  99.33
#   relu        –   –     99.71       50.67  87.26  97.48  99.56   (θ = 99.9th percentile, calibrated)
#
# θ₀ dominates low-T conversion: the digits CNN's pre-activations are O(1), and with θ₀ = 8 the short
# schedule never brings θ down, so one step rarely reaches the threshold. L matters less; L = 4 converts
# best at T = 1 and T = 4 with θ₀ = 1 (differences between L are within ~2 test images). A run takes
# ~15 s of 1-thread CPU time (about 0.45 s per epoch at width 1).
# CIFAR-10/100 follow the paper (SGD lr 0.1, cosine, batch 128, 300 epochs, θ₀ = 8, L = 16, augmentation);
# Tiny-ImageNet uses the same recipe on ResNet-18. MNIST reuses the digits CNN (two 2×2 pools: 28 → 7)
# and the digits L and θ₀ with a 20-epoch schedule, not measured here (no MNIST files on the build machine).
# Fashion-MNIST (28×28, Debian's dataset-fashion-mnist) uses the same CNN and recipe; one epoch over its
# 54,000 training images at width 1 took ~9 min of one thread on the shared 2-core build machine (load ~9),
# so benchmarks/methods.py trains a reduced setting (docs/benchmarks.md).
DATASET_DEFAULTS: dict[str, dict] = {
    "digits": dict(arch="digits_cnn", epochs=30, lr=0.1, batch_size=64, L=4, theta_init=1.0, augment=False),
    "mnist": dict(arch="digits_cnn", epochs=20, lr=0.05, batch_size=128, L=4, theta_init=1.0, augment=False),
    "fashion-mnist": dict(arch="digits_cnn", epochs=20, lr=0.05, batch_size=128, L=4, theta_init=1.0,
                          augment=False),
    "cifar10": dict(arch="resnet20", epochs=300, lr=0.1, batch_size=128, theta_init=8.0, augment=True),
    "cifar100": dict(arch="resnet20", epochs=300, lr=0.1, batch_size=128, theta_init=8.0, augment=True),
    "tiny-imagenet": dict(arch="resnet18", epochs=300, lr=0.1, batch_size=128, theta_init=8.0, augment=True),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (stored in the checkpoint as ``train_config``).

    Fields left at None take the data set's default from ``DATASET_DEFAULTS`` when the config is
    built, so ``TrainConfig(dataset="cifar10")`` is the paper's CIFAR recipe. ``a``, ``L``, ``delta1``
    and ``delta2`` stay None when the preset decides them; ``act_params()`` gives the values in force,
    and the checkpoint stores those under ``activation``.

    Args:
        dataset: a key of ``data.DATASETS``.
        arch: a key of ``models.ARCHS``.
        activation: preset name (``slip``, ``qcfs``, ``clipfloor``, ``clip``, ``relu``).
        a, L, delta1, delta2, a_learnable: override the preset's SlipReLU parameters (None keeps the
            preset's; ``L`` defaults per data set, not for ``relu``).
        epochs: training epochs (the cosine schedule spans all of them).
        lr: initial SGD learning rate.
        batch_size: training batch size.
        momentum: SGD momentum.
        weight_decay: L2 weight decay on every parameter, θ included (as in the paper).
        seed: seeds the weights, the shuffling and the augmentation.
        data_root: folder of the data set files (see ``data.load_dataset``).
        width: channel multiplier of the architecture.
        device: ``cpu``, ``cuda`` (or ``cuda:N``) or ``auto`` (CUDA when available).
        num_workers: DataLoader workers; None = 0 on the CPU, up to 8 on CUDA with augmentation.
        theta_init: initial θ of every SlipReLU (the paper uses 8.0).
        augment: apply the data set's training augmentation (digits has none).
        out_dir: where ``model.pt`` (and ``resume.pt`` while resumable) is written; None = nowhere.
        val_fraction: share of the train split held out for model selection (0: keep the last epoch).
        split_seed: seeds the validation split (the same for every training seed).
        threads: torch CPU threads (None: 1 on the CPU, where the thread count changes the results).
        train_subset: train (and validate) on the first N training images only.
    """

    dataset: str = "digits"
    arch: str | None = None
    activation: str = "slip"
    a: float | None = None
    L: int | None = None
    delta1: float | None = None
    delta2: float | None = None
    a_learnable: bool | None = None
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    data_root: str | None = None
    width: float = 1.0
    device: str = "auto"
    num_workers: int | None = None
    theta_init: float | None = None
    augment: bool | None = None
    out_dir: str | None = None
    val_fraction: float = 0.1
    split_seed: int = 0
    threads: int | None = None
    train_subset: int | None = None

    def __post_init__(self) -> None:
        defaults = dict(DATASET_DEFAULTS[dataset_info(self.dataset).name])
        if self.activation == "relu":
            defaults.pop("L", None)  # a plain ReLU has no quantization steps
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.arch not in ARCHS:
            raise ModelError(f"unknown architecture {self.arch!r}; allowed: {', '.join(ARCHS)}")
        self.act_params()  # validates the preset name and a, L, δ₁, δ₂ against it
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise SlipsnnError(f"training option {name}={getattr(self, name)!r} must be an integer ≥ 1")
        for name in ("lr", "width", "theta_init"):
            if not getattr(self, name) > 0:
                raise SlipsnnError(f"training option {name}={getattr(self, name)!r} must be > 0")
        if self.momentum < 0 or self.weight_decay < 0:
            raise SlipsnnError(f"momentum={self.momentum} and weight_decay={self.weight_decay} must be ≥ 0")
        if not 0.0 <= self.val_fraction < 1.0:
            raise SlipsnnError(f"val_fraction={self.val_fraction} must lie in [0, 1)")
        for name in ("threads", "train_subset"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise SlipsnnError(f"training option {name}={getattr(self, name)} must be ≥ 1 (or None)")
        if self.num_workers is not None and self.num_workers < 0:
            raise SlipsnnError(f"num_workers={self.num_workers} must be ≥ 0 (or None for the default)")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise SlipsnnError(f"unknown device {self.device!r}; allowed: {', '.join(DEVICES)}, cuda:N")

    @classmethod
    def for_dataset(cls, name: str, **overrides: object) -> "TrainConfig":
        """The defaults for data set ``name`` with ``overrides`` applied (None values are ignored).

        Unknown option names raise ``SlipsnnError`` listing the allowed ones.

        Example:
            >>> TrainConfig.for_dataset("cifar10", activation="qcfs", L=4).epochs
            300
        """
        allowed = {f.name for f in fields(cls)} - {"dataset"}
        unknown = sorted(set(overrides) - allowed)
        if unknown:
            raise SlipsnnError(f"unknown training options {unknown}; allowed: {', '.join(sorted(allowed))}")
        return cls(dataset=name, **{k: v for k, v in overrides.items() if v is not None})

    def act_params(self) -> SlipParams | None:
        """The activation's parameters: the preset with this config's overrides (None for ``relu``)."""
        return preset_params(self.activation, a=self.a, L=self.L, delta1=self.delta1, delta2=self.delta2,
                             a_learnable=self.a_learnable)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """What ``fit`` and ``train`` return.

    Attributes:
        model: the selected model (best validation accuracy, else the last epoch), in eval mode, on the CPU.
        model_cfg: its zoo architecture (None for a model ``fit`` was given).
        act: its activation parameters (None for ``relu`` or a user's model).
        preset: the activation preset name (None for a user's model).
        metrics: ``selected_by`` (``"validation"`` or ``"last_epoch"``), ``best_epoch`` (1-based),
            ``val_accuracy`` (of the selected epoch, None without a validation split), ``test_accuracy``
            (evaluated once, for the selected model; None without test data), ``ann_accuracy`` (= test
            accuracy), ``epochs``, ``history`` (per epoch: ``epoch``, ``loss``, ``train_accuracy``,
            ``val_accuracy``, ``lr``), ``seconds`` (training wall time, summed over resumed calls),
            ``device``, ``world_size``, ``threads``, ``val_size``, ``train_size``, ``finished`` (False when
            ``stop_after`` ended the call first).
        thetas: θ of every activation by module name.
        checkpoint: the saved ``model.pt``, or None without ``out_dir`` (or unfinished).
        is_main: False on the ranks > 0 of a distributed run (they write nothing).
    """

    model: nn.Module
    model_cfg: ModelConfig | None
    act: SlipParams | None
    preset: str | None
    metrics: dict
    thetas: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    is_main: bool = True


@contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """Turn on torch's deterministic algorithms for the block and restore the previous setting after."""
    before, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


@torch.no_grad()
def evaluate_ann(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy (fraction) of ``model`` in eval mode.

    Args:
        model: the ANN; it runs on the device of its parameters and its train/eval mode is restored after.
        images: (N, C, H, W), float in [0, 1] or uint8 pixels.
        labels: (N,) int class labels.
        batch_size: images per forward pass.
    """
    if len(images) == 0:
        raise SlipsnnError("evaluate_ann needs at least one image")
    batches = ((images[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(images), batch_size))
    return _count_correct(model, batches, next(model.parameters()).device) / len(images)


def _count_correct(model: nn.Module, batches: Iterable, device: torch.device) -> int:
    """Number of ``(images, labels)`` samples over ``batches`` that ``model`` classifies right, in eval mode
    (its train/eval mode is restored after); images as ``as_unit_float`` takes them."""
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for x, y in batches:
            x, y = as_unit_float(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
            correct += int((model(x).argmax(1) == y).sum())
    finally:
        model.train(was_training)
    return correct


def _num_workers(cfg: TrainConfig, device: torch.device) -> int:
    if cfg.num_workers is not None:
        return cfg.num_workers
    if device.type != "cuda" or not cfg.augment:
        return 0
    return min(8, os.cpu_count() or 1)


def train_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer,
                device: torch.device) -> tuple[float, float, int]:
    """One pass of SGD over ``loader``, keeping every SlipReLU's θ > 0 and a ∈ [0, 1] after each step.

    Returns:
        (summed cross-entropy loss, number correct, number of samples) over this process's batches.
    """
    model.train()
    loss_sum, correct, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        out = model(x)
        loss = F.cross_entropy(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        clamp_activations_(model)
        loss_sum += loss.detach() * len(y)   # summed on the device: no sync per step
        correct += (out.detach().argmax(1) == y).sum()
        seen += len(y)
    return float(loss_sum), int(correct), seen


# ------------------------------------------------------------------------------------------------
# Splits and distributed runs

def split_indices(n: int, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """A seeded random split of ``range(n)`` into (train, validation) index lists, both sorted.

    ``round(n * val_fraction)`` indices go to validation; the permutation depends only on ``n`` and ``seed``
    (``torch.randperm`` with its own generator), so every training seed of a benchmark sees the same split.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise SlipsnnError(f"val_fraction={val_fraction} must lie in [0, 1)")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and not 0 < n_val < n:
        raise SlipsnnError(f"val_fraction={val_fraction} of {n} training samples leaves an empty split")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[n_val:]), sorted(perm[:n_val])


@dataclass
class _Dist:
    """This process's place in a torchrun launch (world 1 when not launched by torchrun)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    owns_group: bool = False

    @classmethod
    def start(cls, device: torch.device) -> "_Dist":
        """Join the process group torchrun describes in the environment (gloo on CPU, NCCL on CUDA)."""
        import torch.distributed as dist
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_world_size(), dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")))
        if world <= 1:
            return cls()
        if not dist.is_available():
            raise SlipsnnError(f"WORLD_SIZE={world} but this torch build has no torch.distributed")
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(world, dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), owns_group=True)

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum of ``values`` over all processes."""
        if self.world == 1:
            return values
        import torch.distributed as dist
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist
            dist.barrier()

    def stop(self) -> None:
        if self.owns_group:
            import torch.distributed as dist
            dist.destroy_process_group()
            self.owns_group = False


def is_main_process() -> bool:
    """True unless this is a rank > 0 of a torchrun launch (``RANK`` in the environment)."""
    return int(os.environ.get("RANK", "0")) == 0


@torch.no_grad()
def _correct(model: nn.Module, data: Dataset, indices: Sequence[int], batch_size: int,
             device: torch.device) -> int:
    """Number of samples of ``data[indices]`` that ``model`` (in eval mode) classifies right."""
    return _count_correct(model, DataLoader(Subset(data, list(indices)), batch_size=batch_size, shuffle=False), device)


def evaluate_dataset(model: nn.Module, data: Dataset, batch_size: int = 512) -> float:
    """Top-1 accuracy (fraction) of ``model`` over a whole ``Dataset`` of ``(image, label)``."""
    if len(data) == 0:
        raise SlipsnnError("evaluate_dataset needs at least one sample")
    device = next(model.parameters()).device
    return _correct(model, data, range(len(data)), batch_size, device) / len(data)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------------
# The loop

def fit(model: nn.Module, train_data: Dataset | DataLoader, *, epochs: int, lr: float = 0.1,
        batch_size: int | None = None, momentum: float = 0.9, weight_decay: float = 5e-4, seed: int = 0,
        val_fraction: float = 0.1, split_seed: int = 0, val_data: Dataset | None = None,
        test_data: Dataset | None = None, device: str = "auto", num_workers: int | None = None,
        threads: int | None = None, resume: str | Path | None = None, stop_after: int | None = None,
        progress: bool = True, eval_batch_size: int = 512, tag: dict | None = None) -> TrainResult:
    """Train any classifier with the paper's recipe; the loop behind ``train`` and ``slipsnn-train``.

    SGD (momentum, weight decay on every parameter), cosine learning rate over ``epochs``, cross-entropy,
    ``clamp_activations_`` after every step (a no-op for modules other than SlipReLU). After every epoch
    the model is scored on the validation split and the best epoch is kept; the test data is evaluated
    once, for that model. Without a validation split the last epoch is kept (``selected_by``).

    Reproducible and resumable: epoch ``e`` shuffles with seed ``seed + e`` and seeds torch's global RNG
    (augmentation, dropout) with ``(seed, e)``, so a run resumed from ``resume`` equals one that never
    stopped. On the CPU torch's thread count changes the float summation order of convolutions and
    reductions, so ``threads`` (default 1 on the CPU) is pinned for the call and recorded.

    Started by ``torchrun`` (``WORLD_SIZE`` > 1), it trains data-parallel with DDP: a process group (gloo on
    the CPU, NCCL on CUDA with one GPU per ``LOCAL_RANK``), a ``DistributedSampler`` giving each process
    ``batch_size / world`` samples of every global batch, gradients averaged. Rank 0 alone writes the resume
    file; the process group is destroyed before ``fit`` returns (unless the caller created it).

    Args:
        model: any ``nn.Module`` mapping float images in [0, 1] to class logits.
        train_data: a ``Dataset`` of ``(image, label)``, or a ``DataLoader`` (its ``dataset``,
            ``batch_size`` and ``num_workers`` are used; slipsnn does the sampling itself).
        epochs: epochs of the cosine schedule.
        lr, momentum, weight_decay: SGD settings.
        batch_size: global batch size (default: the DataLoader's, else 64); divisible by the world size.
        seed: seeds the weights' shuffling, augmentation and dropout (not the model's initialisation:
            build the model after ``torch.manual_seed``).
        val_fraction: share of ``train_data`` held out for model selection (``split_indices`` with
            ``split_seed``); ignored when ``val_data`` is given; 0 keeps the last epoch.
        val_data: an explicit validation set (e.g. the held-out images without augmentation).
        test_data: evaluated once, for the selected model.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``; under torchrun on CUDA, ``cuda:LOCAL_RANK``.
        num_workers: DataLoader workers (default 0, or the DataLoader's).
        threads: torch CPU threads for the call (default 1 on the CPU; restored after).
        resume: a resume file: read when it exists, rewritten after every epoch, removed when finished.
        stop_after: train at most this many epochs in this call (then ``metrics["finished"]`` is False).
        progress: a tqdm bar over the epochs (rank 0 only).
        eval_batch_size: samples per evaluation forward pass.
        tag: plain-typed description of the run (``train`` passes its config), stored in the resume file;
            a resume file of another recipe or tag is refused.

    Example:
        >>> res = fit(my_model, my_train_loader, epochs=10, lr=0.05, test_data=my_test_set)  # doctest: +SKIP
        >>> res.metrics["selected_by"], res.metrics["test_accuracy"]                         # doctest: +SKIP
        ('validation', 0.91)
    """
    if isinstance(train_data, DataLoader):
        batch_size = batch_size or train_data.batch_size
        num_workers = train_data.num_workers if num_workers is None else num_workers
        train_data = train_data.dataset
    batch_size, num_workers = batch_size or 64, num_workers or 0
    if int(epochs) != epochs or epochs < 1 or batch_size < 1:
        raise SlipsnnError(f"epochs={epochs} and batch_size={batch_size} must be integers ≥ 1")
    if stop_after is not None and stop_after < 1:
        raise SlipsnnError(f"stop_after={stop_after} must be ≥ 1 (or None for no limit)")
    if val_data is None and val_fraction > 0:
        train_idx, val_idx = split_indices(len(train_data), val_fraction, split_seed)
        val_data, train_data = Subset(train_data, val_idx), Subset(train_data, train_idx)
    device = resolve_device(device)
    threads_before = torch.get_num_threads()
    threads = threads if threads is not None else (1 if device.type == "cpu" else threads_before)
    if threads < 1:
        raise SlipsnnError(f"threads={threads} must be ≥ 1")
    torch.set_num_threads(threads)
    ctx = _Dist.start(device)
    try:
        if ctx.world > 1 and device.type == "cuda":
            device = torch.device(f"cuda:{ctx.local_rank}")
        if batch_size % ctx.world:
            raise SlipsnnError(f"batch_size={batch_size} must be divisible by the {ctx.world} processes")
        with _deterministic(device.type == "cpu"):
            return _loop(model, train_data, val_data, test_data, ctx, device, threads, epochs=epochs, lr=lr,
                         batch_size=batch_size, momentum=momentum, weight_decay=weight_decay, seed=seed,
                         num_workers=num_workers, resume=None if resume is None else Path(resume),
                         stop_after=stop_after, progress=progress, eval_batch_size=eval_batch_size, tag=tag)
    finally:
        ctx.stop()
        torch.set_num_threads(threads_before)


def _loop(model: nn.Module, train_data: Dataset, val_data: Dataset | None, test_data: Dataset | None, ctx: _Dist,
          device: torch.device, threads: int, *, epochs: int, lr: float, batch_size: int, momentum: float,
          weight_decay: float, seed: int, num_workers: int, resume: Path | None, stop_after: int | None,
          progress: bool, eval_batch_size: int, tag: dict | None) -> TrainResult:
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data.distributed import DistributedSampler

    model = model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    recipe = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "momentum": momentum,
              "weight_decay": weight_decay, "seed": seed, "train_size": len(train_data),
              "val_size": len(val_data) if val_data is not None else 0, "world_size": ctx.world, "tag": tag}
    state: dict = {"epoch": 0, "history": [], "best_acc": -1.0, "best_epoch": 0, "best_state": None, "seconds": 0.0}
    if resume is not None and resume.is_file():
        saved = torch.load(resume, map_location="cpu", weights_only=True)
        if saved.get("recipe") != recipe:
            raise SlipsnnError(f"{resume}: resume file of another run (recipe {saved.get('recipe')}, this run"
                               f" {recipe}); delete it or choose another output folder")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if ctx.world > 1 else model
    sampler = DistributedSampler(train_data, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=seed)
    loader = DataLoader(train_data, batch_size=batch_size // ctx.world, sampler=sampler, num_workers=num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=num_workers > 0)
    val_shard = range(ctx.rank, len(val_data), ctx.world) if val_data is not None else range(0)
    main = ctx.rank == 0
    first, done_here = state["epoch"], 0
    bar = tqdm(range(first, epochs), desc="train", disable=not (progress and main), unit="epoch",
               initial=first, total=epochs)
    for epoch in bar:
        if stop_after is not None and done_here >= stop_after:
            break
        start = time.perf_counter()
        sampler.set_epoch(epoch)
        torch.manual_seed(seed * 1_000_003 + epoch)   # augmentation and dropout of this epoch
        lr_now = optimizer.param_groups[0]["lr"]
        loss_sum, correct, seen = ctx.sum(list(train_epoch(net, loader, optimizer, device)), device)
        scheduler.step()
        val_acc = None
        if val_data is not None:
            right = _correct(model, val_data, val_shard, eval_batch_size, device)
            val_acc = ctx.sum([right], device)[0] / len(val_data)
        seconds = time.perf_counter() - start
        state["history"].append({"epoch": epoch + 1, "loss": loss_sum / seen, "train_accuracy": correct / seen,
                                 "val_accuracy": val_acc, "lr": lr_now})
        state["epoch"], state["seconds"] = epoch + 1, state["seconds"] + seconds
        if val_acc is None or val_acc >= state["best_acc"]:   # ties: the later, more annealed epoch
            state["best_acc"], state["best_epoch"] = (val_acc if val_acc is not None else -1.0), epoch + 1
            state["best_state"] = _cpu_state(model)
        done_here += 1
        if resume is not None and main:
            payload = {"recipe": recipe, "state": state, "model": _cpu_state(model),
                       "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            atomic_write(resume, lambda tmp: torch.save(payload, tmp))
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                        val="-" if val_acc is None else f"{val_acc:.3f}")
    ctx.barrier()   # no rank leaves (and tears down) while another still reduces
    finished = state["epoch"] >= epochs
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    test_acc = evaluate_dataset(model, test_data, eval_batch_size) if finished and test_data is not None else None
    model = model.cpu().eval()
    metrics = {"selected_by": "validation" if val_data is not None else "last_epoch",
               "best_epoch": state["best_epoch"], "val_accuracy": state["best_acc"] if val_data is not None else None,
               "test_accuracy": test_acc, "ann_accuracy": test_acc, "epochs": state["epoch"],
               "history": list(state["history"]), "seconds": state["seconds"], "device": str(device),
               "world_size": ctx.world, "threads": threads, "train_size": len(train_data),
               "val_size": recipe["val_size"], "finished": finished}
    if finished and resume is not None and main:
        resume.unlink(missing_ok=True)
    return TrainResult(model=model, model_cfg=None, act=None, preset=None, metrics=metrics, is_main=main)


def train(cfg: TrainConfig, progress: bool = True, evaluate_snn: SnnEvaluator | None = None, *,
          resume: bool = False, stop_after: int | None = None) -> TrainResult:
    """Train ``cfg.arch`` with ``cfg.activation`` on ``cfg.dataset`` through ``fit``.

    The held-out validation images (``cfg.val_fraction`` of the train split, ``split_indices`` with
    ``cfg.split_seed``) are not augmented. The test split is evaluated once, for the model selected on
    validation. A ``relu`` model gets θ per ReLU from ``calibrate_thresholds`` on the first 1024 training
    images. With ``cfg.out_dir``, ``model.pt`` is written when training has finished (rank 0 only).

    Args:
        cfg: the configuration.
        progress: show a tqdm bar over the epochs.
        evaluate_snn: also evaluate the converted SNN of the selected model on the test split: called as
            ``evaluate_snn(model, model_cfg, thetas, test_images, test_labels)`` and returning ``{T: accuracy}``
            (``pipeline.snn_accuracies``); stored as ``metrics["snn_accuracy"]`` = ``{"T": acc}``.
        resume: continue from ``out_dir/resume.pt`` when it exists (it is written after every epoch).
        stop_after: train at most this many epochs in this call (``metrics["finished"]`` False, no model.pt).

    Example:
        >>> res = train(TrainConfig.for_dataset("digits", device="cpu"))   # doctest: +SKIP
        >>> res.metrics["selected_by"], round(res.metrics["test_accuracy"], 3)   # doctest: +SKIP
        ('validation', 0.98)
    """
    info = dataset_info(cfg.dataset)
    act = cfg.act_params()
    model_cfg = ModelConfig(cfg.arch, info.num_classes, info.input_shape, info.mean, info.std, cfg.width)
    out = Path(cfg.out_dir) if cfg.out_dir is not None else None
    if (resume or stop_after is not None) and out is None:
        raise SlipsnnError("resume and stop_after need an output folder (out_dir / --out) for resume.pt")
    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg, act, theta=cfg.theta_init)
    train_set = load_dataset(cfg.dataset, "train", cfg.data_root, augment=cfg.augment)
    plain = load_dataset(cfg.dataset, "train", cfg.data_root) if cfg.augment else train_set
    n = min(len(train_set), cfg.train_subset or len(train_set))
    train_idx, val_idx = split_indices(n, cfg.val_fraction, cfg.split_seed)
    test_set = load_dataset(cfg.dataset, "test", cfg.data_root)
    device = resolve_device(cfg.device)
    resume_path = out / RESUME_NAME if out is not None and (resume or stop_after is not None) else None
    if out is not None and not resume and stop_after is None:
        (out / RESUME_NAME).unlink(missing_ok=True)   # a fresh run never continues an old one silently
    res = fit(model, Subset(train_set, train_idx), epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
              momentum=cfg.momentum, weight_decay=cfg.weight_decay, seed=cfg.seed,
              val_data=Subset(plain, val_idx) if val_idx else None, val_fraction=0.0, test_data=test_set,
              device=cfg.device, num_workers=_num_workers(cfg, device), threads=cfg.threads,
              resume=resume_path, stop_after=stop_after, progress=progress,
              tag={k: v for k, v in cfg.to_dict().items() if k not in _RUN_CONTROL})
    model, metrics = res.model, res.metrics
    thetas: dict[str, float] = {}
    if act is None and metrics["finished"]:
        thetas = calibrate_thresholds(model, train_set.raw(1024)[0] if not cfg.augment else plain.raw(1024)[0])
    ckpt_path = None
    if metrics["finished"] and res.is_main:
        if evaluate_snn is not None:
            test_x, test_y = test_set.raw()
            snn = evaluate_snn(model, model_cfg, thetas, test_x, test_y)
            metrics["snn_accuracy"] = {str(t): acc for t, acc in snn.items()}
        if out is not None:
            ckpt_path = save_checkpoint(out / CHECKPOINT_NAME, model, model_cfg, act, dataset=cfg.dataset,
                                        metrics=metrics, thetas=thetas, train_cfg=cfg.to_dict())
    return TrainResult(model=model, model_cfg=model_cfg, act=act, preset=preset_name(act), metrics=metrics,
                       thetas=activation_thetas(model, thetas), checkpoint=ckpt_path, is_main=res.is_main)
