"""Tests of models/: the LSTM's log-probs and samplers, the oracles and the problem."""

import itertools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import scipy.stats

from _smoke import optimized
import divergences
from models import oracle as oracle_lib
import models


def _all_sequences(vocab_size, seq_len):
  return jnp.asarray(list(itertools.product(range(vocab_size), repeat=seq_len)), jnp.int32)


def _tiny(vocab_size=3, seq_len=3, init_scale=1.0, seed=0):
  return oracle_lib.random_oracle(jax.random.PRNGKey(seed), vocab_size=vocab_size,
                                  seq_len=seq_len, embed_dim=4, hidden_dim=5,
                                  init_scale=init_scale)



def _step_by_step(model, params, x):
  """Teacher forcing by hand: the carries and logits after each input, lists of T."""
  num = x.shape[0]
  carry = model.apply(params, num, method='initial_carry')
  prev = model.apply(params, num, method='start_tokens')
  carries, logits = [], []
  for t in range(x.shape[1]):
    carry, l = model.apply(params, carry, prev, method='step')
    carries.append(carry)
    logits.append(l)
    prev = x[:, t]
  return carries, logits

class LSTMTest(parameterized.TestCase):

  def test_shapes(self):
    model, params = _tiny(vocab_size=7, seq_len=5)
    x = jax.random.randint(jax.random.PRNGKey(1), (4, 5), 0, 7)
    chex.assert_shape(model.apply(params, x, method='logits'), (4, 5, 7))
    chex.assert_shape(model.apply(params, x, method='token_log_probs'), (4, 5))
    chex.assert_shape(model.apply(params, x, method='log_prob'), (4,))
    chex.assert_shape(model.apply(params, x, method='hidden_states'), (4, 5, 5))
    s = model.apply(params, jax.random.PRNGKey(2), 6, method='sample')
    chex.assert_shape(s, (6, 5))
    self.assertEqual(s.dtype, jnp.int32)
    self.assertTrue(bool(((s >= 0) & (s < 7)).all()))

  @parameterized.parameters(1.0, 0.5, 2.0)
  def test_log_prob_normalised(self, temperature):
    model, params = _tiny()
    lp = jax.jit(lambda x: model.apply(params, x, temperature, method='log_prob'))(
        _all_sequences(3, 3))
    np.testing.assert_allclose(np.exp(np.asarray(lp, np.float64)).sum(), 1.0, rtol=1e-5)

  @parameterized.parameters((3, 3, 1.0), (4, 2, 0.5), (2, 5, 2.0))
  def test_prefix_tree_log_probs_equal_log_prob_of_every_sequence(self, v, t, temperature):
    # all_log_probs enumerates in itertools.product's (= enumerate_sequences') order; its
    # gradient is that of the sequence-by-sequence log-probs too.
    model, params = _tiny(vocab_size=v, seq_len=t)
    seqs = _all_sequences(v, t)
    np.testing.assert_array_equal(seqs, divergences.enumerate_sequences(v, t, 0, v ** t))
    weights = jnp.linspace(-1.0, 1.0, v ** t)
    tree = jax.jit(jax.value_and_grad(lambda p: model.apply(
        p, temperature, method='all_log_probs') @ weights))
    full = jax.jit(jax.value_and_grad(lambda p: model.apply(
        p, seqs, temperature, method='log_prob') @ weights))
    np.testing.assert_allclose(model.apply(params, temperature, method='all_log_probs'),
                               model.apply(params, seqs, temperature, method='log_prob'),
                               atol=2e-5)
    (a, ga), (b, gb) = tree(params), full(params)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5), ga, gb)

  def test_teacher_forcing_matches_step_by_step(self):
    model, params = _tiny(vocab_size=5, seq_len=4)
    x = jax.random.randint(jax.random.PRNGKey(3), (3, 4), 0, 5)
    _, logits = _step_by_step(model, params, x)
    manual = [jax.nn.log_softmax(l)[jnp.arange(3), x[:, t]] for t, l in enumerate(logits)]
    np.testing.assert_allclose(np.stack(manual, 1),
                               model.apply(params, x, method='token_log_probs'), atol=1e-5)

  def test_behaviour_matches_step_by_step(self):
    # behaviour = concat(c_t, softmax(logits_t)): c from stepping the cell by hand, the
    # softmax from the teacher-forced `logits`; the softmax part sums to 1.
    model, params = _tiny(vocab_size=5, seq_len=4)
    x = jax.random.randint(jax.random.PRNGKey(3), (3, 4), 0, 5)
    carries, _ = _step_by_step(model, params, x)
    cells = [c[1] for c in carries]
    b = model.apply(params, x, method='behaviour')
    chex.assert_shape(b, (3, 4, 5 + 5))  # H = 5, V = 5
    np.testing.assert_allclose(b[..., :5], np.stack(cells, 1), atol=1e-6)
    probs = jax.nn.softmax(model.apply(params, x, method='logits'), axis=-1)
    np.testing.assert_allclose(b[..., 5:], probs, atol=1e-6)
    np.testing.assert_allclose(b[..., 5:].sum(-1), 1.0, atol=1e-5)

  def test_free_running_behaviour_is_that_of_the_samples(self):
    # Same tokens as `sample`, and the behaviour is the teacher-forced behaviour of those
    # tokens; its gradient w.r.t. the parameters is finite and non-zero.
    model, params = _tiny(vocab_size=6, seq_len=4)
    key = jax.random.PRNGKey(5)

    @jax.jit
    def run(params):
      toks, b = model.apply(params, key, 7, method='free_running_behaviour')
      return (toks, b, model.apply(params, key, 7, method='sample'),
              model.apply(params, toks, method='behaviour'))

    toks, b, sampled, teacher = run(params)
    np.testing.assert_array_equal(toks, sampled)
    chex.assert_shape(b, (7, 4, 5 + 6))
    np.testing.assert_allclose(b, teacher, atol=1e-6)
    grads = jax.grad(lambda p: model.apply(p, key, 7, method='free_running_behaviour')[1]
                     .sum(axis=(0, 1)).dot(jnp.arange(11.0)))(params)
    chex.assert_tree_all_finite(grads)
    self.assertGreater(float(sum(jnp.abs(g).sum() for g in jax.tree.leaves(grads))), 0.0)

  @parameterized.parameters('gumbel', 'icdf')
  def test_samples_follow_log_prob(self, method):
    model, params = _tiny(vocab_size=2, seq_len=3)
    n = 40_000
    s = jax.jit(lambda k: model.apply(params, k, n, 1.0, method, method='sample'))(
        jax.random.PRNGKey(4))
    seqs = _all_sequences(2, 3)
    p = np.exp(np.asarray(model.apply(params, seqs, method='log_prob'), np.float64))
    codes = np.asarray(s) @ np.array([4, 2, 1])
    freq = np.bincount(codes, minlength=8) / n
    se = np.sqrt(p * (1 - p) / n)
    np.testing.assert_array_less(np.abs(freq - p), 4.5 * se + 1e-12)

  @optimized()  # execution-bound: see tests/conftest.py
  def test_icdf_matches_jax_categorical(self):
    # Same distribution as jax.random.categorical: chi-square goodness of fit of both samplers
    # against the exact probabilities of a peaked V=1000 categorical.
    logits = 3.0 * jax.random.normal(jax.random.PRNGKey(7), (1000,))
    probs = np.asarray(jax.nn.softmax(logits), np.float64)
    probs /= probs.sum()  # float32 softmax sums to 1 only to ~1e-7
    n = 50_000  # 4× the previous test's draws took 26 s at -O0; a wrong sampler fails at this n
    for method in models.sampling.METHODS:
      draws = jax.jit(lambda k, m=method: models.categorical(
          k, jnp.broadcast_to(logits, (n, 1000)), method=m))(jax.random.PRNGKey(8))
      counts = np.bincount(np.asarray(draws), minlength=1000)
      keep = probs * n >= 5  # pool the rare cells so the chi-square approximation holds
      observed = np.append(counts[keep], counts[~keep].sum())
      expected = np.append(probs[keep], probs[~keep].sum()) * n
      p_value = scipy.stats.chisquare(observed, expected).pvalue
      self.assertGreater(p_value, 1e-3, method)

  def test_icdf_sampler_never_out_of_range(self):
    logits = jnp.array([[0.0, -jnp.inf, 30.0], [-50.0, -50.0, 50.0]])
    draws = jax.vmap(lambda k: models.categorical_icdf(k, logits))(
        jax.random.split(jax.random.PRNGKey(0), 1000))
    self.assertTrue(bool((draws <= 2).all()))
    self.assertFalse(bool((draws == 1).any()))

  def test_temperature_sharpens(self):
    model, params = _tiny(vocab_size=4, seq_len=3, seed=5)
    seqs = _all_sequences(4, 3)

    def entropy(tau):
      lp = np.asarray(model.apply(params, seqs, tau, method='log_prob'), np.float64)
      return -(np.exp(lp) * lp).sum()

    self.assertLess(entropy(0.5), entropy(1.0))
    self.assertLess(entropy(1.0), entropy(2.0))


class OracleTest(absltest.TestCase):

  def test_random_oracle_is_standard_normal(self):
    _, params = oracle_lib.random_oracle(jax.random.PRNGKey(0), vocab_size=500, seq_len=4,
                                         embed_dim=32, hidden_dim=32)
    flat = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(params)])
    self.assertAlmostEqual(float(flat.std()), 1.0, delta=0.02)
    self.assertAlmostEqual(float(flat.mean()), 0.0, delta=0.02)

  def test_generator_init_scale(self):
    gen = models.make_generator(vocab_size=500, seq_len=4, embed_dim=32, hidden_dim=32)
    params = gen.init(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))
    flat = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(params)])
    self.assertAlmostEqual(float(flat.std()), 0.1, delta=0.003)

  @optimized()  # execution-bound: see tests/conftest.py
  def test_seqgan_oracle_entropy(self):
    # shared/reference/README.md: 5.758 ± 0.005 nats/token over 10,000 samples (float64).
    model, params = oracle_lib.seqgan_oracle()
    self.assertEqual(params['params']['embedding'].shape, (5000, 32))
    self.assertEqual(params['params']['Wo'].shape, (32, 5000))

    @jax.jit
    def nll(key):
      x = model.apply(params, key, 2000, method='sample')
      return -model.apply(params, x, method='log_prob') / 20

    h = np.asarray(nll(jax.random.PRNGKey(0)))
    self.assertAlmostEqual(float(h.mean()), 5.75, delta=0.05)
    self.assertLess(float(h.std() / np.sqrt(h.size)), 0.02)

  def test_make_problem_deterministic(self):
    cfg = ml_collections.ConfigDict(dict(source='random', vocab_size=11, seq_len=5,
                                         embed_dim=4, hidden_dim=4, init_scale=1.0, seed=3,
                                         num_train=64, num_test=32))
    a, b = oracle_lib.build_problem(cfg), oracle_lib.build_problem(cfg)  # built twice
    chex.assert_shape(a.train, (64, 5))
    chex.assert_shape(a.test, (32, 5))
    chex.assert_shape(a.test_logp, (32,))
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.test_logp, b.test_logp)
    np.testing.assert_allclose(a.test_logp, a.model.apply(a.params, a.test, method='log_prob'),
                               rtol=1e-6)
    self.assertFalse(np.array_equal(a.train[:32], a.test))

  def test_make_problem_builds_each_configuration_once(self):
    cfg = ml_collections.ConfigDict(dict(source='random', vocab_size=7, seq_len=4,
                                         embed_dim=4, hidden_dim=4, init_scale=1.0, seed=5,
                                         num_train=16, num_test=8))
    first = oracle_lib.make_problem(cfg)
    self.assertIs(oracle_lib.make_problem(ml_collections.ConfigDict(cfg.to_dict())), first)
    np.testing.assert_array_equal(first.train, oracle_lib.build_problem(cfg).train)
    other = ml_collections.ConfigDict(dict(cfg.to_dict(), seed=6))
    self.assertIsNot(oracle_lib.make_problem(other), first)
    # Only the last KEPT_PROBLEMS are kept: after that many others, it is built anew.
    for seed in range(100, 100 + oracle_lib.KEPT_PROBLEMS):
      oracle_lib.make_problem(ml_collections.ConfigDict(dict(cfg.to_dict(), seed=seed)))
    again = oracle_lib.make_problem(cfg)
    self.assertIsNot(again, first)
    np.testing.assert_array_equal(again.train, first.train)


if __name__ == '__main__':
  absltest.main()
