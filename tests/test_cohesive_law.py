"""Traction-separation laws: peak traction, toughness, irreversibility, contact, mixed mode.

The "two-block bar" here is two rigid blocks joined by one interface point under displacement
control, so the opening equals the applied displacement; the finite-element version belongs to
the cohesive-zone issue.
"""

import numpy as np
import pytest

from nmcfem.cohesive.law import CohesiveLaw, dissipated_energy, evaluate
from nmcfem.config import Config

TN, GC = 200e6, 1.0  # Pa, J/m^2 (Supplementary Table 1)


def _law(law="bilinear", **kw):
    # the sharp open/closed switch, so that the secant is exact down to zero opening
    return CohesiveLaw(strength=TN, toughness=GC, law=law, **{"contact_smoothing": 0.0, **kw})


def pull(law, path, component=0):
    """Drive one interface point along the openings ``path`` (m); return tractions and history."""
    kappa = np.zeros(1)
    damage = np.zeros(1)
    out_t, out_k = [], []
    for value in path:
        delta = np.zeros((1, 3))
        delta[0, component] = value
        res = evaluate(law, delta, kappa, damage)
        kappa, damage = res["kappa"], res["damage"]  # commit: each increment converged
        out_t.append(res["traction"][0, component])
        out_k.append(kappa[0])
    return np.array(out_t), np.array(out_k)


def work(path, traction):
    return float(np.sum(0.5 * (traction[1:] + traction[:-1]) * np.diff(path)))


@pytest.mark.parametrize("kind,end", [("bilinear", 1.02), ("exponential", 40.0)])
def test_peak_traction_and_toughness(kind, end):
    law = _law(kind, residual=0.0)
    scale = law.final_opening if kind == "bilinear" else law.critical_opening
    path = np.linspace(0.0, end * scale, 8001)
    t, kappa = pull(law, path)
    assert t.max() == pytest.approx(TN, rel=0.01)
    assert work(path, t) == pytest.approx(GC, rel=0.02)
    # the closed-form dissipated energy agrees with the path integral at every history
    for i in (len(path) // 7, len(path) // 3, -1):
        recoverable = 0.5 * t[i] * path[i]
        assert dissipated_energy(law, kappa[i]) == pytest.approx(
            work(path[: i + 1 if i > 0 else None], t[: i + 1 if i > 0 else None]) - recoverable,
            rel=1e-3, abs=1e-6)


def test_initial_stiffness_does_not_change_the_result():
    results = []
    for factor in (50.0, 500.0):
        law = _law(stiffness_factor=factor, residual=0.0)
        path = np.linspace(0.0, 1.02 * law.final_opening, 8001)
        t, _ = pull(law, path)
        results.append((t.max(), work(path, t)))
    assert results[1][0] == pytest.approx(results[0][0], rel=0.01)
    assert results[1][1] == pytest.approx(results[0][1], rel=0.01)


def test_compression_never_damages():
    law = _law()
    kappa = np.zeros(3)
    delta = np.array([[-5e-9, 0, 0], [-1e-7, 0, 0], [-1e-6, 0, 0]])
    res = evaluate(law, delta, kappa)
    assert np.all(res["damage"] == 0) and np.all(res["kappa"] == 0)
    assert np.allclose(res["traction"][:, 0], law.contact_factor * law.initial_stiffness
                       * delta[:, 0])


@pytest.mark.parametrize("kind", ["bilinear", "exponential"])
def test_unloading_follows_the_secant_and_reloading_retraces_it(kind):
    law = _law(kind)
    peak = 0.5 * law.final_opening if kind == "bilinear" else 2.0 * law.critical_opening
    up = np.linspace(0, peak, 2001)
    down = np.linspace(peak, 0, 1001)[1:]
    again = np.linspace(0, 1.2 * peak, 2001)[1:]
    t, kappa = pull(law, np.concatenate([up, down, again]))
    t_peak = t[len(up) - 1]
    secant = t_peak / peak
    t_down = t[len(up):len(up) + len(down)]
    assert np.allclose(t_down, secant * down, rtol=1e-6, atol=1e-3)
    t_again = t[len(up) + len(down):]
    below = again <= peak
    assert np.allclose(t_again[below], secant * again[below], rtol=1e-6, atol=1e-3)
    assert np.all(t_again[~below] < t_peak + 1.0)  # beyond the old maximum: softening resumes
    assert kappa[len(up) + len(down) - 1] == pytest.approx(peak)


def test_pure_shear_uses_the_effective_opening():
    beta = 0.5
    law = _law(shear_weight=beta, residual=0.0)
    path = np.linspace(0.0, 1.02 * law.final_opening / beta, 8001)
    t, _ = pull(law, path, component=1)
    assert t.max() == pytest.approx(beta * TN, rel=0.01)  # effective traction t_t/beta = t_n
    assert work(path, t) == pytest.approx(GC, rel=0.02)
    bk = _law(shear_weight=beta, residual=0.0, mixed_mode="benzeggagh-kenane",
              shear_toughness_ratio=2.0)
    path = np.linspace(0.0, 1.02 * 2 * bk.final_opening / beta, 8001)
    t, _ = pull(bk, path, component=1)
    assert work(path, t) == pytest.approx(2.0 * GC, rel=0.02)  # G_IIc = 2 G_Ic


@pytest.mark.parametrize("kind", ["bilinear", "exponential"])
def test_tangent_is_consistent(kind):
    law = _law(kind, shear_weight=0.7)
    rng = np.random.default_rng(1)
    scale = law.final_opening if kind == "bilinear" else law.critical_opening
    delta = rng.uniform(0.05, 0.4, size=(6, 3)) * scale
    delta[3, 0] *= -1  # one point in compression with shear
    kappa_old = 0.5 * np.linalg.norm(delta, axis=1) * 0.1  # all loading
    res = evaluate(law, delta, kappa_old)
    h = 1e-7 * scale
    for j in range(3):
        dp, dm = delta.copy(), delta.copy()
        dp[:, j] += h
        dm[:, j] -= h
        fd = (evaluate(law, dp, kappa_old)["traction"]
              - evaluate(law, dm, kappa_old)["traction"]) / (2 * h)
        assert np.allclose(res["tangent"][:, :, j], fd, rtol=1e-5,
                           atol=1e-6 * law.initial_stiffness)


def test_viscous_regularisation_delays_damage():
    law = _law(viscosity=10.0)
    delta = np.array([[0.5 * law.final_opening, 0, 0]])
    quick = evaluate(law, delta, np.zeros(1), np.zeros(1), dt=1.0)["damage"][0]
    rate_free = evaluate(_law(), delta, np.zeros(1))["damage"][0]
    assert 0 < quick < rate_free and quick == pytest.approx(rate_free / 11.0)


def test_law_from_config():
    cfg = Config()
    law = CohesiveLaw.from_config(cfg.cohesive, cfg.cohesive.grain_boundary)
    assert law.final_opening == pytest.approx(10e-9)  # 2 G_c / t_n = 10 nm (DESIGN.md)
    assert law.initial_stiffness == pytest.approx(50 * 200e6 / 10e-9)


@pytest.mark.parametrize("kind", ["bilinear", "exponential"])
def test_contact_smoothing_is_c1_and_exact_outside_its_band(kind):
    law = _law(kind, contact_smoothing=0.05)
    sharp = _law(kind)
    from nmcfem.cohesive.law import peak_opening

    eps = 0.05 * peak_opening(law)
    damaged = np.full(1, 3.0 * peak_opening(law))  # history: softened, d > 0
    dn = np.linspace(-3 * eps, 3 * eps, 601)
    delta = np.stack([dn, np.zeros_like(dn), np.zeros_like(dn)], axis=1)
    kappa = np.repeat(damaged, len(dn))
    t = evaluate(law, delta, kappa)
    t0 = evaluate(sharp, delta, kappa)
    outside = np.abs(dn) >= eps
    assert np.allclose(t["traction"][outside], t0["traction"][outside], rtol=1e-12, atol=0)
    # the normal stiffness varies continuously across the band (C1 traction) ...
    k = t["tangent"][:, 0, 0]
    assert np.max(np.abs(np.diff(k))) < 0.02 * law.initial_stiffness
    # ... and matches a finite difference of the traction
    fd = np.gradient(t["traction"][:, 0], dn)
    assert np.allclose(fd[1:-1], k[1:-1], rtol=0, atol=0.01 * law.initial_stiffness)
