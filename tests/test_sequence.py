"""Tests for divergences/sequence.py on tiny tabular autoregressive models.

The models are built here (no model package): log P(x) = Σ_t log_softmax(A[t,
x_{t−1}])[x_t] with x_{−1} = 0, and Q likewise with another table B. The
reference enumerates all V^T sequences with itertools in float64.
"""

import functools
import itertools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from divergences import sequence

_PIS = np.array([0.0, 0.1, 0.5, 0.9, 1.0], np.float32)
_SCALARS = ('nll_oracle', 'nll_test', 'entropy_q', 'entropy_p', 'kl_pq', 'kl_qp')
_monte_carlo = jax.jit(functools.partial(sequence.monte_carlo, seq_len=4))


def _table(rng, vocab_size, seq_len):
  """Log-probability table [T, V (previous token), V (next token)], float64."""
  logits = rng.normal(size=(seq_len, vocab_size, vocab_size))
  return scipy.special.log_softmax(logits, axis=-1)


def _log_prob_np(table, x):
  """Sequence log-probabilities [n] of tokens x [n, T] under `table`, float64."""
  prev = np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
  return table[np.arange(x.shape[1]), prev, x].sum(-1)


def _log_prob_fn(table):
  """The JAX callable int32 [n, T] -> float32 [n] that `exact` expects."""
  table = jnp.asarray(table, jnp.float32)

  def log_prob(x):
    prev = jnp.concatenate([jnp.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
    return table[jnp.arange(x.shape[1]), prev, x].sum(-1)

  return log_prob


def _sample(rng, table, n):
  """n ancestral samples [n, T] by inverse-CDF sampling."""
  seq_len, vocab_size, _ = table.shape
  x = np.zeros((n, seq_len), np.int64)
  prev = np.zeros(n, np.int64)
  for t in range(seq_len):
    cdf = np.cumsum(np.exp(table[t, prev]), axis=-1)
    u = rng.uniform(size=(n, 1)) * cdf[:, -1:]
    x[:, t] = np.minimum((u > cdf).sum(-1), vocab_size - 1)
    prev = x[:, t]
  return x


def _reference(table_p, table_q, pis):
  """Exact per-token metrics by brute force over all V^T sequences, float64."""
  seq_len, vocab_size, _ = table_p.shape
  x = np.array(list(itertools.product(range(vocab_size), repeat=seq_len)))
  lp, lq = _log_prob_np(table_p, x), _log_prob_np(table_q, x)
  p, q = np.exp(lp), np.exp(lq)

  def expect(w, v):  # Σ w v with 0 · anything = 0.
    with np.errstate(invalid='ignore'):
      return np.sum(np.where(w > 0, w * v, 0.0))

  js = []
  for pi in pis.astype(np.float64):
    with np.errstate(divide='ignore', invalid='ignore'):  # log 0; −inf − −inf.
      lm = np.log(pi * p + (1 - pi) * q)
      on_p, on_q = lp - lm, lq - lm
    js.append(
        (pi * expect(p, on_p) if pi > 0 else 0.0)
        + ((1 - pi) * expect(q, on_q) if pi < 1 else 0.0)
    )
  return {
      'nll_oracle': expect(q, -lp) / seq_len,
      'nll_test': expect(p, -lq) / seq_len,
      'entropy_q': expect(q, -lq) / seq_len,
      'entropy_p': expect(p, -lp) / seq_len,
      'kl_pq': expect(p, lp - lq) / seq_len,
      'kl_qp': expect(q, lq - lp) / seq_len,
      'js_pi': np.array(js) / seq_len,
      'mass_p': p.sum(),
      'mass_q': q.sum(),
  }


@functools.partial(jax.jit, static_argnames='chunk_size')
def _exact_jit(table_p, table_q, pis, chunk_size):
  """`exact` with the tables traced: one compile per (V, T, chunk_size)."""
  seq_len, vocab_size, _ = table_p.shape
  return sequence.exact(
      _log_prob_fn(table_p),
      _log_prob_fn(table_q),
      vocab_size=vocab_size,
      seq_len=seq_len,
      pis=pis,
      chunk_size=chunk_size,
  )


def _exact(table_p, table_q, pis, chunk_size=4096):
  f32 = lambda a: np.asarray(a, np.float32)
  return jax.device_get(_exact_jit(f32(table_p), f32(table_q), f32(pis), chunk_size))


class MeanAndSeTest(absltest.TestCase):

  def test_matches_numpy(self):
    values = np.random.default_rng(0).normal(size=(3, 50)).astype(np.float32)
    mean, se = jax.jit(sequence.mean_and_se)(values)
    np.testing.assert_allclose(mean, values.mean(-1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(se, values.std(-1, ddof=1) / np.sqrt(50), rtol=1e-5)
    mean0, se0 = sequence.mean_and_se(values.T, axis=0)
    np.testing.assert_allclose(mean0, mean, rtol=1e-6)
    np.testing.assert_allclose(se0, se, rtol=1e-6)

  def test_infinite_mean_has_infinite_se(self):
    mean, se = sequence.mean_and_se(jnp.array([1.0, jnp.inf, 2.0]))
    self.assertEqual(mean, np.inf)
    self.assertEqual(se, np.inf)


class EnumerateSequencesTest(absltest.TestCase):

  def test_v3_t2_lists_all_nine_in_order(self):
    got = sequence.enumerate_sequences(3, 2, 0, 9)
    self.assertEqual(got.dtype, jnp.int32)
    np.testing.assert_array_equal(
        got, [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2], [2, 0], [2, 1], [2, 2]]
    )

  def test_traced_start_matches_itertools(self):
    expected = np.array(list(itertools.product(range(3), repeat=4)))
    fn = jax.jit(sequence.enumerate_sequences, static_argnums=(0, 1, 3))
    for start in (0, 17, 73):
      np.testing.assert_array_equal(fn(3, 4, start, 8), expected[start : start + 8])

  def test_rows_past_the_end_wrap_to_valid_tokens(self):
    got = sequence.enumerate_sequences(3, 2, 7, 4)
    np.testing.assert_array_equal(got, [[2, 1], [2, 2], [0, 0], [0, 1]])


class ExactTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.table_p = _table(rng, 3, 4)
    self.table_q = _table(rng, 3, 4)

  def _assert_matches(self, got, expected, rtol=1e-5):
    self.assertEqual(set(got), set(expected))
    for name in expected:
      np.testing.assert_allclose(got[name], expected[name], rtol=rtol, atol=1e-7, err_msg=name)

  @parameterized.named_parameters(
      ('v3_t4_one_chunk', 3, 4, 4096),
      ('v3_t4_chunk_7', 3, 4, 7),
      ('v6_t6_46656_sequences', 6, 6, 4096),
  )
  def test_matches_brute_force(self, vocab_size, seq_len, chunk_size):
    rng = np.random.default_rng(1)
    table_p = _table(rng, vocab_size, seq_len)
    table_q = _table(rng, vocab_size, seq_len)
    got = _exact(table_p, table_q, _PIS, chunk_size)
    self._assert_matches(got, _reference(table_p, table_q, _PIS))
    np.testing.assert_allclose(got['mass_p'], 1.0, rtol=1e-5)
    np.testing.assert_allclose(got['mass_q'], 1.0, rtol=1e-5)
    np.testing.assert_array_equal(got['js_pi'][[0, -1]], 0.0)

  def test_independent_of_chunk_size(self):
    one_chunk = _exact(self.table_p, self.table_q, _PIS, 4096)
    chunked = _exact(self.table_p, self.table_q, _PIS, 7)  # 81 = 11 · 7 + 4: padded.
    self._assert_matches(chunked, one_chunk, rtol=1e-6)

  def test_support_mismatch_is_inf_not_nan(self):
    table_q = self.table_q.copy()
    table_q[0, 0] = scipy.special.log_softmax([0.3, -0.2, -np.inf])  # Q(x_0 = 2) = 0.
    got = _exact(self.table_p, table_q, _PIS)
    self.assertEqual(got['kl_pq'], np.inf)
    self.assertEqual(got['nll_test'], np.inf)
    for name, value in got.items():
      self.assertFalse(np.any(np.isnan(value)), msg=name)
    self._assert_matches(got, _reference(self.table_p, table_q, _PIS))

  def test_vmap_over_q_tables_matches_loop(self):
    # How the runner uses it: the generator's parameters carry a seed axis.
    tables_q = np.stack([self.table_q, self.table_p, 0.5 * self.table_q]).astype(np.float32)
    log_prob_p = _log_prob_fn(self.table_p)

    def fn(table_q):
      return sequence.exact(
          log_prob_p, _log_prob_fn(table_q), vocab_size=3, seq_len=4, pis=_PIS, chunk_size=7
      )

    vmapped = jax.device_get(jax.jit(jax.vmap(fn))(tables_q))
    for s, table_q in enumerate(tables_q):
      got = {name: value[s] for name, value in vmapped.items()}
      self._assert_matches(got, _exact(self.table_p, table_q, _PIS, 7), rtol=1e-6)
    np.testing.assert_allclose(vmapped['kl_pq'][1], 0.0, atol=1e-6)  # Q = P.

  def test_raises_above_max_sequences(self):
    fn = _log_prob_fn(self.table_p)
    with self.assertRaisesRegex(ValueError, r'10\^8 = 100000000 .*V=10, T=8'):
      sequence.exact(fn, fn, vocab_size=10, seq_len=8, pis=_PIS)
    with self.assertRaisesRegex(ValueError, r'3\^4 = 81 .*V=3, T=4.*max_sequences=80'):
      sequence.exact(fn, fn, vocab_size=3, seq_len=4, pis=_PIS, max_sequences=80)


class MonteCarloTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    rng = np.random.default_rng(0)
    cls.table_p = _table(rng, 3, 4)
    cls.table_q = _table(rng, 3, 4)
    cls.exact = _exact(cls.table_p, cls.table_q, _PIS)
    n = m = 20_000
    x_p, x_q = _sample(rng, cls.table_p, n), _sample(rng, cls.table_q, m)
    f32 = lambda a: a.astype(np.float32)
    cls.logs = (
        f32(_log_prob_np(cls.table_p, x_p)),  # logp_on_p
        f32(_log_prob_np(cls.table_q, x_p)),  # logq_on_p
        f32(_log_prob_np(cls.table_p, x_q)),  # logp_on_q
        f32(_log_prob_np(cls.table_q, x_q)),  # logq_on_q
    )

  def test_within_four_standard_errors_of_exact(self):
    got = jax.device_get(_monte_carlo(*self.logs, pis=_PIS))
    self.assertEqual(set(got), set(_SCALARS) | {'js_pi'})
    for name in _SCALARS:
      mean, se = got[name]
      chex.assert_shape([mean, se], ())
      self.assertGreater(se, 0.0, msg=name)
      self.assertLessEqual(abs(mean - self.exact[name]), 4 * se, msg=name)
    mean, se = got['js_pi']
    chex.assert_shape([mean, se], (len(_PIS),))
    interior = slice(1, -1)
    error = np.abs(mean - self.exact['js_pi'])
    np.testing.assert_array_less(error[interior], 4 * se[interior])
    # A zero-weight side adds exactly 0: JS_0 = JS_1 = 0 in both, with no error.
    np.testing.assert_array_equal(mean[[0, -1]], 0.0)
    np.testing.assert_array_equal(se[[0, -1]], 0.0)
    np.testing.assert_array_equal(self.exact['js_pi'][[0, -1]], 0.0)

  def test_js_se_combines_independent_sides(self):
    mean, se = _monte_carlo(*self.logs, pis=_PIS)['js_pi']
    logp_on_p, logq_on_p, logp_on_q, logq_on_q = (a.astype(np.float64) for a in self.logs)
    for k, pi in enumerate(_PIS[1:-1].astype(np.float64), start=1):
      on_p = (logp_on_p - np.logaddexp(np.log(pi) + logp_on_p, np.log1p(-pi) + logq_on_p)) / 4
      on_q = (logq_on_q - np.logaddexp(np.log(pi) + logp_on_q, np.log1p(-pi) + logq_on_q)) / 4
      expected_mean = pi * on_p.mean() + (1 - pi) * on_q.mean()
      expected_se = np.sqrt(
          pi**2 * on_p.var(ddof=1) / on_p.size + (1 - pi) ** 2 * on_q.var(ddof=1) / on_q.size
      )
      np.testing.assert_allclose(mean[k], expected_mean, rtol=1e-4)
      np.testing.assert_allclose(se[k], expected_se, rtol=1e-4)

  def test_vmap_over_seeds_matches_loop(self):
    logp_on_p, logq_on_p, logp_on_q, logq_on_q = self.logs
    seeds = 4  # The Q-side samples split into 4 "seeds" of 5000.
    logp_on_q, logq_on_q = logp_on_q.reshape(seeds, -1), logq_on_q.reshape(seeds, -1)
    fn = lambda a, b, c, d, pis: sequence.monte_carlo(a, b, c, d, seq_len=4, pis=pis)
    vmapped = jax.jit(jax.vmap(fn, in_axes=(None, None, 0, 0, None)))(
        logp_on_p, logq_on_p, logp_on_q, logq_on_q, _PIS
    )
    single = jax.jit(chex.assert_max_traces(fn, n=1))  # Once for all seeds.
    looped = [
        single(logp_on_p, logq_on_p, logp_on_q[s], logq_on_q[s], _PIS)
        for s in range(seeds)
    ]
    for name in _SCALARS:
      chex.assert_shape(vmapped[name], [(seeds,), (seeds,)])
    chex.assert_shape(vmapped['js_pi'], [(seeds, len(_PIS)), (seeds, len(_PIS))])
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *looped)
    chex.assert_trees_all_close(vmapped, stacked, rtol=1e-6, atol=1e-7)

  def test_rejects_mismatched_samples(self):
    logp_on_p, logq_on_p, logp_on_q, logq_on_q = self.logs
    with self.assertRaisesRegex(ValueError, r'logp_on_q.*\(20000,\).*logq_on_q.*\(19999,\)'):
      sequence.monte_carlo(
          logp_on_p, logq_on_p, logp_on_q, logq_on_q[1:], seq_len=4, pis=_PIS
      )
    with self.assertRaisesRegex(ValueError, 'pis must be 1-D'):
      sequence.monte_carlo(*self.logs, seq_len=4, pis=0.5)


if __name__ == '__main__':
  absltest.main()
