"""Tests of objectives/rerank.py: the exact best-of-K distribution against Monte Carlo."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

import divergences
from models import discriminator as discriminator_lib
from models import oracle as oracle_lib
from objectives import rerank


def _check_frequencies(test, draws, probs):
  """Each cell's frequency within 4 standard errors of its probability."""
  probs = np.asarray(probs, np.float64)
  freq = np.bincount(np.asarray(draws), minlength=probs.shape[0]) / draws.shape[0]
  se = np.sqrt(probs * (1 - probs) / draws.shape[0])
  np.testing.assert_array_less(np.abs(freq - probs), 4 * se + 1e-9)


class RerankTest(parameterized.TestCase):

  def test_closed_forms(self):
    log_q = jax.nn.log_softmax(jax.random.normal(jax.random.PRNGKey(0), (10,)))
    q = np.exp(np.asarray(log_q, np.float64))
    distinct = jax.random.normal(jax.random.PRNGKey(1), (10,))
    np.testing.assert_allclose(rerank.reranked_probs(log_q, distinct, 1), q, rtol=1e-5)
    for k in (2, 5):
      r = np.asarray(rerank.reranked_probs(log_q, distinct, k))
      np.testing.assert_allclose(r.sum(), 1.0, rtol=1e-5)
      # Distinct scores: R(x) = (F_<(x) + Q(x))^K − F_<(x)^K.
      f_lt = np.array([q[np.asarray(distinct) < s].sum() for s in np.asarray(distinct)])
      np.testing.assert_allclose(r, (f_lt + q) ** k - f_lt ** k, rtol=1e-4, atol=1e-7)
    # All scores tied: every draw is a uniform pick among i.i.d. Q draws, so R = Q.
    np.testing.assert_allclose(rerank.reranked_probs(log_q, jnp.zeros(10), 4), q, rtol=1e-5)
    # K -> ∞ puts all mass on the top level, split in proportion to Q.
    top = rerank.reranked_probs(log_q, jnp.array([0, 1, 1] + [0] * 7, jnp.float32), 500)
    np.testing.assert_allclose(top[1:3], q[1:3] / q[1:3].sum(), rtol=1e-3)

  @parameterized.parameters(2, 4)
  def test_monte_carlo_with_ties(self, k):
    # Integer scores with ties: R(x) = Q(x)/q_s · (F_≤^K − F_<^K).
    log_q = jax.nn.log_softmax(jax.random.normal(jax.random.PRNGKey(2), (12,)))
    scores = jnp.array([0, 1, 1, 2, 0, 3, 3, 3, 1, 2, 0, 1], jnp.float32)
    num = 50_000

    @jax.jit
    def draw(key):
      sample = lambda k_, n: jax.random.categorical(k_, log_q, shape=(n,))
      return rerank.rerank_sample(key, sample, lambda x: scores[x], num, k)

    probs = rerank.reranked_probs(log_q, scores, k)
    np.testing.assert_allclose(float(probs.sum()), 1.0, rtol=1e-5)
    _check_frequencies(self, draw(jax.random.PRNGKey(3)), probs)

  def test_generator_and_discriminator_on_an_enumerable_space(self):
    # Best of K = 3 LSTM samples by a CNN discriminator's logit, V = 3, T = 2.
    v, t, k, num = 3, 2, 3, 30_000
    gen, params = oracle_lib.random_oracle(jax.random.PRNGKey(0), vocab_size=v, seq_len=t,
                                           embed_dim=4, hidden_dim=4, init_scale=1.0)
    disc = discriminator_lib.make_discriminator('cnn', vocab_size=v, embed_dim=4,
                                                filter_widths=(1, 2), num_filters=(3, 3))
    d_params = jax.jit(disc.init)(jax.random.PRNGKey(1), jnp.zeros((1, t), jnp.int32))
    score = rerank.discriminator_score(disc, d_params)

    @jax.jit
    def run(key):
      sample = lambda k_, n: gen.apply(params, k_, n, method='sample')
      draws = rerank.rerank_sample(key, sample, score, num, k)
      xs = divergences.enumerate_sequences(v, t, 0, v ** t)
      log_q = gen.apply(params, xs, method='log_prob')
      return draws[:, 0] * v + draws[:, 1], rerank.reranked_probs(log_q, score(xs), k), log_q

    draws, probs, log_q = run(jax.random.PRNGKey(2))
    _check_frequencies(self, draws, probs)
    self.assertGreater(float(np.abs(probs - np.exp(log_q)).max()), 0.02)  # R differs from Q

  def test_rerank_effect_table_at_k1_is_q(self):
    from benchmarks.measure import rerank_effect
    log_p = jax.nn.log_softmax(jax.random.normal(jax.random.PRNGKey(4), (9,)))
    log_q = jax.nn.log_softmax(jax.random.normal(jax.random.PRNGKey(5), (9,)))
    rows = rerank_effect.rerank_table(log_p, log_q, {'d*': log_p - log_q}, seq_len=2,
                                      ks=(1, 2))
    p, q = np.exp(np.asarray(log_p, np.float64)), np.exp(np.asarray(log_q, np.float64))
    lp, lq = np.log(p), np.log(q)
    k1 = rows[0]
    np.testing.assert_allclose(
        [k1['nll_oracle'], k1['entropy'], k1['kl_p_r'], k1['kl_r_p'], k1['mass']],
        [-(q * lp).sum() / 2, -(q * lq).sum() / 2, (p * (lp - lq)).sum() / 2,
         (q * (lq - lp)).sum() / 2, 1.0], rtol=1e-4, atol=1e-6)
    # Here, best of 2 by D* moves R towards P.
    self.assertLess(rows[1]['kl_r_p'], k1['kl_r_p'])

  def test_select_best_breaks_ties_uniformly(self):
    cands = jnp.arange(3)[:, None].repeat(20_000, axis=1)  # candidate k is the value k
    scores = jnp.array([1.0, 1.0, 0.0])[:, None].repeat(20_000, axis=1)
    picked = np.asarray(rerank.select_best(jax.random.PRNGKey(0), cands, scores))
    self.assertEqual(set(picked.tolist()), {0, 1})
    _check_frequencies(self, picked, [0.5, 0.5, 0.0])


if __name__ == '__main__':
  absltest.main()
