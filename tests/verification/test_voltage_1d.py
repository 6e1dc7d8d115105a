"""The particle voltage against an independent 1D model: a single isotropic grain without shell
or cracks, the same OCP and Butler-Volmer kinetics, charged at 1C to 4.3 V, held there until
C/20, rested and discharged back to where it started (CC-CV-rest-CC).

The 1D model is a spherical finite-volume model written here: 240 cells, a surface node whose
flux balance carries the reaction, backward Euler on the time steps the 3D run took (the time
discretisation is the same in both, so the comparison isolates space and the implementation).
"""


import numpy as np
import pytest

from nmcfem import timeloop
from nmcfem.cycling import cycle_table
from nmcfem.experiment import parse_steps
from nmcfem.physics.electrochemistry import FARADAY, Kinetics
from tests.verification.conftest import isotropic_sphere_config, make_problem

pytestmark = pytest.mark.slow

R, D, X0 = 5e-6, 7e-15, 0.9
STEPS = ["Charge at 1C until 4.3 V", "Hold at 4.3 V until C/20", "Rest for 30 minutes",
         "Discharge at 1C until x = 0.9"]


class SphereFV:
    """Backward-Euler finite volumes for Li in a sphere with a Butler-Volmer surface."""

    def __init__(self, kinetics: Kinetics, c_max: float, n: int = 240):
        self.k, self.c_max, self.n = kinetics, c_max, n
        self.dr = R / n
        faces = np.linspace(0.0, R, n + 1)
        self.vol = 4 / 3 * np.pi * (faces[1:] ** 3 - faces[:-1] ** 3)
        self.area = 4 * np.pi * faces[1:-1] ** 2  # interior faces
        self.c = np.full(n + 1, X0 * c_max)  # cell averages, then the surface node
        self.one_c = c_max * 4 / 3 * np.pi * R ** 3 * FARADAY / 3600.0
        self.V = None

    def flux(self, cs, voltage):
        """Outward Li flux (mol/m^2/s) at surface concentration cs and potential voltage."""
        return self.k.current_density(cs / self.c_max, voltage) / FARADAY

    def step(self, dt, current=None, voltage=None):
        """One step under a current (A, positive on charge) or a voltage (V)."""
        n, old = self.n, self.c.copy()
        c = self.c.copy()
        for _ in range(50):
            res, jac = np.zeros(n + 1), np.zeros((n + 1, n + 1))
            res[:n] = self.vol * (c[:n] - old[:n]) / dt
            jac[np.arange(n), np.arange(n)] = self.vol / dt
            g = D * self.area / self.dr  # conductances of interior faces
            flow = g * (c[1:n] - c[:n - 1])  # inward (towards the centre) is negative
            res[:n - 1] -= flow
            res[1:n] += flow
            for i, gi in enumerate(g):
                jac[i, i] += gi
                jac[i, i + 1] -= gi
                jac[i + 1, i + 1] += gi
                jac[i + 1, i] -= gi
            g_s = D * 4 * np.pi * R ** 2 / (self.dr / 2)  # last cell centre to the surface
            res[n - 1] += g_s * (c[n - 1] - c[n])
            jac[n - 1, n - 1] += g_s
            jac[n - 1, n] -= g_s
            # surface node: diffusive supply = reaction outflow
            if current is not None:
                out, dout = current / (FARADAY * 4 * np.pi * R ** 2), 0.0
            else:
                out = self.flux(c[n], voltage)
                dout = (self.flux(c[n] * (1 + 1e-7), voltage) - out) / (c[n] * 1e-7)
            res[n] = g_s * (c[n] - c[n - 1]) + 4 * np.pi * R ** 2 * out
            jac[n, n] = g_s + 4 * np.pi * R ** 2 * dout
            jac[n, n - 1] = -g_s
            delta = np.linalg.solve(jac, -res)
            c += delta
            if np.max(np.abs(delta)) < 1e-10 * self.c_max:
                break
        self.c = c
        xs = c[n] / self.c_max
        if current is not None:
            self.V = float(self.k.voltage_at_uniform_current(xs, current
                                                             / (4 * np.pi * R ** 2)))
            return current
        self.V = voltage
        return 4 * np.pi * R ** 2 * FARADAY * float(self.flux(c[n], voltage))


class TransportOnly:
    """The particle problem with its mechanics left out (the voltage does not depend on it)."""

    def __init__(self, problem):
        self.problem = problem

    def __getattr__(self, name):
        return getattr(self.problem, name)

    def step(self, dt, mechanics=True):
        return self.problem.step(dt, mechanics=False)

    def solve_mechanics(self):
        return 0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("meshes"))
    cfg = isotropic_sphere_config(0.3e-6, [
        "geometry.mesh.grain_size=0.5e-6", f"loading.x_initial={X0}",
        f"experiment.steps={STEPS!r}", "time.dx_target=0.01", "time.dt_max=30",
        "time.dt_initial=2.0", "cohesive.enabled=false"])
    problem = make_problem(cfg, cache)
    rows = [problem.row()]

    def record(event, p, info):
        if event == "step":
            rows.append({**p.row(), "dt [s]": info["dt"], "step": info["step"]})

    summary = timeloop.run(TransportOnly(problem), cfg, [record])
    assert summary["stop_reason"].startswith("experiment done")
    rows[0]["dt [s]"] = 0.0
    return cfg, rows, cycle_table(rows, parse_steps(STEPS))


def test_voltage_current_and_relaxation_agree_with_the_1d_model(run):
    cfg, rows, _ = run
    c_max = cfg.materials.grain.c_max
    kin = Kinetics(cfg.electrochemistry, c_max, cfg.loading.temperature)
    fv = SphereFV(kin, c_max)
    volume = rows[0]["total_li [mol]"] / (rows[0]["mean_x [-]"] * c_max)
    one_c_3d = c_max * volume * FARADAY / 3600.0
    dv = {1: [], 4: []}
    hold, t4, start = [], [], 0.0
    for r, before in zip(rows[1:], rows):
        step = int(r["protocol_step"])
        if step in (1, 4):
            sign = 1.0 if step == 1 else -1.0
            fv.step(r["dt [s]"], current=sign * fv.one_c)
            dv[step].append(abs(r["voltage [V]"] - fv.V))
            if step == 4:
                if int(before["protocol_step"]) != 4:
                    start = before["time [s]"]
                t4.append(r["time [s]"] - start)
        elif step == 2:
            current = fv.step(r["dt [s]"], voltage=4.3)
            hold.append((r["current [A]"] / one_c_3d, current / fv.one_c))
        else:
            fv.step(r["dt [s]"], current=0.0)
    late = [d for d, t in zip(dv[4], t4) if t > 60.0]
    print(f"max |V_3D - V_1D|: charge {max(dv[1]) * 1e3:.3f} mV, discharge "
          f"{max(dv[4]) * 1e3:.3f} mV ({max(late) * 1e3:.3f} mV after its first minute)")
    assert max(dv[1]) < 2e-3
    # the discharge starts at x ~ 0.26, where dU/dx is four times steeper than at the charge's
    # start: the first minute's boundary layer, thinner than the surface elements, costs mV
    assert max(late) < 2e-3 and max(dv[4]) < 1e-2
    hold = np.array(hold)
    rel = np.abs(hold[:, 0] / hold[:, 1] - 1)
    print(f"hold current 3D/1D - 1: max {rel.max():.4f} over {len(hold)} steps, ends at "
          f"C/{1 / hold[-1, 0]:.1f}")
    assert rel.max() < 0.02 and hold[-1, 0] == pytest.approx(1 / 20, rel=0.03)
    # before the first step the particle rests at its open-circuit potential
    assert rows[0]["voltage [V]"] == pytest.approx(float(kin.ocp(X0)), abs=1e-6)
    # after the rest the particle is uniform: V = U(mean x)
    last_rest = [r for r in rows if int(r["protocol_step"]) == 3][-1]
    assert abs(last_rest["voltage [V]"] - kin.ocp(last_rest["mean_x [-]"])) < 1e-3


def test_lithium_balance_and_coulombic_efficiency(run):
    cfg, rows, cycles = run
    passed = sum(r["current [A]"] * r["dt [s]"] for r in rows[1:]) / FARADAY  # mol, out
    lost = rows[0]["total_li [mol]"] - rows[-1]["total_li [mol]"]
    assert abs(passed - lost) < 1e-8 * rows[0]["total_li [mol]"]
    assert rows[-1]["capacity [mAh]"] == pytest.approx(passed * FARADAY / 3.6, rel=1e-12,
                                                       abs=1e-20)
    assert rows[-1]["mean_x [-]"] == pytest.approx(X0, abs=1e-9)
    assert abs(cycles[0]["coulombic_efficiency [-]"] - 1.0) < 1e-6
