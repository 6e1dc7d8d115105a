"""Cohesive cracking in the particle: the quick cracking case end to end, its energy balance,
independence of the penalty stiffness, the intact limit, and the two-way transport coupling."""

import csv
import json

import numpy as np
import pytest
from mpi4py import MPI

from nmcfem.cli import main
from nmcfem.config import load_config
from nmcfem.geometry import SHELL
from nmcfem.orientations import grain_rotations
from nmcfem.problem import ChemoMechanicsProblem
from nmcfem.runner import load_domain, run_command
from tests.conftest import REPO, interrupt_after_step


def _config(repo, cache, *extra, name="quick_cracks.yaml"):
    return load_config(repo / "configs" / name, [f"output.mesh_cache={cache}", *extra])


def _series(folder):
    with open(folder / "series.csv") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("meshes")


@pytest.fixture(scope="module")
def cracked_run(repo_root, cache, tmp_path_factory):
    """The quick cracking case, run once for several tests."""
    folder = tmp_path_factory.mktemp("cracks") / "run"
    assert run_command(_config(repo_root, cache), "quick_cracks", str(folder)) == "done"
    return folder


@pytest.fixture(scope="module")
def repo_root():
    return REPO


def test_quick_cracking_run_cracks_and_reports(cracked_run):
    rows = _series(cracked_run)
    last = rows[-1]
    print(f"quick cracking case: fully cracked {last['cracked_area_full [m^2]'] * 1e12:.2f} um^2, "
          f"partial {last['cracked_area_partial [m^2]'] * 1e12:.2f} um^2, dissipated "
          f"{last['dissipated_energy [J]']:.4g} J, {int(last['n_cracked_grain_boundaries'])} "
          f"cracked grain boundaries, max opening {last['max_opening [m]'] * 1e9:.2f} nm; fully "
          f"cracked on grain boundaries {last['cracked_area_grain_boundary [m^2]'] * 1e12:.2f} "
          f"um^2, on the shell/core interface "
          f"{last['cracked_area_shell_interface [m^2]'] * 1e12:.2f} um^2")
    assert last["cracked_area_full [m^2]"] > 0
    assert last["cracked_area_full [m^2]"] == pytest.approx(
        last["cracked_area_grain_boundary [m^2]"] + last["cracked_area_shell_interface [m^2]"],
        rel=1e-12, abs=0)
    first = next(r for r in rows if r["cracked_area_partial [m^2]"] + r["cracked_area_full [m^2]"]
                 > 0)
    assert 0 < first["time [s]"] < last["time [s]"]  # cracks initiate during the charge
    # cracks grow monotonically (damage is irreversible)
    full = [r["cracked_area_full [m^2]"] for r in rows]
    assert all(b >= a for a, b in zip(full, full[1:]))
    assert max(r["newton_its"] for r in rows) >= 2
    # outputs: interface meshes for ParaView, per-facet damage in the analysis snapshot
    fields = cracked_run / "fields"
    assert (fields / "interfaces.pvd").is_file()
    vtus = sorted(fields.glob("interfaces_*.vtu"))
    assert len(vtus) >= 2 and vtus[-1].name in (fields / "interfaces.pvd").read_text()
    import meshio

    interface = meshio.read(vtus[-1])
    assert interface.cell_data["damage"][0].max() > 0.99
    snap = np.load(cracked_run / "analysis_snapshot.npz")
    assert snap["facet_damage"].max() > 0.99
    assert np.sum(snap["facet_areas"][snap["facet_kind"] == 0]) > 0
    manifest = json.loads((cracked_run / "manifest.json").read_text())
    assert manifest["status"] == "done"


def test_particle_energy_balance(repo_root, cache, cracked_run, tmp_path):
    """Work done on the interfaces less what they store = G_c x fully cracked area plus the
    dissipation of the partly damaged points (closed form), to 2 %, for a nearly
    rate-independent law (viscosity 0.01 s; without any, Newton cannot follow a snap-through in
    this case); the default 0.1 s dissipates a little more (printed)."""
    folder = tmp_path / "rate_independent"
    run_command(_config(repo_root, cache, "cohesive.viscosity=0.01", "analysis.enabled=false"),
                "quick_cracks", str(folder))
    for name, last in (("viscosity 0.01 s", _series(folder)[-1]),
                       ("default viscosity", _series(cracked_run)[-1])):
        from_work = last["dissipated_energy [J]"]
        budget = last["toughness_times_cracked_area [J]"] + last["dissipated_energy_partial [J]"]
        print(f"energy balance, {name}: from work {from_work:.5g} J, G_c A_full + partial "
              f"{budget:.5g} J ({from_work / budget - 1:+.2%})")
    assert last["cracked_area_full [m^2]"] > 0
    last = _series(folder)[-1]
    from_work = last["dissipated_energy [J]"]
    budget = last["toughness_times_cracked_area [J]"] + last["dissipated_energy_partial [J]"]
    assert budget > 0 and last["cracked_area_full [m^2]"] > 0
    assert from_work == pytest.approx(budget, rel=0.02, abs=0)


def test_initial_stiffness_does_not_change_the_cracked_area(repo_root, cache, cracked_run,
                                                             tmp_path):
    base = _series(cracked_run)[-1]
    folder = tmp_path / "stiff"
    run_command(_config(repo_root, cache, "cohesive.initial_stiffness_factor=500",
                        "analysis.enabled=false"), "quick_cracks", str(folder))
    stiff = _series(folder)[-1]
    a, b = base["cracked_area_full [m^2]"], stiff["cracked_area_full [m^2]"]
    ea, eb = base["dissipated_energy [J]"], stiff["dissipated_energy [J]"]
    print(f"K0 x10: fully cracked area {a:.4g} -> {b:.4g} m^2 ({b / a - 1:+.2%}), dissipated "
          f"{ea:.4g} -> {eb:.4g} J ({eb / ea - 1:+.2%})")
    assert b == pytest.approx(a, rel=0.05, abs=0)


def test_intact_interfaces_reproduce_the_bonded_particle(repo_root, cache, tmp_path):
    """Interfaces that never crack (huge strength) must give the uncut particle's results:
    continuous transport through the conductance penalty, stiffness through K0."""
    # strength x 500 and toughness x 500^2 keep K0 = factor t_n^2 / (2 G_c) as it is
    strong = ["cohesive.grain_boundary.strength=1.0e11", "cohesive.shell_interface.strength=1.0e11",
              "cohesive.grain_boundary.toughness=2.5e5", "cohesive.shell_interface.toughness=2.5e5",
              "analysis.enabled=false", "loading.x_end=0.97"]
    run_command(_config(repo_root, cache, *strong), "q", str(tmp_path / "cut"))
    run_command(_config(repo_root, cache, *strong, "cohesive.enabled=false"), "q",
                str(tmp_path / "bonded"))
    cut, bonded = _series(tmp_path / "cut")[-1], _series(tmp_path / "bonded")[-1]
    for key, rel in (("mean_x [-]", 1e-9), ("surface_x_mean [-]", 1e-3),
                     ("under_shell_x_mean [-]", 2e-3), ("max_principal_stress_grains [Pa]", 0.05),
                     ("von_mises_max [Pa]", 0.05)):
        print(f"{key}: cut {cut[key]:.6g}, bonded {bonded[key]:.6g}")
        assert cut[key] == pytest.approx(bonded[key], rel=rel), key
    assert cut["cracked_area_partial [m^2]"] == 0


def _problem(repo_root, cache, *extra):
    cfg = _config(repo_root, cache, *extra)
    domain = load_domain(cfg, MPI.COMM_WORLD, lambda _m: None)
    return ChemoMechanicsProblem(domain, cfg, grain_rotations(cfg.geometry,
                                                              domain.grain_centroids))


def test_cracked_shell_interface_stops_li_transport_into_the_core(repo_root, cache):
    p = _problem(repo_root, cache, "cohesive.grain_boundary.enabled=false")
    itf = p.cracks.interfaces
    assert np.all(p.cracks.family == 1)
    itf.history.damage[:] = 1.0  # the whole shell/core interface fully cracked
    p.cracks.transport.changed = True
    for _ in range(5):
        p.step(10.0, mechanics=False)
        p.accept()
    n = p.transport.V.dofmap.index_map.size_local
    dofs = p.transport.V.dofmap.list
    core = np.unique(dofs[p.materials.cell_region[:len(dofs)] != SHELL])
    core = core[core < n]
    # the core keeps all its Li; the shell alone delivers the current
    assert np.all(np.abs(p.x.x.array[core] - 1.0) < 1e-9)
    assert p.transport.surface_range()[0] < 0.9
    p.destroy()


def test_open_cracks_react_and_share_the_current(repo_root, cache):
    p = _problem(repo_root, cache, "geometry.shell_thickness=0", "cohesive.open_crack_reacts=true")
    itf = p.cracks.interfaces
    itf.history.kappa[:] = 10 * max(law.final_opening for law in itf.laws)  # all broken
    itf.history.damage[:] = 1.0
    p.cracks.restore(itf.history.state())
    p.transport.share_current(p.cracks.transport.exposed_area)
    gb_area = float(np.sum(p.cracks.cut.area))
    assert p.cracks.transport.exposed_area == pytest.approx(2 * gb_area, rel=1e-12)
    li0 = p.transport.total_li()
    dt = 20.0
    p.step(dt, mechanics=False)
    p.accept()
    # the total current is still the C-rate's: outer surface and crack faces share it
    current = p.transport.flux_value * p.transport.outer_area
    assert (li0 - p.transport.total_li()) / dt == pytest.approx(current, rel=1e-8)
    assert p.transport.crack_flux == pytest.approx(current / (p.transport.outer_area + 2 * gb_area), rel=1e-12)
    # Li leaves through the crack faces: the interface vertices empty faster than the mean
    x = p.x.x.array
    on_cracks = np.unique(np.concatenate([p.cracks.transport.pc, p.cracks.transport.mc]))
    lo = p.transport.V.dofmap.index_map.local_range[0]
    local = on_cracks[(on_cracks >= lo) & (on_cracks < lo + p.transport.V.dofmap.index_map.size_local)] - lo
    assert np.mean(x[local]) < p.mean_x()
    p.destroy()


def test_restart_of_a_cracking_run_equals_the_uninterrupted_run(repo_root, cache, tmp_path,
                                                                 monkeypatch):
    # tight solves: the step-size decisions (damage cap, events) must not hinge on the
    # solver noise of a fresh process (AMG's Chebyshev estimates use random vectors)
    extra = ["output.checkpoint_every=5", "analysis.enabled=false",
             "solver.nonlinear.snes_rtol=1.0e-9", "solver.nonlinear.ksp_rtol=1.0e-11",
             "solver.nonlinear.snes_max_it=40"]
    cfg = _config(repo_root, cache, *extra)
    full = tmp_path / "full"
    run_command(cfg, "quick_cracks", str(full))
    undo = interrupt_after_step(monkeypatch, 21)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        run_command(cfg, "quick_cracks", str(part))
    undo()
    assert main(["run", str(repo_root / "configs" / "quick_cracks.yaml"), "--restart", str(part),
                 "--set", f"output.mesh_cache={cache}",
                 *[a for o in extra for a in ("--set", o)]]) == 0
    a, b = _series(full), _series(part)
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for key in ("time [s]", "cracked_area_full [m^2]", "dissipated_energy [J]",
                    "max_opening [m]"):
            # round-off-sized values early on compare against the run's final magnitude
            scale = max(abs(r[key]) for r in a)
            assert rb[key] == pytest.approx(ra[key], rel=1e-8, abs=1e-8 * scale), key
