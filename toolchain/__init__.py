"""slipsnn toolchain: SlipReLU ANNs → integer spiking networks → Lava / Loihi 2, with cost reports.

The public API for a user's own model, imported lazily (``import slipsnn.toolchain`` loads no torch):

    >>> from slipsnn.toolchain import slipify, check_convertible, convert, write_netx, run   # doctest: +SKIP
    >>> model = slipify(MyNet())                    # ReLU → SlipReLU, max-pool → avg-pool   # doctest: +SKIP
    >>> assert not check_convertible(model, (1, 28, 28))                                     # doctest: +SKIP
    >>> net = convert(model, (1, 28, 28), timesteps=4, dataset="mnist")                      # doctest: +SKIP
    >>> write_netx(net, "mine.net"); print(run(net, x_test, y_test).accuracy)                # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name → "module:attribute" (relative to this package; ``..`` for the top-level slipsnn packages)
_API: dict[str, str] = {
    "slipify": ".ann.activations:slipify",
    "SlipReLU": ".ann.activations:SlipReLU",
    "preset_params": ".ir.activation:preset_params",
    "Normalize": ".ann.models:Normalize",
    "check_convertible": ".conversion.check:check_convertible",
    "lower": ".conversion.lower:lower",
    "quantize": ".conversion.quantize:quantize",
    "QuantConfig": ".conversion.quantize:QuantConfig",
    "convert": ".pipeline:convert_model",
    "convert_model": ".pipeline:convert_model",
    "save_model": ".pipeline:save_model",
    "load_model": ".pipeline:load_model",
    "run": ".pipeline:run",
    "write_netx": "slipsnn.exporters.netx:write_netx",
    "read_netx": "slipsnn.exporters.netx:read_netx",
    "fit": ".ann.training:fit",            # the training loop for any model and DataLoader
    "train_epoch": ".ann.training:train_epoch",
    "evaluate_ann": ".ann.training:evaluate_ann",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562), so the CLI and ``--help`` stay fast."""
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'slipsnn.toolchain' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module, __name__) if module.startswith(".")
                    else importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
