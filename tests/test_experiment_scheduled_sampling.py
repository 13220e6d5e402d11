"""Tests of benchmarks/experiments/scheduled_sampling.py: the tabular fit, the runs, the drawing."""

import math
import os
import re
import tempfile

from absl.testing import absltest
import numpy as np

from benchmarks import configs
from benchmarks.analysis import verdicts
from benchmarks.engine import experiment as experiment_lib
from benchmarks.experiments import scheduled_sampling as exp
from objectives import scheduled_sampling as ss

# Tolerance of the numerical minimiser's KL[P‖Q] against log(2/(1+ε)), nats per sequence.
# Float32 resolution of values ≤ log 2 is ~6e-8 (one ulp); over 10 random starts the quick
# fit (300 cosine-decayed Adam steps) ends within 3e-7 at every ε, ε = 1 included (there the
# optimum is at infinite logits and the KL is what the steps reach). 1e-5 leaves a 30× margin
# and still has power: Adam at a constant step drifts ~1e-3 off, MLE's answer (KL = 0) is
# off by up to log 2, and since |dKL/dε| = 1/(1+ε) ≥ ½ it pins ε to within 2e-5.
ATOL = 1e-5

METRICS = ('nll_test', 'kl_pq', 'nll_oracle', 'entropy_q', 'kl_qp')


def _training_rows(ss_excess: float, seeds=(0, 1, 2), steps=(0, 10, 20)):
  """Synthetic training rows of the 'small' run: SS's kl_pq = MLE's + ss_excess (per seed)."""
  rng = np.random.default_rng(0)
  rows = []
  for seed in seeds:
    noise = rng.normal(0.0, 0.01)
    for scheme in (exp.MLE, exp.SS):
      for step in steps:
        kl_pq = 1.0 / (1 + step) + 0.2 + noise + (ss_excess if scheme == exp.SS else 0.0)
        row = {'run': 'small', 'scheme': scheme, 'base_scheme': scheme, 'seed': seed,
               'pi': None, 'step': step, 'diverged': False, 'phase': 'train',
               'nll_test': 5.0 + kl_pq, 'kl_pq': kl_pq, 'nll_oracle': 6.0 - 0.01 * step,
               'entropy_q': 5.5, 'kl_qp': 0.5 + 0.3 / (1 + step)}
        row.update({f'{m}_se': 0.01 for m in METRICS})
        rows.append(row)
  # Rows the drawing must ignore: a warm start, and a diverged seed with a wild value.
  rows.append(dict(rows[0], scheme='warm_start', phase='warm_start', kl_pq=99.0))
  rows.append(dict(rows[-2], seed=7, diverged=True, kl_pq=float('nan')))
  return rows


class ComputeTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.rows = exp.compute(experiment_lib.Options(quick=True), None)

  def test_numerical_minimiser_matches_the_closed_form(self):
    self.assertLen(self.rows, exp.QUICK_GRID)
    eps = np.array([r['eps'] for r in self.rows])
    np.testing.assert_allclose(eps, np.linspace(0.0, 1.0, exp.QUICK_GRID))
    for r in self.rows:
      self.assertEqual(r['run'], 'tabular')
      np.testing.assert_allclose(r['kl_pq_closed_form'], math.log(2 / (1 + r['eps'])),
                                 rtol=1e-12)
      np.testing.assert_allclose(r['kl_pq_numeric'], r['kl_pq_closed_form'], atol=ATOL,
                                 err_msg=f'eps={r["eps"]}')
      # The minimiser is the closed-form fixed point, cell by cell of the joint, and the
      # fixed point's own KL is the closed form.
      self.assertLess(r['fixed_point_max_abs_diff'], ATOL)
      np.testing.assert_allclose(r['kl_pq_fixed_point'], r['kl_pq_closed_form'], atol=1e-6)
    # ε = 0: the product of the marginals, KL = log 2; ε = 1: P itself, KL = 0.
    np.testing.assert_allclose(self.rows[0]['kl_pq_numeric'], math.log(2), atol=ATOL)
    np.testing.assert_allclose(self.rows[-1]['kl_pq_numeric'], 0.0, atol=ATOL)
    # Improper in between: at ε = ½ the minimiser is log(4/3) = 0.288 nats away from P.
    mid = self.rows[len(self.rows) // 2]
    self.assertEqual(mid['eps'], 0.5)
    self.assertGreater(mid['kl_pq_numeric'], 0.28)

  def test_draw_writes_the_figure_and_tables(self):
    with tempfile.TemporaryDirectory() as out:
      md = exp.draw(self.rows + _training_rows(0.1), out, experiment_lib.Options(quick=True))
      png = os.path.join(out, 'scheduled_sampling.png')
      self.assertTrue(os.path.isfile(png))
      self.assertGreater(os.path.getsize(png), 10_000)
    lines = md.splitlines()
    eps_lines = [l for l in lines if re.match(r'\| [0-9.]+ \| ', l)]
    self.assertLen(eps_lines, exp.QUICK_GRID)
    self.assertIn('| 0.5 | 0.287682 | 0.287682 |', md)
    # One final-step line per scheme at step 20: MLE's 3 seeds, SS's 3 of 4 (the diverged seed
    # is left out of the means, as the warm start is of everything).
    self.assertLen([l for l in lines if l.startswith(f'| {exp.MLE} | 20 | 3/3 |')], 1)
    self.assertLen([l for l in lines if l.startswith(f'| {exp.SS} | 20 | 3/4 |')], 1)
    self.assertNotIn('warm_start', md)
    # Paired difference: exactly 0.1 per seed (zero spread). Numbers only: no verdict word.
    self.assertRegex(md, r'Paired difference SS − MLE in KL\[P‖Q\] per token at the final '
                         r'step: 0\.1 ± [0-9.e-]+ over 3 seeds')
    for word in ('supported', 'contradicted', 'resolved', 'above', 'below', 'matches'):
      self.assertNotIn(word, md)
    worst = float(re.search(r'max abs error ([0-9.e+-]+) ', md).group(1))
    self.assertLess(worst, ATOL)

  def test_verdicts_follow_the_rows(self):
    options = experiment_lib.Options()
    def words(rows):
      return {v.claim.name: v.word for v in verdicts.judge(exp.claims(options), rows)}
    seeds = tuple(range(verdicts.MIN_SEEDS))
    self.assertEqual(words(self.rows + _training_rows(0.1, seeds)),
                     {'closed_form': 'supported', 'fixed_point': 'supported',
                      'ss_above_mle': 'supported'})
    self.assertEqual(words(self.rows + _training_rows(-0.05, seeds))['ss_above_mle'],
                     'contradicted')
    # Three seeds: the numbers, but no verdict.
    self.assertEqual(words(self.rows + _training_rows(0.1))['ss_above_mle'], 'unresolved')
    # SS diverged at the final step for seed 2: that seed drops out, counted.
    rows = [dict(r, diverged=True, kl_pq=float('nan'))
            if (r['scheme'], r['seed'], r['step']) == (exp.SS, 2, 20) else r
            for r in _training_rows(0.1, seeds)]
    [v] = [v for v in verdicts.judge(exp.claims(options), self.rows + rows)
           if v.claim.name == 'ss_above_mle']
    self.assertEqual((v.evidence.n, v.evidence.dropped), (verdicts.MIN_SEEDS - 1, 1))
    off = [dict(r, kl_pq_numeric=r['kl_pq_numeric'] + 1e-3) if r['eps'] == 0.5 else r
           for r in self.rows]
    self.assertEqual(words(off + _training_rows(0.1))['closed_form'], 'contradicted')
    with tempfile.TemporaryDirectory() as out:
      md = exp.draw(self.rows + _training_rows(-0.05), out, options)
    self.assertRegex(md, r'SS − MLE in KL\[P‖Q\] per token at the final step: -0\.05')

  def test_draw_without_training_rows(self):
    with tempfile.TemporaryDirectory() as out:
      md = exp.draw(self.rows, out, experiment_lib.Options())
      self.assertGreater(os.path.getsize(os.path.join(out, 'scheduled_sampling.png')), 0)
    self.assertIn('No training rows.', md)


class RunsTest(absltest.TestCase):

  def test_variants_and_default_size(self):
    run = exp.runs(experiment_lib.Options())['small']
    self.assertEqual(run.preset, 'small')
    self.assertEqual(run.overrides, {'num_seeds': 8})
    self.assertEqual(run.variants, {'mle': ('mle', {}),
                                    'scheduled_sampling': ('scheduled_sampling', {})})
    self.assertEqual(exp.runs(experiment_lib.Options(num_seeds=7))['small'].overrides['num_seeds'], 7)

  def test_quick_overrides_are_fields_of_the_preset_and_anneal_eps(self):
    run = exp.runs(experiment_lib.Options(quick=True))['small']
    config = configs.get_preset(run.preset)
    for field, value in run.overrides.items():
      *path, leaf = field.split('.')
      section = config
      for name in path:
        section = section[name]
      self.assertIn(leaf, section, field)
      section[leaf] = value
    self.assertEqual(config.num_seeds, 2)
    self.assertEqual(config.train.num_steps % config.train.eval_every, 0)
    ss.check_config(config)
    cfg = config.scheduled_sampling
    self.assertEqual(float(ss.epsilon(cfg, 0)), 1.0)
    np.testing.assert_allclose(float(ss.epsilon(cfg, config.train.num_steps)), 0.25,
                               atol=1e-6)


if __name__ == '__main__':
  absltest.main()
