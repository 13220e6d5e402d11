"""Tests of models/discriminator.py: shapes, relaxed inputs, dropped widths, dropout."""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from models import discriminator as discriminator_lib

V, T, B, SEEDS = 7, 6, 16, 3


def _module(kind, **kw):
  sizes = dict(vocab_size=V, embed_dim=5, filter_widths=(1, 2, 3, 9), num_filters=(3, 4, 5, 6),
               hidden_dim=6, dropout_rate=0.5)
  return discriminator_lib.make_discriminator(kind, **dict(sizes, **kw))


def _tokens():
  return jax.random.randint(jax.random.PRNGKey(0), (B, T), 0, V)


@functools.lru_cache(maxsize=None)
def _outputs(kind):
  """Everything the tests check, for SEEDS vmapped initialisations, in one compiled call
  (compiling dominates: eager flax dispatches op by op, slow on a busy CPU)."""
  module = _module(kind)
  x = _tokens()
  relaxed = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(1), (B, T, V)))

  def one(key):
    variables = module.init(key, x)
    apply = functools.partial(module.apply, variables)
    train = lambda k: apply(x, deterministic=False, rngs={'dropout': jax.random.PRNGKey(k)})
    return dict(tokens=apply(x), one_hots=apply(jax.nn.one_hot(x, V)), relaxed=apply(relaxed),
                grads=jax.grad(lambda w: apply(w).sum())(relaxed), train1=train(1),
                train2=train(2))

  out = jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(0), SEEDS))
  return jax.device_get(out)


class DiscriminatorTest(parameterized.TestCase):

  @parameterized.parameters('cnn', 'lstm')
  def test_shapes_under_vmap_over_seeds(self, kind):
    out = _outputs(kind)
    chex.assert_shape([out['tokens'], out['relaxed'], out['train1']], (SEEDS, B))
    chex.assert_shape(out['grads'], (SEEDS, B, T, V))
    chex.assert_tree_all_finite(out)
    self.assertFalse(np.allclose(out['tokens'][0], out['tokens'][1]))  # seeds differ

  @parameterized.parameters('cnn', 'lstm')
  def test_one_hots_equal_tokens_and_relaxed_inputs_are_differentiable(self, kind):
    out = _outputs(kind)
    np.testing.assert_allclose(out['one_hots'], out['tokens'], atol=1e-5)
    self.assertGreater(float(np.abs(out['grads']).max()), 0.0)

  @parameterized.parameters('cnn', 'lstm')
  def test_dropout_only_in_training_mode(self, kind):
    out = _outputs(kind)
    self.assertFalse(np.allclose(out['train1'], out['tokens']))
    self.assertFalse(np.allclose(out['train1'], out['train2']))

  def test_widths_longer_than_the_sequence_are_dropped(self):
    params = jax.eval_shape(_module('cnn').init, jax.random.PRNGKey(0), _tokens())['params']
    self.assertEqual(sorted(k for k in params if k.startswith('conv')),
                     ['conv1', 'conv2', 'conv3'])
    chex.assert_shape(params['highway_gate']['kernel'], (12, 12))  # 3 + 4 + 5 features
    chex.assert_shape(params['output']['kernel'], (12, 1))

  def test_seqgan_sizes(self):
    module = discriminator_lib.make_discriminator('cnn', vocab_size=V, embed_dim=64)
    x = jnp.zeros((2, 20), jnp.int32)
    params = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)['params']
    features = sum(discriminator_lib.SEQGAN_NUM_FILTERS)  # all 12 widths fit T = 20
    self.assertEqual(features, 1720)
    chex.assert_shape(params['output']['kernel'], (features, 1))
    chex.assert_shape(params['conv20']['kernel'], (20, 64, 160))
    chex.assert_shape(params['highway_lin']['kernel'], (features, features))

  def test_bad_inputs(self):
    module = _module('cnn')
    variables = jax.eval_shape(module.init, jax.random.PRNGKey(0), _tokens())
    with self.assertRaisesRegex(ValueError, 'relaxed one-hots'):
      jax.eval_shape(module.apply, variables, jnp.ones((B, T, V + 1)) / (V + 1))
    with self.assertRaisesRegex(ValueError, 'same length'):
      jax.eval_shape(_module('cnn', num_filters=(3, 4)).init, jax.random.PRNGKey(0), _tokens())
    with self.assertRaisesRegex(ValueError, 'unknown discriminator kind'):
      _module('gru')


if __name__ == '__main__':
  absltest.main()
