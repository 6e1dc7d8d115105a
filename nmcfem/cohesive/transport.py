"""Li transport across cohesive interfaces: a conductance that damage throttles, and crack faces
open to the electrolyte that react like the outer surface.

The same pairs of facing vertices that carry the traction-separation law carry a conductance
g (1 - d) per unit area between the two faces of every interface point (nodal quadrature, the
committed damage d). Intact interfaces are continuous up to the penalty g; fully cracked ones
block the flux when ``crack_blocks_flux``. With ``open_crack_reacts``, fully cracked triangles
connected through fully cracked triangles to the outer surface take the surface's current
density on both faces.
"""

from __future__ import annotations

import numpy as np
from petsc4py import PETSc

from nmcfem.cohesive.assembly import (
    BLOCKS,
    add_pattern,
    coo_values,
    input_vertex_blocks,
    pair_matrix,
)
from nmcfem.cohesive.cutting import InterfaceMesh
from nmcfem.cohesive.interfaces import CohesiveInterfaces
from nmcfem.cohesive.output import GRAIN_BOUNDARY, SHELL_INTERFACE


class InterfaceTransport:
    """Interface conductances and reacting crack faces of the concentration space V.

    Parameters
    ----------
    V: scalar P1 space of the concentration (mol/m^3) on the cut mesh.
    interfaces: the cohesive elements (their committed damage throttles the flux).
    cut: the pairs of facing triangles (for which cracks connect to the outer surface).
    conductance: intact conductance g per unit area (m/s).
    blocks_flux: whether damage throttles the flux (False: always intact).
    shell_breaks: a fully cracked grain boundary breaks the meshed shell over it (its crack is
        open to the electrolyte where it meets the shell/core interface).
    """

    def __init__(self, V, interfaces: CohesiveInterfaces, cut: InterfaceMesh, conductance: float,
                 blocks_flux: bool, shell_breaks: bool = False):
        self.interfaces, self.cut = interfaces, cut
        self.shell_breaks = shell_breaks
        #: the wetted faces' layers and reaction (:mod:`nmcfem.cohesive.wetted_faces`), if any
        self.faces = None
        self.conductance, self.blocks_flux = conductance, blocks_flux
        glob_c, _ = input_vertex_blocks(V, interfaces.n_input, interfaces.comm)
        #: global concentration DOFs of the interface vertices (``interfaces.vertices``)
        self.vertex_blocks = glob_c[interfaces.vertices]
        self.pc = glob_c[interfaces.plus_vertex.reshape(-1)]
        self.mc = glob_c[interfaces.minus_vertex.reshape(-1)]
        lo_c, hi_c = V.dofmap.index_map.local_range
        self.owned_range = (lo_c, hi_c)
        self.mine = np.flatnonzero((self.pc >= lo_c) & (self.pc < hi_c))
        self.G = pair_matrix(V, self.pc[self.mine], self.mc[self.mine])
        self.exposed = np.zeros(0, dtype=np.int64)  # points whose faces react
        self.exposed_area = 0.0  # m^2, both faces
        self.changed = True  # the conductances changed since the operator was last built
        self._M: PETSc.Mat | None = None

    def _pair_conductance(self) -> np.ndarray:
        """g (1 - d) w (m^3/s) of the pairs this rank assembles."""
        m = self.mine
        damage = self.interfaces.history.damage[m]
        return self.conductance * self.interfaces.weight[m] * \
            (1.0 - damage if self.blocks_flux else 1.0)

    def quiet_face_dofs(self, surface_dofs: np.ndarray) -> np.ndarray:
        """Local indices of the owned concentration DOFs on either face of a fully cracked
        grain-boundary point that exchange Li with their own grain only (committed history):
        the nodes the step control does not count.

        Such a face carries no traction and (``blocks_flux``) no flux; but each time a
        neighbouring point completes its crack, the conductance it loses sends a one-node
        transient through the face, which backward Euler damps whatever the step, and which set
        the step of most of the default particle's charge once its grain boundaries had cracked
        (176 -> 128 steps, none redone, fully cracked area equal, dissipation within 0.01 %).
        Where such a face meets the core's surface, its node carries the surface's flux and is
        counted, unless every shell/core point on it has debonded too: then it is the corner of
        a grain cut off on two sides, and its relaxation after the last debond set 82 of the 173
        trial steps of the quick cracking case (124 -> 96 steps; fully cracked area and
        dissipation 1.15 % / 0.98 % from the reference, 1.7 % / 1.4 % before:
        docs/cracking_cost_profile.md). Counted always: faces that react (open to the
        electrolyte), and every other node under a debonded shell patch, whose Li the core
        redistributes (leaving those out moved the fully cracked area 2-9 % from the reference).

        Parameters
        ----------
        surface_dofs: local DOFs (with ghosts) on the core's surface (under the shell, or the
            outer surface).
        """
        lo, hi = self.owned_range
        if not self.blocks_flux:  # cracked faces still exchange Li across the crack
            return np.zeros(0, dtype=np.int32)
        full = self.interfaces.fully_cracked()
        full[self.exposed] = False
        law = self.interfaces.point_law
        gb, shell = full & (law == GRAIN_BOUNDARY), law == SHELL_INTERFACE
        faces = np.concatenate([self.pc[gb], self.mc[gb]])
        bonded = np.concatenate([self.pc[shell & ~full], self.mc[shell & ~full]])
        debonded = np.setdiff1d(np.concatenate([self.pc[shell & full], self.mc[shell & full]]),
                                bonded)

        def owned(dofs: np.ndarray) -> np.ndarray:
            return dofs[(dofs >= lo) & (dofs < hi)] - lo

        return np.setdiff1d(owned(faces), np.setdiff1d(surface_dofs, owned(debonded)))

    def _fixed_sides(self, bc_dofs: np.ndarray) -> np.ndarray:
        """(p,2) whether the two sides of each assembled pair carry a Dirichlet condition."""
        sides = np.stack([self.pc[self.mine], self.mc[self.mine]], axis=1)
        return np.isin(sides, bc_dofs)

    def conductance_matrix(self, bc_dofs: np.ndarray) -> PETSc.Mat:
        """Interface Li conductance (m^3/s per mol/m^3) with the committed damage; entries in
        rows or columns of the Dirichlet DOFs ``bc_dofs`` (global, sorted) are left out (their
        values enter through :meth:`add_rhs`)."""
        g = self._pair_conductance()
        vals = coo_values(g[:, None, None]).reshape(-1, 4)
        if len(bc_dofs):
            fixed = self._fixed_sides(bc_dofs)
            for b, (r, c, _) in enumerate(BLOCKS):
                vals[:, b] = np.where(fixed[:, r] | fixed[:, c], 0.0, vals[:, b])
        self.G.setValuesCOO(vals.reshape(-1), addv=PETSc.InsertMode.INSERT_VALUES)
        self.G.assemble()
        return self.G

    def operator(self, A_c: PETSc.Mat, bc_dofs: np.ndarray) -> PETSc.Mat:
        """Bulk transport operator A_c plus the interface conductances (rows/columns of the
        Dirichlet DOFs ``bc_dofs``, global and sorted, left to A_c)."""
        G = self.conductance_matrix(bc_dofs)
        if self._M is None:
            self._M = add_pattern(A_c, G)
        subset = PETSc.Mat.Structure.SUBSET_NONZERO_PATTERN
        A_c.copy(self._M, structure=subset)
        self._M.axpy(1.0, G, structure=subset)
        self.changed = False
        return self._M

    def add_rhs(self, b: PETSc.Vec, bc_dofs: np.ndarray, bc_value: float, flux: float,
                extra: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Add the interface terms of the transport right-hand side b, then assemble b.

        Parameters
        ----------
        b: right-hand side vector (mol/s per test function).
        bc_dofs: sorted global Dirichlet DOFs; bc_value: their concentration (mol/m^3).
        flux: imposed outward flux density of reacting crack faces (mol/m^2/s).
        extra: (global rows, values in mol/s) added as well (the Butler-Volmer terms of
            wetted faces, :mod:`nmcfem.cohesive.wetted_faces`).
        """
        if extra is not None and len(extra[0]):
            b.setValues(extra[0].astype(PETSc.IntType), extra[1],
                        addv=PETSc.InsertMode.ADD_VALUES)
        if len(bc_dofs):
            # couplings to Dirichlet DOFs move to the right-hand side
            g = self._pair_conductance()
            fixed = self._fixed_sides(bc_dofs)
            sides = np.stack([self.pc[self.mine], self.mc[self.mine]], axis=1)
            rows, vals = [], []
            for r, c, s in BLOCKS:
                sel = ~fixed[:, r] & fixed[:, c]
                rows.append(sides[sel, r])
                vals.append(-s * g[sel] * bc_value)
            b.setValues(np.concatenate(rows).astype(PETSc.IntType), np.concatenate(vals),
                        addv=PETSc.InsertMode.ADD_VALUES)
        if len(self.exposed) and flux != 0.0:
            w = self.interfaces.weight
            sel = np.intersect1d(self.exposed, self.mine)
            rows = np.concatenate([self.pc[sel], self.mc[sel]]).astype(PETSc.IntType)
            b.setValues(rows, -flux * np.concatenate([w[sel], w[sel]]),
                        addv=PETSc.InsertMode.ADD_VALUES)
        b.assemble()

    def update_exposed(self) -> None:
        """Find the fully cracked triangles connected through fully cracked triangles to the
        electrolyte (the outer surface, or a shell broken over a cracked grain boundary): their
        faces are wetted."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        im = self.cut
        cracked = np.flatnonzero(self.interfaces.fully_cracked().reshape(-1, 3).all(axis=1))
        entry = im.touches_surface
        if entry is not None and self.shell_breaks and im.touches_shell is not None:
            entry = entry | im.touches_shell
        if not len(cracked) or entry is None:
            self.exposed, self.exposed_area = np.zeros(0, dtype=np.int64), 0.0
            return
        # triangles sharing an (original) vertex are connected
        verts = im.original_vertex[im.plus[cracked]]
        tri = np.repeat(np.arange(len(cracked)), 3)
        graph = coo_matrix((np.ones(len(tri)), (tri, verts.reshape(-1))),
                           shape=(len(cracked), len(im.original_vertex)))
        adjacency = (graph @ graph.T).tocsr()
        _, label = connected_components(adjacency, directed=False)
        open_labels = np.unique(label[entry[cracked]])
        tris = cracked[np.isin(label, open_labels)]
        self.exposed = (3 * tris[:, None] + np.arange(3)).reshape(-1)
        self.exposed_area = float(2.0 * im.area[tris].sum())

    def destroy(self) -> None:
        """Free the PETSc matrices."""
        self.G.destroy()
        if self._M is not None:
            self._M.destroy()
