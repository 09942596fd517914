"""Network files: write a checkpoint as netx HDF5 or NIR, read a netx file back with its horizon proven."""

from __future__ import annotations

from pathlib import Path

from ..conversion.quantize import QuantConfig, quantize
from ..ir.integer import IntNetwork
from .models import convert_checkpoint, load_converted, quant_config


def export_checkpoint(checkpoint: str | Path, out: str | Path | None = None, *, timesteps: int = 4,
                      max_timesteps: int | None = None, neuron: str = "if_soft") -> tuple[IntNetwork, Path]:
    """Convert, quantize and write a checkpoint as a netx HDF5 file.

    Args:
        checkpoint: path of ``model.pt``, or of a model file (``save_model``, ``*.snn.npz``).
        out: output path (default: ``model.net`` beside the checkpoint).
        timesteps: default T stored in the file.
        max_timesteps: horizon proven free of 24-bit overflow (default: max(``timesteps``, 8)).
        neuron: ``if_soft`` (slipsnn's soft-reset neuron) or ``cuba`` (stock netx, exact at T = 1).

    Returns:
        The integer network and the written path.
    """
    from slipsnn.exporters.netx import write_netx
    net = quantize(load_converted(checkpoint), quant_config(timesteps, max_timesteps, neuron))
    path = Path(out) if out is not None else Path(checkpoint).with_name("model.net")
    return net, write_netx(net, path, neuron=neuron)


def export_nir(source: str | Path, out: str | Path | None = None, *, variant: str = "exact", timesteps: int = 4,
               max_timesteps: int | None = None) -> tuple[IntNetwork, Path]:
    """Write a checkpoint or an existing slipsnn .net as a NIR graph (``exporters.nir``).

    Args:
        source: ``model.pt`` (quantized without a dense weight exponent, which NIR cannot floor, and without
            relying on the membrane's saturation, which NIR's IF lacks) or a
            slipsnn ``.net`` (its integers as they are).
        out: output path (default: ``model.nir`` beside ``source``).
        variant: ``portable`` (IF only, exact at T = 1) or ``exact`` (slipsnn at every T).
        timesteps, max_timesteps: as in ``export_checkpoint`` (checkpoints only).

    Returns:
        The integer network and the written path.
    """
    from slipsnn.exporters.nir import write_nir
    source = Path(source)
    if source.suffix == ".net":
        net = load_network(source)
    else:
        net = quantize(convert_checkpoint(source), QuantConfig(timesteps, max_timesteps, dense_weight_exp=False,
                                                              saturating_membrane=False))
    path = Path(out) if out is not None else source.with_name("model.nir")
    return net, write_nir(net, path, variant)


def load_network(path: str | Path) -> IntNetwork:
    """Read an exported network file (netx HDF5 with slipsnn's neuron), its overflow horizon proven again."""
    from slipsnn.exporters.netx import read_proven_netx
    return read_proven_netx(path)


def is_stock_file(path: str | Path) -> bool:
    """True for a netx file whose neurons are all stock CUBA (``--neuron cuba``, slayer): stock netx runs it."""
    from slipsnn.exporters.stock_netx import is_stock_netx
    return is_stock_netx(path)
