"""Cohesive cracking of a particle: interface laws per family, the two-way coupling with Li
transport, crack statistics and the interface output for ParaView.

The particle mesh is cut open along the active interface families (grain boundaries and/or the
shell/core interface, :func:`nmcfem.interfaces.cut_particle`); the pairs of facing triangles
carry

- the traction-separation law of their family (mechanics, :mod:`nmcfem.cohesive_solver`);
- a Li conductance g (1 - d) per unit area (transport): intact interfaces are continuous up to
  a penalty g = ``cohesive.intact_conductance_factor`` * D_ab / h (h the interface element
  size), fully cracked ones (d = 1) block the flux when ``cohesive.crack_blocks_flux``;
- optionally (``cohesive.open_crack_reacts``) the electrode reaction: fully cracked triangles
  connected through cracked triangles to the outer surface take the surface's current density
  on both faces, and the total current is shared by the outer surface and these faces.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from nmcfem.cohesive_solver import CohesiveEquilibrium, CohesiveInterfaces, _add_pattern
from nmcfem.config import Config
from nmcfem.geometry import GB_OFFSET, SHELL_CORE
from nmcfem.outputs import atomic_write_text
from nmcfem.physics.cohesive import CohesiveLaw

#: index of each interface family in the list of laws
GRAIN_BOUNDARY, SHELL_INTERFACE = 0, 1


class ParticleCracks:
    """Cohesive interfaces of a cut particle and their coupling to transport.

    Parameters
    ----------
    W, V: P1 displacement (m) and concentration (mol/m^3) spaces on the cut mesh.
    domain: ParticleDomain with ``interfaces`` (the pairs) and ``n_input_vertices``.
    cfg: configuration (``cohesive`` section, grain diffusivity, interface mesh size).
    """

    def __init__(self, W, V, domain: Any, cfg: Config):
        im = domain.interfaces
        coh = cfg.cohesive
        self.cfg = cfg
        self.mesh = im
        self.family = np.where(im.facet_tag == SHELL_CORE, SHELL_INTERFACE, GRAIN_BOUNDARY)
        laws = [CohesiveLaw.from_config(coh, coh.grain_boundary),
                CohesiveLaw.from_config(coh, coh.shell_interface)]
        self.interfaces = CohesiveInterfaces(W, im.plus, im.minus, im.normal, im.area, laws,
                                             domain.n_input_vertices, law_index=self.family, V=V)
        # m/s: intact interfaces pass Li with a jump of ~1/factor of the element's difference
        self.conductance = (coh.intact_conductance_factor * cfg.materials.grain.D_ab
                            / cfg.geometry.mesh.boundary_size)
        self.gb_id = np.where(self.family == GRAIN_BOUNDARY, im.facet_tag - GB_OFFSET, -1)
        self.exposed = np.zeros(0, dtype=np.int64)  # points whose faces react
        self.exposed_area = 0.0  # m^2, both faces
        self.transport_changed = True
        self._M = None

    # --- mechanics -------------------------------------------------------------------------

    def equilibrium(self, K, nullspace) -> CohesiveEquilibrium:
        """Newton solver of the particle's equilibrium with these interfaces."""
        solver = self.cfg.solver
        return CohesiveEquilibrium(K, self.interfaces, dict(solver.nonlinear),
                                   nullspace=nullspace,
                                   direct_options=dict(solver.nonlinear_direct))

    # --- transport -------------------------------------------------------------------------

    def transport_operator(self, A_c, bc_dofs: np.ndarray):
        """Bulk transport operator A_c plus the interface conductances (rows/columns of the
        Dirichlet DOFs ``bc_dofs``, global and sorted, left to A_c)."""
        G = self.interfaces.conductance_matrix(self.conductance, self.cfg.cohesive.crack_blocks_flux,
                                               bc_dofs)
        if self._M is None:
            self._M = _add_pattern(A_c, G)
        from petsc4py import PETSc

        subset = PETSc.Mat.Structure.SUBSET_NONZERO_PATTERN
        A_c.copy(self._M, structure=subset)
        self._M.axpy(1.0, G, structure=subset)
        self.transport_changed = False
        return self._M

    def add_transport_rhs(self, b, bc_dofs: np.ndarray, bc_value: float, flux: float) -> None:
        """Add the interface terms of the transport right-hand side b (then assemble b).

        Parameters
        ----------
        b: right-hand side vector (mol/s per test function).
        bc_dofs: sorted global Dirichlet DOFs; bc_value: their concentration (mol/m^3).
        flux: outward current density of reacting crack faces (mol/m^2/s).
        """
        self.interfaces.conductance_lifting(b, self.conductance,
                                            self.cfg.cohesive.crack_blocks_flux, bc_dofs,
                                            bc_value)
        if len(self.exposed) and flux != 0.0:
            self.interfaces.add_face_flux(b, flux, self.exposed)
        b.assemble()

    def _update_exposed(self) -> None:
        """Fully cracked triangles connected through cracked triangles to the outer surface."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        im = self.mesh
        cracked = np.flatnonzero(self.interfaces.fully_cracked().reshape(-1, 3).all(axis=1))
        if not len(cracked) or im.touches_surface is None:
            self.exposed, self.exposed_area = np.zeros(0, dtype=np.int64), 0.0
            return
        # triangles sharing an (original) vertex are connected
        verts = im.original_vertex[im.plus[cracked]]
        tri = np.repeat(np.arange(len(cracked)), 3)
        graph = coo_matrix((np.ones(len(tri)), (tri, verts.reshape(-1))),
                           shape=(len(cracked), len(im.original_vertex)))
        adjacency = (graph @ graph.T).tocsr()
        _, label = connected_components(adjacency, directed=False)
        open_labels = np.unique(label[im.touches_surface[cracked]])
        tris = cracked[np.isin(label, open_labels)]
        self.exposed = (3 * tris[:, None] + np.arange(3)).reshape(-1)
        self.exposed_area = float(2.0 * im.area[tris].sum())

    # --- history ---------------------------------------------------------------------------

    def accept(self) -> bool:
        """Commit the converged step's history; return whether any damage grew."""
        grew = self.interfaces.accept_step()
        if grew:
            self.transport_changed = True
            if self.cfg.cohesive.open_crack_reacts:
                self._update_exposed()
        return grew

    def reject(self) -> None:
        """Forget the trial history of a step that is redone."""
        self.interfaces.reject_step()

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Adopt a checkpointed history."""
        self.interfaces.restore(arrays)
        self.transport_changed = True
        if self.cfg.cohesive.open_crack_reacts:
            self._update_exposed()

    # --- results ---------------------------------------------------------------------------

    def diagnostics(self) -> dict[str, float]:
        """Crack statistics with units in the keys (same on every rank)."""
        itf = self.interfaces
        out = itf.diagnostics()
        full = itf.fully_cracked()
        gb = np.repeat(self.family == GRAIN_BOUNDARY, 3)
        gb_of_point = np.repeat(self.gb_id, 3)
        out["n_cracked_grain_boundaries"] = int(len(np.unique(gb_of_point[gb & full])))
        for name, fam in (("grain_boundary", GRAIN_BOUNDARY), ("shell_interface",
                                                               SHELL_INTERFACE)):
            sel = np.repeat(self.family == fam, 3) & full
            out[f"cracked_area_{name} [m^2]"] = float(itf.weight[sel].sum())
        tn = itf.traction[gb, 0]
        out["max_gb_normal_traction [Pa]"] = float(np.max(tn, initial=0.0))
        out["min_gb_normal_traction [Pa]"] = float(np.min(tn, initial=0.0))
        out["reacting_crack_area [m^2]"] = self.exposed_area
        return out

    def facet_snapshot(self) -> dict[str, np.ndarray]:
        """Interface triangles for the analysis snapshot: centroids (m), areas (m^2), mean
        damage, kind (0 grain boundary, 1 shell/core), sorted by centroid."""
        im = self.mesh
        centroids = im.points[im.plus].mean(axis=1)
        out = {"facet_centroids": centroids, "facet_areas": im.area,
               "facet_damage": self.interfaces.triangle_damage(),
               "facet_kind": self.family.astype(np.int64)}
        order = np.lexsort(centroids.T[::-1])
        return {k: v[order] for k, v in out.items()}

    def write_vtu(self, folder: Path, t: float, step: int) -> None:
        """Interface triangles with damage, openings and tractions as ``interfaces_NNNNN.vtu``
        plus the ParaView collection ``interfaces.pvd`` (call on one rank; atomic files)."""
        import meshio

        im, itf = self.mesh, self.interfaces
        k = len(im.plus)
        points = im.points[im.plus].reshape(-1, 3)
        cells = [("triangle", np.arange(3 * k).reshape(-1, 3))]
        delta = itf.delta.reshape(k, 3, 3).mean(axis=1)
        trac = itf.traction.reshape(k, 3, 3).mean(axis=1)
        data = {"damage": itf.triangle_damage(),
                "normal_opening [m]": delta[:, 0],
                "shear_opening [m]": np.linalg.norm(delta[:, 1:], axis=1),
                "normal_traction [Pa]": trac[:, 0],
                "shear_traction [Pa]": np.linalg.norm(trac[:, 1:], axis=1),
                "dissipated_energy [J/m^2]": itf.point_dissipation().reshape(k, 3).mean(axis=1),
                "family": self.family.astype(float), "grain_boundary": self.gb_id.astype(float)}
        folder.mkdir(parents=True, exist_ok=True)
        name = f"interfaces_{step:06d}.vtu"
        mesh = meshio.Mesh(points, cells, cell_data={key: [v] for key, v in data.items()})
        _atomic(folder / name, lambda p: meshio.write(p, mesh, file_format="vtu"))
        index = folder / "interfaces.pvd"
        entries = _pvd_entries(index)
        entries = [(tt, f) for tt, f in entries if f != name] + [(t, name)]
        body = "\n".join(f'    <DataSet timestep="{tt:.9g}" file="{f}"/>' for tt, f in entries)
        text = ('<?xml version="1.0"?>\n<VTKFile type="Collection" version="0.1">\n'
                f"  <Collection>\n{body}\n  </Collection>\n</VTKFile>\n")
        atomic_write_text(index, text)

    def destroy(self) -> None:
        """Free PETSc objects."""
        self.interfaces.destroy()
        if self._M is not None:
            self._M.destroy()


def _pvd_entries(path: Path) -> list[tuple[float, str]]:
    """(time, file) entries of an existing ParaView collection file."""
    if not path.is_file():
        return []
    import re

    return [(float(t), f) for t, f in
            re.findall(r'timestep="([^"]+)" file="([^"]+)"', path.read_text())]


def _atomic(path: Path, write) -> None:
    """Write ``path`` through ``write(tmp_path)`` (a library writing to a path, e.g. meshio) and
    rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
