"""Chip profiles: per-operation energies, step time, static power and core limits, read from TOML.

A profile is one TOML file (schema in docs/reports.md). The built-in ones ship in
``slipsnn.hardware_configs`` (``loihi``, ``loihi2``, ``gpu45nm``); a path to a user file works the same way.
Every constant carries a value, a unit and a source; values are validated and converted to one base
unit per quantity (pJ, µs, mW, bytes, count), read with ``Constant.base``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from ..errors import ProfileError, SlipsnnError
from ..files import read_bytes

MAX_PROFILE_BYTES = 2 ** 20   # a profile is a few kB of TOML
MAX_NESTING = 32              # tables/arrays inside each other (the schema needs 3)

BUILTIN_PACKAGE = "slipsnn.hardware_configs"


class ProfileKind(str, Enum):
    """What a profile costs: a spiking chip's operations, or an ANN's arithmetic."""

    NEUROMORPHIC = "neuromorphic"
    ANN = "ann"


# Units accepted for each quantity, with their factor to the quantity's base unit (the first one listed).
ENERGY_UNITS = {"pJ": 1.0, "fJ": 1e-3, "nJ": 1e3}
TIME_UNITS = {"us": 1.0, "ns": 1e-3, "ms": 1e3, "s": 1e6}
POWER_UNITS = {"mW": 1.0, "uW": 1e-3, "W": 1e3}
MEMORY_UNITS = {"B": 1.0, "KiB": 1024.0, "MiB": 1024.0 ** 2}
NEURON_UNITS = {"neurons": 1.0}
CORE_UNITS = {"cores": 1.0}
COUNT_UNITS = {"axons": 1.0}

CONSTANT_KEYS = ("value", "unit", "source", "status", "assumption", "derived", "range", "note")
# How a constant is known: read off a measurement, fitted to measurements (a compiler log, a calibrated
# simulator), or assumed. Every built-in constant says which (tests/test_reports.py checks it).
STATUSES = ("measured", "calibrated", "assumed")
REQUIRED_CONSTANT_KEYS = ("value", "unit", "source")

# Energy operations per kind: name -> required?  ("neuron_update" OR the active/inactive pair, see _check_energy)
ENERGY_OPS: dict[ProfileKind, dict[str, bool]] = {
    ProfileKind.NEUROMORPHIC: {"synop": True, "spike": True, "neuron_update": False, "neuron_update_active": False,
                               "neuron_update_inactive": False, "hop_ew": False, "hop_ns": False},
    ProfileKind.ANN: {"mac": True, "add": False},
}

# Non-energy sections: section -> {key: (units, required for neuromorphic, must be an integer, may be zero)}
_QUANTITIES: dict[str, dict[str, tuple[dict[str, float], bool, bool, bool]]] = {
    "timing": {"step_time": (TIME_UNITS, True, False, False),
               # per-operation times of one core: the step-time estimate of the most loaded core (costs.mapping)
               "synop_time": (TIME_UNITS, False, False, True),
               "neuron_update_time": (TIME_UNITS, False, False, True),
               "spike_time": (TIME_UNITS, False, False, True),
               "sync_time": (TIME_UNITS, False, False, True)},
    "power": {"static": (POWER_UNITS, False, False, True)},
    "core": {"neurons_per_core": (NEURON_UNITS, True, True, False),
             "synapse_memory_per_core": (MEMORY_UNITS, True, False, False),
             "cores_per_chip": (CORE_UNITS, True, True, False),
             "bytes_per_synapse": (MEMORY_UNITS, True, False, False),
             # optional: conv weight sharing and the finer per-core budgets (costs.mapping)
             "conv_neurons_per_core": (NEURON_UNITS, False, True, False),
             "conv_bytes_per_weight": (MEMORY_UNITS, False, False, False),
             "word_bytes": (MEMORY_UNITS, False, False, False),
             "axons_in_per_core": (COUNT_UNITS, False, True, False)},
}
PROFILE_KEYS = {"name": True, "kind": True, "description": True, "notes": False}
SECTIONS = ("profile", "energy", *_QUANTITIES)


@dataclass(frozen=True)
class Constant:
    """One published (or assumed) constant.

    Attributes:
        value: the number as written in the file, in ``unit``.
        unit: the unit as written.
        source: where the value comes from.
        factor: ``unit`` → base unit of the quantity (pJ, µs, mW, B, count).
        assumption: what slipsnn assumes beyond the source (None when the value is taken as published).
        derived: how the value was computed from published figures, if it was.
        range: (low, high) in ``unit``, when the source gives a range.
        note: anything else a reader should know.
        status: ``measured``, ``calibrated`` or ``assumed`` (``STATUSES``); None when the file does not say.
    """

    value: float
    unit: str
    source: str
    factor: float = 1.0
    status: str | None = None
    assumption: str | None = None
    derived: str | None = None
    range: tuple[float, float] | None = None
    note: str | None = None

    @property
    def base(self) -> float:
        """The value in the quantity's base unit."""
        return self.value * self.factor

    @property
    def base_range(self) -> tuple[float, float]:
        """(low, high) in the base unit; (value, value) when the file gives no range."""
        lo, hi = self.range or (self.value, self.value)
        return lo * self.factor, hi * self.factor

    def pick(self, end: str = "value") -> float:
        """The base-unit value at one end of the constant's range: ``"value"``, ``"low"`` or ``"high"``."""
        if end == "value":
            return self.base
        lo, hi = self.base_range
        if end not in ("low", "high"):
            raise ProfileError(f"range end {end!r}; allowed: value, low, high")
        return lo if end == "low" else hi

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "unit": self.unit, "source": self.source}
        for key in ("status", "assumption", "derived", "note"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.range is not None:
            out["range"] = list(self.range)
        return out


@dataclass(frozen=True)
class CoreLimits:
    """Per-core resources used by the core-count estimate (``costs.map_cores``)."""

    neurons_per_core: Constant
    synapse_memory_per_core: Constant   # base unit: bytes
    cores_per_chip: Constant
    bytes_per_synapse: Constant         # base unit: bytes; a dense synapse (weight and its index)
    conv_neurons_per_core: Constant | None = None   # the fill a conv tile reaches; default neurons_per_core
    conv_bytes_per_weight: Constant | None = None   # set: conv kernels are shared within a core
    word_bytes: Constant | None = None              # synapse memory is allocated in words of this size
    axons_in_per_core: Constant | None = None


@dataclass(frozen=True)
class Profile:
    """A chip profile.

    Attributes:
        name: short name (``loihi2``).
        kind: neuromorphic (costs spiking operations) or ann (costs MACs).
        description: one line for reports.
        energy: op name → energy constant (base unit pJ); see ``ENERGY_OPS``.
        step_time: duration of one time-step (base unit µs); neuromorphic only.
        static_power: static power per chip (base unit mW), when known.
        core: per-core limits; neuromorphic only.
        notes: caveats that apply to the whole profile.
        path: the file it was read from.
    """

    name: str
    kind: ProfileKind
    description: str
    energy: Mapping[str, Constant]
    step_time: Constant | None = None
    static_power: Constant | None = None
    core: CoreLimits | None = None
    notes: tuple[str, ...] = ()
    path: str = ""
    op_times: Mapping[str, Constant] = MappingProxyType({})   # timing.* per-op times (synop_time, ...)

    def energy_pj(self, op: str, end: str = "value") -> float:
        """Energy of one ``op`` in pJ. ``neuron_update_active``/``_inactive`` fall back to ``neuron_update``.

        Args:
            op: operation name (``ENERGY_OPS``).
            end: ``"value"``, or ``"low"``/``"high"`` for the ends of the constant's range (``Constant.pick``).

        Raises:
            ProfileError: the profile has no such operation.
        """
        for key in (op, "neuron_update") if op.startswith("neuron_update_") else (op,):
            if key in self.energy:
                return self.energy[key].pick(end)
        raise ProfileError(f"profile {self.name!r} ({self.path}) has no energy for {op!r}; "
                           f"it has: {', '.join(self.energy)}")

    def assumptions(self) -> dict[str, str]:
        """``section.key`` → assumption text, for every constant that carries one."""
        out = {f"energy.{k}": c.assumption for k, c in self.energy.items() if c.assumption}
        for key, c in self._quantities().items():
            if c.assumption:
                out[key] = c.assumption
        return out

    def _quantities(self) -> dict[str, Constant]:
        out: dict[str, Constant] = {}
        if self.step_time is not None:
            out["timing.step_time"] = self.step_time
        if self.static_power is not None:
            out["power.static"] = self.static_power
        if self.core is not None:
            out.update({f"core.{k}": getattr(self.core, k) for k in _QUANTITIES["core"]
                        if getattr(self.core, k) is not None})
        out.update({f"timing.{k}": c for k, c in self.op_times.items()})
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the profile (what the report's JSON embeds)."""
        return {"name": self.name, "kind": self.kind.value, "description": self.description,
                "notes": list(self.notes), "path": self.path,
                "energy": {k: c.to_dict() for k, c in self.energy.items()},
                **{key: c.to_dict() for key, c in self._quantities().items()},
                "assumptions": self.assumptions()}


def list_profiles() -> list[str]:
    """Names of the built-in profiles (the ``*.toml`` files of ``slipsnn.hardware_configs``), sorted."""
    folder = resources.files(BUILTIN_PACKAGE)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a built-in profile by name, or a user profile from a TOML file.

    Args:
        name_or_path: a built-in name (``list_profiles()``) or the path of a ``.toml`` file.

    Returns:
        The validated ``Profile``.

    Raises:
        ProfileError: unknown name, unreadable file, TOML syntax error, or a schema violation; the
            message names the file, the key and what is allowed.

    Example:
        >>> p = load_profile("loihi")
        >>> p.energy_pj("synop"), p.step_time.base          # pJ, µs
        (23.6, 10.0)
    """
    text, origin = _read(name_or_path)
    _check_nesting(text, origin)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{origin}: TOML syntax error: {exc}") from exc
    except RecursionError:
        raise ProfileError(f"{origin}: nested deeper than the TOML parser allows; a profile nests "
                           f"at most {MAX_NESTING} levels") from None
    except ValueError:   # an integer of more than 4 300 digits (Python's int/str conversion limit)
        raise ProfileError(f"{origin}: unreadable number: an integer of more than 4300 digits; allowed: "
                           "finite numbers") from None
    return parse_profile(doc, origin)


def _read(name_or_path: str | Path) -> tuple[str, str]:
    text_name = str(name_or_path)
    is_path = isinstance(name_or_path, Path) or text_name.endswith(".toml") or "/" in text_name or "\\" in text_name
    if not is_path:
        builtins = list_profiles()
        if text_name not in builtins:
            raise ProfileError(f"unknown profile {text_name!r}; built-in profiles: {', '.join(builtins)} "
                               "(or give the path of a .toml file)")
        res = resources.files(BUILTIN_PACKAGE).joinpath(f"{text_name}.toml")
        return res.read_text(encoding="utf-8"), f"{BUILTIN_PACKAGE}/{text_name}.toml"
    path = Path(name_or_path)
    try:
        return read_bytes(path, MAX_PROFILE_BYTES, "profile").decode("utf-8"), str(path)
    except SlipsnnError as exc:
        raise ProfileError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc}") from exc


def _check_nesting(text: str, origin: str) -> None:
    """Refuse brackets/braces nested deeper than ``MAX_NESTING`` outside strings and comments (before parsing:
    the parser recurses once per level)."""
    depth, quote, i = 0, "", 0
    while i < len(text):
        c = text[i]
        if quote:
            if text.startswith(quote, i):
                i, quote = i + len(quote), ""
                continue
            if c == "\\" and quote in ('"', '"""'):
                i += 1
        elif c == "#":
            i = text.find("\n", i)
            if i < 0:
                break
        elif text.startswith(('"""', "'''"), i):
            quote = text[i:i + 3]
            i += 2
        elif c in "\"'":
            quote = c
        elif c in "[{":
            depth += 1
            if depth > MAX_NESTING:
                raise ProfileError(f"{origin}: arrays/tables nested deeper than {MAX_NESTING} levels "
                                   f"(at character {i}); a profile nests at most {MAX_NESTING}")
        elif c in "]}":
            depth = max(depth - 1, 0)
        i += 1


def parse_profile(doc: Mapping[str, Any], origin: str = "<profile>") -> Profile:
    """Validate a parsed TOML document and build the ``Profile`` (``origin`` names it in errors)."""
    _check_keys(doc, SECTIONS, origin, "top level")
    head = _table(doc, "profile", origin, required=True)
    _check_keys(head, PROFILE_KEYS, origin, "[profile]")
    for key, required in PROFILE_KEYS.items():
        if required and key not in head:
            raise ProfileError(f"{origin}: [profile] is missing {key!r}")
    for key in ("name", "kind", "description"):
        if not isinstance(head[key], str) or not head[key].strip():
            raise ProfileError(f"{origin}: [profile].{key} must be a non-empty string, found {head[key]!r}")
    allowed_kinds = [k.value for k in ProfileKind]
    if head["kind"] not in allowed_kinds:
        raise ProfileError(f"{origin}: [profile].kind = {head['kind']!r}; allowed: {', '.join(allowed_kinds)}")
    kind = ProfileKind(head["kind"])
    notes = head.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise ProfileError(f"{origin}: [profile].notes must be a list of strings")

    energy = _check_energy(_table(doc, "energy", origin, required=True), kind, origin)
    quantities: dict[str, dict[str, Constant]] = {}
    for section, keys in _QUANTITIES.items():
        table = _table(doc, section, origin, required=False)
        if kind is ProfileKind.ANN and table is not None:
            raise ProfileError(f"{origin}: [{section}] is not used by a profile of kind 'ann'; "
                               "allowed sections: profile, energy")
        table = table or {}
        _check_keys(table, keys, origin, f"[{section}]")
        quantities[section] = {}
        for key, (units, required, integer, zero_ok) in keys.items():
            where = f"[{section}.{key}]"
            if key not in table:
                if required and kind is ProfileKind.NEUROMORPHIC:
                    raise ProfileError(f"{origin}: {where} is missing; a neuromorphic profile needs it")
                continue
            quantities[section][key] = _constant(table[key], units, origin, where, integer, zero_ok)

    core = CoreLimits(**quantities["core"]) if kind is ProfileKind.NEUROMORPHIC else None
    return Profile(name=head["name"], kind=kind, description=head["description"],
                   energy=MappingProxyType(energy), step_time=quantities["timing"].get("step_time"),
                   op_times=MappingProxyType({k: c for k, c in quantities["timing"].items() if k != "step_time"}),
                   static_power=quantities["power"].get("static"), core=core, notes=tuple(notes), path=origin)


def _table(doc: Mapping[str, Any], key: str, origin: str, required: bool) -> dict | None:
    if key not in doc:
        if required:
            raise ProfileError(f"{origin}: missing section [{key}]")
        return None
    if not isinstance(doc[key], dict):
        raise ProfileError(f"{origin}: {key!r} must be a table ([{key}]), found {type(doc[key]).__name__}")
    return doc[key]


def _check_keys(table: Mapping[str, Any], allowed: Any, origin: str, where: str) -> None:
    unknown = [k for k in table if k not in allowed]
    if unknown:
        raise ProfileError(f"{origin}: {where} has unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")


def _check_energy(table: dict, kind: ProfileKind, origin: str) -> dict[str, Constant]:
    ops = ENERGY_OPS[kind]
    _check_keys(table, ops, origin, "[energy]")
    for op, required in ops.items():
        if required and op not in table:
            raise ProfileError(f"{origin}: [energy.{op}] is missing; a {kind.value} profile needs "
                               f"{', '.join(o for o, r in ops.items() if r)}")
    if kind is ProfileKind.NEUROMORPHIC:
        pair = [k for k in ("neuron_update_active", "neuron_update_inactive") if k in table]
        single = "neuron_update" in table
        if single == bool(pair) or len(pair) == 1:
            raise ProfileError(f"{origin}: [energy] needs either 'neuron_update' or both 'neuron_update_active' "
                               f"and 'neuron_update_inactive'; found {', '.join(pair + ['neuron_update'] * single) or 'none'}")
    return {op: _constant(value, ENERGY_UNITS, origin, f"[energy.{op}]", integer=False, zero_ok=True)
            for op, value in table.items()}


def _constant(raw: Any, units: dict[str, float], origin: str, where: str, integer: bool, zero_ok: bool) -> Constant:
    if not isinstance(raw, dict):
        raise ProfileError(f"{origin}: {where} must be a table with {', '.join(REQUIRED_CONSTANT_KEYS)}; "
                           f"found {raw!r}")
    _check_keys(raw, CONSTANT_KEYS, origin, where)
    for key in REQUIRED_CONSTANT_KEYS:
        if key not in raw:
            raise ProfileError(f"{origin}: {where} is missing {key!r}; every constant needs "
                               f"{', '.join(REQUIRED_CONSTANT_KEYS)}")
    unit = raw["unit"]
    if unit not in units:
        raise ProfileError(f"{origin}: {where}.unit = {unit!r}; allowed units: {', '.join(units)}")
    value = _number(raw["value"], origin, f"{where}.value", zero_ok)
    if not math.isfinite(value * units[unit]):
        raise ProfileError(f"{origin}: {where}.value = {value!r} {unit} overflows in the base unit; allowed: a "
                           "finite number")
    if integer and value != int(value):
        raise ProfileError(f"{origin}: {where}.value = {value!r} must be a whole number")
    for key in ("source", "assumption", "derived", "note"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise ProfileError(f"{origin}: {where}.{key} must be a non-empty string, found {raw[key]!r}")
    rng = None
    if "range" in raw:
        r = raw["range"]
        if not isinstance(r, list) or len(r) != 2:
            raise ProfileError(f"{origin}: {where}.range must be [low, high], found {r!r}")
        lo, hi = (_number(v, origin, f"{where}.range", zero_ok) for v in r)
        if not lo <= value <= hi:
            raise ProfileError(f"{origin}: {where}.range = [{lo}, {hi}] must contain value {value}")
        rng = (lo, hi)
    status = raw.get("status")
    if status is not None and status not in STATUSES:
        raise ProfileError(f"{origin}: {where}.status = {status!r}; allowed: {', '.join(STATUSES)}")
    return Constant(value=value, unit=unit, source=raw["source"], factor=units[unit], status=status,
                    assumption=raw.get("assumption"),
                    derived=raw.get("derived"), range=rng, note=raw.get("note"))


def _number(raw: Any, origin: str, where: str, zero_ok: bool) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ProfileError(f"{origin}: {where} must be a number, found {raw!r}")
    try:
        value = float(raw)
    except OverflowError:
        raise ProfileError(f"{origin}: {where} is an integer of about {int(raw.bit_length() * 0.30103)} digits, "
                           "which overflows a float; allowed: a finite number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        allowed = "a finite number ≥ 0" if zero_ok else "a finite number > 0"
        raise ProfileError(f"{origin}: {where} = {raw!r}; allowed: {allowed}")
    return value


def require_kind(profile: Profile, kind: ProfileKind) -> None:
    """Raise ``ProfileError`` unless ``profile`` is of ``kind`` (naming the profile and its file)."""
    if profile.kind is not kind:
        raise ProfileError(f"profile {profile.name!r} ({profile.path}) is of kind {profile.kind.value!r}; "
                           f"this estimate needs kind {kind.value!r}")
