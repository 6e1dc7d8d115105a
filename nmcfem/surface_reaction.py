"""The particle's surface reaction: Butler-Volmer current on the outer surface, the particle
potential V as the unknown of a constant current, and the forms that the transport's Newton
iteration needs.

The particle is one electronic conductor at potential V (V vs Li/Li+). Under a constant current
I (A, positive on charge) V is the unknown that makes F int_S N(c, V) dA = I; under a constant
voltage V is given and the current follows. The reaction takes place on the outer face of the
particle (of the passivation shell, where there is one): the electrolyte touches that face,
and the meshed shell acts as the transport resistance of the layer through its D_L.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI

import dolfinx
import ufl

from nmcfem.errors import SolverError
from nmcfem.physics.electrochemistry import FARADAY, UFL_MATH, Kinetics

#: largest change of V (V) in one Newton iteration: Butler-Volmer grows exponentially, and an
#: undamped first iterate far from the solution would overflow it
MAX_VOLTAGE_UPDATE = 0.2
#: a voltage is converged when the Newton update is below this (V)
VOLTAGE_TOLERANCE = 1e-9
#: thickness (m) below which a film is too thin to limit a saturated face's flux (guards D/h)
MIN_FILM_THICKNESS = 1e-12

CURRENT, VOLTAGE = "current", "voltage"


class SurfaceReaction:
    """Butler-Volmer reaction on a surface of the transport problem.

    Parameters
    ----------
    c: concentration (mol/m^3), the Newton iterate.
    c_max: maximum concentration (mol/m^3).
    ds: surface measure of the reaction.
    kinetics: :class:`nmcfem.physics.electrochemistry.Kinetics`.
    film: a passivation film on the surface, (thickness h in m as a P1 field, Li diffusivity
        D in m^2/s, its surface DOFs), or None.

    A film carries the reacting Li across itself by diffusion: the reaction sees the
    concentration c - dc, where the drop dc = N h / D makes the film's flux equal the
    reaction's. dc is solved node by node (:meth:`update_film`) at every Newton iterate and
    eliminated from the Newton matrix: the flux's derivatives are divided by
    1 + dN/dc h / D (implicit differentiation), so the iteration keeps converging fast.
    Where the charge transfer would fill the film's outer face beyond full (or empty it below
    zero) — the kinetics' site-fraction floor lets it try — the face sits at full (empty) and
    the film's diffusion carries the flux: N = (c - c_face) D / h (:func:`film_drop`).
    """

    def __init__(self, c: dolfinx.fem.Function, c_max: float, ds: Any, kinetics: Kinetics,
                 film: tuple[dolfinx.fem.Function, float, np.ndarray] | None = None):
        mesh = c.function_space.mesh
        self.comm, self.kinetics, self.c_max = mesh.comm, kinetics, c_max
        self.c, self.film = c, film
        #: concentration drop across the film (mol/m^3, P1 on the surface)
        self.drop = dolfinx.fem.Function(c.function_space, name="film_drop") \
            if film is not None else None
        #: 1 where the film's outer face is saturated (full or empty), else 0
        self.saturated = dolfinx.fem.Function(c.function_space) if film is not None else None
        self.V = dolfinx.fem.Constant(mesh, 4.0)  # particle potential (V)
        self.V_old = float(self.V.value)
        self.control = CURRENT
        self.applied = 0.0  # A (control = current)
        self.current = 0.0  # A: the reaction current of the last solve
        cv, Vv = ufl.variable(c), ufl.variable(self.V)
        reacting = cv if film is None else cv - self.drop
        #: outward Li flux N = i/F (mol/m^2/s) and its derivatives
        self.N = kinetics.current_density(reacting / c_max, Vv, UFL_MATH) / FARADAY
        self.N_c = ufl.diff(self.N, cv)
        self.N_V = ufl.diff(self.N, Vv)
        if film is not None:
            h, D = film[0], film[1]
            through = 1.0 + ufl.max_value(self.N_c, 0.0) * h / D
            s_ = self.saturated
            # a saturated node (only where h > 0) passes what the film carries, drop D / h,
            # whose derivative with respect to c is D / h (the face stays at its bound)
            conductance = D / ufl.max_value(h, MIN_FILM_THICKNESS)
            self.N = (1.0 - s_) * self.N + s_ * self.drop * conductance
            self.N_c = (1.0 - s_) * self.N_c / through + s_ * conductance
            self.N_V = (1.0 - s_) * self.N_V / through
        v = ufl.TestFunction(c.function_space)
        self.ds = ds
        self._current = dolfinx.fem.form(FARADAY * self.N * ds)
        self._dcurrent_dV = dolfinx.fem.form(FARADAY * self.N_V * ds)
        self._rhs_V = dolfinx.fem.form(-self.N_V * v * ds)
        self._current_c = dolfinx.fem.form(FARADAY * self.N_c * v * ds)
        one = dolfinx.fem.Constant(mesh, 1.0)
        self.area = self._scalar(dolfinx.fem.form(one * ds))
        self._x_mean = dolfinx.fem.form(c / c_max * ds)
        self._h_mean = dolfinx.fem.form(film[0] * ds) if film is not None else None

    def update_film(self, max_iterations: int = 100) -> None:
        """Solve the film's concentration drop dc = N(c - dc, V) h / D at every surface node
        for the present c and V (no-op without a film; :func:`film_drop`)."""
        if self.film is None:
            return
        h_fun, D, dofs = self.film
        c = self.c.x.array[dofs]
        dc, saturated = film_drop(self.kinetics, c, float(self.V.value), h_fun.x.array[dofs],
                                  D, self.c_max, self.drop.x.array[dofs], max_iterations)
        self.drop.x.array[dofs] = dc
        self.saturated.x.array[dofs] = saturated

    def _scalar(self, form) -> float:
        return self.comm.allreduce(dolfinx.fem.assemble_scalar(form), op=MPI.SUM)

    # --- control ---------------------------------------------------------------------------

    def set_current(self, current: float) -> None:
        """Constant current ``current`` (A, positive on charge); V becomes an unknown, guessed
        from the mean surface state."""
        self.control, self.applied = CURRENT, current
        x = self.mean_surface_x()
        if self.film is not None:  # the reaction sees the far side of the film's drop
            h_fun, D, _ = self.film
            h_mean = self._scalar(self._h_mean) / self.area
            x -= current / (FARADAY * self.area) * h_mean / (D * self.c_max)
        self.V.value = float(self.kinetics.voltage_at_uniform_current(
            float(np.clip(x, 0.0, 1.0)), current / self.area))

    def set_rest(self) -> None:
        """The potential at which the present surface carries no net current (V): what a
        resting particle shows, e.g. before its first step (collective)."""
        self.V.value = float(self.kinetics.ocp(float(np.clip(self.mean_surface_x(), 0.0, 1.0))))
        self.V_old = self.voltage_for(0.0)

    def set_voltage(self, voltage: float) -> None:
        """Constant particle potential ``voltage`` (V); the current follows."""
        self.control = VOLTAGE
        self.V.value = voltage

    # --- evaluations -----------------------------------------------------------------------

    def total_current(self) -> float:
        """Reaction current (A) at the present c and V (collective)."""
        return self._scalar(self._current)

    def mean_surface_x(self) -> float:
        """Area-averaged Li fraction of the reacting surface (collective)."""
        return self._scalar(self._x_mean) / self.area

    def voltage_for(self, current: float, max_iterations: int = 50) -> float:
        """Particle potential (V) at which the present surface carries ``current`` (A): the
        potential of a uniform-current run, reported, not imposed (collective)."""
        V = float(self.V.value)
        for _ in range(max_iterations):
            self.V.value = V
            g = self.total_current() - current
            dg = self._scalar(self._dcurrent_dV)
            step = float(np.clip(g / dg, -MAX_VOLTAGE_UPDATE, MAX_VOLTAGE_UPDATE))
            V -= step
            if abs(step) < VOLTAGE_TOLERANCE:
                break
        self.V.value = V
        return V

    # --- the Newton iteration's pieces ------------------------------------------------------

    def linearise(self) -> tuple[float, np.ndarray, float]:
        """The current (A), its gradient with respect to the owned concentration DOFs (A per
        mol/m^3) and its derivative with respect to V (A/V) at the present iterate."""
        g = dolfinx.fem.assemble_vector(self._current_c)
        g.scatter_reverse(dolfinx.la.InsertMode.add)
        n = g.index_map.size_local
        return self.total_current(), g.array[:n].copy(), self._scalar(self._dcurrent_dV)

    def voltage_update(self, lin: tuple[float, np.ndarray, float], c_it: np.ndarray,
                       c_lin: np.ndarray, c_volt: np.ndarray) -> float:
        """The potential change dV of one Newton iteration under constant current.

        The new iterate is c_lin + dV c_volt, where c_lin solves the step linearised about the
        iterate c_it at the present V and c_volt is its response to a unit change of V; dV makes
        the linearised current (``lin`` from :meth:`linearise` at c_it) equal the applied one.
        Arrays hold the owned DOFs.
        """
        current, grad, d_dV = lin
        local = np.array([grad @ (c_lin - c_it), grad @ c_volt])
        change, per_volt = self.comm.allreduce(local, op=MPI.SUM)
        dIdV = d_dV + per_volt
        if not np.isfinite(dIdV) or dIdV <= 0:
            raise SolverError(f"surface reaction: the current does not grow with the potential "
                              f"(dI/dV = {dIdV:.3g} A/V)")
        residual = current + change - self.applied
        return float(np.clip(-residual / dIdV, -MAX_VOLTAGE_UPDATE, MAX_VOLTAGE_UPDATE))

    def rhs_volt_form(self):
        """Form of the right-hand side of the response to a unit change of V."""
        return self._rhs_V

    def accept(self) -> None:
        """The present potential becomes the start of the next step."""
        self.V_old = float(self.V.value)

    def reject(self) -> None:
        """Return to the potential of the last accepted step (under constant current)."""
        if self.control == CURRENT:
            self.V.value = self.V_old


def reaction_flux(kinetics: Kinetics, c, V: float, c_max: float):
    """Outward Butler-Volmer Li flux N = i/F (mol/m^2/s) at concentration c (mol/m^3) and
    particle potential V (V), numpy arrays."""
    return kinetics.current_density(np.asarray(c) / c_max, V) / FARADAY


def film_drop(kinetics: Kinetics, c: np.ndarray, V: float, h: np.ndarray, D: float,
              c_max: float, guess: np.ndarray, max_iterations: int = 100
              ) -> tuple[np.ndarray, np.ndarray]:
    """Concentration drop dc (mol/m^3) across passivation films of thickness h (m) and Li
    diffusivity D (m^2/s) that carry the reaction flux: dc = N(c - dc, V) h / D at each point;
    and where the film's outer face saturates (1.0, else 0.0).

    g(dc) = dc - N(c - dc) h / D grows with dc. Between a full (dc = c - c_max) and an empty
    (dc = c) outer face it changes sign unless the charge transfer would push the face beyond
    full or empty (the kinetics' site-fraction floor lets Butler-Volmer insert Li into a full
    surface): then the face stays at that bound (saturated). Newton steps, point by point, kept
    inside the bracket by bisection (Butler-Volmer's exponentials overshoot from far away).

    Parameters
    ----------
    kinetics: the Butler-Volmer kinetics; c: concentrations (mol/m^3) below the films;
    V: particle potential (V); c_max: maximum concentration (mol/m^3); guess: a first dc.
    """
    lo, hi = c - c_max, c.copy()

    def flux(conc):
        return reaction_flux(kinetics, conc, V, c_max)

    with np.errstate(over="ignore", invalid="ignore"):
        full = (h > 0) & (lo - flux(c_max) * h / D > 0)
        empty = (h > 0) & (hi - flux(0.0) * h / D < 0)
    dc = np.clip(guess, lo, hi)
    delta = 1e-7 * c_max  # concentration step of the derivative (mol/m^3)

    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(max_iterations):
            g = dc - flux(c - dc) * h / D
            lo = np.where(g < 0, dc, lo)
            hi = np.where(g > 0, dc, hi)
            slope = (flux(c - dc + delta) - flux(c - dc - delta)) / (2 * delta)
            trial = dc - g / (1.0 + np.maximum(slope, 0.0) * h / D)
            inside = np.isfinite(trial) & (trial > lo) & (trial < hi)
            new = np.where(inside, trial, 0.5 * (lo + hi))
            change = np.max(np.abs(new - dc), initial=0.0)
            dc = new
            if change < 1e-13 * c_max:
                break
    dc = np.where(full, lo, np.where(empty, hi, dc))
    return dc, (full | empty).astype(float)
