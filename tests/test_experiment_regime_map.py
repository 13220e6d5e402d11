"""Tests of benchmarks/experiments/regime_map.py on constructed rows: the slices' validation,
the runs they make, the derived rows, the maps' leaders and the claims' verdicts."""

import math
import os
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from benchmarks.analysis import verdicts
from benchmarks.engine import experiment as experiment_lib
from benchmarks.experiments import regime_map as exp

FULL, QUICK = experiment_lib.Options(), experiment_lib.Options(quick=True)
SEEDS = range(8)


def _rows(run, scheme, values, alphas=(1.0,), step=300):
  """α rows of one run and scheme: values[seed] = {metric: value} at α = 1; at another α
  each metric is that value + |α − 1| (so α = 1 is every seed's best)."""
  out = []
  for seed, vals in values.items():
    for a in alphas:
      out.append(dict({m: v + abs(a - 1.0) for m, v in vals.items()}, run=run, scheme=scheme,
                      seed=seed, alpha=a, phase='alpha', step=step, diverged=False))
  return out


def _kls(kl_pq, kl_qp=None, exacc_err=0.0, noise=0.0):
  """{seed: metrics} with per-seed noise of the given scale (a fixed draw)."""
  rng = np.random.default_rng(int(1e6 * kl_pq) % 2 ** 32)
  return {s: {'kl_pq': kl_pq + noise * rng.normal(), 'kl_qp': (kl_qp or kl_pq) + noise *
              rng.normal(), 'exacc_err': exacc_err + noise * rng.normal()} for s in SEEDS}


class SliceTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('value', exp.Slice(('data', 'width'), ((1000, -5), (32,)), (exp.MLE,)),
       "axis 'data' (problem.num_train) takes positive integers"),
      ('axis', exp.Slice(('data', 'depth'), ((1000,), (2,)), (exp.MLE,)),
       "axis 'depth' is not one of"),
      ('order', exp.Slice(('length', 'width'), ((20, 10), (32,)), (exp.MLE,)),
       "axis 'length' values must increase"),
      ('same_axes', exp.Slice(('data', 'data'), ((1,), (2,)), (exp.MLE,)),
       'axes must name two different axes'),
      ('no_mle', exp.Slice(('data', 'width'), ((1000,), (32,)), ('cot',)),
       "objectives must include 'mle'"),
      ('unknown_objective', exp.Slice(('data', 'width'), ((1000,), (32,)), (exp.MLE, 'ppo')),
       "objectives must include 'mle'"),
      ('fixed', exp.Slice(('data', 'width'), ((1000,), (32,)), (exp.MLE,), {'vocab': 0}),
       "axis 'vocab' (problem.vocab_size) takes positive integers"))
  def test_a_bad_slice_is_one_line_naming_it_and_the_field(self, bad, message):
    out = tempfile.mkdtemp()
    with mock.patch.dict(exp.SLICES, {'data_capacity': bad}):
      with self.assertRaises(ValueError) as raised:
        experiment_lib.run_experiment(exp.EXPERIMENT, FULL, out, log=lambda s: None)
    text = str(raised.exception)
    self.assertIn("regime_map slice 'data_capacity'", text)
    self.assertIn(message, text)
    self.assertNotIn('\n', text)
    self.assertEqual(os.listdir(out), [])  # refused before anything is written

  def test_the_shipped_slices_are_valid(self):
    for options in (FULL, QUICK):
      exp.validate_slices(exp.slices(options), exp.STEPS)


class RunsTest(absltest.TestCase):

  def test_each_point_once_with_the_union_of_its_slices_objectives(self):
    runs = exp.runs(FULL)
    points = exp._point_runs(FULL)  # pylint: disable=protected-access
    self.assertEqual(set(runs), set(points) | {exp.GAN_PREFIX + p for p in exp.gan_points(FULL)})
    for name, s in exp.SLICES.items():
      for x, y, run_label in exp.cells(s, FULL):
        point = exp.coordinates(s, x, y, FULL)
        self.assertEqual(run_label, exp.label(point))
        trained = runs[run_label].variants
        for o in s.objectives:
          if o in exp.DATA_FREE:  # trained at the default data size of its (w, T, V)
            home = exp.label(dict(point, data=exp.DEFAULT['data']))
            self.assertIn(o, runs[home].variants, (name, run_label))
          else:
            self.assertIn(o, trained, (name, run_label))
        config = runs[run_label].overrides
        self.assertEqual(config['problem.num_train'], point['data'])
        self.assertEqual(config['generator.hidden_dim'], point['width'])
        self.assertEqual(config['generator.embed_dim'], point['width'])
        self.assertEqual(config['problem.seq_len'], point['length'])
        self.assertEqual(config['problem.vocab_size'], point['vocab'])
    for run_label, run in runs.items():  # data-free objectives only at the default data size
      if any(o in exp.DATA_FREE for o in run.variants):
        self.assertEqual(run.overrides['problem.num_train'], exp.DEFAULT['data'], run_label)
    # A point two slices share (the data slice's n = 1000 at width 32 is the vocabulary
    # slice's V = 500) is one run, with both slices' objectives.
    shared = runs['n1000_w32_t20_v500'].variants
    self.assertContainsSubset({'mle', 'cot', 'scheduled_sampling', 'distill_data'}, shared)
    gan = runs[exp.GAN_PREFIX + 'n1000_w32_t20_v500']
    self.assertEqual(list(gan.variants), [exp.GAN])
    self.assertEqual(gan.overrides['train.warm_start_steps'], exp.STEPS)
    # The claims' points come first (a partial run answers them soonest).
    first = [run for line in exp.claim_lines(FULL).values() for _, run in line]
    self.assertEqual(list(runs)[:len(set(first))], list(dict.fromkeys(first)))

  def test_every_objective_selected_by_the_same_rule(self):
    for run_label, (config, _) in experiment_lib.resolve(exp.EXPERIMENT, QUICK).items():
      self.assertEqual(config.eval.select, 'nll_valid', run_label)
      self.assertIn(1.0, config.eval.alphas, run_label)


class DeriveTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    # Quick: n128 trains MLE; n256 (the default data size) MLE and distill_student.
    self.mle128, self.mle256 = _kls(0.5, 0.6, 0.1, noise=0.01), _kls(0.4, 0.5, 0.2, noise=0.01)
    self.student = _kls(0.3, 0.2, -0.1, noise=0.01)
    self.rows = (_rows('n128_w8_t8_v16', exp.MLE, self.mle128, alphas=(0.9, 1.0, 1.2))
                 + _rows('n256_w8_t8_v16', exp.MLE, self.mle256)
                 + _rows('n256_w8_t8_v16', 'distill_student', self.student))
    self.derived = exp.derive(self.rows)

  def _get(self, phase, run, scheme, seed):
    found = [r for r in self.derived if (r['phase'], r['run'], r['scheme'], r['seed'])
             == (phase, run, scheme, seed)]
    self.assertLen(found, 1, (phase, run, scheme, seed))
    return found[0]

  def test_a_data_free_objective_answers_at_every_data_size(self):
    r = self._get('at_point', 'n128_w8_t8_v16', 'distill_student', 3)
    self.assertEqual(r['source'], 'n256_w8_t8_v16')
    self.assertEqual(r['kl_pq'], self.student[3]['kl_pq'])

  def test_differences_from_mle_are_per_seed_at_the_point(self):
    for run, mle in (('n128_w8_t8_v16', self.mle128), ('n256_w8_t8_v16', self.mle256)):
      for seed in SEEDS:
        r = self._get('vs_mle', run, 'distill_student', seed)
        for m in ('kl_pq', 'kl_qp', 'exacc_err'):
          self.assertAlmostEqual(r[m], self.student[seed][m] - mle[seed][m], places=12)

  def test_best_alpha_is_the_lowest_mean(self):
    r = self._get('best_alpha', 'n128_w8_t8_v16', exp.MLE, 0)
    self.assertEqual(r['alpha_kl_pq'], 1.0)
    self.assertEqual(r['kl_pq'], self.mle128[0]['kl_pq'])
    # Shift α = 1.2 below α = 1 for every seed: it becomes the best α.
    rows = [dict(x, kl_pq=x['kl_pq'] - 0.5) if x['alpha'] == 1.2 else x for x in self.rows]
    r = [x for x in exp.derive(rows) if x['phase'] == 'best_alpha' and x['seed'] == 0
         and x['run'] == 'n128_w8_t8_v16'][0]
    self.assertEqual(r['alpha_kl_pq'], 1.2)
    self.assertAlmostEqual(r['kl_pq'], self.mle128[0]['kl_pq'] + 0.2 - 0.5, places=12)
    self.assertEqual(r['alpha_kl_qp'], 1.0)

  def test_diverged_rows_never_enter(self):
    rows = [dict(x, diverged=True, kl_pq=math.nan) if x['seed'] == 5 and
            x['scheme'] == 'distill_student' else x for x in self.rows]
    seeds = {r['seed'] for r in exp.derive(rows) if r['phase'] == 'vs_mle'}
    self.assertEqual(seeds, set(SEEDS) - {5})


class LeaderMapTest(absltest.TestCase):

  def _cell_rows(self, run, values):
    """Rows of one full-size data-slice cell (width 32): {candidate: {seed: metrics}}."""
    home = exp.label(dict(exp.DEFAULT, data=exp.DEFAULT['data']))
    rows = []
    for o, v in values.items():
      source = (exp.GAN_PREFIX + run if o == exp.GAN else home if o in exp.DATA_FREE
                else run)
      rows += _rows(source, o, v)
    return rows

  def test_a_clear_winner_is_resolved_and_a_tie_is_not(self):
    run = 'n1000_w32_t20_v500'
    base = {o: _kls(1.0, noise=0.01) for o in ('cot', 'scheduled_sampling', 'distill_data',
                                               'distill_student', 'fkl_teacher', exp.GAN)}
    clear = dict(base, **{exp.MLE: _kls(0.5, noise=0.01)})
    rows = self._cell_rows(run, clear)
    rows += exp.derive(rows)
    grids = exp.leaders(rows, FULL)
    self.assertLen(grids, 3 * len(exp.KLS) * len(exp.VIEWS))
    for view in exp.VIEWS:
      lead = grids[('data_capacity', 'kl_pq', view)][(1000, 32)]
      self.assertEqual(lead.label, exp.MLE)
      self.assertTrue(lead.resolved)
      self.assertEqual(lead.n, 8)
      self.assertAlmostEqual(lead.margin, 0.5, delta=0.05)
    # CoT within the seeds' noise of MLE: a tie, no resolved winner.
    rng = np.random.default_rng(7)
    tie = dict(clear, cot={s: {m: v + 0.01 * rng.normal() for m, v in vals.items()}
                           for s, vals in clear[exp.MLE].items()})
    rows = self._cell_rows(run, tie)
    rows += exp.derive(rows)
    lead = exp.leaders(rows, FULL)[('data_capacity', 'kl_pq', 'samples')][(1000, 32)]
    self.assertFalse(lead.resolved)
    self.assertEqual({lead.label, lead.runner_up}, {exp.MLE, 'cot'})
    # A reference far below everything: the winner with the references, not without them.
    ref = dict(clear, fkl_teacher=_kls(0.1, noise=0.01))
    rows = self._cell_rows(run, ref)
    rows += exp.derive(rows)
    grids = exp.leaders(rows, FULL)
    lead = grids[('data_capacity', 'kl_pq', 'all')][(1000, 32)]
    self.assertEqual(lead.label, 'fkl_teacher')
    self.assertTrue(lead.resolved)
    self.assertAlmostEqual(lead.margin, 0.4, delta=0.05)
    self.assertEqual(grids[('data_capacity', 'kl_pq', 'samples')][(1000, 32)].label, exp.MLE)
    # The GAN is a candidate on its own slice's maps only (the length slice shares the point
    # n16000_w32_t20_v500 with it; every other cell of that map has no GAN).
    shared = 'n16000_w32_t20_v500'
    self.assertIn(exp.GAN, exp.candidates(exp.SLICES['data_capacity'], shared, FULL))
    self.assertNotIn(exp.GAN, exp.candidates(exp.SLICES['length_capacity'], shared, FULL))
    self.assertNotIn(exp.GAN, exp.candidates(exp.SLICES['data_capacity'],
                                             'n16000_w16_t20_v500', FULL))

  def test_best_alpha_views_read_each_candidate_at_its_own_alpha(self):
    # CoT is worse at α = 1 and better than MLE at α = 0.9 (its best): the α = 1 view and the
    # best-α view name different leaders.
    run = 'n1000_w32_t20_v500'
    rows = _rows(run, exp.MLE, _kls(0.5, noise=0.01), alphas=(0.9, 1.0))
    cot = _rows(run, 'cot', _kls(0.6, noise=0.01), alphas=(0.9, 1.0))
    rows += [dict(r, kl_pq=r['kl_pq'] - 0.4) if r['alpha'] == 0.9 else r for r in cot]
    rows += exp.derive(rows)
    grids = exp.leaders(rows, FULL)
    self.assertEqual(grids[('data_capacity', 'kl_pq', 'samples')][(1000, 32)].label, exp.MLE)
    self.assertEqual(grids[('data_capacity', 'kl_pq', 'samples_best_alpha')][(1000, 32)].label,
                     'cot')

  def test_still_improving_at_the_last_evaluation(self):
    run = 'n1000_w32_t20_v500'
    rows = _rows(run, exp.MLE, _kls(0.5), step=300) + _rows(run, 'cot', _kls(0.6), step=200)
    rows += [{'run': run, 'scheme': o, 'seed': 0, 'step': k, 'phase': 'train'}
             for o in (exp.MLE, 'cot') for k in (0, 100, 200, 300)]
    at = exp._at_point(rows + exp.derive(rows))  # pylint: disable=protected-access
    self.assertTrue(exp.still_improving(at[(run, exp.MLE)]))
    self.assertFalse(exp.still_improving(at[(run, 'cot')]))

  def test_the_page_draws_from_constructed_rows(self):
    run = 'n1000_w32_t20_v500'
    rows = self._cell_rows(run, {exp.MLE: _kls(0.5, noise=0.01), 'cot': _kls(0.9, noise=0.01)})
    rows += exp.derive(rows)
    out = tempfile.mkdtemp()
    md = exp.draw(rows, out, FULL)
    self.assertIn('`data_capacity`, kl_pq, trained on samples alone, at α = 1 (1 of 12 cells '
                  'with rows): `mle` 1 resolved.', md)
    self.assertIn('| 1000 | 32 | mle | 8 |', md)
    self.assertTrue(os.path.exists(os.path.join(out, 'regime_data_capacity.png')))


class ClaimsTest(absltest.TestCase):

  def _data_line_rows(self, slope):
    """MLE at every data point of the claims' line, and CoT = MLE + slope·log10 n + noise."""
    rows = []
    for n, run in exp.claim_lines(FULL)['data']:
      rows += _rows(run, exp.MLE, _kls(0.5, noise=0.01))
      rows += _rows(run, 'cot', _kls(0.5 + slope * math.log10(n), noise=0.01))
    return rows + exp.derive(rows)

  def _verdict(self, rows, name):
    claims = exp.claims(FULL)
    found = {v.claim.name: v for v in verdicts.judge(claims, rows)}
    return found[name]

  def test_the_data_trend_follows_the_rows(self):
    self.assertEqual(self._verdict(self._data_line_rows(+0.1), 'data_cot_kl_pq').word,
                     verdicts.SUPPORTED)
    v = self._verdict(self._data_line_rows(-0.1), 'data_cot_kl_pq')
    self.assertEqual(v.word, verdicts.CONTRADICTED)
    self.assertAlmostEqual(v.evidence.estimate, -0.1, delta=0.02)
    self.assertEqual(v.evidence.n, 8)

  def test_claims_read_the_lines_through_the_default_point(self):
    lines = exp.claim_lines(FULL)
    self.assertEqual([n for n, _ in lines['data']], list(exp.SLICES['data_capacity'].values[0]))
    self.assertTrue(all('_w32_t20_v500' in run for _, run in lines['data']))
    self.assertTrue(all(run.startswith('n16000_w32_') for _, run in lines['length']))
    self.assertEqual([run for _, run in lines['capacity']],
                     ['n16000_w16_t20_v500', 'n16000_w32_t20_v500', 'n16000_w64_t20_v500'])
    self.assertEqual([run for _, run in lines['vocab']],
                     ['n1000_w32_t20_v100', 'n1000_w32_t20_v500', 'n1000_w32_t20_v2000'])
    names = [c.name for c in exp.claims(FULL)]
    self.assertLen(set(names), len(names))
    self.assertIn('capacity_prefix_gain_kl_pq', names)


if __name__ == '__main__':
  absltest.main()
