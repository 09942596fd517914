"""Print slipsnn's Loihi 2 core estimate beside Intel's published compiles, and the PilotNet energy check.

    python benchmarks/loihi2_calibration.py [--profile loihi2]

The tables in docs/reports.md "Calibration" are this script's output. Runs in about a second (no simulation).
"""

from __future__ import annotations

import argparse

from slipsnn.toolchain.costs.calibration import calibration_rows, pilotnet_check
from slipsnn.toolchain.costs.profiles import load_profile
from slipsnn.toolchain.show.calibration import format_calibration, format_pilotnet_check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="loihi2", help="neuromorphic profile name or TOML path")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    print(format_calibration(calibration_rows(profile)))
    print()
    print(format_pilotnet_check(pilotnet_check(profile)))


if __name__ == "__main__":
    main()
