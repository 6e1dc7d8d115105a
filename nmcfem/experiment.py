"""Experiments as data: cycling steps written as PyBaMM-style strings or as YAML mappings.

An experiment is a list of steps (one cycle), repeated ``experiment.cycles`` times:

- constant current: ``"Charge at 1C until 4.3 V"``, ``"Discharge at 0.5C for 30 minutes"``,
  ``"Charge at 2 nA until x = 0.3"``, ``"Discharge at C/3 for 2 hours or until 3.0 V"``;
  the rate is a C-rate (``1C``, ``C/20``), a current (``A``, ``mA``, ``uA``, ``nA``, ``pA``) or
  a current density (``A/m2``);
- constant voltage: ``"Hold at 4.3 V until C/50"``, ``"Hold at 4.1 V for 1 hour"``;
- rest: ``"Rest for 1 hour"``;
- potentiostatic surface (verification): ``"Hold surface at x = 0.25 for 10 minutes"``.

Conditions after ``until`` (joined by ``or``): a voltage (``4.3 V``), a current (``C/50``,
``1 nA``; in holds), the mean Li fraction (``x = 0.3``) or the lowest/highest surface Li fraction
on charge/discharge (``surface x = 0.12``). The same steps as mappings::

    {type: cc, direction: charge, c_rate: 1, until: {voltage: 4.3}}
    {type: cv, voltage: 4.3, until: {c_rate: 0.02}}
    {type: rest, duration: 3600}
    {type: surface, surface_x: 0.25, duration: 600}

Parsing is pure Python; every error is one line naming the step, what was found and what was
expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nmcfem.errors import ConfigError

CC, CV, REST, SURFACE = "cc", "cv", "rest", "surface"
CHARGE, DISCHARGE = "charge", "discharge"
VOLTAGE, CURRENT, MEAN_X, SURFACE_X = "voltage", "current", "mean_x", "surface_x"

_EXAMPLES = ("'Charge at 1C until 4.3 V', 'Hold at 4.3 V until C/50', 'Rest for 1 hour', "
             "'Discharge at 0.5C for 30 minutes'")
_SECONDS = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "min": 60.0, "minute": 60.0,
            "minutes": 60.0, "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0}
_AMPERES = {"a": 1.0, "ma": 1e-3, "ua": 1e-6, "na": 1e-9, "pa": 1e-12}
_NUM = r"[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?"


@dataclass(frozen=True)
class Rate:
    """A current given as a C-rate (1/h), a current (A) or a current density (A/m^2)."""

    unit: str  # "C", "A" or "A/m2"
    value: float

    def amperes(self, one_c: float, area: float) -> float:
        """The current (A, magnitude) for a particle whose 1C current is ``one_c`` (A) and whose
        reacting surface is ``area`` (m^2)."""
        if self.unit == "C":
            return self.value * one_c
        return self.value * (area if self.unit == "A/m2" else 1.0)


@dataclass(frozen=True)
class Condition:
    """A step's end: ``quantity`` (voltage, current, mean_x, surface_x) reaching ``value``
    (V, -, -; for current ``rate``)."""

    quantity: str
    value: float = 0.0
    rate: Rate | None = None


@dataclass(frozen=True)
class Step:
    """One step of an experiment.

    kind: cc, cv, rest or surface; direction: charge/discharge (cc); rate: the current (cc);
    voltage: V (cv); surface_x: held surface Li fraction (surface); duration: s or None;
    until: end conditions; text: how the user wrote it (for logs).
    """

    kind: str
    text: str
    direction: str | None = None
    rate: Rate | None = None
    voltage: float | None = None
    surface_x: float | None = None
    duration: float | None = None
    until: tuple[Condition, ...] = ()


def _bad(where: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"{where} = {value!r}: {why}; expected a step like {_EXAMPLES}")


def _number(text: str, where: str, raw: Any) -> float:
    try:
        return float(text)
    except ValueError:
        raise _bad(where, raw, f"'{text}' is not a number") from None


def parse_rate(text: str, where: str, raw: Any) -> Rate:
    """A C-rate ('1C', '0.5C', 'C/50'), current ('2 nA') or current density ('3 A/m2')."""
    t = text.strip().lower().replace(" ", "")
    if m := re.fullmatch(rf"({_NUM})c", t):
        return Rate("C", _positive(float(m.group(1)), where, raw, "C-rate"))
    if m := re.fullmatch(rf"c/({_NUM})", t):
        return Rate("C", 1.0 / _positive(float(m.group(1)), where, raw, "C-rate divisor"))
    if m := re.fullmatch(rf"({_NUM})a/m\^?2", t):
        return Rate("A/m2", _positive(float(m.group(1)), where, raw, "current density"))
    if m := re.fullmatch(rf"({_NUM})(a|ma|ua|na|pa)", t):
        return Rate("A", _positive(float(m.group(1)), where, raw, "current")
                    * _AMPERES[m.group(2)])
    raise _bad(where, raw, f"'{text.strip()}' is not a rate or current (write e.g. 1C, C/50, "
                           f"2 nA or 3 A/m2)")


def _rate_before_tail(text: str, where: str, raw: Any) -> Rate:
    """The rate of 'Charge at <rate> ...' where no 'for'/'until' was found after it: a rate
    followed by other words is a misspelt tail ('1C untill 4.3 V'), and is reported as such."""
    words = text.split()
    for n in range(len(words) - 1, 0, -1):
        try:
            parse_rate(" ".join(words[:n]), where, raw)
        except ConfigError:
            continue
        raise _bad(where, raw, f"cannot read '{' '.join(words[n:])}' (expected 'for <duration>' "
                               f"or 'until <condition>')")
    return parse_rate(text, where, raw)


def _positive(value: float, where: str, raw: Any, what: str) -> float:
    if not value > 0:
        raise _bad(where, raw, f"the {what} must be positive")
    return value


def parse_duration(text: str, where: str, raw: Any) -> float:
    """A duration ('30 minutes', '1 hour', '90 s') in seconds."""
    m = re.fullmatch(rf"\s*({_NUM})\s*([a-z]+)\s*", text.lower())
    if not m or m.group(2) not in _SECONDS:
        raise _bad(where, raw, f"'{text.strip()}' is not a duration (write e.g. 30 minutes, "
                               f"1 hour, 90 s)")
    return _positive(float(m.group(1)), where, raw, "duration") * _SECONDS[m.group(2)]


def parse_condition(text: str, where: str, raw: Any) -> Condition:
    """An end condition: '4.3 V', 'C/50', '1 nA', 'x = 0.3', 'surface x = 0.12'."""
    t = text.strip().lower()
    if m := re.fullmatch(rf"({_NUM})\s*v", t):
        return Condition(VOLTAGE, float(m.group(1)))
    if m := re.fullmatch(rf"(surface\s+)?x\s*=\s*({_NUM})", t):
        value = float(m.group(2))
        if not 0 <= value <= 1:
            raise _bad(where, raw, f"a Li fraction must lie in [0, 1], got {value}")
        return Condition(SURFACE_X if m.group(1) else MEAN_X, value)
    try:
        return Condition(CURRENT, rate=parse_rate(t, where, raw))
    except ConfigError:
        raise _bad(where, raw, f"'{text.strip()}' is not an end condition (write e.g. 4.3 V, "
                               f"C/50, x = 0.3 or surface x = 0.12)") from None


def _split_tail(tail: str, where: str, raw: Any) -> tuple[float | None, tuple[Condition, ...]]:
    """The 'for <duration>' and 'until <cond> [or <cond>]' parts after a step's head."""
    duration, conditions = None, []
    tail = tail.strip()
    if m := re.match(r"for\s+(.+?)(?:\s+or\s+until\s+|\s+until\s+|$)(.*)", tail):
        duration = parse_duration(m.group(1), where, raw)
        tail = m.group(2).strip()
        if not tail and re.search(r"until\s*$", raw if isinstance(raw, str) else ""):
            raise _bad(where, raw, "'until' needs a condition")
    elif re.match(r"until\b", tail):
        tail = tail[len("until"):].strip()
        if not tail:
            raise _bad(where, raw, "'until' needs a condition")
    elif tail:
        raise _bad(where, raw, f"cannot read '{tail}' (expected 'for <duration>' or "
                               f"'until <condition>')")
    if tail:
        for part in re.split(r"\s+or\s+(?:until\s+)?", tail):
            conditions.append(parse_condition(part, where, raw))
    return duration, tuple(conditions)


def parse_string(text: str, where: str = "experiment step") -> Step:
    """One step from a PyBaMM-style string."""
    t = " ".join(text.strip().split())
    low = t.lower()
    if m := re.fullmatch(r"(charge|discharge) at (.+?)((?: for | until | or until ).*)?", low):
        rate = _rate_before_tail(m.group(2), where, text)
        duration, until = _split_tail(m.group(3) or "", where, text)
        return _checked(Step(CC, t, direction=m.group(1), rate=rate, duration=duration,
                             until=until), where, text)
    if m := re.fullmatch(rf"hold surface at x\s*=\s*({_NUM})(.*)", low):
        duration, until = _split_tail(m.group(2), where, text)
        return _checked(Step(SURFACE, t, surface_x=float(m.group(1)), duration=duration,
                             until=until), where, text)
    if m := re.fullmatch(rf"hold at ({_NUM})\s*v(.*)", low):
        duration, until = _split_tail(m.group(2), where, text)
        return _checked(Step(CV, t, voltage=float(m.group(1)), duration=duration, until=until),
                        where, text)
    if m := re.fullmatch(r"rest(.*)", low):
        duration, until = _split_tail(m.group(1), where, text)
        return _checked(Step(REST, t, duration=duration, until=until), where, text)
    raise _bad(where, text, "it does not start with 'Charge at', 'Discharge at', 'Hold at' or "
                            "'Rest for'")


_MAPPING_KEYS = {"type", "direction", "c_rate", "current", "current_density", "voltage",
                 "surface_x", "duration", "until"}


def _mapping_condition(item: Any, where: str, raw: Any) -> Condition:
    if isinstance(item, str):
        return parse_condition(item, where, raw)
    if not isinstance(item, dict) or len(item) != 1:
        raise _bad(where, raw, f"an 'until' entry must be one of voltage, c_rate, current, "
                               f"mean_x, surface_x with its value, got {item!r}")
    (key, value), = item.items()
    if key not in ("voltage", "c_rate", "current", "mean_x", "surface_x") or \
            isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(where, raw, f"'until' entry {key}: {value!r} is not one of voltage [V], "
                               f"c_rate [1/h], current [A], mean_x [-], surface_x [-] with a "
                               f"number")
    if key == "c_rate":
        return Condition(CURRENT, rate=Rate("C", _positive(value, where, raw, "C-rate")))
    if key == "current":
        return Condition(CURRENT, rate=Rate("A", _positive(value, where, raw, "current")))
    return Condition({"voltage": VOLTAGE, "mean_x": MEAN_X, "surface_x": SURFACE_X}[key],
                     float(value))


def parse_mapping(data: dict, where: str = "experiment step") -> Step:
    """One step from a YAML mapping (keys: type, direction, c_rate | current [A] |
    current_density [A/m^2], voltage [V], surface_x [-], duration [s], until)."""
    unknown = set(data) - _MAPPING_KEYS
    if unknown:
        raise _bad(where, data, f"unknown key(s) {sorted(unknown)} (known: "
                                f"{sorted(_MAPPING_KEYS)})")
    kind = data.get("type")
    if kind not in (CC, CV, REST, SURFACE):
        raise _bad(where, data, f"type must be one of cc, cv, rest, surface, got {kind!r}")
    for key in ("c_rate", "current", "current_density", "voltage", "surface_x", "duration"):
        v = data.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise _bad(where, data, f"{key} must be a number, got {v!r}")
    rates = [Rate(u, float(data[k])) for k, u in (("c_rate", "C"), ("current", "A"),
                                                  ("current_density", "A/m2")) if k in data]
    if kind == CC and len(rates) != 1:
        raise _bad(where, data, "a cc step needs exactly one of c_rate [1/h], current [A], "
                                "current_density [A/m^2]")
    if kind != CC and rates:
        raise _bad(where, data, f"a {kind} step takes no c_rate/current/current_density")
    if kind == CC and data.get("direction") not in (CHARGE, DISCHARGE):
        raise _bad(where, data, f"direction must be charge or discharge, got "
                                f"{data.get('direction')!r}")
    until = data.get("until") or []
    until = until if isinstance(until, list) else [until]
    step = Step(kind, str(data), direction=data.get("direction") if kind == CC else None,
                rate=(Rate(rates[0].unit, _positive(rates[0].value, where, data, "rate"))
                      if rates else None),
                voltage=None if data.get("voltage") is None else float(data["voltage"]),
                surface_x=None if data.get("surface_x") is None else float(data["surface_x"]),
                duration=(None if data.get("duration") is None
                          else _positive(float(data["duration"]), where, data, "duration")),
                until=tuple(_mapping_condition(u, where, data) for u in until))
    return _checked(step, where, data)


def _checked(step: Step, where: str, raw: Any) -> Step:
    """Refuse steps that cannot end or whose conditions do not fit their kind."""
    kinds = {c.quantity for c in step.until}
    if step.duration is None and not step.until:
        raise _bad(where, raw, "the step never ends: give 'for <duration>' or "
                               "'until <condition>'")
    if step.kind == CV and (step.voltage is None or not 0 < step.voltage < 10):
        raise _bad(where, raw, "a hold needs a voltage between 0 and 10 V")
    if step.kind == SURFACE and (step.surface_x is None or not 0 <= step.surface_x <= 1):
        raise _bad(where, raw, "a surface hold needs a Li fraction surface_x in [0, 1]")
    if step.kind == CC and CURRENT in kinds:
        raise _bad(where, raw, "a constant-current step cannot end on a current")
    if step.kind in (CV, REST, SURFACE) and VOLTAGE in kinds:
        raise _bad(where, raw, f"a {step.kind} step cannot end on a voltage")
    if step.kind in (REST, SURFACE) and kinds:
        raise _bad(where, raw, f"a {step.kind} step ends after its duration only")
    return step


def parse_step(item: Any, where: str = "experiment step") -> Step:
    """One step from a string or a mapping."""
    if isinstance(item, str):
        return parse_string(item, where)
    if isinstance(item, dict):
        return parse_mapping(item, where)
    raise _bad(where, item, "a step is a string or a mapping")


def parse_steps(items: list, where: str = "experiment.steps") -> list[Step]:
    """All steps of one cycle."""
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: expected a non-empty list of steps like {_EXAMPLES}, got "
                          f"{items!r}")
    return [parse_step(item, f"{where}[{i}]") for i, item in enumerate(items)]
