"""Tests of benchmarks/experiments/huszar_1d.py: the fits (quick), their end points, the drawing."""

import json
import math
import os
import tempfile

from absl.testing import absltest
import numpy as np
import scipy.special
import scipy.stats

from benchmarks.engine import experiment as experiment_lib
from benchmarks.experiments import huszar_1d as exp
from models import toy

# Slack for comparing objective values of different fits, nats. The fits minimise the float32
# quadrature objective, evaluated here in float64 on the same grid: the two differ by float32
# rounding (~1e-7 relative; test_toy pins the quadrature to 1e-5 of closed forms), and the
# cosine-decayed Adam ends at a minimum, where an error of 1e-3 in μ or log σ costs
# ~½ · curvature · 1e-6 ≲ 1e-6 nats. 1e-5 is ~10× both, and far below the bounds it pads
# (of order 1e-2 nats here), so it does not change what they allow.
TOL = 1e-5


def _grid():
  """The quick grid in float64, [n]."""
  return np.linspace(exp.GRID_LO, exp.GRID_HI, exp.QUICK_POINTS)


def _log_masses(log_density):
  """Normalised log-masses on the uniform grid, float64."""
  return log_density - scipy.special.logsumexp(log_density)


def _log_p():
  x = _grid()
  return _log_masses(scipy.special.logsumexp(
      [math.log(w) + scipy.stats.norm.logpdf(x, m, s)
       for w, m, s in zip(*(exp.TARGET[k] for k in ('weights', 'mus', 'sigmas')))], axis=0))


def _log_q(row):
  return _log_masses(scipy.stats.norm.logpdf(_grid(), row['mu'], row['sigma']))


def _kl(lp, lq):
  return float((np.exp(lp) * (lp - lq)).sum())


def _chi2(lp, lq):
  """χ²(P‖Q) = Σ p²/q − 1, in log-space."""
  return math.expm1(scipy.special.logsumexp(2 * lp - lq))


def _scaled_js(lp, lq, pi):
  """JS_π(P, Q) / (π(1−π)) for 0 < π < 1, float64."""
  lm = np.logaddexp(math.log(pi) + lp, math.log1p(-pi) + lq)
  return (pi * _kl(lp, lm) + (1 - pi) * _kl(lq, lm)) / (pi * (1 - pi))


def _gaussian_kl(a, b):
  """KL[N(a) ‖ N(b)] in closed form for rows a, b with 'mu', 'sigma'."""
  return (math.log(b['sigma'] / a['sigma'])
          + (a['sigma'] ** 2 + (a['mu'] - b['mu']) ** 2) / (2 * b['sigma'] ** 2) - 0.5)


class Huszar1dTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.rows = exp.compute(experiment_lib.Options(quick=True), None)
    cls.fits = [r for r in cls.rows if r['run'] == exp.RUN]
    cls.kl_pq, cls.js, cls.kl_qp = exp._split(cls.rows)
    cls.by_pi = {r['pi']: r for r in cls.js}

  def test_rows(self):
    json.dumps(self.rows, allow_nan=False)  # JSON-able, all finite
    self.assertEqual([r['objective'] for r in self.fits],
                     ['kl_pq'] + ['js_pi'] * len(exp.PIS) + ['kl_qp'])
    self.assertEqual([r['pi'] for r in self.fits], [None] + list(exp.PIS) + [None])
    for r in self.fits:
      self.assertGreater(r['sigma'], 0)
      self.assertEqual(r['js_pi_scaled'] is None, r['pi'] is None)
      self.assertEqual(r['grid_points'], exp.QUICK_POINTS)
    local = [r for r in self.rows if r['run'] == exp.LOCAL]
    self.assertLen(local, len(self.fits) * (len(exp.TARGET['weights']) + 1))
    # Each fit is the best of its starts: its objective is their minimum.
    for r in self.fits:
      values = [l['value'] for l in local
                if l['objective'] == r['objective'] and l['pi'] == r['pi']]
      own = r[r['objective']] if r['pi'] is None else r['js_pi_scaled']
      np.testing.assert_allclose(own, min(values), rtol=1e-6)

  def test_kl_pq_fit_is_the_moment_match(self):
    # The unique minimiser of KL[P‖Q] over Gaussians (test_toy reaches it from far starts).
    mean, std = toy.moment_match(*(np.asarray(exp.TARGET[k], np.float32)
                                   for k in ('weights', 'mus', 'sigmas')))
    self.assertAlmostEqual(self.kl_pq['mu'], float(mean), delta=1e-3)
    self.assertAlmostEqual(self.kl_pq['sigma'], float(std), delta=1e-3)

  def test_each_fit_is_best_under_its_own_objective(self):
    # True of global minimisers whatever P is; checks the best-of-starts choice.
    lp = _log_p()
    lqs = [_log_q(r) for r in self.fits]
    kl_pqs = [_kl(lp, lq) for lq in lqs]
    kl_qps = [_kl(lq, lp) for lq in lqs]
    self.assertLessEqual(kl_pqs[0], min(kl_pqs) + TOL)
    self.assertLessEqual(kl_qps[-1], min(kl_qps) + TOL)
    for i, r in enumerate(self.js, start=1):
      values = [_scaled_js(lp, lq, r['pi']) for lq in lqs]
      self.assertLessEqual(values[i], min(values) + TOL, msg=f'pi={r["pi"]}')
    # The float32 columns agree with this float64 evaluation.
    np.testing.assert_allclose([r['kl_pq'] for r in self.fits], kl_pqs, rtol=1e-4)
    np.testing.assert_allclose([r['kl_qp'] for r in self.fits], kl_qps, rtol=1e-4)

  def test_kl_qp_fit_is_at_least_as_good_as_the_heavier_mode(self):
    # Q = N_k gives KL[Q‖P] ≤ −log w_k (p ≥ w_k N_k); the mode-seeking fit must do as well.
    k = int(np.argmax(exp.TARGET['weights']))
    self.assertLessEqual(self.kl_qp['kl_qp'], -math.log(exp.TARGET['weights'][k]) + TOL)

  def test_end_points_approach_the_kl_fits(self):
    # With S_π = JS_π/(π(1−π)), test_toy's sandwich gives, for θ_π = argmin S_π:
    #   (1+π) KL[P‖Q_π] − π χ²(P‖Q_π)/2 ≤ S_π(θ_π) ≤ S_π(θ_0) ≤ (1−π) KL[P‖Q_0] + π KL[Q_0‖P]
    # with θ_0 = argmin KL[P‖Q], hence
    #   KL[P‖Q_π] − KL[P‖Q_0] ≤ π (KL[Q_0‖P] − 2 KL[P‖Q_0] + χ²(P‖Q_π)/2) / (1+π),
    # and symmetrically, with θ_1 = argmin KL[Q‖P],
    #   KL[Q_π‖P] − KL[Q_1‖P] ≤ (1−π) (KL[P‖Q_1] − 2 KL[Q_1‖P] + χ²(Q_π‖P)/2) / (2−π).
    # The only assumption, S_π(θ_π) ≤ S_π(θ_{0,1}), is checked above (within TOL).
    lp = _log_p()
    first, last = self.by_pi[min(exp.PIS)], self.by_pi[max(exp.PIS)]
    pi = first['pi']
    lq0, lq = _log_q(self.kl_pq), _log_q(first)
    gap = _kl(lp, lq) - _kl(lp, lq0)
    bound = pi * (_kl(lq0, lp) - 2 * _kl(lp, lq0) + _chi2(lp, lq) / 2) / (1 + pi)
    self.assertBetween(gap, -TOL, bound + TOL)
    # Gaussians are an exponential family and Q_0 is P's moment match, so (Pythagoras for
    # the M-projection) KL[P‖Q_π] − KL[P‖Q_0] = KL[Q_0‖Q_π]: the parameters are close too.
    self.assertLessEqual(_gaussian_kl(self.kl_pq, first), bound + 2 * TOL)
    pi = last['pi']
    lq1, lq = _log_q(self.kl_qp), _log_q(last)
    gap = _kl(lq, lp) - _kl(lq1, lp)
    bound = (1 - pi) * (_kl(lp, lq1) - 2 * _kl(lq1, lp) + _chi2(lq, lp) / 2) / (2 - pi)
    self.assertBetween(gap, -TOL, bound + TOL)

  def test_draw(self):
    with tempfile.TemporaryDirectory() as out:
      md = exp.draw(self.rows, out, experiment_lib.Options(quick=True))
      png = os.path.join(out, 'huszar_1d.png')
      self.assertTrue(os.path.exists(png))
      self.assertGreater(os.path.getsize(png), 10_000)
    table = [l for l in md.splitlines() if l.startswith('| ') and not l.startswith('| objective')]
    self.assertLen(table, len(self.fits))
    for line, r in zip(table, self.fits):
      self.assertIn(f'| {r["mu"]:.4f} | {r["sigma"]:.4f} |', line)
    sentence = md.strip().splitlines()[-1]
    self.assertStartsWith(sentence, 'As π grows')

  def test_claims_follow_the_rows(self):
    # Swap two π fits' σ: the ordering claim is now contradicted; on the fits themselves
    # every claim holds (the closed-form moment match, the mode, the orderings).
    from benchmarks.analysis import verdicts
    options = experiment_lib.Options(quick=True)
    words = lambda rows: {v.claim.name: v.word
                          for v in verdicts.judge(exp.claims(options), rows)}
    self.assertEqual(set(words(self.rows).values()), {'supported'})
    rows = [dict(r) for r in self.rows]
    js = sorted((r for r in rows if r['run'] == exp.RUN and r['objective'] == 'js_pi'),
                key=lambda r: r['pi'])
    js[0]['sigma'], js[-1]['sigma'] = js[-1]['sigma'], js[0]['sigma']
    self.assertEqual(words(rows)['js_sigma_falls'], 'contradicted')
    mu, sigma = exp.moment_match()
    self.assertAlmostEqual(mu, 1.2)
    self.assertAlmostEqual(sigma, math.sqrt(0.3 * (0.64 + 9) + 0.7 * (1 + 9) - 1.44))
    with tempfile.TemporaryDirectory() as out:
      md = exp.draw(rows, out, options)
    sentence = md.strip().splitlines()[-1]
    k = int(np.argmax(np.abs(np.diff([r['sigma'] for r in js]))))
    self.assertIn(f'between π = {js[k]["pi"]:g} and π = {js[k + 1]["pi"]:g}', sentence)
    for word in ('monotone', 'supported', 'contradicted'):
      self.assertNotIn(word, md)


if __name__ == '__main__':
  absltest.main()
