"""Tests of divergences/kl_estimators.py and objectives/kl_estimator.py: the estimators' values
against closed forms, and each use's expected gradient against the exact one, by enumeration."""

import math

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from _smoke import enumerable_setup, final_rows, smoke_config
import divergences
from divergences import kl_estimators
import objectives
from objectives import distill
from objectives import kl_estimator


def _categoricals(seed, v=5):
  rng = np.random.default_rng(seed)
  lp = jax.nn.log_softmax(jnp.asarray(rng.normal(size=v) * 2, jnp.float32))
  lq = jax.nn.log_softmax(jnp.asarray(rng.normal(size=v) * 2, jnp.float32))
  return lp, lq


class ValuesTest(parameterized.TestCase):

  def test_closed_forms_at_a_ratio(self):
    log_r = jnp.array([math.log(2.0), 0.0, math.log(0.25)])
    np.testing.assert_allclose(kl_estimators.k1(log_r), [-math.log(2), 0.0, math.log(4)],
                               rtol=1e-6)
    np.testing.assert_allclose(kl_estimators.k2(log_r),
                               [0.5 * math.log(2) ** 2, 0.0, 0.5 * math.log(4) ** 2], rtol=1e-6)
    np.testing.assert_allclose(kl_estimators.k3(log_r),
                               [1 - math.log(2), 0.0, -0.75 + math.log(4)], rtol=1e-6)

  @parameterized.parameters(0, 1, 2)
  def test_k1_and_k3_are_unbiased_and_k2_is_not(self, seed):
    lp, lq = _categoricals(seed)
    q = np.exp(np.asarray(lq, np.float64))
    kl = float(np.sum(q * (np.asarray(lq, np.float64) - np.asarray(lp, np.float64))))
    expect = lambda name: float(np.sum(q * np.asarray(kl_estimators.sampled(name, lp, lq))))
    self.assertAlmostEqual(expect('k1'), kl, places=5)
    self.assertAlmostEqual(expect('k3'), kl, places=5)
    self.assertAlmostEqual(float(kl_estimators.analytic(lq, lp)), kl, places=5)
    log_r = np.asarray(lp, np.float64) - np.asarray(lq, np.float64)
    self.assertAlmostEqual(expect('k2'), float(np.sum(q * 0.5 * log_r ** 2)), places=5)
    self.assertGreater(abs(expect('k2') - kl), 1e-3)  # (these draws: far from P ≈ Q)
    self.assertTrue(np.all(np.asarray(kl_estimators.sampled('k3', lp, lq)) >= 0))

  def test_top_k(self):
    lp, lq = _categoricals(3)
    full = float(kl_estimators.analytic(lq, lp))
    for renormalise in (False, True):  # k = V: the analytic KL either way
      self.assertAlmostEqual(float(kl_estimators.top_k(lq, lp, 5, renormalise=renormalise)),
                             full, places=5)
    self.assertEqual(float(kl_estimators.top_k(lq, lp, 1, renormalise=True)), 0.0)
    p, q = np.exp(np.asarray(lp, np.float64)), np.exp(np.asarray(lq, np.float64))
    top = np.argsort(-q)[:2]
    partial = np.sum(q[top] * np.log(q[top] / p[top]))
    self.assertAlmostEqual(float(kl_estimators.top_k(lq, lp, 2, renormalise=False)), partial,
                           places=5)
    qk, pk = q[top] / q[top].sum(), p[top] / p[top].sum()
    self.assertAlmostEqual(float(kl_estimators.top_k(lq, lp, 2, renormalise=True)),
                           np.sum(qk * np.log(qk / pk)), places=5)
    with self.assertRaisesRegex(ValueError, 'k must be in'):
      kl_estimators.top_k(lq, lp, 6, renormalise=False)


class ExpectedGradientTest(parameterized.TestCase):
  """Each use's expected update E_{x~Q}[∇ loss(x)] (sampling law held fixed), by enumerating
  the 27 sequences of a V = 3, T = 3 problem, against the gradient it provably equals."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.config, cls.problem, cls.gen, cls.params = enumerable_setup('kl_estimator')
    v, t = cls.config.problem.vocab_size, cls.config.problem.seq_len
    cls.xs = divergences.enumerate_sequences(v, t, 0, v ** t)
    oracle = cls.problem

    def exact(params):
      return divergences.exact(
          lambda x: oracle.model.apply(oracle.params, x, method='log_prob'),
          lambda x: cls.gen.apply(params, x, method='log_prob'), vocab_size=v, seq_len=t,
          pis=jnp.array([0.5]), chunk_size=v ** t)
    cls.grad_kl_qp = cls._flat(jax.grad(lambda p: exact(p)['kl_qp'])(cls.params))
    cls.grad_kl_pq = cls._flat(jax.grad(lambda p: exact(p)['kl_pq'])(cls.params))

  @staticmethod
  def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(x, np.float64))
                           for x in jax.tree_util.tree_leaves(tree)])

  def _expected(self, per_sequence):
    """∇ Σ_x Q(x) loss(x), Q(x) held fixed: the expected update of a batch's mean loss."""
    xs = self.xs

    def total(params):
      w = jax.lax.stop_gradient(jnp.exp(self.gen.apply(params, xs, method='log_prob')))
      return jnp.sum(w * per_sequence(params, xs))
    return self._flat(jax.grad(total)(self.params))

  def _estimator(self, estimator, use, returns='to_go', **kw):
    oracle = self.problem
    return self._expected(lambda prm, xs: kl_estimator.loss(
        self.gen, prm, oracle.model, oracle.params, xs, estimator=estimator, use=use,
        returns=returns, baseline=0.0, **kw))

  def assertSameVector(self, got, want, rtol=1e-4):
    self.assertGreater(np.linalg.norm(want), 1e-3)
    self.assertLess(np.linalg.norm(got - want) / np.linalg.norm(want), rtol)

  @parameterized.parameters(('k1', 'reward', 'to_go'), ('k1', 'reward', 'total'),
                            ('k1', 'both', 'to_go'), ('k3', 'both', 'to_go'),
                            ('analytic', 'both', 'to_go'), ('analytic', 'both', 'total'))
  def test_follows_the_reverse_kl_exactly(self, estimator, use, returns):
    self.assertSameVector(self._estimator(estimator, use, returns), self.grad_kl_qp)

  def test_k1_as_a_loss_has_no_expected_gradient(self):
    got = self._estimator('k1', 'loss')
    self.assertLess(np.linalg.norm(got), 1e-5 * np.linalg.norm(self.grad_kl_qp))

  def test_k2_as_a_loss_is_the_prefix_fixed_reverse_kl(self):
    want = self._estimator('analytic', 'loss')
    self.assertSameVector(self._estimator('k2', 'loss'), want)
    self.assertGreater(np.linalg.norm(want - self.grad_kl_qp), 1e-3)  # not ∇KL[Q‖P] itself

  def test_k3_as_a_loss_is_the_prefix_fixed_forward_kl_on_student_prefixes(self):
    oracle = self.problem
    want = self._expected(lambda prm, xs: distill.loss(
        self.gen, prm, oracle.model, oracle.params, xs, jnp.ones(xs.shape[0], bool),
        divergence='fkl', cost_to_go='none'))
    self.assertSameVector(self._estimator('k3', 'loss'), want)
    cos = want @ self.grad_kl_qp / np.linalg.norm(want) / np.linalg.norm(self.grad_kl_qp)
    self.assertLess(cos, 0.999)  # a different direction from ∇KL[Q‖P]

  def test_top_k_with_every_token_is_the_analytic_form(self):
    v = self.config.problem.vocab_size
    for use in ('loss', 'both'):
      self.assertSameVector(self._estimator('top_k', use, top_k=v),
                            self._estimator('analytic', use), rtol=1e-5)


class SurrogateTest(absltest.TestCase):

  def test_values_and_score_terms(self):
    k = jnp.array([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]])
    lq = jnp.zeros((2, 3))
    for use in kl_estimator.USES:  # the value is (1/T) Σ_t k_t whatever the gradient
      np.testing.assert_allclose(kl_estimator.surrogate(k, lq, use=use, baseline='none'),
                                 [2.0, 0.5])
    # 'reward': the gradient w.r.t. log Q(x_t) is (G_t − b_t)/T, G_t = Σ_{s≥t} k_s.
    g = jax.grad(lambda l: kl_estimator.surrogate(k, l, use='reward', baseline='none').sum())(lq)
    np.testing.assert_allclose(g, np.array([[6, 5, 3], [1.5, 1.0, 0.5]]) / 3, rtol=1e-6)
    g = jax.grad(lambda l: kl_estimator.surrogate(k, l, use='reward', returns='total',
                                                  baseline='none').sum())(lq)
    np.testing.assert_allclose(g, np.array([[6, 6, 6], [1.5, 1.5, 1.5]]) / 3, rtol=1e-6)
    # 'loo' with two rows: each row's baseline is the other's return.
    g = jax.grad(lambda l: kl_estimator.surrogate(k, l, use='reward', baseline='loo').sum())(lq)
    np.testing.assert_allclose(g, np.array([[4.5, 4, 2.5], [-4.5, -4, -2.5]]) / 3, rtol=1e-6)

  def test_bad_fields_name_the_flag(self):
    config = smoke_config()
    for field, value in (('estimator', 'k4'), ('use', 'penalty'), ('returns', 'gae'),
                         ('baseline', 'mean'), ('top_k', 0),
                         ('learning_rate', -1.0)):
      c = smoke_config()
      c.kl_estimator[field] = value
      with self.assertRaisesRegex(ValueError, rf'--config\.kl_estimator\.{field}'):
        objectives.check_config('kl_estimator', c)
    config.kl_estimator.update(estimator='top_k', top_k=config.problem.vocab_size + 1)
    with self.assertRaisesRegex(ValueError, r'--config\.kl_estimator\.top_k: at most'):
      objectives.check_config('kl_estimator', config)
    config.kl_estimator.top_k = config.problem.vocab_size
    objectives.check_config('kl_estimator', config)


class TrainTest(absltest.TestCase):

  def test_smoke_run_lowers_the_reverse_kl(self):
    config = smoke_config()
    config.kl_estimator.update(estimator='k1', use='reward')
    config.train.update(num_steps=20, eval_every=10)
    _, rows = final_rows('kl_estimator', config)
    self.assertTrue(all(np.isfinite(r['kl_qp']) and not r['diverged'] for r in rows))
    self.assertTrue(all(np.isfinite(r['loss']) for r in rows if 'loss' in r))


if __name__ == '__main__':
  absltest.main()
