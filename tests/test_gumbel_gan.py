"""Tests of objectives/gumbel_gan.py and LSTMLM.sample_relaxed: relaxed samples, τ schedules."""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from _smoke import final_rows, smoke_config
from benchmarks import configs
import divergences
from models import oracle as oracle_lib
from objectives import gumbel_gan
import objectives

V, T = 3, 2


@functools.lru_cache(maxsize=None)
def _tiny():
  """A tiny LSTM with clearly non-uniform probabilities, and Q on all V^T sequences."""
  model, params = oracle_lib.random_oracle(jax.random.PRNGKey(3), vocab_size=V, seq_len=T,
                                           embed_dim=4, hidden_dim=5, init_scale=1.0)
  xs = divergences.enumerate_sequences(V, T, 0, V ** T)
  q = jnp.exp(jax.jit(lambda x: model.apply(params, x, method='log_prob'))(xs))
  return model, params, q


@functools.lru_cache(maxsize=None)
def _samples(tau, hard, num=20_000):
  model, params, _ = _tiny()
  fn = lambda k: model.apply(params, k, num, tau, hard, method='sample_relaxed')
  return jax.device_get(jax.jit(fn)(jax.random.PRNGKey(0)))


class RelaxedSamplingTest(parameterized.TestCase):

  def test_shapes_under_vmap_and_valid_relaxed_one_hots(self):
    model, params, _ = _tiny()

    @jax.jit
    def run(keys):
      one = lambda k, hard: model.apply(params, k, 5, 0.7, hard, method='sample_relaxed')
      soft = jax.vmap(lambda k: one(k, False))(keys)
      hard = jax.vmap(lambda k: one(k, True))(keys)
      # Reparameterised: the soft sample is differentiable in the parameters.
      grads = jax.grad(lambda p: model.apply(p, keys[0], 5, 0.7, method='sample_relaxed')[1][
          ..., 0].sum())(params)
      return soft, hard, grads

    (toks, soft), (hard_toks, hard), grads = run(jax.random.split(jax.random.PRNGKey(0), 4))
    chex.assert_shape([toks, hard_toks], (4, 5, T))
    chex.assert_shape([soft, hard], (4, 5, T, V))
    self.assertEqual(toks.dtype, jnp.int32)
    self.assertTrue(bool((soft >= 0).all()))
    np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(jnp.argmax(soft, -1), toks)  # the Gumbel-max token
    # Straight-through: one-hot values of the tokens.
    np.testing.assert_allclose(hard, jax.nn.one_hot(hard_toks, V), atol=1e-6)
    chex.assert_tree_all_finite(grads)
    self.assertGreater(float(jnp.abs(grads['params']['Wo']).max()), 0.0)

  @parameterized.named_parameters(('soft_low_temperature', 0.01, False),
                                  ('straight_through', 1.0, True))
  def test_argmax_frequencies_match_the_model(self, tau, hard):
    # As τ -> 0 the relaxed rows become one-hots and the fed-back soft embeddings the hard
    # ones, so the argmax tokens follow the model; straight-through feeds exact one-hots at any τ.
    _, _, q = _tiny()
    toks, soft = _samples(tau, hard)
    num = toks.shape[0]
    if not hard:
      self.assertGreater(float(soft.max(-1).mean()), 0.99)  # nearly one-hot rows
    counts = np.bincount(toks[:, 0] * V + toks[:, 1], minlength=V ** T)
    freq, q = counts / num, np.asarray(q, np.float64)
    se = np.sqrt(q * (1 - q) / num)
    np.testing.assert_array_less(np.abs(freq - q), 4 * se + 1e-9)
    self.assertLess(q.min(), 0.5 * q.max())  # the test distribution is far from uniform

  def test_soft_feedback_at_high_temperature_changes_the_distribution(self):
    # The contrast that makes the previous test meaningful: at τ = 1 the second token is
    # conditioned on a soft embedding, so the joint frequencies move away from Q.
    _, _, q = _tiny()
    toks, _ = _samples(1.0, False)
    freq = np.bincount(toks[:, 0] * V + toks[:, 1], minlength=V ** T) / toks.shape[0]
    se = np.sqrt(q * (1 - q) / toks.shape[0])
    self.assertGreater(float(np.max(np.abs(freq - q) / se)), 4.0)


class TemperatureTest(parameterized.TestCase):

  @parameterized.parameters(
      ('constant', [2.0, 2.0, 2.0]),
      ('exponential', [2.0, 2.0 * np.exp(-0.1 * 10), 0.5]),  # floor 0.5 at step 100
      ('linear', [2.0, 2.0 - 1.5 * 10 / 40, 0.5]))
  def test_schedules(self, schedule, expected):
    tau = jax.jit(functools.partial(gumbel_gan.temperature, schedule=schedule, tau_init=2.0,
                                    tau_min=0.5, decay=0.1, anneal_steps=40))
    np.testing.assert_allclose([tau(jnp.int32(i)) for i in (0, 10, 100)], expected, rtol=1e-6)

  def test_unknown_schedule(self):
    config = configs.get_preset('smoke')
    config.gumbel_gan.tau_schedule = 'cosine'
    with self.assertRaisesRegex(ValueError, '--config.gumbel_gan.tau_schedule'):
      objectives.make('gumbel_gan', config, None)


class SchemeTest(absltest.TestCase):

  def test_trains_end_to_end_on_smoke(self):
    # Straight-through samples, a DRAGAN penalty and two D steps per generator step (the
    # default soft samples and no penalty share all other code with this configuration).
    config = smoke_config()
    config.discriminator.update(embed_dim=8, hidden_dim=8)
    config.gumbel_gan.update(straight_through=True, penalty='dragan', d_steps=2,
                             tau_schedule='linear', tau_anneal_steps=8)
    scheme, last = final_rows('gumbel_gan', config)
    self.assertFalse(scheme.uses_pi)
    self.assertLen(last, config.num_seeds)
    for row in last:
      self.assertFalse(row['diverged'])
      for key in ('kl_pq', 'nll_oracle', 'entropy_q', 'train_d_loss', 'train_g_loss',
                  'train_d_penalty'):
        self.assertTrue(np.isfinite(row[key]), key)
      # τ fell linearly from 1 towards 0.1 over the first 8 generator updates.
      self.assertLess(row['train_tau'], 1.0)
      self.assertGreater(row['train_d_penalty'], 0.0)


if __name__ == '__main__':
  absltest.main()
