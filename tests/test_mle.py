"""Tests of objectives/mle.py: shapes, gradients, and the link to KL(P || Q) by enumeration."""

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import configs
import divergences
from models import oracle as oracle_lib
from objectives import teacher_forcing
import objectives


def _setup(vocab_size=3, seq_len=3):
  config = configs.get_preset('smoke')
  config.problem.update(vocab_size=vocab_size, seq_len=seq_len, num_train=64, num_test=32)
  config.generator.update(embed_dim=4, hidden_dim=4, init_scale=0.5)
  problem = oracle_lib.make_problem(config.problem)
  return config, problem, objectives.make('mle', config, problem)


class MLETest(absltest.TestCase):

  def test_loss_shape_and_finite_gradients(self):
    config, problem, scheme = _setup()
    state = scheme.init(jax.random.PRNGKey(0))
    batch = problem.train[:8]
    losses = teacher_forcing.nll(scheme.generator, state.params, batch)
    chex.assert_shape(losses, (8,))
    grads = jax.grad(lambda p: teacher_forcing.nll(scheme.generator, p, batch).mean())(state.params)
    chex.assert_trees_all_equal_shapes(grads, state.params)
    chex.assert_tree_all_finite(grads)
    vmapped = jax.vmap(scheme.init)(jax.random.split(jax.random.PRNGKey(0), 5))
    chex.assert_shape(vmapped.params['params']['Wo'], (5, 4, config.problem.vocab_size))

  def test_expected_loss_and_gradient_are_those_of_kl_pq(self):
    # E_P[nll] = (KL(P || Q) + H(P)) / T, and its gradient is the gradient of KL(P || Q)/T:
    # MLE is an unbiased estimator of the exact divergence's gradient. Pinned by enumeration.
    config, problem, scheme = _setup()
    V, T = config.problem.vocab_size, config.problem.seq_len
    gen, oracle = scheme.generator, problem.model
    params = scheme.init(jax.random.PRNGKey(1)).params
    xs = divergences.enumerate_sequences(V, T, 0, V ** T)
    p = jnp.exp(oracle.apply(problem.params, xs, method='log_prob'))

    def expected_nll(prm):
      return (p * teacher_forcing.nll(gen, prm, xs)).sum()

    def exact_kl(prm):
      ex = divergences.exact(lambda x: oracle.apply(problem.params, x, method='log_prob'),
                             lambda x: gen.apply(prm, x, method='log_prob'),
                             vocab_size=V, seq_len=T, pis=jnp.array([0.5]), chunk_size=8)
      return ex['kl_pq'], ex['entropy_p']

    kl, h_p = jax.jit(exact_kl)(params)
    np.testing.assert_allclose(expected_nll(params), kl + h_p, rtol=1e-5)
    g_mle = jax.grad(expected_nll)(params)
    g_kl = jax.grad(lambda prm: exact_kl(prm)[0])(params)
    chex.assert_trees_all_close(g_mle, g_kl, atol=1e-5)
    self.assertGreater(float(_global_norm(g_kl)), 1e-3)  # a non-trivial gradient was compared

  def test_steps_lower_the_loss(self):
    _, problem, scheme = _setup(vocab_size=8, seq_len=4)
    state = scheme.init(jax.random.PRNGKey(0))
    batch = problem.train[:32]
    step = jax.jit(scheme.step)
    first = None
    for i in range(30):
      state, metrics = step(state, batch, jax.random.PRNGKey(i), jnp.float32(jnp.nan))
      first = metrics['loss'] if first is None else first
    self.assertLess(float(metrics['loss']), float(first) - 0.1)
    self.assertEqual(int(state.count), 30)


def _global_norm(tree):
  return jnp.sqrt(sum(jnp.sum(x ** 2) for x in jax.tree_util.tree_leaves(tree)))


if __name__ == '__main__':
  absltest.main()
