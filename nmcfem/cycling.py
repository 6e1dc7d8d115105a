"""Per-cycle results of an experiment from the run's series: ``cycles.csv`` and the voltage
figures (voltage against capacity per cycle, current during the holds).

Everything here is computed from the series rows (one per accepted step, each with its step's
length, current and voltage), so it is the same after a restart and needs no solver.
Capacities book each backward-Euler step's own current times its length, exactly as the Li
leaves the particle.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from nmcfem.atomic import atomic_write_text
from nmcfem.experiment import CC, CV, Step

CYCLES = "cycles.csv"
#: series columns of a growing passivation layer, reported at the end of each cycle
PASSIVATION_KEYS = ("passivation_thickness_mean [m]", "passivation_thickness_max [m]",
                    "wetted_crack_area [m^2]", "crack_layer_thickness_mean [m]",
                    "crack_layer_thickness_max [m]", "active_material_lost [mol]",
                    "capacity_lost [mAh]")
#: a cycle's charge below this fraction of its discharge counts as none (round-off of rests)
NEGLIGIBLE_CHARGE = 1e-9
#: coulombs per mAh and joules per mWh
C_PER_MAH = J_PER_MWH = 3.6


def cycle_table(rows: list[dict[str, Any]], steps: list[Step]) -> list[dict[str, Any]]:
    """One record per cycle: charge and discharge capacity (mAh), coulombic efficiency,
    charge and discharge energy (mWh), time held at the cycle's highest hold voltage (s),
    and the state at its end (time, mean x, cracked area, dissipated energy, and with a
    growing passivation layer its mean and largest thickness on the outer surface and on wetted
    crack faces, the wetted crack area, the active material and capacity it converted, and the
    net discharge capacity: the simulated one less the capacity converted).

    Parameters
    ----------
    rows: series rows (``cycle``, ``protocol_step``, ``dt [s]``, ``current [A]``,
        ``voltage [V]``, ...).
    steps: the experiment's steps (to know which are holds).
    """
    holds = [s.voltage for s in steps if s.kind == CV]
    # a charge-only experiment (the default first charge) has no efficiency either, whereas a
    # discharge step that delivers nothing (Li locked in cut-off grains) has efficiency 0
    discharges = any(s.kind == CC and s.direction == "discharge" for s in steps)
    top = max(holds) if holds else None
    out = []
    for cycle in sorted({int(r["cycle"]) for r in rows if "cycle" in r}):
        sel = [r for r in rows if int(r.get("cycle", 0)) == cycle and float(r["dt [s]"]) > 0]
        if not sel:
            continue
        dt = np.array([float(r["dt [s]"]) for r in sel])
        current = np.array([float(r["current [A]"]) for r in sel])
        voltage = np.array([float(r["voltage [V]"]) for r in sel])
        charge = float(np.sum((current * dt)[current > 0]))
        discharge = float(np.sum(-(current * dt)[current < 0]))  # a sum of positives
        held = [int(r["protocol_step"]) - 1 for r in sel]
        at_top = np.array([steps[i].kind == CV and steps[i].voltage == top for i in held])
        last = sel[-1]
        out.append({
            "cycle": cycle,
            "charge_capacity [mAh]": charge / C_PER_MAH,
            "discharge_capacity [mAh]": discharge / C_PER_MAH,
            # a cycle without a real charge (a discharge-only experiment) has no efficiency
            "coulombic_efficiency [-]": discharge / charge
            if charge > NEGLIGIBLE_CHARGE * discharge and (discharges or discharge > 0)
            else float("nan"),
            "charge_energy [mWh]": float(np.sum((voltage * current * dt)[current > 0]))
            / J_PER_MWH,
            "discharge_energy [mWh]": float(np.sum(-(voltage * current * dt)[current < 0]))
            / J_PER_MWH,
            "time_at_upper_cutoff [s]": float(np.sum(dt[at_top])) if len(at_top) else 0.0,
            "end_time [s]": float(last["time [s]"]),
            "mean_x_end [-]": float(last["mean_x [-]"]),
            "cracked_area [m^2]": float(last.get("cracked_area_full [m^2]", 0.0)),
            "dissipated_energy [J]": float(last.get("dissipated_energy [J]", 0.0)),
            **{key: float(last[key]) for key in PASSIVATION_KEYS if key in last},
        })
        if "capacity_lost [mAh]" in last:
            # the transport still cycles Li through the converted sites: the particle delivers
            # the simulated discharge capacity less what the layers have converted so far
            out[-1]["discharge_capacity_net [mAh]"] = \
                out[-1]["discharge_capacity [mAh]"] - float(last["capacity_lost [mAh]"])
    return out


def write_cycles(path: Path, table: list[dict[str, Any]]) -> None:
    """Write the per-cycle table as CSV (atomically)."""
    if not table:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(table[0]), lineterminator="\n")
    writer.writeheader()
    for rec in table:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in rec.items()})
    atomic_write_text(path, buf.getvalue())


def voltage_figures(rows: list[dict[str, Any]], steps: list[Step], folder: Path) -> list[str]:
    """Voltage against the capacity passed in each cycle, and the current during holds
    against the time in the hold; PNG and SVG in ``folder``. Returns the files written."""
    from nmcfem.analysis.figures import _plt, _save

    plt = _plt()
    folder.mkdir(parents=True, exist_ok=True)
    cycles = sorted({int(r["cycle"]) for r in rows})
    shown = cycles if len(cycles) <= 8 else sorted({cycles[0], *cycles[::max(1, len(cycles) // 6)],
                                                    cycles[-1]})
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, cycle in enumerate(shown):
        sel = [r for r in rows if int(r["cycle"]) == cycle]
        q = np.array([float(r["capacity [mAh]"]) for r in sel])
        q0 = float(q[0])
        v = np.array([float(r["voltage [V]"]) for r in sel])
        ax.plot((q - q0) * 1e9, v, color=cmap(k / max(1, len(shown) - 1)), label=f"cycle {cycle}")
    ax.set_xlabel("capacity passed in the cycle [pAh]")
    ax.set_ylabel("particle potential V vs Li/Li+ [V]")
    ax.legend(fontsize=8)
    written = _save(fig, folder / "voltage_capacity")
    holds = [i for i, s in enumerate(steps) if s.kind == CV]
    if holds:
        fig, ax = plt.subplots(figsize=(6, 4))
        for k, cycle in enumerate(shown):
            for i in holds:
                sel = [r for r in rows if int(r["cycle"]) == cycle
                       and int(r["protocol_step"]) == i + 1 and float(r["dt [s]"]) > 0]
                if len(sel) < 2:
                    continue
                t = np.array([float(r["time [s]"]) for r in sel])
                current = np.abs([float(r["current [A]"]) for r in sel])
                ax.semilogy(t - t[0], current, color=cmap(k / max(1, len(shown) - 1)),
                            label=f"cycle {cycle}: {steps[i].text}")
        ax.set_xlabel("time in the hold [s]")
        ax.set_ylabel("|current| [A]")
        ax.legend(fontsize=7)
        written += _save(fig, folder / "hold_current")
    return written
