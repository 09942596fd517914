"""Shared test factories: small hand-built integer networks, seeded inputs and exact comparisons.

Plain functions (import them: ``from factories import chain_net``); every network is built fresh from a seed,
so no test can change another's data.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from slipsnn.toolchain.backends.result import SimResult
from slipsnn.toolchain.ir.integer import IntLayer, IntNetwork, IntSynapse


def even_weights(rng: np.random.Generator, low: int, high: int, *shape: int) -> np.ndarray:
    """Even integers in [2·low, 2·high)."""
    return (rng.integers(low, high, shape) * 2).astype(np.int32)


def random_pixels(n: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed).integers(0, 256, (n, *shape)), dtype=torch.uint8)


def assert_same_result(got: SimResult, ref: SimResult) -> None:
    """logits, spikes and synops bit-exact; the message shows where they differ."""
    for name in ("logits", "spikes", "synops"):
        a, b = getattr(got, name), getattr(ref, name)
        assert a.shape == b.shape, f"{name}: shape {a.shape} != {b.shape}"
        assert (a == b).all(), f"{name} differs at {np.argwhere(a != b)[:5]}"


def live_children() -> set[int]:
    """PIDs of this process's live children (not zombies, not Python's shared-memory resource tracker)."""
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z" and b"resource_tracker" not in cmdline:
            found.add(int(entry))
    return found


def chain_net(seed: int = 3) -> IntNetwork:
    """conv 3×3 stride 2, padding (1, 2) on a 7×10 input (per-neuron bias) → grouped conv → dense
    (weight_exp −1) → dense output whose weights are all ≤ 0 and reach −256 (weight_exp 1)."""
    rng = np.random.default_rng(seed)
    out_w = -(rng.integers(0, 129, (5, 20)) * 2).astype(np.int32)
    out_w[0, 0] = -256
    layers = (
        IntLayer("conv0", (4, 4, 6), (IntSynapse(-1, "conv", even_weights(rng, -10, 11, 4, 2, 3, 3), stride=(2, 2),
                                                 padding=(1, 2)),),
                 "IF_SOFT", 1500, rng.integers(-300, 300, (4, 4, 6)), 3, 64 * 700, 1500.0),
        IntLayer("conv1", (6, 4, 6), (IntSynapse(0, "conv", even_weights(rng, -60, 90, 6, 2, 3, 3), padding=(1, 1),
                                                 groups=2),),
                 "IF_SOFT", 300, rng.integers(-20, 20, (6,)), 2, 64 * 150 + 5, 300.0),
        IntLayer("fc2", (20,), (IntSynapse(1, "dense", even_weights(rng, -90, 110, 20, 144), weight_exp=-1),),
                 "IF_SOFT", 400, rng.integers(-40, 40, (20,)), 1, 0, 400.0),
        IntLayer("out", (5,), (IntSynapse(2, "dense", out_w, weight_exp=1),),
                 "ACCUMULATE", 0, rng.integers(-40, 40, (5,)), 2, 0, 37.5),
    )
    return IntNetwork((2, 7, 10), layers, timesteps=3, max_timesteps=8)


def residual_net(seed: int = 4) -> IntNetwork:
    """conv → conv + 1×1 conv from the input (delay 1) → conv + identity depthwise 1×1 from layer 0
    (delay 1) → dense output + dense from layer 0 (delay 2)."""
    rng = np.random.default_rng(seed)
    identity = np.full((3, 1, 1, 1), 128, np.int32)
    conv3 = lambda cin: even_weights(rng, -60, 90, 3, cin, 3, 3)  # noqa: E731
    layers = (
        IntLayer("b0", (3, 5, 6), (IntSynapse(-1, "conv", even_weights(rng, -8, 10, 3, 2, 3, 3), padding=(1, 1)),),
                 "IF_SOFT", 2000, rng.integers(-50, 50, (3,)), 4, 64 * 1000, 2000.0),
        IntLayer("b1", (3, 5, 6), (IntSynapse(0, "conv", conv3(3), padding=(1, 1)),
                                   IntSynapse(-1, "conv", even_weights(rng, -3, 4, 3, 2, 1, 1))),
                 "IF_SOFT", 600, rng.integers(-20, 20, (3,)), 3, 64 * 300, 600.0),
        IntLayer("b2", (3, 5, 6), (IntSynapse(1, "conv", conv3(3), padding=(1, 1)),
                                   IntSynapse(0, "conv", identity, groups=3)),
                 "IF_SOFT", 500, rng.integers(-20, 20, (3,)), 3, 64 * 250, 500.0),
        IntLayer("out", (4,), (IntSynapse(2, "dense", even_weights(rng, -128, 128, 4, 90)),
                               IntSynapse(0, "dense", even_weights(rng, -128, 128, 4, 90), weight_exp=-2)),
                 "ACCUMULATE", 0, rng.integers(-40, 40, (4,)), 0, 0, 3.0),
    )
    return IntNetwork((2, 5, 6), layers, timesteps=3, max_timesteps=8)


def file_chain_net(seed: int = 0) -> IntNetwork:
    """conv 3×3 (per-neuron bias, v_init) → conv 3×3 stride 2 → dense (after flatten) → dense output."""
    rng = np.random.default_rng(seed)
    layers = (
        IntLayer("conv0", (4, 8, 8), (IntSynapse(-1, "conv", even_weights(rng, -128, 128, 4, 2, 3, 3), padding=(1, 1)),),
                 "IF_SOFT", 3000, rng.integers(-300, 300, (4, 8, 8)), 6, 64 * 1500, 3000.0),
        IntLayer("conv1", (6, 4, 4), (IntSynapse(0, "conv", even_weights(rng, -128, 128, 6, 4, 3, 3), stride=(2, 2),
                                                 padding=(1, 1)),),
                 "IF_SOFT", 400, rng.integers(-40, 40, (6,)), 6, 64 * 200 + 17, 400.5),
        IntLayer("fc2", (12,), (IntSynapse(1, "dense", even_weights(rng, -128, 128, 12, 96)),),
                 "IF_SOFT", 500, rng.integers(-40, 40, (12,)), 7, 0, 500.0),
        IntLayer("out", (5,), (IntSynapse(2, "dense", even_weights(rng, -128, 128, 5, 12)),),
                 "ACCUMULATE", 0, rng.integers(-40, 40, (5,)), 6, 0, 1.25),
    )
    return IntNetwork((2, 8, 8), layers, timesteps=4, max_timesteps=32,
                      meta={"dataset": "toy", "slip": [0.5, 1.0], "report": {"conv0": {"scale": 3000}}})


def file_residual_net(seed: int = 1) -> IntNetwork:
    """conv → conv → conv + identity depthwise 1×1 residual from layer 0 → dense (weight_exp −2) → output."""
    rng = np.random.default_rng(seed)
    identity = np.full((4, 1, 1, 1), 64, np.int32)
    conv = lambda src: IntSynapse(src, "conv", even_weights(rng, -128, 128, 4, 4 if src >= 0 else 1, 3, 3), padding=(1, 1))
    layers = (
        IntLayer("b0", (4, 6, 6), (conv(-1),), "IF_SOFT", 900, rng.integers(-9, 9, (4,)), 6, 0, 900.0),
        IntLayer("b1", (4, 6, 6), (conv(0),), "IF_SOFT", 900, rng.integers(-9, 9, (4,)), 6, 0, 900.0),
        IntLayer("b2", (4, 6, 6), (conv(1), IntSynapse(0, "conv", identity, groups=4)), "IF_SOFT", 900,
                 rng.integers(-9, 9, (4,)), 3, 64 * 450, 900.0),
        IntLayer("fc3", (10,), (IntSynapse(2, "dense", even_weights(rng, -128, 128, 10, 144), weight_exp=-2),), "IF_SOFT",
                 100, rng.integers(-9, 9, (10,)), 6, 0, 100.0),
        IntLayer("out", (3,), (IntSynapse(3, "dense", even_weights(rng, -128, 128, 3, 10)),), "ACCUMULATE", 0,
                 np.zeros(3, np.int32), 0, 0, 1.0),
    )
    return IntNetwork((1, 6, 6), layers, timesteps=2, max_timesteps=8, meta={"residual": True})


def mixed_residual_net(seed: int = 0) -> IntNetwork:
    """conv (per-neuron bias) → conv stride 2 → conv + residuals from layer 0 and the input → dense → dense
    + residual."""
    rng = np.random.default_rng(seed)
    layers = (
        IntLayer("conv0", (4, 6, 6), (IntSynapse(-1, "conv", even_weights(rng, -128, 128, 4, 2, 3, 3), padding=(1, 1)),),
                 "IF_SOFT", 2000, rng.integers(-300, 300, (4, 6, 6)), 6, 64 * 100, 2000.0),
        IntLayer("conv1", (4, 3, 3), (IntSynapse(0, "conv", even_weights(rng, -128, 128, 4, 4, 3, 3), stride=(2, 2),
                                                 padding=(1, 1)),),
                 "IF_SOFT", 300, rng.integers(-40, 40, (4,)), 6, 0, 300.0),
        IntLayer("conv2", (4, 3, 3), (IntSynapse(1, "conv", even_weights(rng, -128, 128, 4, 4, 3, 3), padding=(1, 1)),
                                      IntSynapse(0, "conv", even_weights(rng, -128, 128, 4, 1, 1, 1), stride=(2, 2), groups=4),
                                      IntSynapse(-1, "conv", even_weights(rng, -128, 128, 4, 2, 1, 1), stride=(2, 2))),
                 "IF_SOFT", 300, rng.integers(-40, 40, (4,)), 5, -64 * 10, 300.0),
        IntLayer("fc3", (10,), (IntSynapse(2, "dense", even_weights(rng, -128, 128, 10, 36), weight_exp=-1),),
                 "IF_SOFT", 200, rng.integers(-40, 40, (10,)), 7, 0, 200.0),
        IntLayer("out", (3,), (IntSynapse(3, "dense", even_weights(rng, -128, 128, 3, 10)),
                               IntSynapse(2, "dense", even_weights(rng, -128, 128, 3, 36), weight_exp=2)),
                 "ACCUMULATE", 0, rng.integers(-40, 40, (3,)), 6, 0, 1.5),
    )
    return IntNetwork((2, 6, 6), layers, timesteps=4, max_timesteps=16, meta={"dataset": "toy", "seed": seed})


def digits_net(timesteps: int = 8) -> IntNetwork:
    """conv 3×3 (1 → 4 channels) → dense 256 → 10 on digits' 8×8 images: 450 test samples × T steps in Lava."""
    rng = np.random.default_rng(0)
    layers = (IntLayer("conv", (4, 8, 8), (IntSynapse(-1, "conv", rng.integers(-7, 8, (4, 1, 3, 3)) * 2,
                                                      padding=(1, 1)),), "IF_SOFT", 500, np.zeros(4, np.int32), 0, 0,
                       500.0),
              IntLayer("out", (10,), (IntSynapse(0, "dense", rng.integers(-50, 51, (10, 256)) * 2),), "ACCUMULATE",
                       0, np.zeros(10, np.int32), 0, 0, 1.0))
    return IntNetwork((1, 8, 8), layers, timesteps=timesteps, max_timesteps=timesteps, meta={"dataset": "digits"})


# --------------------------------------------------------------------------------------------------------------
# A network small enough to count by hand.
#
# input (1, 4, 4), non-zero pixels: (0,0) = 10, (1,1) = 20, (3,3) = 30
# conv: 3×3, stride 2, padding 1, 2 output channels, every weight 2 except channel 1's centre tap (0) → (2, 2, 2)
#   Output row o reads input rows 2o−1 .. 2o+1: o=0 → rows 0,1 (row −1 is padding), o=1 → rows 1,2,3.
#   So input row r is read by [1, 2, 1, 1] output rows (r = 0..3), columns likewise, and the fan-out of a
#   pixel into one channel with all 9 taps non-zero is the outer product [[1,2,1,1],[2,4,2,2],[1,2,1,1],[1,2,1,1]].
#   Channel 1 loses its centre tap, which reads input (2o, 2o') = (0,0), (0,2), (2,0), (2,2): one less there.
#   Fan-out of the three non-zero pixels: (0,0): 1 + 0, (1,1): 4 + 4, (3,3): 1 + 1 → 11 synaptic events per step.
# out: dense (3, 8), ACCUMULATE; its columns hold [3, 2, 1, 0, 3, 2, 1, 3] non-zero weights (15 in all).
CONV_W = np.full((2, 1, 3, 3), 2, np.int32)


DENSE_W = 2 * np.array([[1, 1, 1, 0, 1, 0, 0, 1],
                        [1, 1, 0, 0, 1, 1, 0, 1],
                        [1, 0, 0, 0, 1, 1, 1, 1]], np.int32)


def hand_net(meta: dict | None = None) -> IntNetwork:
    layers = (
        IntLayer("conv", (2, 2, 2), (IntSynapse(-1, "conv", CONV_W, stride=(2, 2), padding=(1, 1)),), "IF_SOFT",
                 50, np.zeros(2, np.int32), 0, 0, 50.0),
        IntLayer("out", (3,), (IntSynapse(0, "dense", DENSE_W),), "ACCUMULATE", 0, np.zeros(3, np.int32), 0, 0, 1.0),
    )
    return IntNetwork((1, 4, 4), layers, timesteps=4, max_timesteps=8,
                      meta=meta if meta is not None else {"arch": "hand", "dataset": "toy",
                                                          "metrics": {"ann_accuracy": 0.9}})


def tiny_conv_net() -> IntNetwork:
    rng = np.random.default_rng(1)
    layers = (IntLayer("conv", (2, 4, 4), (IntSynapse(-1, "conv", rng.integers(-20, 20, (2, 1, 3, 3)) * 2,
                                                      padding=(1, 1)),), "IF_SOFT", 300, np.zeros(2, np.int32), 0, 0,
                       300.0),
              IntLayer("out", (2,), (IntSynapse(0, "dense", rng.integers(-20, 20, (2, 32)) * 2),), "ACCUMULATE", 0,
                       np.zeros(2, np.int32), 0, 0, 1.0))
    return IntNetwork((1, 4, 4), layers, timesteps=2, max_timesteps=2, meta={"dataset": "toy"})


def randomize_bn(model: torch.nn.Module, seed: int) -> None:
    """Give every BatchNorm non-trivial running statistics and affine terms (so that folding them is tested)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)


def untrained_digits_checkpoint(path: "os.PathLike | str") -> "os.PathLike":
    """A seeded, untrained digits CNN (width 0.25, SlipReLU L = 4) saved as a slipsnn checkpoint at ``path``."""
    from slipsnn.toolchain.ann.checkpoint import save_checkpoint
    from slipsnn.toolchain.ann.models import ModelConfig, build_model
    from slipsnn.toolchain.data.registry import DATASETS
    from slipsnn.toolchain.ir.activation import preset_params
    info = DATASETS["digits"]
    cfg = ModelConfig("digits_cnn", info.num_classes, info.input_shape, info.mean, info.std, width=0.25)
    act = preset_params("slip", L=4)
    torch.manual_seed(0)
    return save_checkpoint(path, build_model(cfg, act), cfg, act, dataset="digits", metrics={"ann_accuracy": 0.1})


def max_logit_error(model: torch.nn.Module, shape: tuple[int, int, int], seed: int = 0, samples: int = 6) -> float:
    """Max |logits(lowered, float64) − logits(torch model in float64)| on random 8-bit images."""
    from slipsnn.toolchain.backends.ann_eval import ann_forward
    from slipsnn.toolchain.conversion.lower import lower
    torch.manual_seed(seed)
    model = model.double().eval()
    pixels = torch.randint(0, 256, (samples, *shape)).double()
    lowered = ann_forward(lower(model, shape), pixels)[-1]
    with torch.no_grad():
        ref = model(pixels / 255)
    assert ref.abs().max() > 1e-3, "a vanishing output would make the comparison meaningless"
    return float((lowered - ref).abs().max())

