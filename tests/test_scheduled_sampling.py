"""Tests of objectives/scheduled_sampling.py: schedules, the loss, Huszár's improperness, a run."""

import math

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np

from _smoke import final_rows, smoke_config
from benchmarks import configs
import divergences
from objectives import scheduled_sampling as ss
from objectives import teacher_forcing
import objectives


def _scheme(vocab_size=3, seq_len=3, init_scale=0.5):
  """The scheme on a tiny generator (it never reads the problem: data batches come as args)."""
  config = configs.get_preset('smoke')
  config.problem.update(vocab_size=vocab_size, seq_len=seq_len)
  config.generator.update(embed_dim=4, hidden_dim=4, init_scale=init_scale)
  return config, objectives.make('scheduled_sampling', config, None)


def _params(model, seed, num_seeds=None):
  """N(0, init_scale²) variables of `model` (stacked over a leading seed axis if num_seeds).

  Built with numpy from the variables' shapes: jitting `init` costs seconds of compilation
  per test and adds nothing here (the smoke run below covers `init` under the runner).
  """
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          jnp.zeros((1, model.seq_len), jnp.int32))
  rng = np.random.default_rng(seed)
  lead = () if num_seeds is None else (num_seeds,)
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, model.init_scale, lead + s.shape),
                                            s.dtype), shapes)


def _batch(config, num, seed=0):
  pc = config.problem
  return jax.random.randint(jax.random.PRNGKey(seed), (num, pc.seq_len), 0, pc.vocab_size)


# Huszár (2015): P puts mass ½ on 00 and ½ on 11 (V = 2, T = 2).
_P = jnp.array([[0.5, 0.0], [0.0, 0.5]])


def _kl_p_q(q1, q2):
  """KL[P || Q] (sequence level, nats) of the tabular model Q(a, b) = q1(a) q2(b | a)."""
  return divergences.kl(jnp.log(_P).ravel(), jnp.log(q1[:, None] * q2).ravel())


class ScheduleTest(absltest.TestCase):

  def test_monotone_in_unit_interval_with_endpoints(self):
    cfg = configs.get_preset('small').scheduled_sampling
    steps = jnp.arange(0, 100_001, 50)
    for schedule in ss.SCHEDULES:
      cfg.schedule = schedule
      eps = np.asarray(ss.epsilon(cfg, steps))
      self.assertTrue(np.all(np.diff(eps) <= 0), schedule)
      self.assertTrue(np.all((eps >= 0) & (eps <= 1)), schedule)
      # The defaults take every schedule from ~1 to ~0.25 over small's 2,000 steps.
      self.assertBetween(float(ss.epsilon(cfg, 2_000)), 0.2, 0.3)
    cfg.schedule = 'linear'
    self.assertEqual(float(ss.epsilon(cfg, 0)), 1.0)
    self.assertEqual(float(ss.epsilon(cfg, 100_000)), cfg.linear_min)
    cfg.schedule = 'exponential'
    self.assertEqual(float(ss.epsilon(cfg, 0)), 1.0)
    self.assertLess(float(ss.epsilon(cfg, 100_000)), 1e-6)
    cfg.schedule = 'inverse_sigmoid'
    k = cfg.inverse_sigmoid_k
    np.testing.assert_allclose(ss.epsilon(cfg, 0), k / (k + 1), rtol=1e-6)
    np.testing.assert_allclose(ss.epsilon(cfg, k * math.log(k)), 0.5, rtol=1e-5)
    self.assertEqual(float(ss.epsilon(cfg, 10 ** 6)), 0.0)  # exp overflows to inf: 0, no NaN

  def test_bad_config_names_the_field(self):
    config = configs.get_preset('smoke')
    config.scheduled_sampling.schedule = 'cosine'
    with self.assertRaisesRegex(ValueError, '--config.scheduled_sampling.schedule'):
      objectives.make('scheduled_sampling', config, None)
    config = configs.get_preset('smoke')
    config.scheduled_sampling.exponential_base = 1.5
    with self.assertRaisesRegex(ValueError, 'exponential_base'):
      objectives.make('scheduled_sampling', config, None)


class LossTest(absltest.TestCase):

  def test_eps_one_is_mle_exactly(self):
    config, scheme = _scheme(vocab_size=5, seq_len=4)
    batch = _batch(config, 16)

    @jax.jit
    def losses(params, key):
      return ss.loss(scheme.generator, params, batch, key, 1.0), teacher_forcing.nll(scheme.generator,
                                                                         params, batch)

    ours, ref = losses(_params(scheme.generator, 0), jax.random.PRNGKey(3))
    np.testing.assert_array_equal(ours, ref)

  def test_shapes_under_vmap_and_finite_gradients(self):
    config, scheme = _scheme()
    batch = _batch(config, 8)

    @jax.jit
    def run(params, seeds):
      def loss_and_grad(params, key):
        def fn(p):
          losses = ss.loss(scheme.generator, p, batch, key, 0.5)
          return losses.mean(), losses
        return jax.value_and_grad(fn, has_aux=True)(params)

      return jax.vmap(loss_and_grad)(params, seeds)

    params = _params(scheme.generator, 0, num_seeds=5)
    (values, losses), grads = run(params, jax.random.split(jax.random.PRNGKey(0), 5))
    chex.assert_shape(losses, (5, 8))
    chex.assert_shape(values, (5,))
    chex.assert_trees_all_equal_shapes(grads, params)
    chex.assert_tree_all_finite((losses, grads))
    # Every seed gets a non-trivial gradient, and seeds differ.
    self.assertGreater(float(jnp.abs(grads['params']['Wo']).sum(axis=(1, 2)).min()), 0.0)
    self.assertFalse(np.allclose(losses[0], losses[1]))

  def test_loss_and_gradient_average_to_the_tabular_objective(self):
    # An LSTM on V = 2, T = 2 is a tabular model: q1 = its first distribution, q2(. | y) its
    # second given input y. Averaged over coins and draws, `loss` must equal the closed form
    # of `expected_objective_tabular` (/T), and so must its gradient (no score-function term).
    _, scheme = _scheme(vocab_size=2, seq_len=2, init_scale=1.0)
    model, eps, num = scheme.generator, 0.5, 20_000
    xs = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]], jnp.int32)
    p = _P.ravel()

    def exact(prm, e):
      logp = jax.nn.log_softmax(model.apply(prm, xs, method='logits'), axis=-1)
      log_q1, log_q2 = logp[0, 0], logp[jnp.array([0, 2]), 1]
      return ss.expected_objective_tabular(log_q1, log_q2, _P, e) / 2

    @jax.jit
    def run(params, keys):
      sampled = jax.vmap(lambda k: jax.value_and_grad(
          lambda prm: p @ ss.loss(model, prm, xs, k, eps))(params))(keys)
      return sampled, jax.value_and_grad(exact)(params, eps), exact(params, 0.0), exact(
          params, 1.0)

    (values, grads), (want, want_grad), at0, at1 = run(
        _params(model, 4), jax.random.split(jax.random.PRNGKey(5), num))
    se = values.std() / math.sqrt(num)
    self.assertLess(abs(float(values.mean() - want)), 4 * se)
    # The check has power: ε = 0 and ε = 1 give values far outside that tolerance.
    self.assertGreater(abs(float(at0 - at1)), 40 * se)
    for g, w in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(want_grad)):
      se_g = g.std(axis=0) / math.sqrt(num)
      np.testing.assert_array_less(jnp.abs(g.mean(axis=0) - w), 4 * se_g + 1e-6)


class ImpropernessTest(absltest.TestCase):

  def test_huszar_scheduled_sampling_is_improper(self):
    # Minimise the exact expected objective by full-batch gradient descent on the logits of
    # q1 [2] and q2 [2, 2] (the semi-gradient: the draw's distribution held fixed), from a
    # random start, and compare with the closed-form fixed point
    #   Q* = ε P + (1 − ε) P1 ⊗ P2,  KL[P || Q*] = log(2 / (1 + ε)).
    eps_grid = jnp.array([0.0, 0.5, 1.0])

    @jax.jit
    def minimise(eps, key):
      k1, k2 = jax.random.split(key)
      logits = (jax.random.normal(k1, (2,)), jax.random.normal(k2, (2, 2)))

      def objective(lg):
        return ss.expected_objective_tabular(jax.nn.log_softmax(lg[0]),
                                             jax.nn.log_softmax(lg[1], axis=-1), _P, eps)

      def body(_, lg):
        return jax.tree.map(lambda x, g: x - 1.0 * g, lg, jax.grad(objective)(lg))

      lg = jax.lax.fori_loop(0, 3_000, body, logits)
      q1, q2 = jax.nn.softmax(lg[0]), jax.nn.softmax(lg[1], axis=-1)
      return q1, q2, _kl_p_q(q1, q2)

    q1, q2, kl = jax.vmap(minimise)(eps_grid, jax.random.split(jax.random.PRNGKey(0), 3))
    cf_kl = []
    for i, eps in enumerate([0.0, 0.5, 1.0]):
      cq1, cq2 = ss.tabular_fixed_point(_P, eps)
      cf_kl.append(float(_kl_p_q(cq1, cq2)))
      np.testing.assert_allclose(cf_kl[-1], math.log(2 / (1 + eps)), atol=1e-7)
      np.testing.assert_allclose(q1[i], [0.5, 0.5], atol=1e-6)
      if eps < 1:  # an interior optimum: gradient descent reaches it
        np.testing.assert_allclose(q2[i], cq2, atol=1e-5)
        np.testing.assert_allclose(kl[i], cf_kl[-1], atol=1e-5)
    # ε = 0: the product of the marginals, Q = ¼ everywhere, KL = log 2.
    np.testing.assert_allclose(q1[0][:, None] * q2[0], 0.25, atol=1e-5)
    np.testing.assert_allclose(kl[0], math.log(2), atol=1e-5)
    # ε = 1: P itself (KL = 0 exactly at the closed form; descent approaches it like 1/steps).
    self.assertEqual(cf_kl[2], 0.0)
    self.assertLess(float(kl[2]), 2e-3)
    # 0 < ε < 1: improper. At ε = ½, Q*(00) = Q*(11) = 3/8, Q*(01) = Q*(10) = 1/8 and
    # KL = log(4/3) = 0.2877 nats per sequence (0.1438 per token).
    np.testing.assert_allclose(q1[1][:, None] * q2[1], [[3 / 8, 1 / 8], [1 / 8, 3 / 8]],
                               atol=1e-5)
    np.testing.assert_allclose(kl[1], math.log(4 / 3), atol=1e-5)
    self.assertGreater(float(kl[1]), 0.28)

  def test_fixed_point_is_stationary(self):
    # The closed form zeroes the semi-gradient of the expected objective (probability
    # parametrisation, tangent to the simplex) for a generic P and several ε.
    p = jnp.array([[0.3, 0.1, 0.05], [0.0, 0.2, 0.05], [0.1, 0.0, 0.2]])
    for eps in (0.0, 0.3, 0.8):
      q1, q2 = ss.tabular_fixed_point(p, eps)
      g1, g2 = jax.grad(lambda a, b: ss.expected_objective_tabular(
          jnp.log(a), jnp.log(b), p, eps), argnums=(0, 1))(q1, q2)
      # Stationary on the simplex: the gradient is constant along each distribution.
      np.testing.assert_allclose(g1, jnp.full_like(g1, g1.mean()), atol=1e-5)
      np.testing.assert_allclose(g2, jnp.broadcast_to(g2.mean(axis=1, keepdims=True), g2.shape),
                                 atol=1e-5)
      np.testing.assert_allclose(q2.sum(axis=1), 1.0, atol=1e-6)


class ScheduleSummaryTest(absltest.TestCase):

  def test_says_from_which_step_on_eps_stays_low(self):
    # inverse sigmoid: ε < low ⟺ exp(i/k) > k (1/low − 1), so from step ⌊k ln(k (1/low − 1))⌋ + 1.
    cfg = configs.get_preset('seqgan').scheduled_sampling
    k, low, n = cfg.inverse_sigmoid_k, 0.05, 19_050
    first = math.floor(k * math.log(k * (1 / low - 1))) + 1
    self.assertEqual(first, 2_595)
    text = ss.schedule_summary(cfg, n, low=low)
    self.assertIn(f'below 0.05 from step {first:,} ({100 * first / n:.0f}% of the run) on', text)
    self.assertIn(f'{k / (k + 1):.3f} at step 0', text)
    self.assertIn(f'at step {n - 1:,}', text)

  def test_marks_the_quarters_and_stays_silent_above_low(self):
    cfg = configs.get_preset('small').scheduled_sampling
    cfg.update(schedule='linear', linear_slope=1e-3, linear_min=0.25)
    text = ss.schedule_summary(cfg, 1_001)  # steps 0 … 1,000: the quarters are steps 250, 500, 750
    self.assertEqual(text, "linear schedule: ε (the data token's probability) 1.000 at step 0, "
                     '0.750 at 25%, 0.500 at 50%, 0.250 at 75%, 0.250 at step 1,000')

  def test_the_runner_logs_it_before_training(self):
    from unittest import mock
    import tempfile
    from benchmarks.engine import runner
    from benchmarks.engine import train
    config = smoke_config()
    lines = []
    with mock.patch.object(train, 'train_scheme', lambda *a, **k: None):
      runner.execute(config, tempfile.mkdtemp(),
                     variants={'ss': ('scheduled_sampling', {'train.num_steps': 20}),
                               'mle': ('mle', {})}, log=lines.append)
    logged = [l for l in lines if 'schedule:' in l]
    self.assertEqual(logged, ['[ss] ' + ss.schedule_summary(config.scheduled_sampling, 20)])


class TrainSchemeTest(absltest.TestCase):

  def test_smoke_run(self):
    config = smoke_config()
    _, last = final_rows('scheduled_sampling', config)
    self.assertLen(last, config.num_seeds)
    for r in last:
      self.assertFalse(r['diverged'])
      for key in ('nll_test', 'kl_pq', 'nll_oracle', 'entropy_q', 'train_loss', 'train_eps'):
        self.assertTrue(np.isfinite(r[key]), key)
      # train_eps is the chunk mean of ε_i over steps 5..9 of the configured schedule.
      np.testing.assert_allclose(
          r['train_eps'], np.mean(ss.epsilon(config.scheduled_sampling, jnp.arange(5, 10))),
          rtol=1e-6)


if __name__ == '__main__':
  absltest.main()
