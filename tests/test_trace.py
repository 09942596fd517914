"""Models with their own forward(): torch.fx lowering is exact, refusals name the graph node and source line."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from factories import max_logit_error, randomize_bn
from torchvision.models.resnet import BasicBlock as TvBlock

from slipsnn.toolchain.ann.activations import SlipReLU, slipify
from slipsnn.toolchain.conversion.check import check_convertible
from slipsnn.toolchain.conversion.lower import lower, supported_modules
from slipsnn.toolchain.errors import ModelError
from slipsnn.toolchain.ir.activation import preset_params

# float64 end to end: the only differences are summation order (~1e-15 of the logits); 1e-9 leaves room
TOL = 1e-9
HERE = __file__


def _line_of(fn, text: str) -> int:
    """Line number in this file of the first line of ``fn`` containing ``text``."""
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


class TinyTorchvisionResNet(nn.Module):
    """torchvision's own BasicBlock (``out += identity``, one shared ``self.relu``, ``downsample``) in the
    forward() of torchvision's ResNet, at small widths."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(2)
        down = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        self.layer1 = nn.Sequential(TvBlock(8, 8), TvBlock(8, 16, stride=2, downsample=down))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.avgpool(self.layer1(x))
        x = torch.flatten(x, 1)
        return self.fc(x)


class CustomResidual(nn.Module):
    """Functional relu, a residual add, a pool between conv and activation, and a view flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1)
        self.c3 = nn.Conv2d(6, 6, 3, padding=1)
        self.c4 = nn.Conv2d(6, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 3 * 3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.c1(x))
        b = torch.relu(self.c3(F.relu(self.c2(a))) + a)
        c = F.relu(F.avg_pool2d(self.c4(b), 2))       # conv → pool → activation, on a 7×7 map (floor to 3×3)
        return self.fc(c.view(c.size(0), -1))


def test_torchvision_style_resnet_lowers_exactly() -> None:
    torch.manual_seed(0)
    model = slipify(TinyTorchvisionResNet(), preset_params("qcfs", L=4), theta=1.0)
    randomize_bn(model, 1)
    assert isinstance(model, torch.fx.GraphModule)
    # the shared self.relu of each block became one SlipReLU per call site
    assert sum(isinstance(m, SlipReLU) for m in model.modules()) == 5
    snn = lower(model, (3, 8, 8))
    assert [len(layer.synapses) for layer in snn.layers] == [1, 1, 2, 1, 2, 1]
    identity, projection = snn.layers[2], snn.layers[4]
    assert [s.source for s in identity.synapses] == [1, 0] and identity.synapses[1].groups == 8
    assert [s.source for s in projection.synapses] == [3, 2] and projection.synapses[1].stride == (2, 2)
    assert max_logit_error(model, (3, 8, 8)) < TOL


@pytest.mark.slow
def test_torchvision_resnet18_converts_after_slipify() -> None:
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(num_classes=10)
    with pytest.raises(ModelError, match=r"maxpool \(MaxPool2d\(kernel_size=3, stride=2, padding=1\)\)"):
        slipify(tv)
    tv.maxpool = nn.MaxPool2d(2)
    model = slipify(tv, theta=2.0)
    snn = lower(model, (3, 32, 32))
    assert len(snn.layers) == 18 and sum(len(layer.synapses) == 2 for layer in snn.layers) == 8
    err = max_logit_error(model, (3, 32, 32))
    assert err < 1e-8, err


def test_custom_residual_model_lowers_exactly() -> None:
    torch.manual_seed(2)
    model = slipify(CustomResidual(), preset_params("slip", L=8), theta=0.5)
    snn = lower(model, (1, 7, 7))
    names = [layer.name for layer in snn.layers]
    assert names == ["c1:conv", "c2:conv", "c3:conv+add:identity", "c4:conv+pool", "fc:linear"]
    pooled = snn.layers[3].synapses[0]
    assert pooled.weight.shape == (8, 6, 4, 4) and pooled.stride == (2, 2) and snn.layers[3].shape == (8, 3, 3)
    assert max_logit_error(model, (1, 7, 7)) < TOL


def test_shortcut_around_one_conv_merges_into_the_centre_tap() -> None:
    class OneConvSkip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(64, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = F.relu(self.c1(x))
            return self.fc(torch.flatten(F.relu(self.c2(a) + a), 1))

    torch.manual_seed(3)
    model = slipify(OneConvSkip(), preset_params("qcfs", L=4), theta=0.7)
    snn = lower(model, (1, 4, 4))
    assert len(snn.layers[1].synapses) == 1      # one synapse per source: c2 + identity summed
    assert max_logit_error(model, (1, 4, 4)) < TOL


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(4 * 16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.c(x))
        y = torch.cat([y, y], 1)
        return self.fc(y.flatten(1))


class Maximum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.c(x))
        y = y.amax(1)
        return self.fc(y.flatten(1))


@pytest.mark.parametrize("cls,node,op,code,why", [
    (Concat, "cat", "torch.cat", "y = torch.cat([y, y], 1)", "concatenation"),
    (Maximum, "amax", "Tensor.amax", "y = y.amax(1)", "maximum"),
])
def test_refusals_name_the_graph_node_and_its_source_line(cls, node, op, code, why) -> None:
    line = _line_of(cls.forward, code)
    with pytest.raises(ModelError) as err:
        lower(slipify(cls()), (1, 4, 4))
    msg = str(err.value)
    assert msg.startswith(f"cannot convert graph node {node!r} ({op}) at {HERE}:{line} `{code}`: "), msg
    assert why in msg and "supported: modules" in msg


def test_unknown_module_in_a_custom_forward_is_named_with_its_line() -> None:
    class WithGelu(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c, self.act, self.fc = nn.Conv2d(1, 2, 3), nn.GELU(), nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.act(self.c(x)).flatten(1))

    line = _line_of(WithGelu.forward, "return self.fc")
    with pytest.raises(ModelError) as err:
        lower(WithGelu(), (1, 4, 4))
    assert str(err.value).startswith(f"cannot convert module 'act' (GELU) at {HERE}:{line} "), str(err.value)


def test_supported_list_comes_from_the_registry_without_refused_types() -> None:
    names = supported_modules()
    assert "MaxPool2d" not in names and "ReLU6" not in names
    assert {"Conv2d", "Linear", "SlipReLU", "AvgPool2d", "BasicBlock", "Dropout2d", "Sequential"} <= set(names)
    with pytest.raises(ModelError) as err:
        lower(nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.Softplus(), nn.Linear(2, 2)), (1, 2, 2))
    assert "MaxPool2d" not in str(err.value) and "'2' (Softplus)" in str(err.value)


class ManyProblems(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(1, 4, 3, padding=1)
        self.g = nn.GELU()
        self.p = nn.MaxPool2d(3, 2, 1)
        self.fc = nn.Linear(8 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.p(self.g(self.c(x)))
        y = torch.cat([y, F.relu(y)], 1)
        return self.fc(torch.flatten(torch.sigmoid(y), 1))


def test_check_convertible_lists_every_problem_with_reason_and_fix() -> None:
    problems = check_convertible(ManyProblems(), (1, 8, 8))
    got = [(p.where.split(" at ")[0], p.what) for p in problems]
    assert got == [("g", "GELU"), ("p", "MaxPool2d(kernel_size=3, stride=2, padding=1)"),
                   ("graph node 'sigmoid'", "torch.sigmoid"), ("graph node 'relu'", "torch.nn.functional.relu"),
                   ("graph node 'cat'", "torch.cat")], got
    by_what = {p.what: p for p in problems}
    assert "nn.ReLU" in by_what["GELU"].fix
    assert "non-overlapping" in by_what["MaxPool2d(kernel_size=3, stride=2, padding=1)"].fix
    assert "must follow a conv or linear" in by_what["torch.nn.functional.relu"].reason
    line = _line_of(ManyProblems.forward, "torch.cat")
    assert by_what["torch.cat"].where == f"graph node 'cat' at {HERE}:{line} `y = torch.cat([y, F.relu(y)], 1)`"
    assert all(p.reason and p.fix for p in problems)


def test_check_convertible_is_empty_for_convertible_models() -> None:
    assert check_convertible(TinyTorchvisionResNet().eval().requires_grad_(False), (3, 8, 8))[0].where == "maxpool"
    assert check_convertible(slipify(TinyTorchvisionResNet()), (3, 8, 8)) == []
    assert check_convertible(CustomResidual(), (1, 7, 7)) == []    # plain ReLUs: calibration gives their θ


def test_check_convertible_finds_order_problems_past_a_swappable_pool() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(4, 4, 3),
                          nn.Flatten(), nn.Linear(16, 2))
    problems = check_convertible(model, (1, 8, 8))
    assert [(p.where, p.what) for p in problems] == [("1", "MaxPool2d"), ("5", "Linear")]
    assert "slipify" in problems[0].fix and "activation between" in problems[1].reason
