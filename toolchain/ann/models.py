"""Model zoo: the digits CNN and the CIFAR-style VGG-16 / ResNet-18/20/34 of the SlipReLU paper.

Every model is an ``nn.Sequential`` of modules that ``lower.py`` knows how to walk: ``Normalize``,
``Conv2d``, ``BatchNorm``, activation (SlipReLU / ReLU), ``AvgPool2d``, ``AdaptiveAvgPool2d(1)``,
``Flatten``, ``Linear``, ``Dropout`` and ``BasicBlock`` (the residual block). CIFAR variants use a
3×3 stem and no max-pool, as in the paper's code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from ..ir.activation import SlipParams
from .activations import make_activation
from ..errors import ModelError


class Normalize(nn.Module):
    """Per-channel input normalization ``(x − mean) / std`` for images ``x`` in [0, 1], shape (N, C, H, W)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class BasicBlock(nn.Module):
    """ResNet basic block: ``act2(bn2(conv2(act1(bn1(conv1(x))))) + shortcut(x))``.

    ``shortcut`` is an empty ``nn.Sequential`` (identity) or ``Conv2d(1×1, stride) + BatchNorm2d``.
    """

    def __init__(self, cin: int, cout: int, stride: int, act: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = act()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act2 = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(y + self.shortcut(x))


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model without the training code's arguments.

    Args:
        arch: a key of ``ARCHS``.
        num_classes: output classes.
        input_shape: (C, H, W) of one image.
        mean, std: per-channel normalization of images in [0, 1].
        width: channel multiplier (1.0 = the paper's widths; small values for smoke tests).
    """

    arch: str
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    width: float = 1.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(arch=str(d["arch"]), num_classes=int(d["num_classes"]),
                   input_shape=tuple(int(v) for v in d["input_shape"]),  # type: ignore[arg-type]
                   mean=tuple(float(v) for v in d["mean"]), std=tuple(float(v) for v in d["std"]),
                   width=float(d.get("width", 1.0)))


def _ch(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def _conv_bn_act(cin: int, cout: int, act: Callable[[], nn.Module]) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), act()]


def digits_cnn(cfg: ModelConfig, act: Callable[[], nn.Module]) -> nn.Sequential:
    """Small CNN for 8×8 digits: 3 conv layers (16, 32, 32 channels), two 2×2 average pools, a linear head."""
    c, h, w = cfg.input_shape
    c1, c2 = _ch(16, cfg.width), _ch(32, cfg.width)
    return nn.Sequential(
        Normalize(cfg.mean, cfg.std),
        *_conv_bn_act(c, c1, act), *_conv_bn_act(c1, c2, act), nn.AvgPool2d(2),
        *_conv_bn_act(c2, c2, act), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(c2 * (h // 4) * (w // 4), cfg.num_classes),
    )


_VGG16 = (64, 64, "A", 128, 128, "A", 256, 256, 256, "A", 512, 512, 512, "A", 512, 512, 512, "A")


def vgg16(cfg: ModelConfig, act: Callable[[], nn.Module]) -> nn.Sequential:
    """CIFAR VGG-16 with BatchNorm and average pooling; classifier 512→4096→4096→classes (paper's code)."""
    layers: list[nn.Module] = [Normalize(cfg.mean, cfg.std)]
    cin, h, w = cfg.input_shape
    for v in _VGG16:
        if v == "A":
            layers.append(nn.AvgPool2d(2))
            h, w = h // 2, w // 2
        else:
            layers += _conv_bn_act(cin, _ch(int(v), cfg.width), act)
            cin = _ch(int(v), cfg.width)
    hidden = _ch(4096, cfg.width)
    layers += [nn.Flatten(), nn.Linear(cin * h * w, hidden), act(), nn.Linear(hidden, hidden), act(),
               nn.Linear(hidden, cfg.num_classes)]
    return nn.Sequential(*layers)


def _resnet(cfg: ModelConfig, act: Callable[[], nn.Module], stem: int, stages: Sequence[tuple[int, int]]) -> nn.Sequential:
    cin = _ch(stem, cfg.width)
    layers: list[nn.Module] = [Normalize(cfg.mean, cfg.std), *_conv_bn_act(cfg.input_shape[0], cin, act)]
    for i, (channels, blocks) in enumerate(stages):
        cout = _ch(channels, cfg.width)
        for b in range(blocks):
            layers.append(BasicBlock(cin, cout, 2 if (i > 0 and b == 0) else 1, act))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, cfg.num_classes)]
    return nn.Sequential(*layers)


def resnet18(cfg: ModelConfig, act: Callable[[], nn.Module]) -> nn.Sequential:
    """CIFAR ResNet-18: 3×3 stem of 64 channels, no max-pool, [2, 2, 2, 2] basic blocks."""
    return _resnet(cfg, act, 64, [(64, 2), (128, 2), (256, 2), (512, 2)])


def resnet34(cfg: ModelConfig, act: Callable[[], nn.Module]) -> nn.Sequential:
    """CIFAR ResNet-34: as ResNet-18 with [3, 4, 6, 3] blocks."""
    return _resnet(cfg, act, 64, [(64, 3), (128, 4), (256, 6), (512, 3)])


def resnet20(cfg: ModelConfig, act: Callable[[], nn.Module]) -> nn.Sequential:
    """CIFAR ResNet-20 (He et al. 2016): 16-channel stem, 3 stages of 3 blocks with 16/32/64 channels."""
    return _resnet(cfg, act, 16, [(16, 3), (32, 3), (64, 3)])


ARCHS: dict[str, Callable[[ModelConfig, Callable[[], nn.Module]], nn.Sequential]] = {
    "digits_cnn": digits_cnn,
    "vgg16": vgg16,
    "resnet18": resnet18,
    "resnet20": resnet20,
    "resnet34": resnet34,
}


def build_model(cfg: ModelConfig, act: SlipParams | None, theta: float = 8.0) -> nn.Sequential:
    """Build ``cfg.arch`` with SlipReLU(``act``) activations (plain ReLU when ``act`` is None).

    Example:
        >>> from slipsnn.toolchain.ann.activations import preset_params
        >>> cfg = ModelConfig("digits_cnn", 10, (1, 8, 8), (0.0,), (1.0,))
        >>> build_model(cfg, preset_params("slip"))(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    if cfg.arch not in ARCHS:
        raise ModelError(f"unknown architecture {cfg.arch!r}; allowed: {', '.join(ARCHS)}")
    if len(cfg.mean) != cfg.input_shape[0] or len(cfg.std) != cfg.input_shape[0]:
        raise ModelError(f"normalization has {len(cfg.mean)} means/{len(cfg.std)} stds for "
                         f"{cfg.input_shape[0]} input channels")
    return ARCHS[cfg.arch](cfg, lambda: make_activation(act, theta))
