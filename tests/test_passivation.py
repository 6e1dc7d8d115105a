"""The passivation layer growing on the outer surface: the parabolic law against its closed
form, no growth below the onset, and the book-keeping of the converted active material."""

import csv
from pathlib import Path

import numpy as np
import pytest

from nmcfem.config import load_config
from nmcfem.passivation import parabolic_growth
from nmcfem.physics.electrochemistry import FARADAY
from nmcfem.runner import run_command

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
K = 1e-21  # m^2/s


def _run(tmp_path, name, steps, *extra):
    cfg = load_config(REPO / "configs" / "quick.yaml", [
        f"experiment.steps={steps!r}", "passivation.enabled=true",
        f"passivation.rate_constant={K}", "analysis.enabled=false", "output.pictures=false",
        f"output.mesh_cache={tmp_path / 'meshes'}", *extra])
    assert run_command(cfg, "quick", str(tmp_path / name), quiet=True) == "done"
    with open(tmp_path / name / "series.csv") as fh:
        return cfg, [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def test_parabolic_growth_above_the_onset_and_none_below(tmp_path):
    # a surface held at x = 0.2 (U = 4.47 V, above the 4.2 V onset), then at x = 0.9 (3.57 V)
    cfg, rows = _run(tmp_path, "held", ["Hold surface at x = 0.2 for 2 hours",
                                        "Hold surface at x = 0.9 for 1 hour"])
    above = [r for r in rows[1:] if r["protocol_step"] == 1]
    for r in above:
        exact = np.sqrt(2 * K * r["time [s]"])
        assert r["passivation_thickness_mean [m]"] == pytest.approx(exact, rel=1e-2)
        assert r["passivation_thickness_max [m]"] == pytest.approx(exact, rel=1e-12)
    h_end = above[-1]["passivation_thickness_max [m]"]
    assert h_end == pytest.approx(np.sqrt(2 * K * 7200.0), rel=1e-12)  # 12 nm after 2 hours
    below = [r for r in rows if r["protocol_step"] == 2]
    assert all(r["passivation_thickness_max [m]"] == h_end for r in below)
    # book-keeping: the converted volume's sites, c_max int h dA, as capacity
    last = rows[-1]
    c_max = cfg.materials.grain.c_max
    assert last["capacity_lost [mAh]"] == pytest.approx(
        last["active_material_lost [mol]"] * FARADAY / 3.6, rel=1e-12)
    area = last["active_material_lost [mol]"] / (c_max * last["passivation_thickness_mean [m]"])
    assert area == pytest.approx(4 * np.pi * cfg.geometry.radius ** 2, rel=0.03)


def test_a_thick_layer_slows_the_reaction(tmp_path):
    steps = ["Charge at 1C for 5 minutes", "Hold at 4.0 V for 5 minutes"]
    common = ["passivation.onset_voltage=9", "loading.x_initial=0.9"]
    _, bare = _run(tmp_path, "bare", steps, "passivation.initial_thickness=0", *common)
    _, film = _run(tmp_path, "film", steps, "passivation.initial_thickness=1e-8", *common)
    cc = [i for i, r in enumerate(bare) if r["protocol_step"] == 1][-1]
    # the same current through a 10 nm layer of D_L = 7e-17 m^2/s needs a higher potential
    assert film[cc]["voltage [V]"] > bare[cc]["voltage [V]"] + 1e-3
    assert film[cc]["current [A]"] == pytest.approx(bare[cc]["current [A]"], rel=1e-9)
    # ... and at a held potential it carries less current
    assert abs(film[-1]["current [A]"]) < abs(bare[-1]["current [A]"])
    for rows in (bare, film):  # the Li still balances
        passed = sum(r["current [A]"] * r["dt [s]"] for r in rows[1:]) / FARADAY
        assert passed == pytest.approx(rows[0]["total_li [mol]"] - rows[-1]["total_li [mol]"],
                                       rel=1e-8)


def test_growth_counts_the_part_of_a_step_above_the_onset():
    h0, k, dt, onset = np.full(5, 2e-9), 1e-21, 100.0, 4.2
    u_start = np.array([4.3, 4.1, 4.1, 4.3, 4.2])
    u_end = np.array([4.4, 4.0, 4.3, 4.1, 4.2])
    h = parabolic_growth(h0, k, dt, u_start, u_end, onset)
    # above throughout, below throughout, entering half-way, leaving half-way, at the onset
    fraction = np.array([1.0, 0.0, 0.5, 0.5, 1.0])
    assert h == pytest.approx(np.sqrt(h0 ** 2 + 2 * k * dt * fraction), rel=1e-12)


def test_a_discharge_through_a_layer_ends_where_its_face_fills_whatever_the_step(tmp_path):
    # the layer's outer face stops at full: the step must end at its arrival there, not at
    # whichever later step lands first. Ends measured: 850.1 s / 840.6 s at dt_max 300 / 20 s
    # (840.0 s at 5 s; the rest is backward Euler's lag at 121-s steps); with the band around
    # full they were 910.1 / 860.6 s, 5.7 % apart
    common = ["loading.x_initial=0.5", "passivation.initial_thickness=1e-8",
              "passivation.onset_voltage=9"]
    capacity = {}
    for dt_max in (300, 20):
        _, rows = _run(tmp_path, f"dt{dt_max}", ["Discharge at 1C until 3.0 V"],
                       f"time.dt_max={dt_max}", *common)
        assert rows[-1]["voltage [V]"] > 3.0 + 0.1  # it ended at the full face, not at 3.0 V
        capacity[dt_max] = rows[-1]["capacity [mAh]"]
    assert capacity[300] == pytest.approx(capacity[20], rel=0.02)
