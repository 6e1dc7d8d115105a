"""Zero-thickness cohesive interface elements on a duplicated-vertex mesh: evaluation of the
traction-separation law at the interface points, their forces and stiffness matrices.

Each interface triangle pairs three "+" vertices with three "-" vertices at the same places.
Its traction-separation law is integrated with nodal (Newton-Cotes) quadrature — one point per
vertex pair, weight area/3 — the classic choice that avoids traction oscillations in interface
elements (Schellekens & de Borst, Int. J. Numer. Meth. Eng. 36, 43 (1993)). Every rank
assembles the points whose "+" vertex it owns (:mod:`nmcfem.cohesive.assembly`); the
displacements of all interface vertices are shared with one reduction per evaluation, so the
history (:mod:`nmcfem.cohesive.history`) is identical on every rank.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from petsc4py import PETSc

from nmcfem.cohesive.assembly import (
    gather_blocks,
    input_vertex_blocks,
    local_frames,
)
from nmcfem.cohesive.history import InterfaceHistory
from nmcfem.cohesive.law import (
    FULLY_CRACKED,
    CohesiveLaw,
    dissipated_energy,
    evaluate,
    stiffness_of,
)


class CohesiveInterfaces:
    """Interface elements of one or more laws over the pairs of a cut mesh, with history.

    Parameters
    ----------
    W: P1 vector space of the displacement (m) on the cut mesh.
    plus, minus: (k,3) input-vertex triples of the two faces of each interface triangle.
    normal: (k,3) unit normals from minus into plus; area: (k,) m^2.
    laws: the CohesiveLaw of each family; law_index: (k,) family of each triangle.
    n_input: number of input vertices of the cut mesh.
    """

    def __init__(self, W, plus, minus, normal, area, laws, n_input: int,
                 law_index: np.ndarray | None = None):
        self.W = W
        self.comm = W.mesh.comm
        self.laws: list[CohesiveLaw] = laws if isinstance(laws, list) else [laws]
        plus = np.asarray(plus, dtype=np.int64).reshape(-1, 3)
        minus = np.asarray(minus, dtype=np.int64).reshape(-1, 3)
        k = len(plus)
        self.n_triangles = k
        self.n_input = n_input
        self.plus_vertex, self.minus_vertex = plus, minus
        self.law_index = np.zeros(k, dtype=int) if law_index is None else np.asarray(law_index)
        self.point_law = np.repeat(self.law_index, 3)
        #: the points of each law
        self.law_points = [np.flatnonzero(self.point_law == li) for li in range(len(self.laws))]
        self.area = np.asarray(area, dtype=float)
        self.weight = np.repeat(self.area / 3.0, 3)  # nodal quadrature weight per point (m^2)
        frames = local_frames(np.asarray(normal, dtype=float)) if k else np.zeros((0, 3, 3))
        self.frames = np.repeat(frames, 3, axis=0)  # per point
        glob_u, _ = input_vertex_blocks(W, n_input, self.comm)
        self.pu = glob_u[plus.reshape(-1)]
        self.mu = glob_u[minus.reshape(-1)]
        # interface vertices whose values every rank needs, and where each point reads them
        self.vertices = np.unique(np.concatenate([plus.ravel(), minus.ravel()]))
        self.pos_plus = np.searchsorted(self.vertices, plus.reshape(-1))
        self.pos_minus = np.searchsorted(self.vertices, minus.reshape(-1))
        self.vertex_block_u = glob_u[self.vertices]
        lo, hi = W.dofmap.index_map.local_range
        self.mine = np.flatnonzero((self.pu >= lo) & (self.pu < hi))
        self.history = InterfaceHistory(3 * k, self.weight)

    # --- evaluation ------------------------------------------------------------------------

    def openings(self, u: PETSc.Vec) -> np.ndarray:
        """(p,3) openings u+ - u- at every point, in the local frame (normal first), m."""
        disp = gather_blocks(u, self.vertex_block_u, 3, self.comm)
        jump = disp[self.pos_plus] - disp[self.pos_minus]
        return np.einsum("kij,kj->ki", self.frames, jump)

    def evaluate(self, u: PETSc.Vec, dt: float = 0.0) -> dict[str, np.ndarray]:
        """Openings, tractions, energies and trial history at every point for displacement u
        (the history's trial state); the stiffness follows when :meth:`tangent_blocks` asks."""
        h = self.history
        delta = self.openings(u)
        p = len(delta)
        out = {"delta": delta, "traction": np.zeros((p, 3)), "kappa": h.kappa.copy(),
               "damage": h.damage.copy(), "energy": np.zeros(p)}
        per_law = []
        for law, sel in zip(self.laws, self.law_points):
            if not len(sel):
                continue
            res = evaluate(law, delta[sel], h.kappa[sel], h.damage[sel], dt, stiffness=False)
            for key in ("traction", "kappa", "damage", "energy"):
                out[key][sel] = res[key]
            per_law.append((law, sel, res))
        out["per_law"] = per_law
        h.trial = out
        return out

    def add_residual(self, u: PETSc.Vec, F: PETSc.Vec, dt: float = 0.0) -> float:
        """Add the interface forces (N) to F (global indices, ADD_VALUES; F.assemble() after);
        return the interfaces' energy (J, stored plus dissipated; the same on every rank)."""
        res = self.evaluate(u, dt)
        m = self.mine
        force = np.einsum("kji,kj->ki", self.frames[m], res["traction"][m]) \
            * self.weight[m, None]
        rows = np.concatenate([3 * self.pu[m, None] + np.arange(3),
                               3 * self.mu[m, None] + np.arange(3)]).reshape(-1)
        F.setValues(rows.astype(PETSc.IntType), np.concatenate([force, -force]).reshape(-1),
                    addv=PETSc.InsertMode.ADD_VALUES)
        return float(np.sum(res["energy"] * self.weight))

    def tangent_blocks(self, secant: bool = False) -> np.ndarray:
        """(p,3,3) interface stiffness blocks (N/m) of this rank's points (``mine``) at the
        last evaluation: the consistent tangent, or the secant stiffness (positive definite),
        rotated to global axes and weighted."""
        trial = self.history.trial
        if "tangent" not in trial:  # evaluated for a residual only so far
            p = len(trial["delta"])
            trial["tangent"], trial["secant"] = np.zeros((p, 3, 3)), np.zeros((p, 3, 3))
            for law, sel, res in trial["per_law"]:
                for key, value in stiffness_of(law, res).items():
                    trial[key][sel] = value
        m = self.mine
        R = self.frames[m]
        D = trial["secant" if secant else "tangent"][m]
        return np.matmul(np.matmul(R.transpose(0, 2, 1), D), R) * self.weight[m, None, None]

    # --- results of the committed state ----------------------------------------------------

    def toughness_used(self, kappa: np.ndarray) -> np.ndarray:
        """(p,) fraction of the toughness dissipated at each point for the history kappa."""
        out = np.zeros(len(kappa))
        for li, law in enumerate(self.laws):
            sel = self.point_law == li
            out[sel] = dissipated_energy(law, kappa[sel]) / law.toughness
        return out

    def triangle_damage(self) -> np.ndarray:
        """(k,) mean committed damage of each interface triangle."""
        return self.history.damage.reshape(-1, 3).mean(axis=1)

    def fully_cracked(self) -> np.ndarray:
        """(p,) whether each point has dissipated (almost) all its toughness."""
        return self.toughness_used(self.history.kappa) >= FULLY_CRACKED

    def point_dissipation(self) -> np.ndarray:
        """(p,) energy dissipated per unit area at every point (J/m^2), closed form."""
        kappa = self.history.kappa
        out = np.zeros(len(kappa))
        for li, law in enumerate(self.laws):
            sel = self.point_law == li
            out[sel] = dissipated_energy(law, kappa[sel])
        return out

    def point_toughness(self) -> np.ndarray:
        """(p,) mode-I toughness G_c of every point's law (J/m^2)."""
        return np.array([law.toughness for law in self.laws])[self.point_law] \
            if len(self.laws) else np.zeros(0)


def statistics(interfaces: CohesiveInterfaces) -> dict[str, Any]:
    """Cracked areas (m^2), dissipated energy (J), openings (m) and tractions (Pa) of the
    committed state; the same on every rank."""
    h = interfaces.history
    w = interfaces.weight
    full = interfaces.fully_cracked()
    partial = (h.damage > 0) & ~full
    stored = 0.5 * np.einsum("ki,ki->k", h.traction, h.delta)
    dissipated = interfaces.point_dissipation()
    toughness = interfaces.point_toughness()
    return {
        "cracked_area_full [m^2]": float(w[full].sum()),
        "cracked_area_partial [m^2]": float(w[partial].sum()),
        # the rate-independent dissipation D(kappa) of the history (closed form of the law)
        "dissipated_energy [J]": float(np.sum(dissipated * w)),
        "toughness_times_cracked_area [J]": float(np.sum((toughness * w)[full])),
        "dissipated_energy_partial [J]": float(np.sum((dissipated * w)[partial])),
        "interface_stored_energy [J]": float(np.sum(stored * w)),
        # work done on the interfaces, trapezoidal in the openings of every step: it exceeds
        # stored + dissipated energy by what unstable crack advances released (and by any
        # viscous dissipation)
        "interface_work [J]": float(h.work),
        "max_opening [m]": float(np.max(h.delta[:, 0], initial=0.0)),
        "max_damage [-]": float(np.max(h.damage, initial=0.0)),
        "max_cohesive_normal_traction [Pa]": float(np.max(h.traction[:, 0], initial=0.0)),
    }
