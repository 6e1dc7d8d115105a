"""Experiments end to end on the quick particle: two cycles of CC-CV-rest-CC, the per-cycle
table and figures, outputs at chosen step ends, and restart equal to the uninterrupted run
inside a hold and at a cycle boundary."""

import csv
import itertools
from pathlib import Path

import pytest

import nmcfem
from nmcfem.config import load_config
from nmcfem.runner import run_command
from tests.conftest import interrupt_then_restart

pytestmark = pytest.mark.slow

STEPS = ["Charge at 3C until 4.3 V", "Hold at 4.3 V until C/5", "Rest for 5 minutes",
         "Discharge at 3C until 3.7 V"]
OVERRIDES = [f"experiment.steps={STEPS!r}", "experiment.cycles=2", "output.checkpoint_every=1",
             "passivation.enabled=true", "passivation.rate_constant=1e-22",
             "output.at_step_ends=[[1, 2], [2, 4]]", "analysis.enabled=false",
             "analysis.figures=true", "output.pictures=false"]
COLUMNS = ("time [s]", "mean_x [-]", "surface_x_min [-]", "total_li [mol]", "voltage [V]",
           "current [A]", "capacity [mAh]", "protocol_step", "cycle",
           "passivation_thickness_mean [m]", "capacity_lost [mAh]")


def _rows(folder, name="series.csv"):
    with open(folder / name) as fh:
        return list(csv.DictReader(fh))


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    repo = REPO
    root = tmp_path_factory.mktemp("experiment")
    overrides = [*OVERRIDES, f"output.mesh_cache={root / 'meshes'}"]
    cfg = load_config(repo / "configs" / "quick.yaml", overrides)
    assert run_command(cfg, "quick", str(root / "full"), quiet=True) == "done"
    return cfg, root, overrides


def test_two_cycles_write_series_cycles_figures_and_step_end_outputs(full):
    cfg, root, _ = full
    rows = _rows(root / "full")
    assert {int(r["cycle"]) for r in rows} == {1, 2}
    runs = [(int(c), int(s)) for (c, s), _ in
            itertools.groupby((r["cycle"], r["protocol_step"]) for r in rows[1:])]
    assert runs == [(c, s) for c in (1, 2) for s in (1, 2, 3, 4)]
    held = [r for r in rows if r["protocol_step"] == "2" and float(r["dt [s]"]) > 0]
    assert all(float(r["voltage [V]"]) == pytest.approx(4.3, abs=1e-12) for r in held)
    charge = [r for r in rows if r["protocol_step"] == "1" and float(r["dt [s]"]) > 0]
    assert max(float(r["voltage [V]"]) for r in charge) <= 4.3 + cfg.experiment.voltage_tolerance
    cycles = _rows(root / "full", "cycles.csv")
    assert [int(c["cycle"]) for c in cycles] == [1, 2]
    for c in cycles:
        assert float(c["charge_capacity [mAh]"]) > 0 and float(c["discharge_capacity [mAh]"]) > 0
        assert float(c["time_at_upper_cutoff [s]"]) > 0
    loaded = nmcfem.load(root / "full")
    assert list(loaded.cycles["cycle"]) == [1, 2]
    assert loaded.cycles.units["discharge_capacity"] == "mAh"
    assert loaded.series.units["voltage"] == "V" and len(loaded.series["current"]) == len(rows)
    for name in ("analysis_snapshot_cycle0001_step02.npz", "analysis_snapshot_cycle0002_step04.npz",
                 "figures/voltage_capacity.png", "figures/hold_current.png"):
        assert (root / "full" / name).is_file(), name


def test_a_chosen_step_end_is_analysed_on_its_own(full, capsys):
    from nmcfem.cli import main

    _, root, _ = full
    out = root / "analysis_cycle1"
    assert main(["analyze", str(root / "full"), "--snapshot",
                 "analysis_snapshot_cycle0001_step02.npz", "--out", str(out),
                 "--set", "analysis.figures=false"]) == 0
    assert (out / "metrics.json").is_file()
    assert main(["analyze", str(root / "full"), "--snapshot", "nope.npz"]) == 2
    assert "analysis_snapshot_cycle0001_step02.npz" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["hold", "cycle boundary"])
def test_restart_equals_the_uninterrupted_run(repo, full, monkeypatch, where):
    cfg, root, overrides = full
    rows = _rows(root / "full")
    if where == "hold":
        step = [int(r["step"]) for r in rows if r["protocol_step"] == "2"][2]
    else:  # the checkpoint of the step that began cycle 2
        step = next(int(r["step"]) for r in rows if r["cycle"] == "2") - 1
    part = root / f"part-{where.replace(' ', '-')}"
    interrupt_then_restart(monkeypatch, cfg, repo / "configs" / "quick.yaml", "quick", part,
                           step, overrides, root / "meshes")
    b = _rows(part)
    assert len(b) == len(rows)
    for ra, rb in zip(rows, b):
        for key in COLUMNS:
            assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-10, abs=1e-20), key
    for x, y in zip(_rows(part, "cycles.csv"), _rows(root / "full", "cycles.csv"), strict=True):
        assert all(float(x[k]) == pytest.approx(float(y[k]), rel=1e-10, abs=1e-20) for k in x)


def test_cracked_area_termination_stops_the_experiment(tmp_path):
    cfg = load_config(REPO / "configs" / "quick_cracks.yaml", [
        "experiment.steps=['Charge at 2C until 4.3 V', 'Hold at 4.3 V until C/20']",
        "experiment.stop_cracked_area=1e-12", "analysis.enabled=false",
        "output.pictures=false", f"output.mesh_cache={tmp_path / 'meshes'}"])
    assert run_command(cfg, "quick_cracks", str(tmp_path / "run"), quiet=True) == "done"
    import json

    summary = json.loads((tmp_path / "run" / "manifest.json").read_text())["summary"]
    assert summary["stop_reason"].startswith("cracked area")
    rows = _rows(tmp_path / "run")
    assert float(rows[-1]["cracked_area_full [m^2]"]) > 1e-12
    assert float(rows[-2]["cracked_area_full [m^2]"]) <= 1e-12


def test_uniform_kinetics_rest_and_a_held_surface(tmp_path):
    """The uniform-flux mode runs experiments too: a constant current to a mean x (reached at
    its exact time), a rest, then a surface held at a Li fraction (potentiostatic step)."""
    steps = ["Charge at 2C until x = 0.8", "Rest for 10 minutes",
             "Hold surface at x = 0.9 for 10 minutes"]
    cfg = load_config(REPO / "configs" / "quick.yaml", [
        f"experiment.steps={steps!r}", "electrochemistry.kinetics=uniform",
        "analysis.enabled=false", "output.pictures=false",
        f"output.mesh_cache={tmp_path / 'meshes'}"])
    assert run_command(cfg, "quick", str(tmp_path / "run"), quiet=True) == "done"
    rows = [{k: float(v) for k, v in r.items()} for r in _rows(tmp_path / "run")]
    ends = {s: [r for r in rows if r["protocol_step"] == s][-1] for s in (1, 2, 3)}
    assert ends[1]["mean_x [-]"] == pytest.approx(0.8, abs=1e-9)
    assert ends[1]["time [s]"] == pytest.approx(0.2 * 1800.0, rel=1e-9)
    assert 3.5 < ends[1]["voltage [V]"] < 4.3
    rest = [r for r in rows if r["protocol_step"] == 2]
    assert all(abs(r["current [A]"]) < 1e-12 * abs(rows[1]["current [A]"]) + 1e-25 for r in rest)
    assert ends[2]["mean_x [-]"] == pytest.approx(0.8, abs=1e-9)  # a rest keeps the Li
    assert ends[3]["surface_x_min [-]"] == pytest.approx(0.9, abs=1e-12)
    assert ends[3]["surface_x_max [-]"] == pytest.approx(0.9, abs=1e-12)
    assert ends[3]["current [A]"] < 0  # the held surface lithiates the particle
    passed = sum(r["current [A]"] * r["dt [s]"] for r in rows[1:]) / 96485.33212
    assert passed == pytest.approx(rows[0]["total_li [mol]"] - rows[-1]["total_li [mol]"],
                                   rel=1e-8)
