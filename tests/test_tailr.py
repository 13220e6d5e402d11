"""Tests of objectives/tailr.py: the weights at their limits, the expected gradient by
enumeration, and the refusals."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

import _smoke
from benchmarks import configs
import divergences
from models import oracle as oracle_lib
from objectives import tailr
from objectives import teacher_forcing
import objectives


def _setup(**tailr_fields):
  config = configs.get_preset('smoke')
  config.problem.update(vocab_size=3, seq_len=2, num_train=64, num_test=32)
  config.generator.update(embed_dim=4, hidden_dim=4, init_scale=0.5)
  config.tailr.update(tailr_fields)
  problem = oracle_lib.make_problem(config.problem)
  scheme = objectives.make('tailr', config, problem)
  return config, problem, scheme, scheme.init(jax.random.PRNGKey(1)).params


class TaiLrTest(parameterized.TestCase):

  def test_weights_against_numpy_and_at_the_limits(self):
    q = np.array([1e-4, 0.05, 0.3, 0.9])
    log_q = jnp.log(jnp.asarray(q, jnp.float32))
    for gamma, floor in ((0.3, 0.0), (0.3, 0.25), (0.8, 0.1)):
      want = np.clip(q / (gamma + (1 - gamma) * q), floor, 1.0)
      np.testing.assert_allclose(tailr.weights(log_q, gamma, floor), want, rtol=1e-5)
    np.testing.assert_allclose(tailr.weights(log_q, 0.0, 0.0), 1.0, rtol=1e-6)  # MLE
    np.testing.assert_allclose(tailr.weights(log_q, 1.0, 0.2), np.clip(q, 0.2, 1), rtol=1e-5)

  def test_gamma_zero_is_mle(self):
    _, problem, scheme, params = _setup(gamma=0.0, min_weight=0.0)
    batch = problem.train[:8]
    np.testing.assert_allclose(
        tailr.loss(scheme.generator, params, batch, gamma=0.0, min_weight=0.0),
        teacher_forcing.nll(scheme.generator, params, batch), rtol=1e-6)

  def test_expected_gradient_at_gamma_one_is_that_of_the_expected_token_probability(self):
    # γ = 1, no clamp: w_t = q(x_t | x_<t) held fixed, and q ∇(−log q) = −∇q, so the
    # P-expectation of the gradient is ∇ of −E_P[(1/T) Σ_t q(x_t | x_<t)] (prefixes from P).
    # Pinned by enumeration; it fails if the weight is differentiated.
    config, problem, scheme, params = _setup(gamma=1.0, min_weight=0.0)
    V, T = config.problem.vocab_size, config.problem.seq_len
    gen = scheme.generator
    xs = divergences.enumerate_sequences(V, T, 0, V ** T)
    p = jnp.exp(problem.model.apply(problem.params, xs, method='log_prob'))
    got = jax.grad(lambda prm: jnp.sum(p * tailr.loss(gen, prm, xs, gamma=1.0,
                                                      min_weight=0.0)))(params)
    want = jax.grad(lambda prm: -jnp.sum(
        p * jnp.exp(gen.apply(prm, xs, method='token_log_probs')).mean(-1)))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), got, want)

  def test_smoke_run_through_train_scheme_lowers_the_test_nll(self):
    config = _smoke.smoke_config()
    config.train.update(num_steps=30, eval_every=15)
    _, rows = _smoke.final_rows('tailr', config)
    self.assertTrue(all(np.isfinite(r['kl_pq']) and not r['diverged'] for r in rows))
    config.train.update(num_steps=1, eval_every=1)
    _, first = _smoke.final_rows('tailr', config)
    # (Its own loss can rise as Q's probabilities, hence the weights, grow: judge the data NLL.)
    self.assertLess(np.mean([r['nll_test'] for r in rows]), np.mean([r['nll_test'] for r in first]))

  @parameterized.parameters(('gamma', -0.1), ('gamma', 1.5), ('min_weight', float('nan')),
                            ('min_weight', 1.5))
  def test_bad_field_names_its_flag(self, field, value):
    config = configs.get_preset('smoke')
    config.tailr[field] = value
    with self.assertRaisesRegex(ValueError, f'--config.tailr.{field}:'):
      objectives.check_config('tailr', config)


if __name__ == '__main__':
  absltest.main()
