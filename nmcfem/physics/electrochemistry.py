"""Electrochemistry of the particle surface: open-circuit potential, exchange current density
and Butler-Volmer kinetics, written once for UFL and for numpy.

Every function takes the math namespace ``m`` it is evaluated with: :data:`UFL_MATH` inside
the weak forms, :data:`NUMPY_MATH` in diagnostics, events and the 1D verification model.

Sign convention: the reaction current density i (A/m^2) is positive on charge (delithiation,
anodic at the positive electrode); the outward Li flux is N = i / F (mol/m^2/s). The particle
potential V (V) is measured against Li/Li+ with the electrolyte potential as the reference
(no electrolyte polarisation), so the overpotential is eta = V - U(x_s).

Defaults (Chen et al., J. Electrochem. Soc. 167, 080534 (2020), the LG M50 NMC 811 positive
electrode as parameterised in PyBaMM's ``Chen2020`` set):
U(s) = -0.8090 s + 4.4875 - 0.0428 tanh(18.5138 (s - 0.5542))
       - 17.7326 tanh(15.7890 (s - 0.3117)) + 17.5842 tanh(15.9308 (s - 0.3120))   (V),
i0 = m_ref exp(E_r/R (1/T_ref - 1/T)) c_e^0.5 c_s^0.5 (c_max - c_s)^0.5,
m_ref = 3.42e-6 (A/m^2)(m^3/mol)^1.5, E_r = 17800 J/mol, T_ref = 298.15 K.
"""

from __future__ import annotations

import types

import numpy as np

import ufl

#: Faraday constant (C/mol), CODATA 2018 (exact)
FARADAY = 96485.33212
#: universal gas constant (J/mol/K), CODATA 2018 (exact)
GAS_CONSTANT = 8.314462618
#: reference temperature of the Chen (2020) exchange-current fit (K)
T_REF_CHEN2020 = 298.15

UFL_MATH = types.SimpleNamespace(tanh=ufl.tanh, sinh=ufl.sinh, cosh=ufl.cosh, sqrt=ufl.sqrt,
                                 exp=ufl.exp, max=ufl.max_value, min=ufl.min_value,
                                 conditional=ufl.conditional, le=ufl.le)
NUMPY_MATH = types.SimpleNamespace(tanh=np.tanh, sinh=np.sinh, cosh=np.cosh, sqrt=np.sqrt,
                                   exp=np.exp, max=np.maximum, min=np.minimum,
                                   conditional=np.where, le=np.less_equal)


def ocp_chen2020(sto, m=NUMPY_MATH):
    """Open-circuit potential (V vs Li/Li+) of NMC 811 at stoichiometry ``sto`` (Chen 2020)."""
    return (-0.8090 * sto + 4.4875 - 0.0428 * m.tanh(18.5138 * (sto - 0.5542))
            - 17.7326 * m.tanh(15.7890 * (sto - 0.3117))
            + 17.5842 * m.tanh(15.9308 * (sto - 0.3120)))


def ocp_table(sto, xs, us, m=NUMPY_MATH):
    """Piecewise-linear open-circuit potential (V) through the points (xs, us), xs ascending,
    held constant beyond the ends."""
    if m is NUMPY_MATH:
        return np.interp(sto, xs, us)
    value = us[0] + 0.0 * sto
    for (x0, u0), (x1, u1) in zip(zip(xs, us), zip(xs[1:], us[1:])):
        slope = (u1 - u0) / (x1 - x0)
        # adds each segment's slope over the part of [x0, x1] below sto
        value = value + slope * (m.min(m.max(sto, x0), x1) - x0)
    return value


class Kinetics:
    """Open-circuit potential and Butler-Volmer kinetics of the particle surface.

    Parameters
    ----------
    ec: the ``electrochemistry`` config section.
    c_max: maximum Li concentration of the grains (mol/m^3).
    temperature: temperature (K).
    table: (x, U) points of a tabulated OCP, x ascending (ec.ocp = "table"), else None.
    """

    def __init__(self, ec, c_max: float, temperature: float, table=None):
        self.ec, self.c_max, self.T = ec, c_max, temperature
        self.table = table
        s0, s1 = ec.stoichiometry_at_x
        self.s0, self.ds = s0, s1 - s0
        self.f = FARADAY / (GAS_CONSTANT * temperature)  # 1/V
        arrhenius = np.exp(ec.activation_energy / GAS_CONSTANT
                           * (1.0 / T_REF_CHEN2020 - 1.0 / temperature))
        self.k0 = ec.exchange_current_coefficient * arrhenius \
            * ec.electrolyte_concentration ** 0.5  # A/m^2 per (mol/m^3)
        self.alpha = ec.charge_transfer_coefficient

    def stoichiometry(self, x):
        """Electrode stoichiometry of the OCP fit at Li fraction x (linear map)."""
        return self.s0 + self.ds * x

    def ocp(self, x, m=NUMPY_MATH):
        """Open-circuit potential U (V) at Li fraction x."""
        sto = self.stoichiometry(x)
        if self.table is not None:
            return ocp_table(sto, self.table[0], self.table[1], m)
        return ocp_chen2020(sto, m)

    def exchange_current(self, x, m=NUMPY_MATH):
        """Exchange current density i0 (A/m^2) at surface Li fraction x; the Li and vacancy
        site fractions are kept above ``electrochemistry.min_site_fraction`` (at x = 1 a pristine
        particle has no vacancies and i0 would vanish: no charge could start)."""
        floor = self.ec.min_site_fraction
        occupied = m.max(x, floor)
        vacant = m.max(1.0 - x, floor)
        return self.k0 * self.c_max * m.sqrt(occupied * vacant)

    def current_density(self, x, V, m=NUMPY_MATH):
        """Butler-Volmer reaction current density i (A/m^2, positive on charge) at surface Li
        fraction x and particle potential V (V)."""
        eta = V - self.ocp(x, m)
        a = self.alpha
        return self.exchange_current(x, m) * (m.exp(a * self.f * eta)
                                              - m.exp(-(1.0 - a) * self.f * eta))

    def voltage_at_uniform_current(self, x, i):
        """Particle potential (V) at which a surface of Li fraction x carries the current
        density i (A/m^2) — the inverse of Butler-Volmer, closed form for alpha = 1/2."""
        x = np.asarray(x, dtype=float)
        i0 = self.exchange_current(x)
        if abs(self.alpha - 0.5) < 1e-15:
            return self.ocp(x) + 2.0 / self.f * np.arcsinh(i / (2.0 * i0))
        eta = np.zeros_like(x)  # Newton on the monotone Butler-Volmer curve
        for _ in range(100):
            g = self.current_density(x, self.ocp(x) + eta) - i
            dg = i0 * self.f * (self.alpha * np.exp(self.alpha * self.f * eta)
                                + (1 - self.alpha) * np.exp(-(1 - self.alpha) * self.f * eta))
            step = g / dg
            eta -= step
            if np.all(np.abs(step) < 1e-14):
                break
        return self.ocp(x) + eta
