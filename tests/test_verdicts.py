"""The verdict rule (benchmarks/analysis/verdicts.py) on constructed rows: a clear effect is
supported, a reversed one contradicted, noise unresolved; Holm's correction and the seed
bootstrap behave as their definitions say; p-values are those of scipy's t-test."""

import math

from absl.testing import absltest
import numpy as np
import scipy.stats

from benchmarks.analysis import verdicts as V

SEEDS = 16


def _rows(scheme, per_seed, *, step=10, x=None, diverged=()):
  """One row per seed with metric 'kl' = per_seed[seed] (x: an extra field 'x')."""
  out = []
  for seed, value in enumerate(per_seed):
    row = dict(seed=seed, step=step, scheme=scheme, kl=float(value), diverged=seed in diverged)
    if x is not None:
      row['x'] = x
    out.append(row)
  return out


def _zero_mean_unit_sd(n, seed=0):
  z = np.random.default_rng(seed).normal(size=n)
  z -= z.mean()
  return z / z.std(ddof=1)


def _diff(name, sign, text='a vs b'):
  return V.Difference(name, text, V.Select({'scheme': 'a'}, 'kl'),
                      V.Select({'scheme': 'b'}, 'kl'), sign)


def _pair(differences, seed=1):
  """Rows of schemes a and b whose per-seed differences a − b are `differences`, on top of
  a large per-seed level that the pairing must remove."""
  level = 10 * np.random.default_rng(seed).normal(size=len(differences))
  return _rows('a', level + differences) + _rows('b', level)


class DifferenceTest(absltest.TestCase):

  def test_clear_effect_supported_reversed_contradicted_noise_unresolved(self):
    z = _zero_mean_unit_sd(SEEDS)
    clear = _pair(-1.0 + 0.3 * z)    # a below b by 1, seed noise 0.3
    noise = _pair(0.01 + 0.3 * z)    # a within noise of b
    [v] = V.judge([_diff('below', -1)], clear)
    self.assertEqual(v.word, V.SUPPORTED)
    [v] = V.judge([_diff('above', +1)], clear)
    self.assertEqual(v.word, V.CONTRADICTED)
    [v] = V.judge([_diff('below', -1)], noise)
    self.assertEqual(v.word, V.UNRESOLVED)
    # "Unresolved" says what these seeds could have resolved: an effect of ~0.3·(t + t)/4.
    self.assertBetween(v.evidence.resolvable, 0.2, 0.35)

  def test_p_value_and_interval_are_the_paired_t_test(self):
    d = 0.2 + _zero_mean_unit_sd(SEEDS, seed=3)
    [v] = V.judge([_diff('d', +1)], _pair(d))
    ref = scipy.stats.ttest_1samp(d, 0.0)
    self.assertAlmostEqual(v.p, ref.pvalue, places=10)
    self.assertAlmostEqual(v.evidence.estimate, d.mean(), places=10)
    half = scipy.stats.t.ppf(0.975, SEEDS - 1) * d.std(ddof=1) / math.sqrt(SEEDS)
    np.testing.assert_allclose(v.evidence.ci, (d.mean() - half, d.mean() + half), rtol=1e-9)
    one_sided = scipy.stats.ttest_1samp(d, 0.0, alternative='greater').pvalue
    self.assertAlmostEqual(v.evidence.p_for, one_sided, places=10)

  def test_resolvable_effect_is_the_power_formula(self):
    d = 0.05 * _zero_mean_unit_sd(SEEDS, seed=4)  # sd 0.05, mean 0
    claims = [_diff(f'c{i}', +1) for i in range(4)]
    v = V.judge(claims, _pair(d))[0]
    t = scipy.stats.t
    expected = (t.ppf(1 - 0.05 / 8, SEEDS - 1) + t.ppf(0.8, SEEDS - 1)) * 0.05 / math.sqrt(SEEDS)
    self.assertAlmostEqual(v.evidence.resolvable, expected, places=10)

  def test_diverged_and_missing_seeds_drop_out_and_are_counted(self):
    d = -1.0 + 0.1 * _zero_mean_unit_sd(SEEDS)
    rows = _pair(d)
    for r in rows:
      if r['scheme'] == 'a' and r['seed'] in (2, 5):
        r['diverged'] = True
    rows = [r for r in rows if not (r['scheme'] == 'b' and r['seed'] == 7)]
    [v] = V.judge([_diff('d', -1)], rows)
    self.assertEqual((v.evidence.n, v.evidence.dropped), (SEEDS - 3, 3))
    self.assertIn('3 dropped', V.line(v))
    keep = [s for s in range(SEEDS) if s not in (2, 5, 7)]
    self.assertAlmostEqual(v.evidence.estimate, d[keep].mean(), places=12)

  def test_last_step_and_fewer_than_two_seeds(self):
    rows = _pair(np.full(SEEDS, -1.0)) + _rows('a', np.zeros(SEEDS), step=5)
    self.assertEqual(V.values(rows, V.Select({'scheme': 'a'}, 'kl', step=5)),
                     {s: 0.0 for s in range(SEEDS)})
    per_seed = [dict(r, step=3 + r['seed']) for r in _rows('c', np.arange(4.0))]
    per_seed += [dict(per_seed[1], step=2, kl=-9.0)]  # an earlier row of seed 1
    self.assertEqual(V.values(per_seed, V.Select({'scheme': 'c'}, 'kl', step=None)),
                     {0: 0.0, 1: 1.0, 2: 2.0, 3: 3.0})  # each seed's own last step
    [v] = V.judge([_diff('d', -1)], rows)  # 'last' = step 10; identical differences: certain
    self.assertEqual((v.word, v.evidence.estimate), (V.SUPPORTED, -1.0))
    [v] = V.judge([_diff('d', -1)], [r for r in rows if r['seed'] == 0])
    self.assertEqual(v.word, V.UNRESOLVED)
    self.assertEqual(v.evidence.n, 1)

  def test_fewer_than_min_seeds_is_unresolved_however_clear(self):
    d = -1.0 + 0.01 * _zero_mean_unit_sd(V.MIN_SEEDS - 1)
    [v] = V.judge([_diff('d', -1)], _pair(d))
    self.assertEqual(v.word, V.UNRESOLVED)
    self.assertAlmostEqual(v.evidence.estimate, -1.0)  # the numbers are still there
    self.assertIn(f'fewer than {V.MIN_SEEDS}: no verdict', V.line(v))
    d = -1.0 + 0.01 * _zero_mean_unit_sd(V.MIN_SEEDS)
    self.assertEqual(V.judge([_diff('d', -1)], _pair(d))[0].word, V.SUPPORTED)


class HolmTest(absltest.TestCase):

  def test_thresholds_step_down_and_stop_at_the_first_failure(self):
    levels = V.holm_thresholds([0.01, 0.04, 0.03, 0.001], alpha=0.05)
    # ascending: 0.001 ≤ .05/4, 0.01 ≤ .05/3, 0.03 > .05/2 fails; 0.04 is never tested.
    np.testing.assert_allclose(levels, [0.05 / 3, 0.0, 0.05 / 2, 0.05 / 4])

  def test_a_borderline_claim_is_supported_alone_and_unresolved_in_a_family(self):
    # Differences with two-sided p = 0.04 exactly: below α = 0.05, above α/2.
    z = _zero_mean_unit_sd(SEEDS, seed=5)
    t = scipy.stats.t.ppf(1 - 0.04 / 2, SEEDS - 1)
    rows = _pair(t / math.sqrt(SEEDS) + z)
    rows += [dict(r, scheme='c' if r['scheme'] == 'a' else 'd')
             for r in _pair(0.0 * z + z - z.mean(), seed=9)]
    borderline = _diff('borderline', +1)
    null = V.Difference('null', 'c vs d', V.Select({'scheme': 'c'}, 'kl'),
                        V.Select({'scheme': 'd'}, 'kl'), +1)
    [alone] = V.judge([borderline], rows)
    self.assertAlmostEqual(alone.p, 0.04, places=9)
    self.assertEqual(alone.word, V.SUPPORTED)
    in_family = V.judge([borderline, null], rows)
    self.assertEqual([v.word for v in in_family], [V.UNRESOLVED, V.UNRESOLVED])
    self.assertEqual(in_family[0].threshold, 0.025)
    self.assertIn('not tested', V.line(in_family[1]))


class TrendTest(absltest.TestCase):

  def _trend_rows(self, slope):
    rows = []
    level = np.random.default_rng(2).normal(size=SEEDS)
    noise = np.random.default_rng(3).normal(size=(5, SEEDS))
    for i, x in enumerate((0.1, 0.25, 0.5, 0.75, 0.9)):
      rows += _rows('s', level + slope * x + 0.05 * noise[i], x=x)
    return rows

  def _claim(self, sign):
    return V.Trend('t', 'kl moves with x', [(x, V.Select({'scheme': 's', 'x': x}, 'kl'))
                                            for x in (0.1, 0.25, 0.5, 0.75, 0.9)], sign)

  def test_per_seed_slopes(self):
    rows = self._trend_rows(slope=1.0)
    self.assertEqual(V.judge([self._claim(+1)], rows)[0].word, V.SUPPORTED)
    self.assertEqual(V.judge([self._claim(-1)], rows)[0].word, V.CONTRADICTED)
    self.assertEqual(V.judge([self._claim(+1)], self._trend_rows(0.0))[0].word, V.UNRESOLVED)
    v = V.judge([self._claim(+1)], rows)[0]
    xs = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
    table = np.array([[r['kl'] for r in rows if r['seed'] == s] for s in range(SEEDS)])
    slopes = [np.polyfit(xs, y, 1)[0] for y in table]
    self.assertAlmostEqual(v.evidence.estimate, float(np.mean(slopes)), places=10)

  def test_one_x_is_refused(self):
    claim = V.Trend('t', 'x', [(0.5, V.Select({'scheme': 's'}, 'kl'))] * 2, +1)
    with self.assertRaisesRegex(ValueError, "claim 't': a trend needs"):
      V.judge([claim], _rows('s', np.zeros(SEEDS)))


class DominanceTest(absltest.TestCase):

  def _curves(self, gaps, noise):
    """Rows of curves a and b at x = 0..k−1: a − b = gaps[x] + noise·z (per seed and x)."""
    rng = np.random.default_rng(6)
    rows = []
    for x, g in enumerate(gaps):
      level = rng.normal(size=SEEDS)
      rows += _rows('a', level + g + noise * rng.normal(size=SEEDS), x=x)
      rows += _rows('b', level, x=x)
    return rows

  def _claim(self, k):
    return V.Dominance('dom', 'a below b everywhere',
                       [(x, V.Select({'scheme': 'a', 'x': x}, 'kl')) for x in range(k)],
                       [(x, V.Select({'scheme': 'b', 'x': x}, 'kl')) for x in range(k)])

  def test_clear_dominance_crossing_curves_and_a_mean_curve_that_overstates(self):
    [v] = V.judge([self._claim(4)], self._curves([-1.0] * 4, 0.2))
    self.assertEqual((v.word, v.evidence.estimate), (V.SUPPORTED, 1.0))
    [v] = V.judge([self._claim(4)], self._curves([-1.0, -0.5, 0.5, 1.0], 0.2))  # crossing
    self.assertEqual((v.word, v.evidence.estimate), (V.CONTRADICTED, 0.0))
    # The mean curve of a is below b's at every x, but at x = 3 only by noise: the mean
    # curve says "dominates" (100%), the resamples do not.
    rows = self._curves([-1.0, -1.0, -1.0, -0.05], 0.5)
    a = [np.mean([r['kl'] for r in rows if r['scheme'] == 'a' and r['x'] == x]) for x in range(4)]
    b = [np.mean([r['kl'] for r in rows if r['scheme'] == 'b' and r['x'] == x]) for x in range(4)]
    self.assertTrue(all(np.array(a) < np.array(b)))
    [v] = V.judge([self._claim(4)], rows)
    self.assertLess(v.evidence.estimate, 0.95)
    self.assertEqual(v.word, V.UNRESOLVED)
    self.assertIn('resamples', V.line(v))

  def test_too_few_seeds_to_resample(self):
    # Two seeds that each agree would resample to "100%": below MIN_SEEDS, no verdict.
    rows = [r for r in self._curves([-1.0] * 4, 0.2) if r['seed'] < V.MIN_SEEDS - 1]
    [v] = V.judge([self._claim(4)], rows)
    self.assertEqual(v.word, V.UNRESOLVED)
    self.assertIn('no verdict', V.line(v))

  def test_deterministic(self):
    rows = self._curves([-1.0, -1.0, -1.0, -0.05], 0.5)
    self.assertEqual(V.markdown(V.judge([self._claim(4)], rows)),
                     V.markdown(V.judge([self._claim(4)], rows)))


class FrontierTest(absltest.TestCase):

  def test_polyline_dominance(self):
    front = np.array([[0.0, 2.0], [1.0, 1.0], [2.0, 0.0]])
    self.assertTrue(V.polyline_dominates(front, np.array([[1.0, 1.0], [1.6, 0.5], [3, 3]])))
    self.assertFalse(V.polyline_dominates(front, np.array([[0.4, 1.0]])))  # below-left of it

  def _rows(self, shift, noise):
    """Curves a (3 points) and b (3 points) in the (u, w) plane over SEEDS seeds:
    b = a + shift (both coordinates) + noise per seed and point."""
    rng = np.random.default_rng(7)
    rows = []
    base_curve = [(0.0, 2.0), (1.0, 1.0), (2.0, 0.0)]
    for s in range(SEEDS):
      level = rng.normal() * 0.1
      for k, (u, w) in enumerate(base_curve):
        rows.append(dict(seed=s, step=1, scheme='a', k=k, u=u + level, w=w + level))
        du, dw = shift[k] + noise * rng.normal(size=2)
        rows.append(dict(seed=s, step=1, scheme='b', k=k, u=u + level + du, w=w + level + dw))
    return rows

  def _claim(self):
    def curve(scheme):
      return [(V.Select({'scheme': scheme, 'k': k}, 'u'), V.Select({'scheme': scheme, 'k': k},
                                                                   'w')) for k in range(3)]
    return V.Frontier('f', 'a dominates b', curve('a'), curve('b'))

  def test_supported_contradicted_unresolved(self):
    [v] = V.judge([self._claim()], self._rows([0.5, 0.5, 0.5], 0.05))
    self.assertEqual((v.word, v.evidence.estimate), (V.SUPPORTED, 1.0))
    [v] = V.judge([self._claim()], self._rows([0.5, -0.5, 0.5], 0.05))  # b's middle point wins
    self.assertEqual((v.word, v.evidence.estimate), (V.CONTRADICTED, 0.0))
    rows = self._rows([0.5, 0.02, 0.5], 0.1)  # the middle point only by noise
    [v] = V.judge([self._claim()], rows)
    self.assertEqual(v.word, V.UNRESOLVED)
    self.assertBetween(v.evidence.estimate, 0.05, 0.95)
    self.assertIn('resamples', V.line(v))


class BoundTest(absltest.TestCase):

  def test_above_below_and_the_one_sample_t_test(self):
    x = 3.6 + 0.1 * _zero_mean_unit_sd(SEEDS)
    above = V.Bound('b', 'entropy above 3.5', V.Select({'scheme': 'a'}, 'kl'), 3.5, +1)
    [v] = V.judge([above], _rows('a', x))
    self.assertEqual(v.word, V.SUPPORTED)
    self.assertAlmostEqual(v.p, scipy.stats.ttest_1samp(x, 3.5).pvalue, places=10)
    self.assertEqual(V.judge([above._replace(bound=3.7)], _rows('a', x))[0].word,
                     V.CONTRADICTED)
    self.assertEqual(V.judge([above._replace(bound=3.6)], _rows('a', x))[0].word,
                     V.UNRESOLVED)
    self.assertIn('mean (bound 3.5)', V.line(v))


class MatchTest(absltest.TestCase):

  def _claim(self, target):
    return V.Match('m', 'equals the closed form', V.Select({'scheme': 'a'}, 'kl'), target, 0.05)

  def test_inside_outside_and_too_noisy(self):
    z = _zero_mean_unit_sd(SEEDS)
    self.assertEqual(V.judge([self._claim(1.0)], _rows('a', 1.0 + 0.01 * z))[0].word,
                     V.SUPPORTED)
    self.assertEqual(V.judge([self._claim(1.0)], _rows('a', 1.5 + 0.01 * z))[0].word,
                     V.CONTRADICTED)
    self.assertEqual(V.judge([self._claim(1.0)], _rows('a', 1.0 + 1.0 * z))[0].word,
                     V.UNRESOLVED)


class ClosedFormTest(absltest.TestCase):

  def test_every_computed_row_within_tolerance(self):
    rows = [dict(run='tab', eps=e, numeric=math.log(2 / (1 + e)) + 1e-7 * (-1) ** i,
                 closed=math.log(2 / (1 + e))) for i, e in enumerate(np.linspace(0, 1, 11))]
    claim = V.ClosedForm('cf', 'matches log(2/(1+ε))', {'run': 'tab'}, 'numeric', 'closed', 1e-6)
    [v] = V.judge([claim], rows)
    self.assertEqual(v.word, V.SUPPORTED)
    self.assertAlmostEqual(v.evidence.estimate, 1e-7, places=12)
    self.assertIn('over 11 rows', V.line(v))
    rows[4]['numeric'] += 1e-3  # one row off: the claim fails, whatever the others
    self.assertEqual(V.judge([claim], rows)[0].word, V.CONTRADICTED)
    rows[4]['numeric'] = float('nan')
    self.assertEqual(V.judge([claim], rows)[0].word, V.CONTRADICTED)
    zero = V.ClosedForm('z', 'no gap', {'run': 'tab'}, 'closed', 0.0, 1.0)  # a float target
    self.assertEqual(V.judge([zero], rows)[0].word, V.SUPPORTED)
    self.assertEqual(V.judge([zero], [])[0].word, V.UNRESOLVED)


class OrderedTest(absltest.TestCase):

  def test_monotone_computed_rows(self):
    rows = [dict(run='fit', pi=p, sigma=s) for p, s in
            ((0.5, 1.0), (0.1, 2.9), (0.9, 0.99), (0.3, 2.8))]  # unsorted on purpose
    down = V.Ordered('o', 'σ falls with π', {'run': 'fit'}, 'pi', 'sigma', -1)
    [v] = V.judge([down], rows)
    self.assertEqual(v.word, V.SUPPORTED)
    self.assertAlmostEqual(v.evidence.estimate, 0.01)  # the smallest fall, 1.0 → 0.99
    self.assertIn('0 of 3 steps against', V.line(v))
    self.assertEqual(V.judge([down._replace(sign=1)], rows)[0].word, V.CONTRADICTED)
    rows.append(dict(run='fit', pi=0.95, sigma=0.995))  # a rise of 0.005 at the end
    self.assertEqual(V.judge([down], rows)[0].word, V.CONTRADICTED)
    self.assertEqual(V.judge([down._replace(slack=0.01)], rows)[0].word, V.SUPPORTED)
    self.assertEqual(V.judge([down], rows[:1])[0].word, V.UNRESOLVED)


class ComputedTrendTest(absltest.TestCase):

  def test_the_sign_of_the_least_squares_slope(self):
    # Up overall though not at every step: the slope of (0, 1), (0.5, 3), (1, 2) is +1.
    rows = [dict(run='fit', x=x, v=v) for x, v in ((0.5, 3.0), (0.0, 1.0), (1.0, 2.0))]
    up = V.ComputedTrend('t', 'v rises with x', {'run': 'fit'}, 'x', 'v', +1)
    [v] = V.judge([up], rows)
    self.assertEqual(v.word, V.SUPPORTED)
    self.assertAlmostEqual(v.evidence.estimate, 1.0)
    self.assertIn('least-squares slope of v on x over 3 rows +1', V.line(v))
    self.assertEqual(V.judge([V.Ordered('o', 'v', {'run': 'fit'}, 'x', 'v', +1)], rows)[0].word,
                     V.CONTRADICTED)  # not at every step
    self.assertEqual(V.judge([up._replace(sign=-1)], rows)[0].word, V.CONTRADICTED)
    # Two rows: a comparison; one row, or a missing value: no verdict.
    self.assertEqual(V.judge([up], rows[1:])[0].word, V.SUPPORTED)
    self.assertEqual(V.judge([up], rows[:1])[0].word, V.UNRESOLVED)
    rows[0]['v'] = None
    self.assertEqual(V.judge([up], rows)[0].word, V.UNRESOLVED)

  def test_a_tuple_in_where_matches_any_of_its_values(self):
    rows = [dict(name=n, x=x, v=v) for n, x, v in (('a', 0, 2.0), ('b', 1, 1.0), ('c', 2, 9.0))]
    down = V.ComputedTrend('t', 'v falls from a to b', {'name': ('a', 'b')}, 'x', 'v', -1)
    self.assertEqual(V.judge([down], rows)[0].word, V.SUPPORTED)  # c (rises) not matched
    self.assertEqual(V.judge([down._replace(where={'name': ('a', 'b', 'c')})], rows)[0].word,
                     V.CONTRADICTED)


class LineTest(absltest.TestCase):

  def test_p_and_its_level_never_print_alike(self):
    claim = V.Difference('d', 'a below b', V.Select({}, 'x'), V.Select({}, 'y'), -1)
    evidence = V.Evidence(-0.01, (-0.02, 0.0), 16, 0, 0.012, 0.99, 0.011)
    line = V.line(V.Verdict(claim, V.UNRESOLVED, evidence, 0.02528, 0.025, 4))
    self.assertIn('p = 0.0253 > 0.025 ', line)
    line = V.line(V.Verdict(claim, V.SUPPORTED, evidence, 0.0012, 0.0125, 4))
    self.assertIn('p = 0.0012 ≤ 0.013 ', line)  # (two digits where they differ)


class FamilyTest(absltest.TestCase):

  def test_repeated_names_refused(self):
    with self.assertRaisesRegex(ValueError, 'repeated name'):
      V.judge([_diff('d', 1), _diff('d', -1)], _pair(np.zeros(SEEDS)))


class LeaderTest(absltest.TestCase):
  """The winner of a cell of a map: the best mean, resolved only when the paired differences
  with every other candidate pass Holm's levels; a tie within the intervals is no winner."""

  def _rows(self, levels, noise, seeds=SEEDS):
    rng = np.random.default_rng(3)
    base = rng.normal(size=seeds) * 5.0  # a per-seed level the pairing removes
    rows = []
    for scheme, level in levels.items():
      rows += _rows(scheme, base + level + noise * rng.normal(size=seeds))
    return rows

  def _candidates(self, names):
    return {n: V.Select({'scheme': n}, 'kl') for n in names}

  def test_clear_winner_tie_and_too_few_seeds(self):
    rows = self._rows({'a': 1.0, 'b': 2.0, 'c': 3.0}, noise=0.1)
    got = V.leader(rows, self._candidates('abc'))
    self.assertEqual((got.label, got.resolved, got.runner_up, got.n), ('a', True, 'b', SEEDS))
    self.assertAlmostEqual(got.margin, 1.0, delta=0.1)
    self.assertLess(got.margin_ci[0], got.margin)
    self.assertGreater(got.margin_ci[1], got.margin)
    # Higher is better: the order reverses.
    got = V.leader(rows, self._candidates('abc'), better='higher')
    self.assertEqual((got.label, got.resolved, got.runner_up), ('c', True, 'b'))
    # a and b tied (the same level, independent noise): a leader by its mean, no winner.
    rows = self._rows({'a': 1.0, 'b': 1.0, 'c': 3.0}, noise=0.1)
    got = V.leader(rows, self._candidates('abc'))
    self.assertIn(got.label, ('a', 'b'))
    self.assertFalse(got.resolved)
    self.assertLess(got.margin_ci[0], 0.0)
    # A clear winner from fewer seeds than the protocol's minimum: not resolved.
    rows = self._rows({'a': 1.0, 'b': 2.0}, noise=0.1, seeds=V.MIN_SEEDS - 1)
    got = V.leader(rows, self._candidates('ab'))
    self.assertEqual((got.label, got.resolved), ('a', False))

  def test_holm_over_the_comparisons_of_the_cell(self):
    # b beats a on exactly p ≈ 0.03 (constructed t): alone it wins; with a third candidate
    # whose comparison is as weak, Holm's levels (0.025, 0.05) leave it unresolved.
    z = _zero_mean_unit_sd(SEEDS)
    t = scipy.stats.t.ppf(1 - 0.03 / 2, SEEDS - 1)
    shift = t / math.sqrt(SEEDS)  # mean difference / (sd / √n) = t with sd 1
    rows = _rows('b', np.zeros(SEEDS)) + _rows('a', shift + z)
    got = V.leader(rows, self._candidates('ba'))
    self.assertEqual((got.label, got.resolved), ('b', True))
    rows += _rows('c', shift + _zero_mean_unit_sd(SEEDS, seed=5))
    got = V.leader(rows, self._candidates('bac'))
    self.assertEqual(got.label, 'b')
    self.assertFalse(got.resolved)

  def test_diverged_seeds_drop_out_and_bad_input(self):
    rows = self._rows({'a': 1.0, 'b': 2.0}, noise=0.1)
    rows[0]['diverged'] = True  # seed 0 of a
    got = V.leader(rows, self._candidates('ab'))
    self.assertEqual((got.n, got.dropped), (SEEDS - 1, 1))
    with self.assertRaisesRegex(ValueError, 'at least two'):
      V.leader(rows, self._candidates('a'))
    with self.assertRaisesRegex(ValueError, 'better'):
      V.leader(rows, self._candidates('ab'), better='up')


if __name__ == '__main__':
  absltest.main()
