"""Reports: exact op counts against hand counts, energy arithmetic, profile validation, JSON = table, plots."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from slipsnn.toolchain.costs.counts import ann_macs, count_layers, stored_synapses
from slipsnn.toolchain.costs.energy import snn_energy
from slipsnn.toolchain.costs.mapping import map_cores
from slipsnn.toolchain.errors import ProfileError, SlipsnnError
from slipsnn.toolchain.ir.integer import IntLayer, IntNetwork, IntSynapse
from slipsnn.toolchain.costs.profiles import Profile, ProfileKind, list_profiles, load_profile
from slipsnn.toolchain.costs.report import Report, build_report, choose_profiles
from slipsnn.toolchain.pipeline import report, save_report
from slipsnn.toolchain.show.report import format_report
from slipsnn.toolchain.backends.result import RunResult
from slipsnn.toolchain.backends.registry import run_network
from slipsnn.toolchain.backends.result import SimResult
from slipsnn.toolchain.backends.simulator import simulate_int
from factories import CONV_W, hand_net

CONV_W[1, 0, 1, 1] = 0


def hand_pixels() -> torch.Tensor:
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0], x[0, 0, 1, 1], x[0, 0, 3, 3] = 10, 20, 30
    return x


def test_synops_and_spikes_match_hand_counts() -> None:
    sim = simulate_int(hand_net(), hand_pixels(), 4)
    # Conv input current per step (weight units): channel 0 neurons (0,0): 2·(10+20) = 60, (0,1): 2·20 = 40,
    # (1,0): 40, (1,1): 2·(20+30) = 100; channel 1: 40, 40, 40, 2·20 + 2·30 = 100. Threshold 50, reset by
    # subtraction: 60 and 100 fire every step; 40 fires at t = 2, 3, 4 (v = 40, 80→30, 70→20, 60→10).
    # Spikes per step: t1: 3 (the 60/100 neurons), then all 8.
    want_spikes = np.array([[3, 8, 8, 8], [0, 0, 0, 0]])
    # Conv synops: 11 per step (see the header). Dense synops: Σ over spiking conv neurons of their column's
    # non-zero weights. t1: neurons 0 (c0 (0,0)), 3 (c0 (1,1)), 7 (c1 (1,1)) → 3 + 0 + 3 = 6; then all → 15.
    want_synops = np.array([[11, 11, 11, 11], [6, 15, 15, 15]])
    assert (sim.spikes[0] == want_spikes).all(), f"{sim.spikes[0]=}"
    assert (sim.synops[0] == want_synops).all(), f"{sim.synops[0]=}"

    counts = count_layers(hand_net(), sim, 4)
    assert [c.spikes for c in counts] == [27, 0]
    assert [c.synops for c in counts] == [44, 51]
    assert counts[0].firing_rate == pytest.approx(27 / (8 * 4))
    assert [c.neuron_updates for c in counts] == [32, 12]
    assert [c.inactive_updates for c in counts] == [5, 12]
    early = count_layers(hand_net(), sim, 1)
    assert [c.spikes for c in early] == [3, 0] and [c.synops for c in early] == [11, 6]


def test_stored_synapses_and_ann_macs_match_hand_counts() -> None:
    net = hand_net()
    # Stored synapses = Σ fan-out over all source elements: channel 0 = 5·5 = 25 (row sums 1+2+1+1 = 5),
    # channel 1 = 25 − 4 = 21; dense: 15 non-zero weights.
    assert stored_synapses(net).tolist() == [46, 15]
    # ANN MACs count every weight, zeros included. Conv: output rows read 2 (o=0) or 3 (o=1) in-bounds rows,
    # columns likewise → (2+3)·(2+3) = 25 taps per channel, × C_in/groups = 1, × 2 channels = 50. Dense 3·8 = 24.
    assert ann_macs(net).tolist() == [50, 24]


def test_ann_macs_grouped_conv_and_residual_shortcut() -> None:
    w3 = np.full((4, 1, 3, 3), 2, np.int32)          # groups = 2: each output reads C_in/groups = 1 channel
    proj = np.full((4, 2, 1, 1), 2, np.int32)         # 1×1 stride-2 projection shortcut from layer 0
    layers = (
        IntLayer("a", (2, 5, 5), (IntSynapse(-1, "conv", np.full((2, 1, 1, 1), 2, np.int32)),), "IF_SOFT", 1,
                 np.zeros(2, np.int32), 0, 0, 1.0),
        IntLayer("b", (4, 3, 3), (IntSynapse(0, "conv", w3, groups=2),), "IF_SOFT", 1, np.zeros(4, np.int32), 0, 0, 1.0),
        IntLayer("c", (4, 3, 3), (IntSynapse(1, "conv", np.full((4, 4, 3, 3), 2, np.int32), padding=(1, 1)),
                                  IntSynapse(0, "conv", proj, stride=(2, 2))), "IF_SOFT", 1, np.zeros(4, np.int32), 0, 0, 1.0),
        IntLayer("out", (2,), (IntSynapse(2, "dense", np.full((2, 36), 2, np.int32)),), "ACCUMULATE", 0,
                 np.zeros(2, np.int32), 0, 0, 1.0),
    )
    net = IntNetwork((1, 5, 5), layers, timesteps=1, max_timesteps=1)
    # a: 1×1 conv, 2·25 outputs × 1 tap = 50.  b: 3×3 valid on 5×5 → 3×3 outputs, 9 taps × 1 channel × 4 = 324.
    # c: 3×3 padding 1 on 3×3: output rows read 2, 3, 2 rows → (2+3+2)² = 49 taps × 4 input channels × 4 = 784,
    #    plus the shortcut: 36 outputs × 1 tap × 2 input channels = 72 → 856.   out: 2·36 = 72.
    assert ann_macs(net).tolist() == [50, 324, 856, 72]


# --------------------------------------------------------------------------------------------------------------
# Profiles.

PROFILE_TOML = """
[profile]
name = "testchip"
kind = "neuromorphic"
description = "round numbers for a hand calculation"

[energy.synop]
value = 2.0
unit = "pJ"
source = "test"

[energy.neuron_update_active]
value = 10.0
unit = "pJ"
source = "test"

[energy.neuron_update_inactive]
value = 3.0
unit = "pJ"
source = "test"

[energy.spike]
value = 500.0
unit = "fJ"
source = "test"

[timing.step_time]
value = 5.0
unit = "us"
source = "test"

[power.static]
value = 1.0
unit = "mW"
source = "test"

[core.neurons_per_core]
value = 4
unit = "neurons"
source = "test"

[core.synapse_memory_per_core]
value = 16
unit = "B"
source = "test"

[core.cores_per_chip]
value = 2
unit = "cores"
source = "test"

[core.bytes_per_synapse]
value = 1
unit = "B"
source = "test"
"""


def write_profile(tmp_path: Path, text: str = PROFILE_TOML) -> Path:
    path = tmp_path / "testchip.toml"
    path.write_text(text)
    return path


def test_builtin_profiles_load_with_sources() -> None:
    assert set(list_profiles()) >= {"loihi", "loihi2", "gpu45nm"}
    for name in list_profiles():
        p = load_profile(name)
        assert isinstance(p, Profile) and p.name == name
        assert all(c.source.strip() for c in p.energy.values())
    loihi = load_profile("loihi")
    assert (loihi.energy_pj("synop"), loihi.energy_pj("neuron_update_active"), loihi.energy_pj("neuron_update_inactive"),
            loihi.energy_pj("spike")) == (23.6, 81.0, 52.0, 1.7)
    assert loihi.step_time.base == 10.0 and loihi.step_time.range == (5.8, 13.0)
    assert loihi.core.neurons_per_core.base == 1024 and loihi.core.synapse_memory_per_core.base == 128 * 1024
    # Loihi 2 has no public per-op energy: every energy must say what it assumes.
    loihi2 = load_profile("loihi2")
    assert all(c.assumption for c in loihi2.energy.values())
    gpu = load_profile("gpu45nm")
    assert gpu.kind is ProfileKind.ANN and gpu.energy_pj("mac") == 4.6 and gpu.energy_pj("add") == 0.9


def test_user_profile_path_works(tmp_path: Path) -> None:
    path = write_profile(tmp_path)
    for arg in (path, str(path)):
        p = load_profile(arg)
        assert p.name == "testchip" and p.path == str(path)
        assert p.energy_pj("spike") == 0.5                     # 500 fJ
        assert p.static_power.base == 1.0 and p.step_time.base == 5.0


@pytest.mark.parametrize("old, new, expected", [
    ('source = "test"\n\n[energy.neuron_update_active]', 'source = "test"\ncolour = "red"\n\n[energy.neuron_update_active]',
     r"\[energy\.synop\] has unknown key 'colour'; allowed: value, unit, source"),
    ("[energy.spike]", "[energy.spikes]", r"\[energy\] has unknown key 'spikes'; allowed: synop, spike"),
    ('value = 500.0\nunit = "fJ"\n', "value = 500.0\n", r"\[energy\.spike\] is missing 'unit'"),
    ("value = 2.0\nunit = \"pJ\"", "value = -2.0\nunit = \"pJ\"", r"\[energy\.synop\]\.value = -2\.0; allowed: a finite number ≥ 0"),
    ("value = 2.0\nunit = \"pJ\"", "value = inf\nunit = \"pJ\"", r"\[energy\.synop\]\.value = inf"),
    ('unit = "fJ"', 'unit = "mJ"', r"\[energy\.spike\]\.unit = 'mJ'; allowed units: pJ, fJ, nJ"),
    ('unit = "us"', 'unit = "Hz"', r"\[timing\.step_time\]\.unit = 'Hz'; allowed units: us, ns, ms, s"),
    ('kind = "neuromorphic"', 'kind = "fpga"', r"\[profile\]\.kind = 'fpga'; allowed: neuromorphic, ann"),
    ("value = 4\nunit = \"neurons\"", "value = 4.5\nunit = \"neurons\"", r"\[core\.neurons_per_core\]\.value = 4\.5 must be a whole"),
    ("[core.cores_per_chip]", "[core.cores_per_die]", r"\[core\] has unknown key 'cores_per_die'"),
    ("[energy.neuron_update_inactive]", "[energy.neuron_update]", r"needs either 'neuron_update' or both"),
    ('value = 5.0\nunit = "us"', 'value = = 5.0\nunit = "us"', r"TOML syntax error"),
])
def test_profile_errors_name_file_and_key(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in PROFILE_TOML
    path = write_profile(tmp_path, PROFILE_TOML.replace(old, new, 1))
    with pytest.raises(ProfileError, match=expected) as err:
        load_profile(path)
    assert str(path) in str(err.value)


def test_profile_missing_section_and_unknown_name(tmp_path: Path) -> None:
    text = PROFILE_TOML[:PROFILE_TOML.index("[core.neurons_per_core]")]
    with pytest.raises(ProfileError, match=r"\[core\.neurons_per_core\] is missing"):
        load_profile(write_profile(tmp_path, text))
    with pytest.raises(ProfileError, match="unknown profile .loihi3.; built-in profiles: gpu45nm, jetson_nano, loihi, loihi2, loihi_sanafe"):
        load_profile("loihi3")
    assert load_profile("gpu45nm").path.endswith("gpu45nm.toml")   # built-ins are named by file in messages too


# --------------------------------------------------------------------------------------------------------------
# Energy arithmetic on a hand-made SimResult.

def hand_run() -> RunResult:
    """2 samples, T = 3, the hand network's 2 layers (conv: 8 neurons, out: 3)."""
    spikes = np.array([[[2, 4, 6], [0, 0, 0]],
                       [[0, 2, 4], [0, 0, 0]]])
    synops = np.array([[[10, 10, 10], [5, 9, 13]],
                       [[10, 10, 10], [0, 4, 8]]])
    logits = np.zeros((2, 3, 3))
    logits[0, :, 0] = 1.0                        # sample 0 (label 0): right at every t
    logits[1, 0, 0], logits[1, 1:, 1] = 1.0, 1.0  # sample 1 (label 1): wrong at t=1, right after
    sim = SimResult(logits, spikes, synops, ["conv", "out"])
    return RunResult("fast", 3, sim, np.array([0, 1]), {"compile_s": 0.0, "run_s": 0.5, "samples_per_s": 4.0})


def test_energy_matches_hand_calculation(tmp_path: Path) -> None:
    chip = load_profile(write_profile(tmp_path))
    rep = build_report(hand_net(), hand_run(), [1, 3], [chip], load_profile("gpu45nm"))
    assert [s.accuracy for s in rep.steps] == [0.5, 1.0]

    # t = 3, means over the 2 samples: conv spikes (12 + 6)/2 = 9, conv synops 30, out synops (27 + 12)/2 = 19.5.
    #   conv: synops 30·2 = 60, active 9·10 = 90, inactive (8·3 − 9)·3 = 45, spikes 9·0.5 = 4.5 → 199.5 pJ
    #   out:  synops 19.5·2 = 39, active 0, inactive 3·3·3 = 27, spikes 0            →  66.0 pJ
    # Cores (testchip: no conv weight sharing, 46 stored conv synapses · 1 B, 16 B and 4 neurons per core):
    #   conv (2, 2, 2): tile 2×2×2 has 8 neurons > 4; 2×2×1 has 4 but holds 46·4/8 = 23 B > 16 B; 2×1×1 holds
    #   11.5 B → 2·2·1 = 4 cores. out: 3 neurons, fan-in 8 → 8·3 = 24 B > 16 B on one core, 8·2 = 16 B on two.
    #   6 cores = 3 chips (2 per chip).
    # Static: 1 mW · 3 chips · latency (3 + 2 layers)·5 µs = 25 µs → 75 nJ = 75 000 pJ.
    e3 = rep.steps[1].energy["testchip"]
    assert [dict(layer) for layer in e3.by_layer] == [
        {"synop": 60.0, "neuron_update_active": 90.0, "neuron_update_inactive": 45.0, "spike": 4.5},
        {"synop": 39.0, "neuron_update_active": 0.0, "neuron_update_inactive": 27.0, "spike": 0.0}]
    assert e3.dynamic_pj == pytest.approx(265.5)
    assert e3.static_pj == pytest.approx(75_000.0)
    assert e3.total_pj == pytest.approx(75_265.5)
    assert rep.cores["testchip"].total_cores == 6 and rep.cores["testchip"].chips == 3
    conv, out = rep.cores["testchip"].layers
    assert (conv.cores, conv.tile, conv.synapse_bytes_per_core, conv.bound) == (4, (2, 1, 1), 11.5, "synapse memory")
    assert (out.cores, out.tile, out.first_core, out.axons_in_per_core) == (2, (2,), 4, 8)
    assert rep.cores["testchip"].chips_of(out) == (2, 2)

    # t = 1: conv spikes 1, synops 10; out synops 2.5 → 20 + 10 + 7·3 + 0.5 = 51.5 and 5 + 9 = 14; static 2·15 µs.
    e1 = rep.steps[0].energy["testchip"]
    assert e1.dynamic_pj == pytest.approx(65.5) and e1.static_pj == pytest.approx(45_000.0)

    timing = rep.steps[1].timing["testchip"]
    assert timing.latency_us == 25.0 and timing.throughput_per_s == pytest.approx(1e6 / 15)
    # ANN: (50 + 24) MACs · 4.6 pJ = 340.4 pJ, independent of t.
    assert rep.ann_energy.total_pj == pytest.approx(340.4)
    d = rep.to_json()
    assert d["timesteps"][1]["energy"]["testchip"]["ann_over_snn"] == pytest.approx(340.4 / 75_265.5)
    assert d["timesteps"][1]["energy"]["testchip"]["ann_over_snn_dynamic"] == pytest.approx(340.4 / 265.5)
    # The papers' estimate on gpu45nm at t = 3: first-layer synops 30·4.6 (graded input) + 19.5·0.9.
    assert d["timesteps"][1]["literature_estimate"]["energy_pj"] == pytest.approx(30 * 4.6 + 19.5 * 0.9)
    # The direct call gives the same as the report.
    counts = count_layers(hand_net(), hand_run().sim, 3)
    chips = map_cores(hand_net(), chip).chips
    assert snn_energy(counts, chip, 25.0, chips).total_pj == pytest.approx(75_265.5)


def test_choose_profiles(tmp_path: Path) -> None:
    chips, anns = choose_profiles("loihi")                   # only the profile asked for, no other built-in
    assert [p.name for p in chips] == ["loihi"] and [a.name for a in anns] == ["gpu45nm", "jetson_nano"]
    user = write_profile(tmp_path)
    chips, anns = choose_profiles([user, "loihi2", "jetson_nano"])   # an ann profile in the list is the main ANN
    assert [p.name for p in chips] == ["testchip", "loihi2"] and [a.name for a in anns] == ["jetson_nano"]
    chips, anns = choose_profiles("loihi2", edge_profile=None)
    assert [a.name for a in anns] == ["gpu45nm"]
    with pytest.raises(ProfileError, match="no neuromorphic profile"):
        choose_profiles(["gpu45nm"])


def test_build_report_refuses_bad_arguments(tmp_path: Path) -> None:
    net, run, gpu = hand_net(), hand_run(), load_profile("gpu45nm")
    with pytest.raises(SlipsnnError, match=r"each must be in 1\.\.3"):
        build_report(net, run, [4], [load_profile("loihi")], gpu)
    with pytest.raises(ProfileError, match="kind 'ann'"):
        build_report(net, run, [1], [gpu], gpu)
    with pytest.raises(ProfileError, match="allowed: 'ann'"):
        build_report(net, run, [1], [load_profile("loihi")], load_profile("loihi"))


# --------------------------------------------------------------------------------------------------------------
# The table shows the JSON's numbers; plots are written.

def simulated_report() -> Report:
    net = hand_net()
    pixels = torch.cat([hand_pixels(), hand_pixels().flip(-1), hand_pixels() * 2])
    run = run_network(net, pixels, np.array([0, 1, 2]), 4, "fast")
    return build_report(net, run, [1, 2, 4], [load_profile("loihi2"), load_profile("loihi")], load_profile("gpu45nm"))


def _section(text: str, title: str) -> str:
    """The lines of the table whose title line starts with ``title``, up to the next blank line."""
    start = text.index("\n" + title) + 1
    end = text.find("\n\n", start)
    return text[start:end if end >= 0 else None]


def _row(text: str, pattern: str) -> list[str]:
    lines = [line for line in text.splitlines() if re.match(pattern, line)]
    assert len(lines) == 1, (pattern, lines)
    return lines[0].split()


def test_table_shows_the_json_numbers() -> None:
    rep = simulated_report()
    d = json.loads(json.dumps(rep.to_json()))          # plain JSON types only
    text = format_report(rep)
    assert format_report(d) == text                    # the table is built from the JSON dict

    acc_table = _section(text, "Accuracy vs time-steps")
    for s in d["timesteps"]:
        row = _row(acc_table, rf"\s*{s['timesteps']}\s+\d+\.\d\d$")
        assert float(row[1]) == pytest.approx(100 * s["accuracy"], abs=0.005)
    assert float(_row(acc_table, r"\s*ANN\s+\d")[1]) == pytest.approx(90.0)

    last = d["timesteps"][-1]
    layer_table = _section(text, "Per layer at T=4")
    for i, layer in enumerate(last["layers"]):
        row = _row(layer_table, rf"{i}\s+{layer['name']}\s")
        assert int(row[2]) == layer["neurons"]
        assert float(row[3]) == pytest.approx(layer["spikes"], rel=5e-4)
        assert float(row[5]) == pytest.approx(layer["synops"], rel=5e-4)
        assert int(row[6]) == layer["macs"]

    energy_table = _section(text, "Energy per inference")
    unit = re.match(r"Energy per inference \((\w+)\)", energy_table).group(1)
    scale = {"pJ": 1, "nJ": 1e3, "µJ": 1e6, "mJ": 1e9}[unit]
    for name in ("loihi", "loihi2"):
        row = _row(energy_table, rf"4\s+{name}\s")
        e = last["energy"][name]
        assert float(row[2]) * scale == pytest.approx(e["dynamic_pj"], rel=5e-4)
        lo, hi = (float(v) * scale for v in row[3].split("–"))
        assert (lo, hi) == (pytest.approx(e["dynamic_range_pj"][0], rel=5e-3), pytest.approx(e["dynamic_range_pj"][1], rel=5e-3))
        assert e["dynamic_range_pj"][0] <= e["dynamic_pj"] <= e["dynamic_range_pj"][1]
        assert float(row[5]) * scale == pytest.approx(e["energy_pj"], rel=5e-4)
        assert float(row[7]) == pytest.approx(e["ann_over_snn"], rel=5e-4)
    assert last["energy"]["loihi2"]["static_pj"] > 0          # measured static power (PilotNet benchmark)
    # the partition table prints the JSON's cores per layer
    part = _section(text, "Partition on loihi2")
    for i, layer in enumerate(d["cores"]["loihi2"]["layers"]):
        row = _row(part, rf"{i}\s+{layer['name']}\s")
        assert int(row[4]) == layer["cores"] and row[6] == "×".join(map(str, layer["tile"]))


def test_save_report_writes_json_and_plots(tmp_path: Path) -> None:
    rep = simulated_report()
    written = save_report(rep, tmp_path / "r" / "report.json", tmp_path / "plots")
    names = [p.name for p in written]
    assert names == ["report.json", "accuracy_vs_timesteps.png", "spikes_per_layer.png", "energy_per_layer.png",
                     "energy_range.png"]
    assert json.loads((tmp_path / "r" / "report.json").read_text()) == json.loads(json.dumps(rep.to_json()))
    for p in written[1:]:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, (p, len(data))
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name.startswith(".")]   # no temp files left


def test_report_entry_point_on_digits(tmp_path: Path) -> None:
    from slipsnn.exporters.netx import write_netx
    rng = np.random.default_rng(0)
    layers = (   # weights small enough that max_timesteps 8 is provable: run paths prove the horizon again
        IntLayer("conv0", (4, 8, 8), (IntSynapse(-1, "conv", (rng.integers(-4, 8, (4, 1, 3, 3)) * 2).astype(np.int32),
                                                 padding=(1, 1)),), "IF_SOFT", 3000, np.zeros(4, np.int32), 0, 0, 3000.0),
        IntLayer("fc", (10,), (IntSynapse(0, "dense", (rng.integers(-60, 60, (10, 256)) * 2).astype(np.int32)),),
                 "ACCUMULATE", 0, np.zeros(10, np.int32), 0, 0, 10.0),
    )
    net = IntNetwork((1, 8, 8), layers, timesteps=2, max_timesteps=8, meta={"arch": "tiny", "dataset": "digits"})
    path = write_netx(net, tmp_path / "m.net")
    rep = report(path, None, [1, 4], limit=16, json_path=tmp_path / "r.json", plots_dir=tmp_path / "plots")
    assert rep.network["dataset"] == "digits"                # taken from the network's metadata
    assert rep.samples == 16 and [s.timesteps for s in rep.steps] == [1, 4]
    assert rep.main_profile == "loihi2" and [p.name for p in rep.profiles] == ["loihi2"]   # only what was asked
    assert rep.ann_accuracy is None
    assert rep.steps[-1].layers[0].spikes > 0
    assert (tmp_path / "r.json").exists() and len(list((tmp_path / "plots").glob("*.png"))) == 4
