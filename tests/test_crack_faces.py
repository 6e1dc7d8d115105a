"""Crack faces wetted by the electrolyte: a layer grows only on cracks connected to the outside,
never on closed or isolated ones, and not below the onset; its converted material is booked;
under Butler-Volmer kinetics the wetted faces react and the Li still balances."""

import csv

import numpy as np
import pytest
from mpi4py import MPI

from nmcfem.config import load_config
from nmcfem.orientations import grain_rotations
from nmcfem.physics.electrochemistry import FARADAY
from nmcfem.problem import ChemoMechanicsProblem
from nmcfem.runner import load_domain, run_command
from tests.conftest import REPO

pytestmark = pytest.mark.slow
K = 1e-21  # m^2/s


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("meshes")


def _problem(cache, *extra):
    cfg = load_config(REPO / "configs" / "quick_cracks.yaml", [
        f"output.mesh_cache={cache}", "passivation.enabled=true",
        f"passivation.rate_constant={K}", *extra])
    domain = load_domain(cfg, MPI.COMM_WORLD, lambda _m: None)
    return ChemoMechanicsProblem(domain, cfg, grain_rotations(cfg.geometry,
                                                              domain.grain_centroids))


def _plant(problem, full, partial):
    """Crack the interface triangles ``full`` through and damage ``partial`` half-way."""
    itf = problem.cracks.interfaces
    h = itf.history
    final = max(law.final_opening for law in itf.laws)
    for tris, kappa, damage in ((full, 10 * final, 1.0), (partial, 0.3 * final, 0.5)):
        points = (3 * np.asarray(tris)[:, None] + np.arange(3)).reshape(-1)
        h.kappa[points], h.damage[points] = kappa, damage
    problem.cracks.restore(problem.cracks.state())


def _set_x(problem, x):
    tr = problem.transport
    tr.c.x.array[:] = x * tr.c_max
    tr.update_x()
    tr.accept()


def _triangle_sets(cut):
    """An open crack (one whole grain boundary that reaches the outer surface), an isolated one
    (a triangle inside, sharing no vertex with it or the surface) and a closed one (a partly
    damaged triangle at the surface of another grain boundary)."""
    tags = cut.facet_tag
    reaching = [t for t in np.unique(tags) if np.any(cut.touches_surface[tags == t])]
    open_tris = np.flatnonzero(tags == reaching[0])
    used = set(cut.original_vertex[cut.plus[open_tris]].ravel())
    inside = [k for k in np.flatnonzero((tags != reaching[0]) & ~cut.touches_surface)
              if not used & set(cut.original_vertex[cut.plus[k]])]
    closed = [k for k in np.flatnonzero((tags == reaching[1]) & cut.touches_surface)
              if not used & set(cut.original_vertex[cut.plus[k]])]
    return open_tris, np.array(inside[:1]), np.array(closed[:1])


def test_layer_grows_only_on_cracks_open_to_the_electrolyte(cache):
    # no meshed shell: a crack is open where it reaches the outer surface
    p = _problem(cache, "geometry.shell_thickness=0", "cohesive.shell_interface.enabled=false")
    cut, faces = p.cracks.cut, p.cracks.transport.faces
    open_tris, isolated, closed = _triangle_sets(cut)
    assert len(isolated) and len(closed)
    _plant(p, np.concatenate([open_tris, isolated]), closed)
    wet = faces.wetted().reshape(-1, 3)
    assert wet[open_tris].all()
    assert not wet[isolated].any() and not wet[closed].any()
    assert p.cracks.transport.exposed_area == pytest.approx(2 * cut.area[open_tris].sum(),
                                                            rel=1e-12)

    _set_x(p, 0.2)  # U(0.2) = 4.47 V: above the 4.2 V onset
    p.passivation.grow(3600.0)
    h = faces.thickness.reshape(-1, 3, 2)
    exact = np.sqrt(2 * K * 3600.0)
    assert np.allclose(h[open_tris], exact, rtol=1e-12)
    assert np.all(h[isolated] == 0) and np.all(h[closed] == 0)
    others = np.setdiff1d(np.arange(len(cut.area)), open_tris)
    assert np.all(h[others] == 0)

    _set_x(p, 0.9)  # U(0.9) = 3.57 V: below the onset, no growth
    p.passivation.grow(3600.0)
    assert np.allclose(faces.thickness.reshape(-1, 3, 2)[open_tris], exact, rtol=1e-12)

    # book-keeping: the sites of the converted volume, outer surface plus both crack faces
    row = p.passivation.row()
    outer = row["passivation_thickness_mean [m]"] * p.transport.outer_area
    faces_volume = exact * 2 * cut.area[open_tris].sum()
    assert row["active_material_lost [mol]"] == pytest.approx(
        p.transport.c_max * (outer + faces_volume), rel=1e-6)
    assert row["crack_layer_thickness_mean [m]"] == pytest.approx(exact, rel=1e-12)
    assert row["wetted_crack_area [m^2]"] == pytest.approx(2 * cut.area[open_tris].sum(),
                                                           rel=1e-12)
    # the layer survives a checkpoint
    saved = {k: v.copy() for k, v in p.cracks.state().items()}
    faces.thickness[:] = 0.0
    p.cracks.restore(saved)
    assert np.allclose(faces.thickness.reshape(-1, 3, 2)[open_tris], exact, rtol=1e-12)
    p.destroy()


def test_a_crack_under_the_shell_is_open_where_the_shell_breaks(cache):
    p = _problem(cache, "cohesive.shell_interface.enabled=false")
    cut = p.cracks.cut
    assert not cut.touches_surface.any() and cut.touches_shell.any()
    tags = cut.facet_tag
    gb = tags[np.flatnonzero(cut.touches_shell)[0]]
    tris = np.flatnonzero(tags == gb)
    _plant(p, tris, np.zeros(0, dtype=int))
    assert p.cracks.transport.faces.wetted().reshape(-1, 3)[tris].all()
    p.destroy()
    p = _problem(cache, "cohesive.shell_interface.enabled=false",
                 "cohesive.cracks_break_shell=false")
    _plant(p, tris, np.zeros(0, dtype=int))
    assert not p.cracks.transport.faces.wetted().any()
    p.destroy()


def test_wetted_faces_react_under_butler_volmer_and_the_li_balances(cache, tmp_path):
    cfg = load_config(REPO / "configs" / "quick_cracks.yaml", [
        f"output.mesh_cache={cache}", "cohesive.open_crack_reacts=true",
        "experiment.steps=['Charge at 2C until 4.3 V', 'Hold at 4.3 V for 10 minutes']",
        "passivation.enabled=true", "passivation.rate_constant=1e-20",
        "analysis.enabled=false", "output.pictures=false"])
    assert run_command(cfg, "faces", str(tmp_path / "run"), quiet=True) == "done"
    with open(tmp_path / "run" / "series.csv") as fh:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]
    last = rows[-1]
    assert last["reacting_crack_area [m^2]"] > 0
    assert last["wetted_crack_area [m^2]"] == last["reacting_crack_area [m^2]"]
    assert last["crack_layer_thickness_max [m]"] > 0
    # the constant current is the applied one, shared by the outer surface and the faces
    cc = [r for r in rows[1:] if r["protocol_step"] == 1]
    assert all(r["current [A]"] == pytest.approx(cc[0]["current [A]"], rel=1e-8) for r in cc)
    passed = sum(r["current [A]"] * r["dt [s]"] for r in rows[1:]) / FARADAY
    assert passed == pytest.approx(rows[0]["total_li [mol]"] - last["total_li [mol]"], rel=1e-8)
