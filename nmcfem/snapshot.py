"""Analysis snapshot: the simulated surface state in plain arrays, for ``nmcfem.analysis``.

The solver samples the Li fraction below every outer-surface vertex along the inward radial
direction at the depths of ``output.snapshot_depths`` (the soft X-ray TEY signal integrates
the top few nanometres, so the analysis needs the depth profile, not only the surface value),
records whether each sample lies in the passivation shell, and lists the interface facets
(grain boundaries and the shell/core interface) with centroid, area and damage. The file
format is documented in ``nmcfem/analysis`` (``analysis_snapshot.npz``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from mpi4py import MPI

import dolfinx
from dolfinx import geometry as dgeo

from nmcfem.atomic import atomic_save_npz
from nmcfem.geometry import GB_OFFSET, OUTER_SURFACE, SHELL, SHELL_CORE

# Vertices of the outer surface lie on the boundary of the mesh; sampling exactly there may
# miss every cell by round-off, so the shallowest sample sits this fraction of R inside.
SURFACE_INSET = 1e-9
# A point counts as inside a tetrahedron when no barycentric coordinate is below -this.
INSIDE_TOLERANCE = 1e-9
# Coordinates are matched across ranks after rounding to this many metres.
MATCH_TOLERANCE = 1e-12


def _facet_vertex_coords(mesh: dolfinx.mesh.Mesh, facets: np.ndarray) -> np.ndarray:
    """(k,3,3) coordinates of the three vertices of each local facet."""
    if len(facets) == 0:
        return np.zeros((0, 3, 3))
    dofs = dolfinx.mesh.entities_to_geometry(mesh, mesh.topology.dim - 1, facets)
    return mesh.geometry.x[dofs]


def _owned(mesh: dolfinx.mesh.Mesh, facets: np.ndarray) -> np.ndarray:
    return facets[facets < mesh.topology.index_map(mesh.topology.dim - 1).size_local]


def _gather(comm: MPI.Comm, array: np.ndarray) -> np.ndarray | None:
    parts = comm.gather(np.ascontiguousarray(array), root=0)
    return np.concatenate(parts) if comm.rank == 0 else None


def surface_vertices(domain: Any, comm: MPI.Comm) -> np.ndarray:
    """Coordinates (n,3) in m of all outer-surface vertices, sorted, identical on every rank."""
    mesh = domain.mesh
    facets = domain.facet_tags.find(OUTER_SURFACE)
    pts = _facet_vertex_coords(mesh, facets).reshape(-1, 3)
    allpts = _gather(comm, pts)
    if comm.rank == 0:
        key = np.round(allpts / MATCH_TOLERANCE).astype(np.int64)
        _, first = np.unique(key, axis=0, return_index=True)
        allpts = allpts[np.sort(first)]
        allpts = allpts[np.lexsort(allpts.T[::-1])]
    return comm.bcast(allpts, root=0)


def _barycentric(vertices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (k,4) of points (k,3) in tetrahedra with vertices (k,4,3)."""
    T = (vertices[:, 1:] - vertices[:, :1]).transpose(0, 2, 1)
    lam = np.linalg.solve(T, (points - vertices[:, 0])[..., None])[..., 0]
    return np.concatenate([1.0 - lam.sum(axis=1, keepdims=True), lam], axis=1)


def evaluate_at_points(fun: dolfinx.fem.Function, cell_values: np.ndarray | None,
                       points: np.ndarray, comm: MPI.Comm) -> tuple[np.ndarray, np.ndarray]:
    """Values of P1 ``fun`` and of per-cell ``cell_values`` at ``points`` (same on all ranks).

    Candidate cells come from the bounding-box tree; the containing cell is chosen by
    barycentric coordinates computed here (the library's collision tolerance is absolute, too
    loose for a 10 nm shell in metre coordinates), and the value is the P1 interpolant.

    Parameters
    ----------
    fun: scalar P1 Function.
    cell_values: array indexed by local cell (e.g. cell tag) or None.
    points: (p,3) query points in m, identical on every rank.
    comm: communicator of the mesh.

    Returns the values (NaN where no rank found the point) and the cell values (-1 likewise).
    """
    mesh = fun.function_space.mesh
    tdim = mesh.topology.dim
    ncells = mesh.topology.index_map(tdim).size_local
    tree = dgeo.bb_tree(mesh, tdim, entities=np.arange(ncells, dtype=np.int32))
    candidates = dgeo.compute_collisions_points(tree, points)
    offsets = candidates.offsets
    cells = candidates.array.astype(np.int32)
    owner = np.repeat(np.arange(len(points)), np.diff(offsets))
    values = np.full(len(points), -np.inf)
    not_found = np.iinfo(np.int64).max
    tags = np.full(len(points), not_found, dtype=np.int64)
    if len(cells):
        geo = mesh.geometry.dofmaps[0][cells]
        lam = _barycentric(mesh.geometry.x[geo], points[owner])
        score = lam.min(axis=1)
        # best candidate per point: sort by (point, -score) and take the first of each point
        order = np.lexsort((-score, owner))
        first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
        good = first[score[first] > -INSIDE_TOLERANCE]
        dofs = fun.function_space.dofmap.list[cells[good]]
        values[owner[good]] = np.sum(lam[good] * fun.x.array[dofs], axis=1)
        if cell_values is not None:
            # a point on a face between regions belongs to both: take the smaller tag, a rule
            # that does not depend on the cell numbering or the partition
            inside = score > -INSIDE_TOLERANCE
            np.minimum.at(tags, owner[inside], cell_values[cells[inside]])
    # A point on a partition boundary is found by several ranks with the same value (P1 is
    # continuous); the maximum value and the smallest tag make the result partition-independent.
    comm.Allreduce(MPI.IN_PLACE, values, op=MPI.MAX)
    comm.Allreduce(MPI.IN_PLACE, tags, op=MPI.MIN)
    tags[tags == not_found] = -1
    values[~np.isfinite(values)] = np.nan
    return values, tags


def interface_facets(domain: Any, comm: MPI.Comm) -> dict:
    """Centroids (m), areas (m^2), zero damage and kind (0 GB, 1 shell/core) of the tagged
    interface facets of an uncut mesh (a cut mesh reports its own, with damage).

    Parameters
    ----------
    domain: ParticleDomain.
    comm: communicator.
    """
    mesh = domain.mesh
    vals = domain.facet_tags.values
    sel = (vals >= GB_OFFSET) | (vals == SHELL_CORE)
    facets, tags = domain.facet_tags.indices[sel], vals[sel]
    own = facets < mesh.topology.index_map(mesh.topology.dim - 1).size_local
    facets, tags = facets[own], tags[own]
    xyz = _facet_vertex_coords(mesh, facets)
    centroids = xyz.mean(axis=1) if len(facets) else np.zeros((0, 3))
    areas = 0.5 * np.linalg.norm(np.cross(xyz[:, 1] - xyz[:, 0], xyz[:, 2] - xyz[:, 0]), axis=1) \
        if len(facets) else np.zeros(0)
    dmg = np.zeros(len(facets))
    kind = np.where(tags == SHELL_CORE, 1, 0)
    out = {"facet_centroids": _gather(comm, centroids), "facet_areas": _gather(comm, areas),
           "facet_damage": _gather(comm, dmg.astype(float)), "facet_kind": _gather(comm, kind)}
    if comm.rank == 0:
        order = np.lexsort(out["facet_centroids"].T[::-1])
        out = {k: v[order] for k, v in out.items()}
    return out


def write_analysis_snapshot(path: Any, domain: Any, x_fun: dolfinx.fem.Function, time: float,
                            depths: list[float], meta: dict, comm: MPI.Comm,
                            facets: dict[str, np.ndarray] | None = None,
                            layer: dolfinx.fem.Function | None = None) -> None:
    """Sample the surface state and write ``analysis_snapshot.npz`` (collective; rank 0 writes).

    Parameters
    ----------
    path: destination file.
    domain: ParticleDomain (mesh and tags).
    x_fun: Li fraction x = c/c_max (P1 Function).
    time: simulation time in s.
    depths: sampling depths below the outer surface in m.
    meta: JSON-serialisable description (config summary).
    comm: communicator of the mesh.
    facets: the cohesive interface triangles (``facet_centroids``, ``facet_areas``,
        ``facet_damage``, ``facet_kind``; identical on every rank), or None: then the tagged
        interface facets of an uncut mesh are listed without damage.
    layer: thickness (m, P1 on the outer surface) of the passivation layer grown during
        cycling, or None: sampled at every surface point as ``grown_thickness``.
    """
    surf = surface_vertices(domain, comm)
    radius = domain.radius
    r = np.linalg.norm(surf, axis=1)
    unit = surf / r[:, None]
    depths = np.asarray(depths, dtype=float)
    d_eff = np.maximum(depths, SURFACE_INSET * radius)
    pts = (r[:, None, None] - d_eff[None, :, None]) * unit[:, None, :]
    cell_tags = np.full(domain.mesh.topology.index_map(3).size_local
                        + domain.mesh.topology.index_map(3).num_ghosts, -1, dtype=np.int64)
    cell_tags[domain.cell_tags.indices] = domain.cell_tags.values
    x, tags = evaluate_at_points(x_fun, cell_tags, pts.reshape(-1, 3), comm)
    x = x.reshape(len(surf), len(depths))
    in_shell = (tags == SHELL).reshape(len(surf), len(depths))
    # Thickness of the shell above each surface point: the samples cannot resolve where the
    # shell ends (a sample at the interface belongs to either side), the geometry can.
    shell_depth = np.where(in_shell[:, 0], domain.shell_thickness, 0.0)
    if facets is None:
        facets = interface_facets(domain, comm)
    surface_damage = np.zeros(len(surf))
    grown = np.zeros(len(surf))
    if layer is not None:
        grown, _ = evaluate_at_points(layer, None, (r - SURFACE_INSET * radius)[:, None] * unit,
                                      comm)
        grown = np.nan_to_num(grown)
    if comm.rank == 0:
        atomic_save_npz(path, radius=np.float64(radius), time=np.float64(time),
                        centre=np.zeros(3), surface_points=surf, depths=depths, x_profile=x,
                        in_shell=in_shell, shell_depth=shell_depth,
                        surface_damage=surface_damage, grown_thickness=grown,
                        meta=np.array(json.dumps(meta, default=str)), **facets)
    comm.barrier()
