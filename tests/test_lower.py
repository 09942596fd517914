"""Lowering a torch model to the converted SNN: every fold is exact (checked against the torch model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from slipsnn.toolchain.ann.activations import SlipReLU
from slipsnn.toolchain.ir.activation import preset_params
from slipsnn.toolchain.errors import ModelError
from slipsnn.toolchain.ir.formats import SynapseKind
from slipsnn.toolchain.conversion.lower import lower
from slipsnn.toolchain.ann.models import BasicBlock, ModelConfig, Normalize, build_model

from factories import max_logit_error

# float64 end to end: the only differences are summation order, ~1e-15 of the logits
TOL = 1e-9


def _randomize_bn(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)


@pytest.mark.parametrize("arch,shape", [("digits_cnn", (1, 8, 8)), ("resnet20", (3, 16, 16)),
                                        ("vgg16", (3, 32, 32)), ("resnet18", (3, 8, 8))])
def test_zoo_lowering_is_exact(arch: str, shape: tuple[int, int, int]) -> None:
    torch.manual_seed(1)
    cfg = ModelConfig(arch, 10, shape, (0.3,) * shape[0], (0.4,) * shape[0], width=0.125)
    model = build_model(cfg, preset_params("slip", L=4), theta=1.0)
    _randomize_bn(model, 2)
    assert max_logit_error(model, shape) < TOL


def test_avgpool_folds_into_the_next_conv_exactly() -> None:
    torch.manual_seed(3)
    act = lambda: SlipReLU(theta=1.0, L=8, a=0.5)  # noqa: E731
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), act(), nn.AvgPool2d(2),
                          nn.Conv2d(4, 3, 3, stride=1, padding=1), act(), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(3 * 2 * 2, 5))
    snn = lower(model.double(), (2, 8, 8))
    conv = snn.layers[1].synapses[0]
    # pool 2 then conv 3x3 / s1 / p1  ==  conv 6x6 / s2 / p2 with the weight repeated 2x2 and divided by 4
    assert conv.weight.shape == (3, 4, 6, 6) and conv.stride == (2, 2) and conv.padding == (2, 2)
    w = model[3].weight.detach().double().numpy()
    assert np.allclose(conv.weight[:, :, ::2, ::2] * 4, w * snn.layers[0].theta / snn.layers[1].theta)
    # the global pool before the Linear became a dense over the unpooled 3x4x4 source
    assert snn.layers[2].synapses[0].kind is SynapseKind.DENSE and snn.layers[2].synapses[0].weight.shape == (5, 48)
    assert max_logit_error(model, (2, 8, 8)) < TOL


def test_batchnorm_folds_exactly() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, bias=True), nn.BatchNorm2d(3), SlipReLU(1.0, L=4),
                          nn.Flatten(), nn.Linear(3 * 5 * 5, 6), nn.BatchNorm1d(6), SlipReLU(1.0, L=4),
                          nn.Linear(6, 2))
    _randomize_bn(model, 5)
    assert len(lower(model, (1, 5, 5)).layers) == 3
    assert max_logit_error(model, (1, 5, 5)) < TOL


def test_normalization_with_padding_gives_a_per_neuron_bias() -> None:
    torch.manual_seed(6)
    model = nn.Sequential(Normalize((0.5,), (0.25,)), nn.Conv2d(1, 2, 3, padding=1), SlipReLU(1.0, L=4),
                          nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    snn = lower(model, (1, 4, 4))
    # zero padding of the normalized image is padding with pixel 127.5: border neurons get their own bias
    assert snn.layers[0].bias.shape == (2, 4, 4)
    assert not np.allclose(snn.layers[0].bias[:, 0, 0], snn.layers[0].bias[:, 1, 1])
    assert max_logit_error(model, (1, 4, 4)) < TOL


def test_residual_block_becomes_a_second_synapse() -> None:
    torch.manual_seed(7)
    act = lambda: SlipReLU(theta=1.0, L=4)  # noqa: E731
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), act(),
                          BasicBlock(4, 4, 1, act), BasicBlock(4, 6, 2, act),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    _randomize_bn(model, 8)
    snn = lower(model, (2, 6, 6))
    identity, projection = snn.layers[2], snn.layers[4]
    assert [s.source for s in identity.synapses] == [1, 0]
    assert identity.synapses[1].groups == 4 and identity.synapses[1].weight.shape == (4, 1, 1, 1)
    assert [s.source for s in projection.synapses] == [3, 2] and projection.synapses[1].stride == (2, 2)
    assert max_logit_error(model, (2, 6, 6)) < TOL


def test_relu_models_need_calibrated_thresholds() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ModelError, match="calibrate"):
        lower(model, (1, 2, 2))
    snn = lower(model, (1, 2, 2), thetas={"2": 0.5})
    assert snn.layers[0].theta == 0.5 and snn.layers[0].act is None and snn.layers[0].v_init == 0.5


@pytest.mark.parametrize("bad,match", [
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 2)), "max-pooling"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2, 2)), "Tanh"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), SlipReLU(), nn.AvgPool2d(3, stride=1), nn.Flatten(), nn.Linear(2, 2)),
     "stride = kernel"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), SlipReLU(), nn.Linear(2, 2)), "Flatten"),
    (nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), "no activation"),
])
def test_unsupported_models_are_refused_by_name(bad: nn.Module, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        lower(bad, (1, 4, 4))


def test_lowering_does_not_modify_the_model() -> None:
    torch.manual_seed(9)
    model = build_model(ModelConfig("digits_cnn", 10, (1, 8, 8), (0.3,), (0.4,), width=0.25), preset_params("qcfs"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    lower(model, (1, 8, 8))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_normalization_folds_into_a_grouped_first_conv() -> None:
    torch.manual_seed(10)
    model = nn.Sequential(Normalize((0.2, 0.6), (0.5, 0.1)), nn.Conv2d(2, 4, 3, padding=1, groups=2),
                          SlipReLU(1.0, L=4), nn.Flatten(), nn.Linear(4 * 3 * 3, 2))
    assert max_logit_error(model, (2, 3, 3)) < TOL
