"""Crack faces wetted by the electrolyte: the passivation layer that grows on them and, under
Butler-Volmer kinetics, their reaction.

A face is wetted where its interface triangle is fully cracked and connected through fully
cracked triangles to the electrolyte (:meth:`nmcfem.cohesive.transport.InterfaceTransport.
update_exposed`). Both faces of every interface point carry their own layer thickness (m), a
per-point array identical on every rank like the cohesive history, so checkpoints and results
do not depend on the partition. The layer grows by the law of the outer surface
(:mod:`nmcfem.passivation`), gated by the open-circuit potential of the face's own Li fraction,
and stays when the crack closes again. A reacting face takes the Butler-Volmer flux of its Li
fraction at the particle potential, through its layer by diffusion (:func:`nmcfem.
surface_reaction.film_drop`), with nodal quadrature (one point per vertex pair, weight area/3)
as the cohesive law.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from petsc4py import PETSc

from nmcfem.cohesive.assembly import gather_blocks
from nmcfem.passivation import parabolic_growth
from nmcfem.physics.electrochemistry import FARADAY, Kinetics
from nmcfem.surface_reaction import MIN_FILM_THICKNESS, film_drop, reaction_flux

#: concentration step of the numerical derivative dN/dc, as a fraction of c_max
DERIVATIVE_STEP = 1e-7


@dataclass
class FaceReactionTerms:
    """One Newton iteration's contributions of the reacting crack faces (global DOF rows).

    current: reaction current of the faces (A, positive on charge); d_dV: its derivative (A/V).
    rows: global DOFs of the point faces this rank assembles; diagonal: dN/dc w (m^3/s) there;
    rhs: -(N - dN/dc c_it) w (mol/s); rhs_volt: -dN/dV w (mol/s/V); gradient: F dN/dc w (A per
    mol/m^3).
    """

    current: float
    d_dV: float
    rows: np.ndarray
    diagonal: np.ndarray
    rhs: np.ndarray
    rhs_volt: np.ndarray
    gradient: np.ndarray


class WettedCrackFaces:
    """Layer thickness on both faces of every interface point, its growth and the faces'
    reaction.

    Parameters
    ----------
    transport: the interface transport (pairs of concentration DOFs, wetted points).
    c_max: maximum concentration (mol/m^3).
    kinetics: Butler-Volmer kinetics of the outer surface (the faces react alike).
    layer_diffusivity: Li diffusivity of the grown layer (m^2/s).
    reacts: whether wetted faces take a reaction current.
    """

    def __init__(self, transport, c_max: float, kinetics: Kinetics, layer_diffusivity: float,
                 reacts: bool):
        itf = transport.interfaces
        self.transport, self.interfaces = transport, itf
        self.c_max, self.kinetics, self.D = c_max, kinetics, layer_diffusivity
        self.reacts = reacts
        n = len(itf.weight)
        #: (p,2) layer thickness (m) on the "+" and "-" face of every point
        self.thickness = np.zeros((n, 2))
        self._drop = np.zeros((n, 2))  # mol/m^3, the layers' concentration drops
        self._blocks = transport.vertex_blocks

    def face_concentrations(self, c: PETSc.Vec) -> np.ndarray:
        """(p,2) concentrations (mol/m^3) on the two faces of every point (collective)."""
        vals = gather_blocks(c, self._blocks, 1, self.interfaces.comm)[:, 0]
        return np.stack([vals[self.interfaces.pos_plus], vals[self.interfaces.pos_minus]], axis=1)

    def wetted(self) -> np.ndarray:
        """(p,) whether each point's faces are wetted by the electrolyte."""
        mask = np.zeros(len(self.thickness), dtype=bool)
        mask[self.transport.exposed] = True
        return mask

    # --- the layer -------------------------------------------------------------------------

    def grow(self, c_start: PETSc.Vec, c_end: PETSc.Vec, rate: float, dt: float,
             onset: float) -> None:
        """Grow the layers of wetted faces over an accepted step (collective): h^2 += 2 k t_on,
        t_on the part of the step the face's open-circuit potential spent at or above ``onset``
        (:func:`nmcfem.passivation.parabolic_growth`).

        Parameters
        ----------
        c_start, c_end: concentration (mol/m^3) at the start and end of the step; rate: k
        (m^2/s); dt: step (s); onset: U_on (V).
        """
        ocp = self.kinetics.ocp
        u_start = ocp(self.face_concentrations(c_start) / self.c_max)
        u_end = ocp(self.face_concentrations(c_end) / self.c_max)
        grown = parabolic_growth(self.thickness, rate, dt, u_start, u_end, onset)
        self.thickness = np.where(self.wetted()[:, None], grown, self.thickness)

    def layer_volume(self) -> float:
        """Volume (m^3) of the layers on all faces."""
        return float(np.sum(self.thickness * self.interfaces.weight[:, None]))

    def row(self) -> dict[str, float]:
        """Wetted area and the layers' thickness on the wetted faces (same on every rank)."""
        w = self.interfaces.weight
        wet = self.wetted()
        area = self.transport.exposed_area  # both faces
        h = self.thickness[wet]
        return {"wetted_crack_area [m^2]": area,
                "crack_layer_thickness_mean [m]":
                    float(np.sum(h * w[wet, None]) / area) if area > 0 else 0.0,
                "crack_layer_thickness_max [m]": float(np.max(self.thickness, initial=0.0))}

    def state(self) -> dict[str, np.ndarray]:
        """The layers as arrays for checkpoints."""
        return {"crack_layer_thickness": self.thickness}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Adopt checkpointed layers (none in an older checkpoint: no layer)."""
        if "crack_layer_thickness" in arrays:
            self.thickness = np.array(arrays["crack_layer_thickness"], dtype=float).reshape(-1, 2)

    # --- the reaction ----------------------------------------------------------------------

    def _flux(self, c: np.ndarray, V: float) -> np.ndarray:
        return reaction_flux(self.kinetics, c, V, self.c_max)

    def linearise(self, c: PETSc.Vec, V: float) -> FaceReactionTerms | None:
        """The faces' reaction terms of a Newton iteration at the iterate c (mol/m^3) and the
        particle potential V (V), or None where no face reacts (collective).

        The flux N of the concentration under each face's layer and its derivatives with
        respect to c and V are those of the layer eliminated (divided by 1 + dN/dc h / D); a
        negative dN/dc is left out of the matrix, as on the outer surface.
        """
        if not self.reacts or not len(self.transport.exposed):
            return None
        wet = self.transport.exposed
        cf = self.face_concentrations(c)[wet]
        h = self.thickness[wet]
        drop, saturated = film_drop(self.kinetics, cf, V, h, self.D, self.c_max,
                                    self._drop[wet])
        self._drop[wet] = drop
        under = cf - drop
        delta = DERIVATIVE_STEP * self.c_max
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            N = self._flux(under, V)
            N_c = (self._flux(under + delta, V) - self._flux(under - delta, V)) / (2 * delta)
            N_V = (self._flux(under, V + 1e-6) - self._flux(under, V - 1e-6)) / 2e-6
            through = 1.0 + np.maximum(N_c, 0.0) * h / self.D
            N_c, N_V = N_c / through, N_V / through
            # a saturated face passes what its layer carries (film_drop)
            sat = saturated > 0
            conductance = self.D / np.maximum(h, MIN_FILM_THICKNESS)
            N = np.where(sat, drop * conductance, N)
            N_c = np.where(sat, conductance, N_c)
            N_V = np.where(sat, 0.0, N_V)
        in_matrix = np.maximum(N_c, 0.0)
        w = self.interfaces.weight[wet, None]
        # every rank assembles the points whose "+" concentration DOF it owns
        mine = np.isin(wet, self.transport.mine)
        tr = self.transport
        rows = np.concatenate([tr.pc[wet][mine], tr.mc[wet][mine]])

        def faces(a: np.ndarray) -> np.ndarray:
            return np.concatenate([a[mine, 0], a[mine, 1]])

        return FaceReactionTerms(
            current=float(FARADAY * np.sum(N * w)), d_dV=float(FARADAY * np.sum(N_V * w)),
            rows=rows, diagonal=faces(in_matrix * w), rhs=faces(-(N - in_matrix * cf) * w),
            rhs_volt=faces(-N_V * w), gradient=faces(FARADAY * N_c * w))

    def current(self, c: PETSc.Vec, V: float) -> float:
        """Reaction current (A) of the wetted faces at c and V (collective; 0 where none
        reacts)."""
        terms = self.linearise(c, V)
        return terms.current if terms is not None else 0.0
