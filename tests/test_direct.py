"""Tests of objectives/direct.py: shapes, and unbiasedness pinned exactly by enumeration."""

import functools

from absl.testing import absltest
import chex
import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np

from _smoke import final_rows, smoke_config
import _smoke
import divergences
from objectives import direct
import objectives

V, T = 3, 3


@functools.lru_cache(maxsize=None)
def _setup():
  """An enumerable problem (27 sequences) and a generator far from the oracle."""
  return _smoke.enumerable_setup('direct', V, T)


def _losses(estimator, divergence, baseline):
  """(params, samples [n, T], pi) -> per-sample losses [n] of the given estimator."""
  _, problem, gen, _ = _setup()

  def fn(params, xs, pi):
    return direct.estimator_loss(gen, params, xs, problem.model, problem.params, pi,
                                 estimator=estimator, divergence=divergence,
                                 baseline=baseline)
  return fn


@functools.lru_cache(maxsize=None)
def _exact():
  """Jitted (params, pi) -> (values, ∇KL(Q‖P)/T, ∇JS_π/T) by autodiff through enumeration."""
  _, problem, gen, _ = _setup()

  def values(params, pi):
    return divergences.exact(lambda x: problem.model.apply(problem.params, x, method='log_prob'),
                             lambda x: gen.apply(params, x, method='log_prob'),
                             vocab_size=V, seq_len=T, pis=jnp.reshape(pi, (1,)), chunk_size=V**T)

  @jax.jit
  def fn(params, pi):
    return (values(params, pi),
            jax.grad(lambda p: values(p, pi)['kl_qp'])(params),
            jax.grad(lambda p: values(p, pi)['js_pi'][0])(params))
  return fn


@functools.lru_cache(maxsize=None)
def _exact_kl_pq_grad():
  """Jitted params -> ∇KL(P‖Q)/T by autodiff through enumeration."""
  _, problem, gen, _ = _setup()
  return jax.jit(jax.grad(lambda params: divergences.exact(
      lambda x: problem.model.apply(problem.params, x, method='log_prob'),
      lambda x: gen.apply(params, x, method='log_prob'),
      vocab_size=V, seq_len=T, pis=jnp.ones((1,)) * 0.5, chunk_size=V**T)['kl_pq']))


def _all_sequences():
  return divergences.enumerate_sequences(V, T, 0, V**T)


def _rel_err(a, b):
  fa, fb = (ravel_pytree(t)[0] for t in (a, b))
  return float(jnp.linalg.norm(fa - fb) / jnp.linalg.norm(fb))


class DirectLossTest(absltest.TestCase):

  def test_shapes_under_vmap_and_finite_gradients(self):
    config, problem, _, _ = _setup()
    states = jax.jit(jax.vmap(objectives.make('direct', config, problem).init))(
        jax.random.split(jax.random.PRNGKey(0), 3))
    xs = problem.train[:8]  # stand-ins for samples of Q

    @jax.jit
    def one(params):
      out = {}
      # Both estimators and both divergences (the other pairings: next test).
      for est, div in (('score', 'kl_qp'), ('per_step', 'js_pi')):
        f = lambda p: _losses(est, div, 'loo')(p, xs, 0.3)
        out[est, div] = (f(params), jax.grad(lambda p: f(p).mean())(params))
      return out

    out = jax.vmap(one)(states.params)
    for name, (losses, grads) in out.items():
      chex.assert_shape(losses, (3, 8))
      chex.assert_trees_all_equal_shapes(grads, states.params)
      chex.assert_tree_all_finite((losses, grads))
      self.assertGreater(float(jnp.abs(grads['params']['Wo']).max()), 0.0, msg=str(name))

  def test_expected_updates_equal_the_exact_gradients(self):
    # The estimators' expectations under Q, by enumeration with any constant baseline, are
    # the exact gradients of KL(Q‖P)/T and JS_π/T (autodiff through divergences.exact); their
    # values' expectations are KL(Q‖P)/T and the Q-side (1−π) KL(Q‖M_π)/T of JS_π/T.
    _, problem, gen, params = _setup()
    xs = _all_sequences()
    log_p = problem.model.apply(problem.params, xs, method='log_prob')

    @jax.jit
    def expected(params, pi, baseline):
      q = jax.lax.stop_gradient(jnp.exp(gen.apply(params, xs, method='log_prob')))
      out = {}
      for est in direct.SAMPLED_ESTIMATORS:
        for div in direct.DIVERGENCES:
          f = lambda p: jnp.sum(q * _losses(est, div, baseline)(p, xs, pi))
          out[est, div] = jax.value_and_grad(f)(params)
      return out

    for pi, baseline in ((0.3, 0.0), (0.8, 0.7)):
      values, g_kl, g_js = _exact()(params, pi)
      log_q = gen.apply(params, xs, method='log_prob')
      log_m = jnp.logaddexp(jnp.log(pi) + log_p, jnp.log1p(-pi) + log_q)
      q_side = (1 - pi) * jnp.sum(jnp.exp(log_q) * (log_q - log_m)) / T
      out = expected(params, jnp.float32(pi), jnp.float32(baseline))
      for est in direct.SAMPLED_ESTIMATORS:
        (v_kl, gr_kl), (v_js, gr_js) = out[est, 'kl_qp'], out[est, 'js_pi']
        np.testing.assert_allclose(v_kl, values['kl_qp'], rtol=1e-5)
        np.testing.assert_allclose(v_js, q_side, rtol=1e-4)
        self.assertLess(_rel_err(gr_kl, g_kl), 1e-4, msg=est)
        self.assertLess(_rel_err(gr_js, g_js), 1e-4, msg=est)
    self.assertGreater(float(values['kl_qp']), 0.05)  # Q is far from P: a real comparison

  def test_leave_one_out_baseline_is_unbiased(self):
    # With B = 2 the leave-one-out baseline of a sample is the other sample's cost; the
    # expectation over all (x1, x2) ~ Q × Q, by enumerating the 27² pairs, is exactly ∇KL.
    _, _, gen, params = _setup()
    xs = _all_sequences()
    n = xs.shape[0]
    first, second = jnp.repeat(xs, n, axis=0), jnp.tile(xs, (n, 1))
    pairs = jnp.stack([first, second], axis=1)  # [n², 2, T]

    @jax.jit
    def expected(params):
      log_q = gen.apply(params, xs, method='log_prob')
      w = jax.lax.stop_gradient(jnp.exp(log_q[:, None] + log_q[None, :]).reshape(-1))
      out = []
      for est in direct.SAMPLED_ESTIMATORS:
        per_pair = lambda p, pair, est=est: _losses(est, 'kl_qp', 'loo')(p, pair, 0.5).mean()
        f = lambda p: jnp.sum(w * jax.vmap(per_pair, in_axes=(None, 0))(p, pairs))
        out.append(jax.grad(f)(params))
      return out

    _, g_kl, _ = _exact()(params, 0.5)
    for est, g in zip(direct.SAMPLED_ESTIMATORS, expected(params)):
      self.assertLess(_rel_err(g, g_kl), 1e-4, msg=est)

  def test_make_checks_its_config(self):
    config, problem, _, _ = _setup()
    self.assertFalse(objectives.make('direct', config, problem).uses_pi)
    c = config.copy_and_resolve_references()
    c.direct.divergence = 'js_pi'
    self.assertTrue(objectives.make('direct', c, problem).uses_pi)
    for field, bad in (('divergence', 'kl_pq'), ('estimator', 'pathwise'), ('baseline', 'x')):
      c = config.copy_and_resolve_references()
      c.direct[field] = bad
      with self.assertRaisesRegex(ValueError, f'--config.direct.{field}'):
        objectives.make('direct', c, problem)


class ExactEstimatorTest(absltest.TestCase):

  def _scheme(self, divergence, optimizer='adam'):
    config, problem, _, params = _setup()
    c = config.copy_and_resolve_references()
    c.direct.update(estimator='exact', divergence=divergence, optimizer=optimizer)
    scheme = objectives.make('direct', c, problem)
    return c, scheme, scheme.init(jax.random.PRNGKey(1), params)

  def test_loss_and_gradient_are_those_of_the_enumeration(self):
    # The exact estimator's loss is divergences.exact's value and its gradient is autodiff
    # through the enumeration (it is that: every sequence, no sampling), for both divergences.
    _, problem, _, params = _setup()
    batch = problem.train[:4]  # ignored: the step takes no data
    for divergence, pi in (('kl_qp', jnp.nan), ('js_pi', 0.3), ('kl_pq', jnp.nan)):
      _, scheme, state = self._scheme(divergence)
      values, g_kl, g_js = _exact()(params, 0.3)
      g_pq = _exact_kl_pq_grad()(params)
      new, metrics = jax.jit(scheme.step)(state, batch, jax.random.PRNGKey(2), jnp.float32(pi))
      want = {'kl_qp': values['kl_qp'], 'js_pi': values['js_pi'][0],
              'kl_pq': values['kl_pq']}[divergence]
      np.testing.assert_allclose(metrics['loss'], want, rtol=1e-5)
      grad = {'kl_qp': g_kl, 'js_pi': g_js, 'kl_pq': g_pq}[divergence]
      np.testing.assert_allclose(metrics['grad_norm'], jnp.linalg.norm(ravel_pytree(grad)[0]),
                                 rtol=1e-4)
      # One Adam step from zero moments moves each parameter by lr·sign(g) (clipping aside):
      # the step followed the exact gradient's signs.
      moved = jax.tree.map(lambda a, b: a - b, new.params, state.params)
      signs = jax.tree.map(lambda d, g: float(jnp.mean(jnp.sign(d) == -jnp.sign(g))), moved,
                           grad)
      self.assertGreater(min(jax.tree.leaves(signs)), 0.9, divergence)

  def test_lbfgs_converges_to_a_stationary_point(self):
    # The convergence rule: L-BFGS on the exact KL(Q‖P) reaches gradient norm ≤ grad_tol on
    # the 27-sequence problem (1e-3: by ~100 steps; float32's noise is ~1e-4), at an objective
    # below where Adam at its default step is after as many (measured: 3e-4 against 3e-3).
    _, problem, _, _ = _setup()
    results = {}
    for optimizer in ('lbfgs', 'adam'):
      c, scheme, state = self._scheme('kl_qp', optimizer)
      results[optimizer] = _smoke.exact_step_metrics(scheme, problem, state, 600)
    norms, losses, converged = results['lbfgs']
    self.assertLessEqual(norms[-1], c.direct.grad_tol)
    self.assertEqual(converged[-1], 1.0)
    self.assertLess(losses[-1], losses[0])
    self.assertTrue(np.all(np.diff(losses) <= 1e-6))  # the line search never goes up
    self.assertLess(losses[-1], results['adam'][1][-1] / 3)

  def test_refusals_name_the_field(self):
    config, problem, _, _ = _setup()
    c = config.copy_and_resolve_references()
    c.direct.update(estimator='per_step', optimizer='lbfgs')
    with self.assertRaisesRegex(ValueError, "--config.direct.optimizer: 'lbfgs' needs"):
      direct.check_config(c)
    c = config.copy_and_resolve_references()
    c.direct.estimator = 'exact'
    c.problem.update(vocab_size=16, seq_len=8)
    with self.assertRaisesRegex(ValueError, r'--config.direct.estimator: .* 16\^8 = '
                                            r'4,294,967,296 sequences'):
      direct.check_config(c)
    c = config.copy_and_resolve_references()
    c.direct.update(estimator='per_step', divergence='kl_pq')
    with self.assertRaisesRegex(ValueError, "--config.direct.divergence: 'kl_pq' only with"):
      direct.check_config(c)
    c = config.copy_and_resolve_references()
    c.direct.update(estimator='exact', grad_tol=0.0)
    with self.assertRaisesRegex(ValueError, '--config.direct.grad_tol'):
      direct.check_config(c)


class DirectTrainTest(absltest.TestCase):

  def test_smoke_training(self):
    # JS_π with the score estimator: π is swept (2 seeds x 2 π, one compile).
    config = smoke_config()
    config.pis = (0.3, 0.7)
    config.direct.update(divergence='js_pi', estimator='score')
    _, last = final_rows('direct', config)
    self.assertLen(last, 4)
    self.assertEqual(sorted(r['pi'] for r in last), [0.3, 0.3, 0.7, 0.7])
    for r in last:
      self.assertFalse(r['diverged'])
      for key in ('kl_pq', 'kl_qp', 'nll_oracle', 'entropy_q', 'train_loss'):
        self.assertTrue(np.isfinite(r[key]), msg=key)


if __name__ == '__main__':
  absltest.main()
