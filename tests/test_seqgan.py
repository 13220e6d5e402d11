"""Tests of objectives/seqgan.py: rollouts and rewards by enumeration, phases, the switch."""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from _smoke import traced_once_run
from benchmarks import configs
import divergences
from models import discriminator as discriminator_lib
from models import oracle as oracle_lib
import models
from objectives import adversarial
from objectives import seqgan
import objectives

V, T, B = 4, 3, 3


@functools.lru_cache(maxsize=None)
def _tiny(seq_len=T):
  """A tiny generator (also the rollout policy) and CNN discriminator on V = 4."""
  gen = models.LSTMLM(vocab_size=V, embed_dim=4, hidden_dim=5, seq_len=seq_len, init_scale=1.0)
  gen_params = jax.jit(gen.init)(jax.random.PRNGKey(0), jnp.zeros((1, seq_len), jnp.int32))
  disc = discriminator_lib.make_discriminator('cnn', vocab_size=V, embed_dim=4,
                                              filter_widths=(1, 2), num_filters=(3, 3))
  disc_params = jax.jit(disc.init)(jax.random.PRNGKey(1), jnp.zeros((1, seq_len), jnp.int32))
  return gen, gen_params, disc, disc_params


class RewardTest(parameterized.TestCase):

  @parameterized.parameters(3, 4)  # odd and even T (the paired rollout lanes differ)
  def test_rollout_rewards_match_enumerated_expectations_under_vmap(self, seq_len):
    # R_t (t < T) is a mean of N completions of the prefix y_{1:t}; its expectation is
    # Σ_{y' ⊇ y_{1:t}} G(y' | y_{1:t}) D(y'), enumerated over all V^T sequences. R_T = D(y).
    # Two independent reward draws (vmapped over rollout keys, as over seeds).
    gen, params, disc, disc_params = _tiny(seq_len)
    num_rollouts, seeds, T = 2_000, 2, seq_len  # pylint: disable=invalid-name

    @jax.jit
    def run():
      score = lambda x: jax.nn.sigmoid(disc.apply(disc_params, x))
      tokens = gen.apply(params, jax.random.PRNGKey(2), B, method='sample')
      rewards = jax.vmap(lambda k: seqgan.rollout_rewards(gen, params, score, tokens, k,
                                                          num_rollouts))(
          jax.random.split(jax.random.PRNGKey(3), seeds))
      logp = gen.apply(params, tokens, method='token_log_probs')
      losses = jax.vmap(lambda r: seqgan.policy_gradient_loss(logp, r))(rewards)
      xs = divergences.enumerate_sequences(V, T, 0, V ** T)
      g, s = jnp.exp(gen.apply(params, xs, method='log_prob')), score(xs)
      # match[b, t, y]: y agrees with tokens[b] on the first t + 1 positions.
      agree = jnp.cumprod(xs[None, :, :] == tokens[:, None, :], axis=-1)  # [B, V^T, T]
      match = jnp.swapaxes(agree, 1, 2) * g  # [B, T, V^T], weighted by G
      mean = (match * s).sum(-1) / match.sum(-1)
      var = (match * s ** 2).sum(-1) / match.sum(-1) - mean ** 2
      return rewards, losses, mean, var, score(tokens)

    rewards, losses, mean, var, full = run()
    chex.assert_shape(rewards, (seeds, B, T))
    chex.assert_shape(losses, (seeds, B))
    chex.assert_shape(mean, (B, T))
    self.assertTrue(bool(((rewards >= 0) & (rewards <= 1)).all()))
    self.assertTrue(bool((losses > 0).all()))  # −Σ R log G with R > 0 and log G < 0
    np.testing.assert_allclose(rewards[:, :, -1], np.stack([full] * seeds), rtol=1e-6)
    np.testing.assert_allclose(mean[:, -1], full, rtol=1e-5)  # the enumeration agrees
    se = np.sqrt(np.maximum(var[:, :-1], 0) / num_rollouts)
    for r in rewards:
      np.testing.assert_array_less(np.abs(r[:, :-1] - mean[:, :-1]), 4 * se + 1e-6)
    self.assertGreater(float(se.min()), 0.0)  # the rewards really are random
    self.assertFalse(np.allclose(rewards[0], rewards[1]))

  def test_complete_prefixes(self):
    gen, params, _, _ = _tiny()
    key = jax.random.PRNGKey(4)

    @jax.jit
    def run(tokens):
      complete = lambda t: seqgan.complete_prefixes(gen, params, tokens, t, key)
      return jax.vmap(complete)(jnp.arange(T + 1)), gen.apply(params, key, 64, method='sample')

    tokens = jax.random.randint(jax.random.PRNGKey(5), (64, T), 0, V)
    completions, sampled = run(tokens)
    np.testing.assert_array_equal(completions[0], sampled)  # no prefix: a plain sample
    np.testing.assert_array_equal(completions[T], tokens)  # the full prefix: unchanged
    for t in range(1, T):
      np.testing.assert_array_equal(completions[t][:, :t], tokens[:, :t])
      self.assertFalse(np.array_equal(completions[t], tokens))

  def test_discriminator_accuracy(self):
    acc = adversarial.discriminator_accuracy(jnp.array([1.0, -2.0, 0.5, 0.0]),
                                        jnp.array([-1.0, 3.0]))
    self.assertAlmostEqual(float(acc), 3 / 6)  # a logit of exactly 0 is wrong

  def test_update_rollout_mixes_all_but_the_embedding(self):
    roll = {'params': {'embedding': jnp.zeros(3), 'Wo': jnp.zeros(2)}}
    gen = {'params': {'embedding': jnp.ones(3), 'Wo': jnp.ones(2)}}
    new = seqgan.update_rollout(roll, gen, 0.8)
    np.testing.assert_allclose(new['params']['embedding'], 1.0)
    np.testing.assert_allclose(new['params']['Wo'], 0.2, rtol=1e-6)


class SwitchTest(absltest.TestCase):

  def test_synchronized_switch_equals_switch_per_row(self):
    branches = [lambda s, x: (s + x, x.sum()), lambda s, x: (s * x, 2 * x.sum()),
                lambda s, x: (s - x, 3 * x.sum())]
    s, x = jnp.ones((5, 2)), jnp.arange(10.0).reshape(5, 2)
    for index in ([0, 2, 1, 7, -1], [1] * 5):
      index = jnp.asarray(index)
      got = jax.jit(jax.vmap(lambda i, s, x: adversarial.synchronized_switch(i, branches, s, x)))(
          index, s, x)
      want = jax.vmap(lambda i, s, x: jax.lax.switch(i, branches, s, x))(index, s, x)
      chex.assert_trees_all_close(got, want)
    got = jax.vmap(lambda s, x: adversarial.synchronized_switch(2, branches, s, x))(s, x)
    chex.assert_trees_all_close(got, (s - x, 3 * x.sum(-1)))
    chex.assert_trees_all_close(adversarial.synchronized_switch(1, branches, s[0], x[1]),
                                branches[1](s[0], x[1]))

  def test_phase_boundaries(self):
    got = [int(seqgan.phase(i, pretrain_steps=3, d_pretrain_steps=2)) for i in range(7)]
    self.assertEqual(got, [0, 0, 0, 1, 1, 2, 2])


class SchemeTest(absltest.TestCase):

  def test_phases_end_to_end_on_smoke(self):
    # 2 chunks of 5 steps: 3 MLE steps and 2 D pre-training steps, then 5 adversarial steps.
    # The runner's chunks are recorded to check each phase's effect. (The phase switch under
    # vmap is SwitchTest's; compiling this step vmapped takes 2-3x longer on CPU.)
    config = configs.get_preset('smoke')
    config.discriminator.update(embed_dim=8, filter_widths=(1, 3), num_filters=(4, 4))
    config.seqgan.update(pretrain_steps=3, d_pretrain_steps=2, d_steps=2, num_rollouts=2)
    config.train.update(eval_every=5, num_steps=10)
    config.eval.update(num_samples=64, batch_size=32)
    problem = oracle_lib.make_problem(config.problem)
    scheme = objectives.make('seqgan', config, problem)
    calls, rows = traced_once_run('seqgan', scheme, problem, config)
    (first, m1), (second, m2) = [outputs for _, outputs in calls]
    np.testing.assert_array_equal(m1['phase'], [[0, 0, 0, 1, 1]] * 2)
    np.testing.assert_array_equal(m2['phase'], [[2] * 5] * 2)
    np.testing.assert_array_equal(first.generator.count, [3, 3])
    np.testing.assert_array_equal(first.discriminator.count, [4, 4])  # 2 steps x d_steps
    np.testing.assert_array_equal(second.generator.count, [8, 8])
    np.testing.assert_array_equal(second.discriminator.count, [14, 14])
    # Separate Adam states: the MLE phase's stops at 3 updates, the policy gradient's starts
    # at the adversarial phase. The default rollout policy is the generator: no copy is kept.
    np.testing.assert_array_equal(_adam_count(first.generator.opt_state), [3, 3])
    np.testing.assert_array_equal(_adam_count(first.pg_opt_state), [0, 0])
    np.testing.assert_array_equal(_adam_count(second.generator.opt_state), [3, 3])
    np.testing.assert_array_equal(_adam_count(second.pg_opt_state), [5, 5])
    self.assertIsNone(second.rollout)
    self.assertTrue(bool(((m2['reward'] > 0) & (m2['reward'] < 1)).all()))
    self.assertTrue(bool(((m1['d_accuracy'][:, 3:] >= 0) & (m1['d_accuracy'][:, 3:] <= 1)).all()))

    last = [r for r in rows if r['step'] == 10]
    self.assertLen(last, config.num_seeds)
    for row in last:
      self.assertFalse(row['diverged'])
      for key in ('kl_pq', 'nll_oracle', 'entropy_q', 'train_pg_loss', 'train_reward',
                  'train_d_loss', 'train_nll'):
        self.assertTrue(np.isfinite(row[key]), key)

  def test_bad_config_names_the_field(self):
    for field, value in (('num_rollouts', 0), ('rollout', 'stale'), ('pg_learning_rate', 0.0)):
      config = configs.get_preset('smoke')
      config.seqgan[field] = value
      with self.assertRaisesRegex(ValueError, f'--config.seqgan.{field}'):
        objectives.make('seqgan', config, None)


def _adam_count(opt_state):
  return optax.tree_utils.tree_get(opt_state, 'count')


@functools.lru_cache(maxsize=None)
def _adversarial_start(rollout):
  """A tiny seqgan (2 MLE steps, 1 D pre-training step) run up to its first adversarial step.

  Returns (config, problem, scheme, the state after 3 steps, the jitted step).
  """
  config = configs.get_preset('smoke')
  config.discriminator.update(embed_dim=8, filter_widths=(1, 3), num_filters=(4, 4))
  config.seqgan.update(pretrain_steps=2, d_pretrain_steps=1, d_steps=1, num_rollouts=2,
                       rollout=rollout)
  problem = oracle_lib.make_problem(config.problem)
  scheme = objectives.make('seqgan', config, problem)
  step = jax.jit(scheme.step)
  state = scheme.init(jax.random.PRNGKey(0))
  batch = problem.train[:config.train.batch_size]
  for i in range(3):
    state, _ = step(state, batch, jax.random.PRNGKey(10 + i), jnp.float32(0.5))
  return config, problem, scheme, state, step


class PolicyGradientStepTest(absltest.TestCase):
  """The first adversarial step, recomputed from the module's pieces with the step's keys
  (the generator part gets the first half of split(step key), as `make`'s step)."""

  def _expected(self, config, problem, scheme, state, rollout_params, key):
    """(rewards, the params after a fresh-Adam update, after one from the MLE Adam state)."""
    gen = scheme.generator
    disc = adversarial.discriminator_from_config(config, config.seqgan.discriminator)
    score = lambda x: jax.nn.sigmoid(disc.apply(state.discriminator.params, x))
    params = state.generator.params
    k_gen, _ = jax.random.split(key)
    samples, rewards = seqgan.sample_and_rewards(gen, params, rollout_params, score, k_gen,
                                                 config.train.batch_size,
                                                 config.seqgan.num_rollouts)
    grads = jax.grad(lambda p: seqgan.policy_gradient_loss(
        gen.apply(p, samples, method='token_log_probs'), rewards).mean())(params)
    opt = optax.chain(optax.clip_by_global_norm(config.train.grad_clip),
                      optax.adam(config.train.learning_rate))
    after = lambda opt_state: optax.apply_updates(params, opt.update(grads, opt_state,
                                                                     params)[0])
    return rewards, after(opt.init(params)), after(state.generator.opt_state)

  def test_rewards_use_the_current_generator_and_a_fresh_adam(self):
    config, problem, scheme, state, step = _adversarial_start('generator')
    self.assertEqual(int(seqgan.phase(state.step, pretrain_steps=2, d_pretrain_steps=1)),
                     seqgan.ADVERSARIAL_PHASE)
    self.assertEqual(int(_adam_count(state.generator.opt_state)), 2)  # the MLE phase's
    self.assertEqual(int(_adam_count(state.pg_opt_state)), 0)
    self.assertIsNone(state.rollout)
    key = jax.random.PRNGKey(20)
    new, metrics = step(state, problem.train[:config.train.batch_size], key, jnp.float32(0.5))
    rewards, fresh, mle_adam = jax.jit(
        lambda s: self._expected(config, problem, scheme, s, s.generator.params, key))(state)
    np.testing.assert_allclose(metrics['reward'], rewards.mean(), rtol=1e-5)
    chex.assert_trees_all_close(new.generator.params, fresh, atol=1e-6)
    # The MLE phase's Adam state would have given a different update, and is left as it was.
    self.assertGreater(float(jnp.abs(mle_adam['params']['Wo'] - fresh['params']['Wo']).max()),
                       1e-3)
    chex.assert_trees_all_equal(new.generator.opt_state, state.generator.opt_state)
    self.assertEqual(int(_adam_count(new.pg_opt_state)), 1)

  def test_delayed_rollout_uses_and_updates_the_copy(self):
    config, problem, scheme, state, step = _adversarial_start('delayed')
    # The MLE phase keeps the copy equal to the generator.
    chex.assert_trees_all_equal(state.rollout, state.generator.params)
    stale = scheme.init(jax.random.PRNGKey(5)).generator.params  # a copy far from G
    state = state.replace(rollout=stale)
    key = jax.random.PRNGKey(21)
    new, metrics = step(state, problem.train[:config.train.batch_size], key, jnp.float32(0.5))
    expected = jax.jit(lambda s, r: self._expected(config, problem, scheme, s, r, key))
    rewards, fresh, _ = expected(state, stale)
    own_rewards = expected(state, state.generator.params)[0]
    np.testing.assert_allclose(metrics['reward'], rewards.mean(), rtol=1e-5)
    self.assertGreater(float(jnp.abs(rewards - own_rewards).max()), 1e-3)
    chex.assert_trees_all_close(new.generator.params, fresh, atol=1e-6)
    # θ_roll ← r θ_roll + (1 − r) θ with the updated θ; the embedding copied.
    r = config.seqgan.rollout_update_rate
    chex.assert_trees_all_close(new.rollout, seqgan.update_rollout(stale, new.generator.params, r),
                                atol=1e-7)
    np.testing.assert_allclose(new.rollout['params']['Wo'],
                               r * stale['params']['Wo']
                               + (1 - r) * new.generator.params['params']['Wo'], atol=1e-7)
    np.testing.assert_array_equal(new.rollout['params']['embedding'],
                                  new.generator.params['params']['embedding'])


if __name__ == '__main__':
  absltest.main()
