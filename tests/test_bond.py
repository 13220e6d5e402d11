"""Tests of objectives/bond.py: the exact best-of-N law, the Jeffreys divergence's ends, the
Monte-Carlo terms' expectations by enumeration, the quantile estimate and the refusals."""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

import _smoke
from benchmarks import configs
import divergences
from objectives import bond
from objectives import rerank
import objectives

V, T = 3, 3


@functools.lru_cache(maxsize=None)
def _setup():
  """(config, problem, generator, policy params, reference params, log π_BoN of every x)."""
  config, problem, gen, params = _smoke.enumerable_setup('bond', V, T)
  ref = gen.init(jax.random.PRNGKey(7), jnp.zeros((1, T), jnp.int32))
  rewards = problem.model.apply(problem.params, method='all_log_probs')
  log_bon = bond.bon_log_probs(gen.apply(ref, method='all_log_probs'),
                               rerank.score_ranks(rewards), 4)
  return config, problem, gen, params, ref, log_bon


def _tree_close(a, b, **kw):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **kw), a, b)


class BondTest(parameterized.TestCase):

  def test_bon_law_matches_the_sorting_reranker_with_ties(self):
    rng = np.random.default_rng(0)
    log_q = jnp.asarray(np.log(rng.dirichlet(np.ones(12))), jnp.float32)
    scores = jnp.asarray(rng.integers(0, 4, 12), jnp.float32)  # ties
    for n in (1, 3, 8):
      got = jnp.exp(bond.bon_log_probs(log_q, rerank.score_ranks(scores), n))
      np.testing.assert_allclose(got, rerank.reranked_probs(log_q, scores, n), rtol=1e-6)
      np.testing.assert_allclose(float(got.sum()), 1.0, rtol=1e-5)
    np.testing.assert_allclose(jnp.exp(bond.bon_log_probs(log_q, rerank.score_ranks(scores),
                                                          1)), jnp.exp(log_q), rtol=1e-6)

  def test_bon_law_in_log_space_where_probabilities_underflow(self):
    # The lowest-scored sequence has R = Q^K: e^-240 at K = 4, below float32's range; its
    # log stays finite (−240 + log of the series' one term) and the law still sums to 1.
    log_q = jnp.array([-60.0, np.log(0.5), np.log(0.5)], jnp.float32)
    log_q = log_q - jax.scipy.special.logsumexp(log_q)
    scores = jnp.array([0.0, 1.0, 2.0])
    got = bond.bon_log_probs(log_q, rerank.score_ranks(scores), 4)
    self.assertTrue(np.isfinite(np.asarray(got)).all())
    np.testing.assert_allclose(float(got[0]), 4 * float(log_q[0]), rtol=1e-6)
    np.testing.assert_allclose(float(jnp.exp(got).sum()), 1.0, rtol=1e-5)
    self.assertEqual(float(rerank.reranked_probs(log_q, scores, 4)[0]), 0.0)  # underflows

  def test_jeffreys_at_an_end_ignores_the_other_infinite_kl(self):
    # A target with a zero atom: KL(Q ‖ target) = ∞, so only β = 0 is finite — not NaN.
    la = jnp.log(jnp.array([0.5, 0.5, 0.0]))
    lb = jnp.log(jnp.array([0.2, 0.3, 0.5]))
    self.assertTrue(np.isfinite(float(bond.jeffreys(la, lb, 0.0))))
    grad = jax.grad(lambda l: bond.jeffreys(la, l, 0.0))(lb)
    self.assertTrue(np.isfinite(np.asarray(grad)).all())
    self.assertEqual(float(bond.jeffreys(la, lb, 0.5)), np.inf)

  def test_jeffreys_ends_and_middle_against_numpy(self):
    rng = np.random.default_rng(1)
    a, b = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
    la, lb = jnp.log(jnp.asarray(a, jnp.float32)), jnp.log(jnp.asarray(b, jnp.float32))
    fwd = scipy.special.rel_entr(a, b).sum()
    bwd = scipy.special.rel_entr(b, a).sum()
    for beta in (0.0, 0.3, 1.0):
      np.testing.assert_allclose(bond.jeffreys(la, lb, beta), (1 - beta) * fwd + beta * bwd,
                                 rtol=1e-5)

  def test_forward_term_expectation_is_the_forward_kl_gradient(self):
    # β = 0: Σ_y π_BoN(y) ∇(one-row loss on y) = ∇KL(π_BoN ‖ Q)/T, by enumeration.
    _, _, gen, params, _, log_bon = _setup()
    xs = divergences.enumerate_sequences(V, T, 0, V ** T)
    one = lambda p, x: bond.sampled_loss(gen, p, x[None], x[None], jnp.zeros(1), 0.0,
                                         baseline=0.0)
    grads = jax.vmap(jax.grad(one), in_axes=(None, 0))(params, xs)
    got = jax.tree.map(lambda g: jnp.tensordot(jnp.exp(log_bon), g, axes=1), grads)
    want = jax.grad(lambda p: bond.jeffreys(
        log_bon, gen.apply(p, method='all_log_probs'), 0.0) / T)(params)
    _tree_close(got, want, rtol=1e-4, atol=1e-7)

  def test_backward_term_expectation_is_the_backward_kl_gradient(self):
    # β = 1, the exact log π_BoN as the estimate, baseline 0: Σ_x Q(x) ∇(one-row loss on x)
    # = ∇KL(Q ‖ π_BoN)/T, by enumeration.
    _, _, gen, params, _, log_bon = _setup()
    xs = divergences.enumerate_sequences(V, T, 0, V ** T)
    one = lambda p, x, lb: bond.sampled_loss(gen, p, x[None], x[None], lb[None], 1.0,
                                             baseline=0.0)
    grads = jax.vmap(jax.grad(one), in_axes=(None, 0, 0))(params, xs, log_bon)
    q = jnp.exp(gen.apply(params, method='all_log_probs'))
    got = jax.tree.map(lambda g: jnp.tensordot(q, g, axes=1), grads)
    want = jax.grad(lambda p: bond.jeffreys(
        log_bon, gen.apply(p, method='all_log_probs'), 1.0) / T)(params)
    _tree_close(got, want, rtol=1e-4, atol=1e-7)

  def test_quantile_share_and_floor(self):
    ref = jnp.array([0.0, 1.0, 2.0, 3.0])
    got = jnp.exp(bond.quantile_log_prob(jnp.array([-1.0, 1.0, 2.5, 9.0]), ref))
    np.testing.assert_allclose(got, [0.2, 0.5, 0.75, 1.0], rtol=1e-6)  # 1/(K+1) floor

  def test_exact_training_descends_j_and_keeps_the_reference(self):
    config, problem, _, _, _, _ = _setup()
    c = config.copy_and_resolve_references()
    c.bond.estimator = 'exact'
    scheme = objectives.make('bond', c, problem)
    state = scheme.init(jax.random.PRNGKey(0))
    step = jax.jit(scheme.step)
    losses = []
    for i in range(20):
      state, metrics = step(state, problem.train[:16], jax.random.PRNGKey(i), jnp.nan)
      losses.append(float(metrics['loss']))
    self.assertTrue(np.isfinite(losses).all())
    self.assertLess(losses[-1], losses[0])
    _tree_close(state.ref, scheme.init(jax.random.PRNGKey(0)).ref, rtol=0, atol=0)

  def test_sampled_smoke_run_through_train_scheme(self):
    config = _smoke.smoke_config()
    config.train.update(num_steps=20, eval_every=10, warm_start_steps=0)
    _, rows = _smoke.final_rows('bond', config)
    self.assertTrue(all(np.isfinite(r['kl_pq']) and np.isfinite(r['train_loss'])
                        and not r['diverged'] for r in rows))

  @parameterized.parameters(
      ({'beta': 1.5}, 'beta'), ({'estimator': 'mc'}, 'estimator'),
      ({'num_candidates': 0}, 'num_candidates'), ({'baseline': 'mean'}, 'baseline'),
      ({'optimizer': 'lbfgs'}, 'optimizer'), ({'learning_rate': -1.0}, 'learning_rate'))
  def test_bad_field_names_its_flag(self, fields, flag):
    config = configs.get_preset('smoke')
    config.bond.update(fields)
    with self.assertRaisesRegex(ValueError, f'--config.bond.{flag}:'):
      objectives.check_config('bond', config)

  def test_exact_on_a_space_too_large_is_refused(self):
    config = configs.get_preset('smoke')
    config.bond.estimator = 'exact'
    config.problem.update(vocab_size=16, seq_len=8)
    with self.assertRaisesRegex(ValueError, '--config.bond.estimator: .*sequences'):
      objectives.check_config('bond', config)


if __name__ == '__main__':
  absltest.main()
