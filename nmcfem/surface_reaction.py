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

CURRENT, VOLTAGE = "current", "voltage"


class SurfaceReaction:
    """Butler-Volmer reaction on a surface of the transport problem.

    Parameters
    ----------
    c: concentration (mol/m^3), the Newton iterate.
    c_max: maximum concentration (mol/m^3).
    ds: surface measure of the reaction.
    kinetics: :class:`nmcfem.physics.electrochemistry.Kinetics`.
    """

    def __init__(self, c: dolfinx.fem.Function, c_max: float, ds: Any, kinetics: Kinetics):
        mesh = c.function_space.mesh
        self.comm, self.kinetics, self.c_max = mesh.comm, kinetics, c_max
        self.V = dolfinx.fem.Constant(mesh, 4.0)  # particle potential (V)
        self.V_old = float(self.V.value)
        self.control = CURRENT
        self.applied = 0.0  # A (control = current)
        self.current = 0.0  # A: the reaction current of the last solve
        cv, Vv = ufl.variable(c), ufl.variable(self.V)
        #: outward Li flux N = i/F (mol/m^2/s) and its derivatives
        self.N = kinetics.current_density(cv / c_max, Vv, UFL_MATH) / FARADAY
        self.N_c = ufl.diff(self.N, cv)
        self.N_V = ufl.diff(self.N, Vv)
        v = ufl.TestFunction(c.function_space)
        self.ds = ds
        self._current = dolfinx.fem.form(FARADAY * self.N * ds)
        self._dcurrent_dV = dolfinx.fem.form(FARADAY * self.N_V * ds)
        self._rhs_V = dolfinx.fem.form(-self.N_V * v * ds)
        self._current_c = dolfinx.fem.form(FARADAY * self.N_c * v * ds)
        one = dolfinx.fem.Constant(mesh, 1.0)
        self.area = self._scalar(dolfinx.fem.form(one * ds))
        self._x_mean = dolfinx.fem.form(c / c_max * ds)

    def _scalar(self, form) -> float:
        return self.comm.allreduce(dolfinx.fem.assemble_scalar(form), op=MPI.SUM)

    # --- control ---------------------------------------------------------------------------

    def set_current(self, current: float) -> None:
        """Constant current ``current`` (A, positive on charge); V becomes an unknown, guessed
        from the mean surface state."""
        self.control, self.applied = CURRENT, current
        self.V.value = float(self.kinetics.voltage_at_uniform_current(
            self.mean_surface_x(), current / self.area))

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
