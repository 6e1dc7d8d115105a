"""What the interfaces of a cracking particle report: crack statistics per family for the time
series, interface triangles for the analysis snapshot, and VTU files for ParaView."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nmcfem.atomic import atomic_write, atomic_write_text
from nmcfem.cohesive.cutting import InterfaceMesh
from nmcfem.cohesive.interfaces import CohesiveInterfaces, statistics
from nmcfem.results import pvd_entries

#: index of each interface family in the list of laws
GRAIN_BOUNDARY, SHELL_INTERFACE = 0, 1
FAMILIES = (("grain_boundary", GRAIN_BOUNDARY), ("shell_interface", SHELL_INTERFACE))


def crack_statistics(interfaces: CohesiveInterfaces, family: np.ndarray, gb_id: np.ndarray
                     ) -> dict[str, Any]:
    """Series quantities of the committed state, with units in the keys (same on every rank).

    Parameters
    ----------
    interfaces: the cohesive elements.
    family: (k,) family of every interface triangle (GRAIN_BOUNDARY or SHELL_INTERFACE).
    gb_id: (k,) grain boundary index of every triangle (-1 on the shell/core interface).
    """
    out = statistics(interfaces)
    full = interfaces.fully_cracked()
    gb = np.repeat(family == GRAIN_BOUNDARY, 3)
    out["n_cracked_grain_boundaries"] = int(len(np.unique(np.repeat(gb_id, 3)[gb & full])))
    for name, fam in FAMILIES:
        sel = np.repeat(family == fam, 3) & full
        out[f"cracked_area_{name} [m^2]"] = float(interfaces.weight[sel].sum())
    return out


def gb_normal_tractions(interfaces: CohesiveInterfaces, family: np.ndarray) -> np.ndarray:
    """(p,) committed normal tractions (Pa) at the grain-boundary points."""
    return interfaces.history.traction[np.repeat(family == GRAIN_BOUNDARY, 3), 0]


def facet_snapshot(cut: InterfaceMesh, interfaces: CohesiveInterfaces, family: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """Interface triangles for the analysis snapshot: centroids (m), areas (m^2), mean
    damage, kind (0 grain boundary, 1 shell/core), sorted by centroid."""
    centroids = cut.points[cut.plus].mean(axis=1)
    out = {"facet_centroids": centroids, "facet_areas": cut.area,
           "facet_damage": interfaces.triangle_damage(),
           "facet_kind": family.astype(np.int64)}
    order = np.lexsort(centroids.T[::-1])
    return {k: v[order] for k, v in out.items()}


def write_vtu(folder: Path, t: float, step: int, cut: InterfaceMesh,
              interfaces: CohesiveInterfaces, family: np.ndarray, gb_id: np.ndarray) -> None:
    """Interface triangles with damage, openings and tractions as ``interfaces_NNNNNN.vtu`` plus
    the ParaView collection ``interfaces.pvd`` (call on one rank; atomic files).

    Parameters
    ----------
    folder: the run's fields folder; t: time (s); step: step number (names the file).
    cut, interfaces: the pairs of triangles and their cohesive elements.
    family, gb_id: (k,) family and grain boundary index of every triangle.
    """
    import meshio

    h = interfaces.history
    k = len(cut.plus)
    points = cut.points[cut.plus].reshape(-1, 3)
    cells = [("triangle", np.arange(3 * k).reshape(-1, 3))]
    delta = h.delta.reshape(k, 3, 3).mean(axis=1)
    trac = h.traction.reshape(k, 3, 3).mean(axis=1)
    data = {"damage": interfaces.triangle_damage(),
            "normal_opening [m]": delta[:, 0],
            "shear_opening [m]": np.linalg.norm(delta[:, 1:], axis=1),
            "normal_traction [Pa]": trac[:, 0],
            "shear_traction [Pa]": np.linalg.norm(trac[:, 1:], axis=1),
            "dissipated_energy [J/m^2]": interfaces.point_dissipation().reshape(k, 3).mean(axis=1),
            "family": family.astype(float), "grain_boundary": gb_id.astype(float)}
    name = f"interfaces_{step:06d}.vtu"
    mesh = meshio.Mesh(points, cells, cell_data={key: [v] for key, v in data.items()})
    atomic_write(folder / name, lambda p: meshio.write(p, mesh, file_format="vtu"))
    index = folder / "interfaces.pvd"
    entries = [(tt, f) for tt, f in pvd_entries(index) if f != name] + [(t, name)]
    body = "\n".join(f'    <DataSet timestep="{tt:.17g}" file="{f}"/>' for tt, f in entries)
    text = ('<?xml version="1.0"?>\n<VTKFile type="Collection" version="0.1">\n'
            f"  <Collection>\n{body}\n  </Collection>\n</VTKFile>\n")
    atomic_write_text(index, text)
