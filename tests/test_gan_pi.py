"""Tests of objectives/gan_pi.py: exact gradients at D* by enumeration, REINFORCE, π sweeps."""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from _smoke import traced_once_run
from benchmarks import configs
import divergences
from models import oracle as oracle_lib
from objectives import adversarial
from objectives import base
import objectives

PIS = (0.1, 0.5, 0.9)


def _smoke_config():
  """The smoke preset, shrunk further for test time: tiny D, 2 chunks of 5 steps."""
  c = configs.get_preset('smoke')
  c.discriminator.update(embed_dim=8, filter_widths=(1, 3), num_filters=(4, 4),
                         hidden_dim=8)
  c.train.update(eval_every=5, num_steps=10)
  c.eval.update(num_samples=64, batch_size=32)
  c.pis = PIS
  return c


@functools.lru_cache(maxsize=None)
def _smoke_problem():
  return oracle_lib.make_problem(_smoke_config().problem)


@functools.lru_cache(maxsize=None)
def _enumerable_problem():
  """The Problem, generator and its params, and all 9 sequences of V = 3, T = 2."""
  config = configs.get_preset('smoke')
  config.problem.update(vocab_size=3, seq_len=2, num_train=64, num_test=32)
  config.generator.update(embed_dim=4, hidden_dim=4, init_scale=0.5)
  problem = oracle_lib.make_problem(config.problem)
  gen = base.generator_from_config(config)
  params = gen.init(jax.random.PRNGKey(1), jnp.zeros((1, 2), jnp.int32))
  return problem, gen, params, divergences.enumerate_sequences(3, 2, 0, 9)


@functools.lru_cache(maxsize=None)
def _enumerable():
  """P (oracle) and a Q (generator) on V = 3, T = 2: all 9 sequences and log P."""
  problem, gen, params, xs = _enumerable_problem()
  log_p = jax.jit(lambda x: problem.model.apply(problem.params, x, method='log_prob'))(xs)
  return gen, params, xs, log_p


def _flat(tree):
  return jnp.concatenate([x.ravel() for x in jax.tree_util.tree_leaves(tree)])


class ExactTest(parameterized.TestCase):
  """With the exact optimal discriminator D* plugged in, on all V^T = 9 sequences."""

  @parameterized.parameters('minimax', 'non_saturating')
  def test_expected_generator_gradient_at_optimal_discriminator(self, kind):
    # minimax: E_Q[f ∇log Q] = ∇ JS_π (the envelope theorem: D* is stationary in D).
    # non_saturating: f = −(1−π) log D*, whose expected gradient is (1−π)∇KL(Q‖P) − ∇JS_π
    # (π = 1/2: half of Arjovsky & Bottou's ∇[KL(Q‖P) − 2 JS]). All per token (/T).
    gen, params, xs, log_p = _enumerable()
    seq_len = xs.shape[1]

    def lookup_log_p(x):  # log P by table lookup: divergences.exact sees the same numbers
      return log_p[x[:, 0] * 3 + x[:, 1]]

    @jax.jit
    def gradients(pi):
      log_q0 = gen.apply(params, xs, method='log_prob')
      values = adversarial.generator_loss_terms(adversarial.optimal_logits(log_p, log_q0, pi), pi, kind)

      def expected_surrogate(prm):  # the score-function expectation, enumerated exactly
        log_q = gen.apply(prm, xs, method='log_prob')
        weights = jax.lax.stop_gradient(jnp.exp(log_q))
        return jnp.sum(weights * adversarial.reinforce_surrogate(log_q, values)) / seq_len

      def exact(prm):
        ex = divergences.exact(lookup_log_p, lambda x: gen.apply(prm, x, method='log_prob'),
                               vocab_size=3, seq_len=seq_len, pis=pi[None])
        return ex['js_pi'][0], ex['kl_qp']

      g_js = jax.grad(lambda prm: exact(prm)[0])(params)
      g_kl = jax.grad(lambda prm: exact(prm)[1])(params)
      return _flat(jax.grad(expected_surrogate)(params)), _flat(g_js), _flat(g_kl)

    for pi in PIS:
      g, g_js, g_kl = gradients(jnp.float32(pi))
      target = g_js if kind == 'minimax' else (1 - pi) * g_kl - g_js
      self.assertGreater(float(jnp.linalg.norm(target)), 1e-3)
      np.testing.assert_allclose(g, target, atol=2e-6 + 1e-4 * float(jnp.abs(target).max()),
                                 err_msg=f'π={pi}')

  def test_discriminator_loss_is_minimised_by_optimal_discriminator(self):
    gen, params, xs, log_p = _enumerable()
    log_q = jax.jit(lambda x: gen.apply(params, x, method='log_prob'))(xs)
    p, q = jnp.exp(log_p), jnp.exp(log_q)
    deltas = jax.random.normal(jax.random.PRNGKey(0), (5, 9))

    def expected_loss(logits, pi):
      data, fake = adversarial.discriminator_loss_terms(logits, logits, pi)
      return jnp.sum(p * data) + jnp.sum(q * fake)

    @jax.jit
    def run(pi):
      best = adversarial.optimal_logits(log_p, log_q, pi)
      perturbed = jax.vmap(lambda d: jax.vmap(lambda e: expected_loss(best + e * d, pi))(
          jnp.array([1e-2, 0.3])))(deltas)  # [5, 2]
      return (expected_loss(best, pi), divergences.js_pi(log_p, log_q, pi),
              jax.grad(expected_loss)(best, pi), perturbed)

    for pi in PIS:
      at_best, js, grad, perturbed = run(jnp.float32(pi))
      # The minimax value −L_D(D*) = JS_π(P, Q) − H(π).
      h_pi = -pi * np.log(pi) - (1 - pi) * np.log(1 - pi)
      np.testing.assert_allclose(-at_best, js - h_pi, rtol=1e-5, atol=1e-6)
      np.testing.assert_allclose(grad, np.zeros(9), atol=1e-6)  # stationary in the logits
      self.assertTrue(bool((perturbed > at_best).all()))

  def test_reinforce_monte_carlo_mean_converges_to_exact_gradient(self):
    gen, params, xs, log_p = _enumerable()
    seq_len, pi, batch, num_batches = xs.shape[1], 0.5, 8, 4096

    @jax.jit
    def run():
      log_q0 = gen.apply(params, xs, method='log_prob')
      values = adversarial.generator_loss_terms(adversarial.optimal_logits(log_p, log_q0, pi), pi)

      def exact(prm):
        return divergences.js_pi(log_p, gen.apply(prm, xs, method='log_prob'), pi) / seq_len

      def batch_gradient(key):
        toks = gen.apply(params, key, batch, method='sample')
        f = values[toks[:, 0] * 3 + toks[:, 1]]

        def loss(prm):
          log_q = gen.apply(prm, toks, method='log_prob')
          b = adversarial.leave_one_out_baseline(f)
          return adversarial.reinforce_surrogate(log_q, f, b).mean() / seq_len
        return _flat(jax.grad(loss)(params))

      grads = jax.vmap(batch_gradient)(jax.random.split(jax.random.PRNGKey(0), num_batches))
      mean, se = divergences.mean_and_se(grads, axis=0)
      return mean, se, _flat(jax.grad(exact)(params))

    mean, se, exact = run()
    z = np.asarray((mean - exact) / jnp.maximum(se, 1e-12))
    self.assertLess(np.abs(z).max(), 5.0)  # every coordinate within 5 standard errors
    self.assertLess(np.mean(z ** 2), 2.0)  # and about N(0, 1) on average
    self.assertGreater(float(jnp.linalg.norm(exact)), 1e-3)


class SchemeTest(absltest.TestCase):

  def test_loss_shapes_under_vmap_over_seeds(self):
    @jax.jit
    @jax.vmap
    def one(key):
      k1, k2, k3 = jax.random.split(key, 3)
      logits = jax.random.normal(k1, (8,))
      data, fake = adversarial.discriminator_loss_terms(logits, logits[:5], 0.3)
      onehot = jax.nn.one_hot(jax.random.randint(k2, (8, 4), 0, 6), 6)
      soft = jax.nn.softmax(jax.random.normal(k3, (8, 4, 6)))
      return dict(
          data=data, fake=fake, loss=adversarial.discriminator_loss(logits, logits[:5], 0.3),
          minimax=adversarial.generator_loss_terms(logits, 0.3, 'minimax'),
          non_saturating=adversarial.generator_loss_terms(logits, 0.3, 'non_saturating'),
          baseline=adversarial.leave_one_out_baseline(logits),
          surrogate=adversarial.reinforce_surrogate(logits, logits, 0.0),
          wgan_gp=adversarial.wgan_gp_points(k1, onehot, soft),
          dragan=adversarial.dragan_points(k1, onehot, 0.5))

    out = one(jax.random.split(jax.random.PRNGKey(1), 3))
    chex.assert_shape(out['fake'], (3, 5))
    chex.assert_shape(out['loss'], (3,))
    chex.assert_shape([out[k] for k in ('data', 'minimax', 'non_saturating', 'baseline',
                                        'surrogate')], (3, 8))
    chex.assert_shape([out['wgan_gp'], out['dragan']], (3, 8, 4, 6))
    chex.assert_tree_all_finite(out)
    # Interpolates of two simplices stay on the simplex; DRAGAN only adds non-negative noise.
    np.testing.assert_allclose(out['wgan_gp'].sum(-1), 1.0, rtol=1e-5)
    self.assertTrue(bool((out['wgan_gp'] >= 0).all()))
    self.assertTrue(bool((out['dragan'].sum(-1) >= 1.0 - 1e-6).all()))

  def test_gradient_penalty_of_a_linear_logit(self):
    # l(x) = <w, x>: ∇l = w everywhere, so the penalty is exactly (‖w‖₂ − 1)².
    w = jax.random.normal(jax.random.PRNGKey(0), (4, 6))
    points = jax.random.uniform(jax.random.PRNGKey(1), (5, 4, 6))
    penalty = adversarial.logit_gradient_penalty(lambda x: jnp.sum(x * w, axis=(1, 2)), points)
    np.testing.assert_allclose(penalty, np.full(5, (np.linalg.norm(w) - 1) ** 2), rtol=1e-5)

  def test_pi_grid_trains_end_to_end_vmapped_in_one_compile(self):
    # train_scheme on smoke (2 seeds x 3 π, 2 chunks of 5 steps) through a runner whose chunk
    # may be traced once only: the whole π grid is one compile (π is traced, vmapped).
    config = _smoke_config()
    config.train.seed_strategy = 'vmap'
    problem = _smoke_problem()
    scheme = objectives.make('gan_pi', config, problem)
    self.assertTrue(scheme.uses_pi)
    calls, rows = traced_once_run('gan_pi', scheme, problem, config)
    self.assertEqual([int(args[3]) for args, _ in calls], [0, 5])  # start steps
    last = [r for r in rows if r['step'] == 10]
    self.assertEqual(sorted((r['seed'], r['pi']) for r in last),
                     sorted((s, p) for s in range(2) for p in PIS))
    for row in last:
      self.assertFalse(row['diverged'])
      for key in ('kl_pq', 'nll_oracle', 'entropy_q', 'train_d_loss', 'train_g_loss'):
        self.assertTrue(np.isfinite(row[key]), key)
    # Same seed, different π: the objective differs, so the results do.
    by_run = {(r['seed'], r['pi']): r['entropy_q'] for r in last}
    self.assertNotEqual(by_run[(0, 0.1)], by_run[(0, 0.9)])

  def test_bad_config_names_the_field(self):
    config = _smoke_config()
    config.gan_pi.estimator = 'gradient'
    with self.assertRaisesRegex(ValueError, '--config.gan_pi.estimator'):
      objectives.make('gan_pi', config, _smoke_problem())


class OracleDiscriminatorTest(parameterized.TestCase):
  """discriminator='oracle': D's logit is l* from the densities; nothing is trained."""

  def test_logits_equal_optimal_logits_on_all_sequences(self):
    problem, gen, params, xs = _enumerable_problem()
    for pi in PIS:
      got = adversarial.oracle_discriminator_logits(problem.model, problem.params, gen, params, xs,
                                               jnp.float32(pi))
      log_p = problem.model.apply(problem.params, xs, method='log_prob')
      log_q = gen.apply(params, xs, method='log_prob')
      np.testing.assert_allclose(got, adversarial.optimal_logits(log_p, log_q, pi), rtol=1e-6,
                                 atol=1e-6)
      # σ(l*) = πP / (πP + (1−π)Q) exactly.
      p, q = jnp.exp(log_p), jnp.exp(log_q)
      np.testing.assert_allclose(jax.nn.sigmoid(got), pi * p / (pi * p + (1 - pi) * q),
                                 rtol=1e-5)

  def test_minimax_update_is_the_gradient_of_js_pi(self):
    # The expected REINFORCE update with the oracle discriminator (the exact expectation over
    # all 9 sequences) equals ∇JS_π / T computed by autodiff through divergences.exact.
    problem, gen, params, xs = _enumerable_problem()
    log_p_table = problem.model.apply(problem.params, xs, method='log_prob')
    seq_len = xs.shape[1]

    @jax.jit
    def gradients(pi):
      logits = adversarial.oracle_discriminator_logits(problem.model, problem.params, gen, params,
                                                  xs, pi)
      values = adversarial.generator_loss_terms(logits, pi, 'minimax')

      def expected_surrogate(prm):
        log_q = gen.apply(prm, xs, method='log_prob')
        weights = jax.lax.stop_gradient(jnp.exp(log_q))
        return jnp.sum(weights * adversarial.reinforce_surrogate(log_q, values)) / seq_len

      def js(prm):
        return divergences.exact(lambda x: log_p_table[x[:, 0] * 3 + x[:, 1]],
                                 lambda x: gen.apply(prm, x, method='log_prob'),
                                 vocab_size=3, seq_len=seq_len, pis=pi[None])['js_pi'][0]
      return _flat(jax.grad(expected_surrogate)(params)), _flat(jax.grad(js)(params))

    for pi in PIS:
      g, target = gradients(jnp.float32(pi))
      self.assertGreater(float(jnp.linalg.norm(target)), 1e-3)
      np.testing.assert_allclose(g, target, atol=2e-6 + 1e-4 * float(jnp.abs(target).max()),
                                 err_msg=f'π={pi}')

  @parameterized.parameters('minimax', 'non_saturating')
  def test_trains_end_to_end_without_a_discriminator(self, kind):
    config = _smoke_config()
    config.gan_pi.update(discriminator='oracle', generator_loss=kind)
    problem = _smoke_problem()
    scheme = objectives.make('gan_pi', config, problem)
    state = scheme.init(jax.random.PRNGKey(0))
    self.assertEqual(jax.tree_util.tree_leaves(state.discriminator.params), [])
    batch = problem.train[:config.train.batch_size]
    new, metrics = jax.jit(scheme.step)(state, batch, jax.random.PRNGKey(1), jnp.float32(0.5))
    for name in ('d_loss', 'd_real', 'd_fake', 'g_loss', 'g_grad_norm'):
      self.assertTrue(np.isfinite(metrics[name]), name)
    self.assertGreater(float(metrics['g_grad_norm']), 0.0)
    self.assertTrue(0 < float(metrics['d_fake']) < 1)
    moved = _flat(jax.tree_util.tree_map(lambda a, b: a - b, new.generator.params,
                                         state.generator.params))
    self.assertGreater(float(jnp.abs(moved).max()), 0.0)

  @parameterized.parameters(('estimator', 'gumbel'), ('penalty', 'wgan_gp'))
  def test_where_it_cannot_apply_the_error_says_so(self, field, value):
    config = _smoke_config()
    config.gan_pi.update(discriminator='oracle', **{field: value})
    with self.assertRaisesRegex(ValueError, '--config.gan_pi.(discriminator|penalty)'):
      objectives.check_config('gan_pi', config)
    config = _smoke_config()
    config.gumbel_gan.discriminator = 'oracle'
    with self.assertRaisesRegex(ValueError, "--config.gumbel_gan.discriminator: 'oracle' "
                                'needs the .reinforce. estimator'):
      objectives.check_config('gumbel_gan', config)


if __name__ == '__main__':
  absltest.main()
