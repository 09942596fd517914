"""Agreement of the NIR graphs with slipsnn's integer network, per T, on a data set's test split.

    python benchmarks/nir_agreement.py runs/digits/model.net [--timesteps 1 2 4 8] [--limit N]

For each variant (portable, exact) and executor (the NIR reference executor of tests/nir_reference.py,
nirtorch 2.6, snnTorch 1.0.0 for portable graphs with one threshold per IF node) it prints the share of
samples whose class (argmax of the output summed over T) equals slipsnn's, the share of samples whose
outputs are bit-equal, and the accuracy. Results go into docs/nir.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from nir_consumers import run_nirtorch, run_snntorch  # noqa: E402
from nir_reference import run_graph  # noqa: E402
from slipsnn.exporters.nir import to_nir  # noqa: E402
from slipsnn.toolchain.backends.simulator import simulate_int  # noqa: E402
from slipsnn.toolchain.pipeline import network_and_test_data  # noqa: E402

import nir  # noqa: E402

EXECUTORS = {"reference": lambda g, x, t: run_graph(g, x, t)["output"], "nirtorch": run_nirtorch,
             "snntorch": run_snntorch}


def _uniform_thresholds(graph: nir.NIRGraph) -> bool:
    return all(np.unique(n.v_threshold).size == 1 for n in graph.nodes.values() if isinstance(n, nir.IF))


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("network", type=Path)
    ap.add_argument("--timesteps", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args(argv)
    net, pixels, labels = network_and_test_data(args.network, limit=args.limit)
    x, T = pixels.numpy(), max(args.timesteps)
    want = np.round(simulate_int(net, pixels, T).logits * net.layers[-1].scale * 64)   # output v, state units
    rows = []
    print(f"{args.network}: {len(labels)} test samples; agreement = same class as slipsnn "
          "(bit-equal outputs) · accuracy")
    print(f"{'variant':9} {'executor':10} " + " ".join(f"{'T=' + str(t):>24}" for t in args.timesteps))
    for variant in ("portable", "exact"):
        graph = to_nir(net, variant)
        for name, run in EXECUTORS.items():
            if name == "snntorch" and (variant == "exact" or not _uniform_thresholds(graph)):
                print(f"{variant:9} {name:10} n/a ({'no I/Threshold mapping' if variant == 'exact' else 'per-neuron thresholds'})")
                continue
            got = net.layers[-1].v_init + 64 * np.cumsum(run(graph, x, T), axis=1)
            cells = []
            for t in args.timesteps:
                g, w = got[:, t - 1], want[:, t - 1]
                agree = float((g.argmax(1) == w.argmax(1)).mean())
                equal = float((g == w).all(1).mean())
                acc = float((g.argmax(1) == labels.numpy()).mean())
                rows.append(dict(variant=variant, executor=name, timesteps=t, agreement=agree, bit_equal=equal,
                                 accuracy=acc))
                cells.append(f"{100 * agree:6.1f} % ({100 * equal:5.1f}) · {100 * acc:5.1f}")
            print(f"{variant:9} {name:10} " + " ".join(f"{c:>24}" for c in cells))
    acc = [float((want[:, t - 1].argmax(1) == labels.numpy()).mean()) for t in args.timesteps]
    print(f"{'slipsnn':9} {'fast sim':10} " + " ".join(f"{'accuracy ' + format(100 * a, '5.1f'):>24}" for a in acc))
    return rows


if __name__ == "__main__":
    main()
