"""SlipReLU against its formula, its named special cases, gradients, validation, slipify and the IF theorem."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from slipsnn.toolchain.ir.activation import SlipParams, preset_params
from slipsnn.toolchain.ann.activations import SlipReLU, clamp_activations_, slipify
from slipsnn.toolchain.errors import ModelError
from slipsnn.toolchain.conversion.lower import lower
from slipsnn.toolchain.backends.simulator import simulate_float


def _np_slip(x: np.ndarray, theta: float, a: float, L: int, delta1: float, delta2: float) -> np.ndarray:
    """SPEC §1 in float64 (L·(x/θ) in the module's order, so both round alike at the floor's edges)."""
    ramp = np.clip(x / theta + delta1 / L, 0.0, 1.0)
    step = np.clip(np.floor(L * (x / theta) + delta2) / L, 0.0, 1.0)
    return a * theta * ramp + (1.0 - a) * theta * step


def _random_params(rng: np.random.Generator) -> dict:
    """θ and a are float32 values: the module stores them as float32 tensors before ``.double()``."""
    f32 = lambda v: float(np.float32(v))  # noqa: E731
    return dict(theta=f32(rng.uniform(0.3, 10.0)), a=f32(rng.uniform(0.0, 1.0)), L=int(rng.integers(1, 33)),
                delta1=float(rng.uniform(-0.5, 0.5)), delta2=float(rng.uniform(-0.9, 0.9)))


def _inputs(rng: np.random.Generator, theta: float) -> np.ndarray:
    """Values around and far outside [0, θ], negative and large ones included."""
    return np.concatenate([rng.normal(0.5 * theta, theta, 400), [-1e6, -3.0 * theta, 0.0, theta, 1e6]])


def test_slip_relu_matches_numpy_formula() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = _random_params(rng)
        act = SlipReLU(**p).double()
        x = _inputs(rng, p["theta"])
        got = act(torch.as_tensor(x)).detach().numpy()
        want = _np_slip(x, **p)
        assert np.allclose(got, want, rtol=0, atol=1e-12 * p["theta"]), (p, np.argwhere(~np.isclose(got, want))[:5])
        assert got[-5] == got[-4] == 0.0 and got[-1] == pytest.approx(p["theta"]), "saturation at 0 and θ"


@pytest.mark.parametrize("preset, formula", [
    ("qcfs", lambda x, th, L: th * np.clip(np.floor(L * (x / th) + 0.5) / L, 0, 1)),
    ("clipfloor", lambda x, th, L: th * np.clip(np.floor(L * (x / th)) / L, 0, 1)),
    ("clip", lambda x, th, L: th * np.clip(x / th, 0, 1)),
])
def test_presets_equal_their_formulas(preset: str, formula) -> None:
    rng = np.random.default_rng(1)
    for L in (1, 4, 16):
        theta = float(np.float32(rng.uniform(0.5, 8.0)))
        act = SlipReLU.from_params(preset_params(preset, L=L), theta=theta).double()
        x = _inputs(rng, theta)
        assert np.allclose(act(torch.as_tensor(x)).detach().numpy(), formula(x, theta, L), rtol=0, atol=1e-12)


def test_preset_parameters() -> None:
    assert (preset_params("qcfs").a, preset_params("qcfs").delta2) == (0.0, 0.5)
    assert (preset_params("clipfloor").a, preset_params("clipfloor").delta2) == (0.0, 0.0)
    assert (preset_params("clip").a, preset_params("clip").delta1) == (1.0, 0.0)
    assert preset_params("slip") == SlipParams(a=0.5, L=16, delta1=0.0, delta2=0.5)
    assert preset_params("relu") is None
    with pytest.raises(ModelError, match="allowed: slip, qcfs"):
        preset_params("gelu")


def test_straight_through_gradients_of_x_and_theta() -> None:
    """d/dx: a·[0 ≤ r ≤ 1] + (1−a)·[0 ≤ ⌊u⌋/L ≤ 1] with r = x/θ + δ₁/L, u = L·x/θ + δ₂ (floor passes 1);
    d/dθ of θ·clip(r): δ₁/L inside, 1 above, 0 below; of θ·clip(⌊u⌋/L): ⌊u⌋/L − x/θ inside, 1 above, 0 below."""
    rng = np.random.default_rng(2)
    for _ in range(20):
        p = _random_params(rng)
        act = SlipReLU(**p).double()
        x_np = _inputs(rng, p["theta"])
        x = torch.as_tensor(x_np).requires_grad_(True)
        act(x).sum().backward()
        th, a, L, d1, d2 = p["theta"], p["a"], p["L"], p["delta1"], p["delta2"]
        r, s = x_np / th + d1 / L, np.floor(L * (x_np / th) + d2) / L
        r_in, s_in = (r >= 0) & (r <= 1), (s >= 0) & (s <= 1)
        assert np.allclose(x.grad.numpy(), a * r_in + (1 - a) * s_in, rtol=0, atol=1e-12)
        d_ramp = np.where(r_in, d1 / L, (r > 1).astype(float))
        d_step = np.where(s_in, s - x_np / th, (s > 1).astype(float))
        want = float(np.sum(a * d_ramp + (1 - a) * d_step))
        got = float(act.theta.grad)
        assert np.isfinite(got) and got != 0.0
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_learnable_a_and_theta_are_clamped_after_a_step() -> None:
    model = nn.Sequential(nn.Linear(2, 2), SlipReLU(theta=1.0, a=0.9, a_learnable=True),
                          SlipReLU(theta=1.0, a=0.1, a_learnable=True))
    up, down = model[1], model[2]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    up.a.grad, down.a.grad = torch.tensor(-5.0), torch.tensor(5.0)   # pushes a to 5.9 and −4.9
    up.theta.grad = torch.tensor(10.0)                                 # pushes θ to −9
    opt.step()
    assert float(up.a) > 1.0 and float(down.a) < 0.0 and float(up.theta) < 0.0
    clamp_activations_(model)
    assert float(up.a) == 1.0 and float(down.a) == 0.0 and float(up.theta) == pytest.approx(1e-3)
    assert up.current_params().a == 1.0 and down.current_params().a == 0.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(a=1.5), "a=1.5"), (dict(a=-0.1), "a=-0.1"), (dict(L=0), "L=0"), (dict(L=-3), "L=-3"),
    (dict(theta=0.0), "theta=0.0"), (dict(theta=-1.0), "theta=-1.0"), (dict(delta2=1.0), "delta2=1.0"),
])
def test_invalid_parameters_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        SlipReLU(**kwargs)


@pytest.mark.parametrize("kwargs, match", [(dict(L=2.5), "L=2.5"), (dict(a=2.0), "a=2.0"),
                                           (dict(delta2=-1.0), "delta2=-1.0")])
def test_invalid_slip_params_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        SlipParams(**kwargs)


def test_slipify_replaces_relu_and_maxpool_and_keeps_the_original() -> None:
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), inner,
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    new = slipify(model, preset_params("qcfs", L=4), theta=3.0)
    assert [type(m).__name__ for m in model] == ["Conv2d", "ReLU", "MaxPool2d", "Sequential", "Flatten", "Linear"]
    assert isinstance(model[3][1], nn.ReLU)
    assert isinstance(new[1], SlipReLU) and isinstance(new[3][1], SlipReLU)
    assert float(new[1].theta) == 3.0 and new[1].current_params() == preset_params("qcfs", L=4)
    assert isinstance(new[2], nn.AvgPool2d) and new[2].kernel_size == 2 and new[2].stride == 2
    assert torch.equal(new[0].weight, model[0].weight)
    with torch.no_grad():
        new[0].weight.add_(1.0)
    assert not torch.equal(new[0].weight, model[0].weight), "slipify must deep-copy the weights"


@pytest.mark.parametrize("delta2", [0.0, 0.5, 0.25, -0.25])
@pytest.mark.parametrize("T", [1, 2, 4, 8, 16])
def test_if_neuron_with_T_equal_L_reproduces_the_quantized_step(T: int, delta2: float) -> None:
    """QCFS theorem: constant input x, v(0) = δ₂ (θ = 1), T = L steps ⇒ spikes/T = clip(⌊T·x + δ₂⌋/T, 0, 1).

    One pixel (255, which the model sees as 1.0) drives N neurons with weights x_i, so neuron i receives
    x_i every step. The
    simulator runs in float32: x_i are kept ≥ 1e-3 away from the step edges, where an error of a few
    float32 ulps (T·x·2⁻²³ < 1e-5) could move a spike by one step.
    """
    rng = np.random.default_rng(T)
    hi = 1.5 if delta2 >= 0 else 1.0   # for δ₂ < 0 and x > 1 the IF neuron saturates later than the formula
    x = rng.uniform(-0.5, hi, 400)
    x = x[np.abs(T * x + delta2 - np.round(T * x + delta2)) > 1e-3]
    n = len(x)
    act = SlipReLU(theta=1.0, L=T, a=0.0, delta2=delta2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(1, n), act, nn.Linear(n, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.as_tensor(x).view(n, 1))
        model[1].bias.zero_()
    snn = lower(model, (1, 1, 1))
    res = simulate_float(snn, torch.full((1, 1, 1, 1), 255.0), T, record_counts=True)
    rate = res.counts[0][0] / T
    want = np.clip(np.floor(T * x + delta2) / T, 0.0, 1.0)
    assert np.array_equal(rate, want), f"{np.argwhere(rate != want)[:5]=}"
    ann = act.double()(torch.as_tensor(x)).detach().numpy()   # θ = 1: the ANN activation is the rate itself
    assert np.array_equal(rate, ann)
