"""The chunked output layer equals the naive log-softmax gather, in value and gradient."""

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from models import lstm
from models import output_layer


def naive(h, W, b, tokens):
  logp = jax.nn.log_softmax(h @ W + b, axis=-1)
  return jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]


def inputs(rows=(3, 7), hidden=5, vocab=11, seed=0):
  k = jax.random.split(jax.random.PRNGKey(seed), 5)
  return (jax.random.normal(k[0], rows + (hidden,)), jax.random.normal(k[1], (hidden, vocab)),
          jax.random.normal(k[2], (vocab,)), jax.random.randint(k[3], rows, 0, vocab),
          jax.random.normal(k[4], rows))


class OutputLayerTest(parameterized.TestCase):

  @parameterized.parameters(1, 2, 3, 7, 21)
  def test_num_chunks(self, n):
    # 21 rows of 11 float32 logits = 924 bytes; a budget of 924 / n bytes asks for n chunks.
    self.assertEqual(output_layer.num_chunks(21, 11, 924 // n), n)

  def test_num_chunks_bounds(self):
    self.assertEqual(output_layer.num_chunks(5, 10, 10 ** 9), 1)
    self.assertEqual(output_layer.num_chunks(5, 10, 1), 5)  # never more chunks than rows

  # 21 rows: one chunk, chunks that divide it (3, 7), and chunks that need padding (2, 5).
  @parameterized.parameters(10 ** 6, 924 // 2, 924 // 3, 924 // 5, 924 // 7)
  def test_value_and_gradient_match_naive(self, chunk_bytes):
    h, W, b, tokens, cotangent = inputs()
    chunked = lambda h, W, b: output_layer.token_log_probs(h, W, b, tokens, chunk_bytes)
    np.testing.assert_allclose(chunked(h, W, b), naive(h, W, b, tokens), rtol=1e-5, atol=1e-6)
    grads = jax.grad(lambda *a: (chunked(*a) * cotangent).sum(), (0, 1, 2))(h, W, b)
    expected = jax.grad(lambda *a: (naive(*a, tokens) * cotangent).sum(), (0, 1, 2))(h, W, b)
    for g, e in zip(grads, expected):
      np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)

  def test_softmax_rows_normalise(self):
    # Summing exp(log p(v)) over every token v gives 1 for each row.
    h, W, b, _, _ = inputs(rows=(4,), vocab=6)
    all_tokens = jnp.broadcast_to(jnp.arange(6)[:, None], (6, 4))
    logp = jax.vmap(lambda t: output_layer.token_log_probs(h, W, b, t, 40))(all_tokens)
    np.testing.assert_allclose(jnp.exp(logp).sum(axis=0), np.ones(4), rtol=1e-5)

  def test_vmap_and_jit(self):
    h, W, b, tokens, _ = inputs()
    stacked = jax.tree_util.tree_map(lambda x: jnp.stack([x, 2 * x]), (h, W, b))
    f = jax.jit(jax.vmap(lambda h, W, b: output_layer.token_log_probs(h, W, b, tokens, 100)))
    out = f(*stacked)
    chex.assert_shape(out, (2, 3, 7))
    np.testing.assert_allclose(out[1], naive(2 * h, 2 * W, 2 * b, tokens), rtol=1e-5,
                               atol=1e-6)

  def test_lstm_token_log_probs_with_temperature(self):
    model = lstm.LSTMLM(vocab_size=13, embed_dim=4, hidden_dim=6, seq_len=5)
    tokens = jax.random.randint(jax.random.PRNGKey(1), (3, 5), 0, 13)
    params = model.init(jax.random.PRNGKey(0), tokens)
    for tau in (1.0, 0.5):
      logits = model.apply(params, tokens, method='logits') / tau
      expected = jnp.take_along_axis(jax.nn.log_softmax(logits), tokens[..., None], -1)[..., 0]
      got = model.apply(params, tokens, tau, method='token_log_probs')
      np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
      # 15 rows of 13 logits in chunks of at most 2 rows: the knob changes nothing else.
      small = model.clone(logits_chunk_bytes=2 * 13 * 4)
      np.testing.assert_allclose(small.apply(params, tokens, tau, method='token_log_probs'),
                                 expected, rtol=1e-5, atol=1e-6)


if __name__ == '__main__':
  absltest.main()
