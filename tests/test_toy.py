"""Tests of models/toy.py: quadrature divergences against closed forms, and the Gaussian fits."""

import math

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np
import scipy.special
import scipy.stats

from models import toy

# A grid wide enough for every density below (mass outside ~1e-10 or less) and fine enough
# (dx = 0.02 ≤ σ/2 for every σ ≥ 0.3 used) for spectral accuracy: the remaining error is
# float32 rounding.
X, DX = toy.grid(-20.0, 20.0, 2001)

# Well separated: the modes are 8 apart, 11σ and 8σ of the two components.
SEPARATED = {'weights': (0.3, 0.7), 'mus': (-4.0, 4.0), 'sigmas': (0.7, 1.0)}

# Jitted once and shared (objective, steps, learning_rate static; π and init traced).
_fit_starts = jax.jit(toy.fit_gaussian_starts,
                      static_argnames=('objective', 'steps', 'learning_rate'))
_fit = jax.jit(toy.fit_gaussian, static_argnames=('objective', 'steps', 'learning_rate'))
_kl = jax.jit(toy.kl)
_js = jax.jit(toy.js_pi_scaled)


def _mixture(spec):
  """(weights, mus, sigmas) float32 arrays of a mixture spec dict."""
  return tuple(jnp.asarray(spec[k], jnp.float32) for k in ('weights', 'mus', 'sigmas'))


def _gaussian_kl(mu1, sigma1, mu2, sigma2):
  """KL[N(μ1, σ1²) ‖ N(μ2, σ2²)] in closed form, float64."""
  return (math.log(sigma2 / sigma1) + (sigma1**2 + (mu1 - mu2) ** 2) / (2 * sigma2**2)
          - 0.5)


class QuadratureTest(parameterized.TestCase):

  def test_grid(self):
    x, dx = toy.grid(-1.0, 1.0, 5)
    np.testing.assert_allclose(x, [-1.0, -0.5, 0.0, 0.5, 1.0])
    self.assertEqual(float(dx), 0.5)
    with self.assertRaisesRegex(ValueError, 'n >= 2'):
      toy.grid(0.0, 1.0, 1)

  def test_mixture_logpdf_against_scipy(self):
    weights, mus, sigmas = SEPARATED['weights'], SEPARATED['mus'], SEPARATED['sigmas']
    x = np.linspace(-8.0, 8.0, 33)
    expected = sum(w * scipy.stats.norm.pdf(x, m, s) for w, m, s in zip(weights, mus, sigmas))
    np.testing.assert_allclose(jnp.exp(toy.mixture_logpdf(x, *_mixture(SEPARATED))),
                               expected, rtol=1e-5, atol=1e-30)
    np.testing.assert_allclose(toy.normal_logpdf(x, 0.5, 2.0),
                               scipy.stats.norm.logpdf(x, 0.5, 2.0), rtol=1e-6)
    with self.assertRaisesRegex(ValueError, r'mus.shape=\(3,\)'):
      toy.mixture_logpdf(x, jnp.ones(2) / 2, jnp.zeros(3), jnp.ones(2))

  def test_moment_match_against_quadrature(self):
    # The closed form against the mean and std of the density, by float64 quadrature.
    spec = {'weights': (0.2, 0.5, 0.3), 'mus': (-3.0, 0.5, 4.0), 'sigmas': (0.5, 1.0, 2.0)}
    x = np.linspace(-30.0, 30.0, 60001)
    p = sum(w * scipy.stats.norm.pdf(x, m, s)
            for w, m, s in zip(spec['weights'], spec['mus'], spec['sigmas']))
    p /= p.sum()
    mean = (p * x).sum()
    std = math.sqrt((p * (x - mean) ** 2).sum())
    np.testing.assert_allclose(toy.moment_match(*_mixture(spec)), (mean, std), rtol=1e-6)

  @parameterized.named_parameters(
      ('close', 0.5, 1.0, 0.3, 1.1),
      ('shifted_wider', 0.5, 1.0, -1.0, 2.0),
      ('narrower_far', -2.0, 1.5, 3.0, 0.5),
  )
  def test_kl_between_gaussians_matches_closed_form(self, mu1, sigma1, mu2, sigma2):
    log_p, log_q = toy.normal_logpdf(X, mu1, sigma1), toy.normal_logpdf(X, mu2, sigma2)
    # Float32 rounding of the normalised log-masses and of the sum over 2001 points: a few
    # ulps of the value; 1e-5 relative leaves a wide margin while any quadrature error
    # (a truncated tail, too coarse a grid) would show at 1e-4 or more.
    np.testing.assert_allclose(_kl(log_p, log_q, DX), _gaussian_kl(mu1, sigma1, mu2, sigma2),
                               rtol=1e-5)
    np.testing.assert_allclose(_kl(log_q, log_p, DX), _gaussian_kl(mu2, sigma2, mu1, sigma1),
                               rtol=1e-5)

  def test_js_end_points_are_the_two_kls(self):
    log_p = toy.mixture_logpdf(X, *_mixture(SEPARATED))
    log_q = toy.normal_logpdf(X, 1.0, 3.0)
    kl_pq, kl_qp = _kl(log_p, log_q, DX), _kl(log_q, log_p, DX)
    self.assertGreater(abs(float(kl_pq) - float(kl_qp)), 0.1)  # the two limits differ
    np.testing.assert_allclose(_js(log_p, log_q, DX, 0.0), kl_pq, rtol=1e-6)
    np.testing.assert_allclose(_js(log_p, log_q, DX, 1.0), kl_qp, rtol=1e-6)

  @parameterized.product(
      # A covering Q (χ²(P‖Q) ≈ 2: the lower bound from KL[P‖Q] is tight at small π) and
      # one on P's heavier mode (χ²(Q‖P) ≈ 0.8: the one from KL[Q‖P] is tight near π = 1);
      # the other χ² is astronomical in each, making that bound vacuous but still true.
      q=((1.0, 3.0), (3.5, 0.9)),
      pi=(1e-3, 0.1, 0.5, 0.9, 1 - 1e-3),
  )
  def test_js_is_sandwiched_between_the_kls(self, q, pi):
    # S_π = JS_π/(π(1−π)) is the f-divergence with f''(t) = 1/(t (1 − π + πt)), t = p/q.
    # Jensen on 1/x: f'' ≤ (1−π)/t + π/t², so S_π ≤ (1−π) KL[P‖Q] + π KL[Q‖P]. And
    # 1/(1+u) ≥ 1 − u (u > −1) gives f'' ≥ (1+π)/t − π and f'' ≥ (2−π)/t² − (1−π)/t³, so
    # S_π ≥ (1+π) KL[P‖Q] − π χ²(P‖Q)/2 and S_π ≥ (2−π) KL[Q‖P] − (1−π) χ²(Q‖P)/2: the
    # continuity into the two limits, at a rate set by the χ²'s. Exact for the grid's
    # discrete distributions, so the slack is only float32 rounding.
    log_p = toy.mixture_logpdf(X, *_mixture(SEPARATED))
    log_q = toy.normal_logpdf(X, *q)
    lp = np.asarray(toy.log_masses(log_p, DX), np.float64)
    lq = np.asarray(toy.log_masses(log_q, DX), np.float64)
    chi2_pq = math.expm1(scipy.special.logsumexp(2 * lp - lq))
    chi2_qp = math.expm1(scipy.special.logsumexp(2 * lq - lp))
    kl_pq, kl_qp = float(_kl(log_p, log_q, DX)), float(_kl(log_q, log_p, DX))
    value = float(_js(log_p, log_q, DX, pi))
    slack = 1e-5 * max(kl_pq, kl_qp)
    self.assertLessEqual(value, (1 - pi) * kl_pq + pi * kl_qp + slack)
    self.assertGreaterEqual(value, (1 + pi) * kl_pq - pi * chi2_pq / 2 - slack)
    self.assertGreaterEqual(value, (2 - pi) * kl_qp - (1 - pi) * chi2_qp / 2 - slack)

  @parameterized.parameters(0.0, 0.3, 0.5, 1.0)
  def test_js_between_identical_densities_is_zero(self, pi):
    log_p = toy.mixture_logpdf(X, *_mixture(SEPARATED))
    # Each term is p log(p / p) = 0 exactly in log-space; only rounding of 0 survives.
    np.testing.assert_allclose(_js(log_p, log_p, DX, pi), 0.0, atol=1e-7)

  def test_divergence_rejects_unknown_objective(self):
    with self.assertRaisesRegex(ValueError, "'kl'"):
      toy.divergence(X, X, DX, 'kl')


class FitTest(parameterized.TestCase):

  def test_kl_pq_fit_is_the_moment_match(self):
    # KL[P‖Q] = const + log σ + E_p[(x − μ)²] / (2σ²) has one stationary point in
    # (μ, log σ), μ = E_p x and σ² = Var_p x: every start must end there. The starts are not
    # the moment match: the components, and a narrow Gaussian far out in P's tail.
    weights, mus, sigmas = _mixture(SEPARATED)
    log_p = toy.mixture_logpdf(X, weights, mus, sigmas)
    starts = jnp.asarray([[-4.0, 0.7], [4.0, 1.0], [-9.0, 0.3], [2.0, 8.0]])
    fits = _fit_starts(log_p, X, objective='kl_pq', steps=1000, learning_rate=0.05,
                       init=starts, dx=DX)
    mean, std = toy.moment_match(weights, mus, sigmas)
    np.testing.assert_allclose(fits.mu, np.full(4, mean), atol=1e-3)
    np.testing.assert_allclose(fits.sigma, np.full(4, std), atol=1e-3)

  def test_kl_qp_fit_seeks_the_heavier_mode(self):
    weights, mus, sigmas = _mixture(SEPARATED)
    log_p = toy.mixture_logpdf(X, weights, mus, sigmas)
    fit = _fit(log_p, X, objective='kl_qp', steps=1000, learning_rate=0.05,
               init=toy.mixture_inits(weights, mus, sigmas), dx=DX)
    k, j = 1, 0  # the heavier component and the other
    # 1. The fit is at least as good as Q = N_k (the heavier component), whose KL[Q‖P] is
    #    at most −log w_k because p ≥ w_k N_k.
    log_nk = toy.normal_logpdf(X, mus[k], sigmas[k])
    kl_nk = float(_kl(log_nk, log_p, DX))
    self.assertLessEqual(kl_nk, -math.log(weights[k]) + 1e-6)
    self.assertLessEqual(float(fit.objective), kl_nk + 1e-6)
    # 2. Mode seeking, a posteriori: with p = w_k N_k (1 + r), r = w_j N_j / (w_k N_k),
    #    KL[Q‖N_k] = KL[Q‖P] + log w_k + E_q log(1 + r) ≤ KL[N_k‖P] + log w_k + E_q log(1 + r)
    #    ≤ E_q log(1 + r) =: δ, since E_{N_k} log(1 + r) ≥ 0. δ is small when Q sits on mode
    #    k (r is tiny there) and large when it covers mode j.
    q = np.exp(np.asarray(toy.log_masses(toy.normal_logpdf(X, fit.mu, fit.sigma), DX),
                          np.float64))
    log_r = (np.log(weights[j]) + scipy.stats.norm.logpdf(np.asarray(X, np.float64),
                                                          mus[j], sigmas[j])
             - np.log(weights[k]) - scipy.stats.norm.logpdf(np.asarray(X, np.float64),
                                                            mus[k], sigmas[k]))
    delta = float((q * np.logaddexp(0.0, log_r)).sum())
    bound = delta + 1e-5  # + the fit's float32 / optimisation slack, as in step 1
    kl_to_component = _gaussian_kl(float(fit.mu), float(fit.sigma), float(mus[k]),
                                   float(sigmas[k]))
    self.assertLessEqual(kl_to_component, bound)
    # KL[N(μ, σ²)‖N(μ_k, σ_k²)] ≥ h(ρ) = ½(ρ² − 1) − log ρ, ρ = σ/σ_k, and h(ρ) ≥ 0.72 (ρ − 1)²
    # for ρ ≤ 1.5 (h'' = 1 + 1/ρ² ≥ 1.44); it also bounds (μ − μ_k)² / (2σ_k²). So:
    self.assertLess(bound, 1e-4)  # the fit is on mode k, not covering both
    self.assertLessEqual(abs(float(fit.sigma) / float(sigmas[k]) - 1), math.sqrt(bound / 0.72))
    self.assertLessEqual(abs(float(fit.mu) - float(mus[k])),
                         float(sigmas[k]) * math.sqrt(2 * bound))

  def test_pi_grid_is_one_compile_and_vmaps(self):
    log_p = toy.mixture_logpdf(X, *_mixture(SEPARATED))
    init = toy.mixture_inits(*_mixture(SEPARATED))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def fit_grid(pis):
      return jax.vmap(lambda pi: toy.fit_gaussian(log_p, X, 'js_pi', pi, steps=20,
                                                  learning_rate=0.05, init=init, dx=DX))(pis)

    first = fit_grid(jnp.asarray([0.1, 0.5, 0.9]))
    second = fit_grid(jnp.asarray([0.2, 0.6, 0.8]))
    for fit in (first, second):
      chex.assert_shape(fit, (3,))
      chex.assert_tree_all_finite(fit)

  def test_best_fit_skips_nan(self):
    fits = toy.Fit(jnp.asarray([0.0, 1.0, 2.0]), jnp.ones(3), jnp.asarray([jnp.nan, 2.0, 1.0]))
    self.assertEqual(float(toy.best_fit(fits).mu), 2.0)

  def test_fit_rejects_bad_input(self):
    with self.assertRaisesRegex(ValueError, 'objective'):
      toy.fit_gaussian(X, X, 'kl', steps=1, learning_rate=0.1, init=[0.0, 1.0])
    with self.assertRaisesRegex(ValueError, r'x.shape=\(3,\)'):
      toy.fit_gaussian(X, X[:3], 'kl_pq', steps=1, learning_rate=0.1, init=[0.0, 1.0])


if __name__ == '__main__':
  absltest.main()
