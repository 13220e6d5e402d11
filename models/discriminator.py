"""Sequence discriminators D(x) -> one logit (log-odds that x is data, not generated).

Both networks read either int tokens [B, T] or relaxed one-hots [B, T, V] (rows on the
simplex, e.g. Gumbel-softmax samples or interpolates for a gradient penalty). A relaxed row
w is embedded as w @ embedding, which equals embedding[x] when w is the one-hot of x; so the
two input kinds give the same logit on one-hots, and D is differentiable in the relaxed input.

`CNNDiscriminator` is SeqGAN's (Yu et al. 2017; itself Kim 2014's sentence CNN with a highway
layer): per filter width w a 1-D convolution over the token embeddings with ReLU, max over
time, the pooled features of all widths concatenated [B, F], one highway layer, dropout, and
a linear layer to one logit. SeqGAN's synthetic-data sizes are `SEQGAN_FILTER_WIDTHS` and
`SEQGAN_NUM_FILTERS` with embedding 64 and dropout keep 0.75. Widths longer than the sequence
are dropped (they would see no complete window).

`LSTMDiscriminator` reads the embeddings with an LSTM and maps its last hidden state to the
logit (Kusner & Hernández-Lobato 2016 use an LSTM discriminator for their Gumbel-softmax GAN).

Call as `module.apply(variables, x, deterministic=False, rngs={'dropout': key})` while
training, `module.apply(variables, x)` (deterministic) otherwise.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

KINDS = ('cnn', 'lstm')
SEQGAN_FILTER_WIDTHS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)
SEQGAN_NUM_FILTERS = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160)


def _uniform(scale: float):
  """U(−scale, scale) initialiser (SeqGAN's embedding init with scale 1)."""
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)
  return init


def embed_tokens_or_relaxed(embedding: jax.Array, x: jax.Array) -> jax.Array:
  """Embeds int tokens [B, T] (row lookup) or relaxed one-hots [B, T, V] (w @ embedding).

  Args:
    embedding: [V, E].
    x: int [B, T], or float [B, T, V] with rows on the simplex.

  Returns:
    [B, T, E].
  """
  if jnp.issubdtype(x.dtype, jnp.integer):
    if x.ndim != 2:
      raise ValueError(f'int tokens must be [B, T]; got shape {x.shape}')
    return embedding[x]
  if x.ndim != 3 or x.shape[-1] != embedding.shape[0]:
    raise ValueError(f'relaxed one-hots must be [B, T, V={embedding.shape[0]}]; '
                     f'got shape {x.shape}')
  return x @ embedding


class CNNDiscriminator(nn.Module):
  """SeqGAN's CNN discriminator: x int [B, T] or float [B, T, V] -> logits [B].

  Attributes:
    vocab_size: V.
    embed_dim: E, the width of the discriminator's own token embedding (SeqGAN: 64).
    filter_widths: the convolution widths w (SeqGAN: 1..10, 15, 20); widths > T are dropped.
    num_filters: the number of filters of each width (same length as filter_widths).
    dropout_rate: dropout before the output layer (SeqGAN: keep 0.75, i.e. rate 0.25).
  """
  vocab_size: int
  embed_dim: int = 64
  filter_widths: Sequence[int] = SEQGAN_FILTER_WIDTHS
  num_filters: Sequence[int] = SEQGAN_NUM_FILTERS
  dropout_rate: float = 0.25

  @nn.compact
  def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
    if len(self.filter_widths) != len(self.num_filters):
      raise ValueError(f'filter_widths {tuple(self.filter_widths)} and num_filters '
                       f'{tuple(self.num_filters)} must have the same length')
    embedding = self.param('embedding', _uniform(1.0), (self.vocab_size, self.embed_dim))
    h = embed_tokens_or_relaxed(embedding, x)  # [B, T, E]
    seq_len = h.shape[1]
    widths = [(w, n) for w, n in zip(self.filter_widths, self.num_filters) if w <= seq_len]
    if not widths:
      raise ValueError(f'every filter width {tuple(self.filter_widths)} exceeds T={seq_len}')
    pooled = []
    for w, n in widths:
      conv = nn.Conv(n, (w,), padding='VALID', name=f'conv{w}',
                     kernel_init=nn.initializers.truncated_normal(0.1),
                     bias_init=nn.initializers.constant(0.1))
      pooled.append(nn.relu(conv(h)).max(axis=1))  # [B, T − w + 1, n] -> max over time [B, n]
    feats = jnp.concatenate(pooled, axis=-1)  # [B, F]
    size = feats.shape[-1]
    # Highway (Srivastava et al. 2015): y = t ⊙ relu(W_h f) + (1 − t) ⊙ f, t = σ(W_t f).
    gate = nn.sigmoid(nn.Dense(size, name='highway_gate')(feats))
    feats = gate * nn.relu(nn.Dense(size, name='highway_lin')(feats)) + (1 - gate) * feats
    feats = nn.Dropout(self.dropout_rate)(feats, deterministic=deterministic)
    return nn.Dense(1, name='output')(feats)[:, 0]


class LSTMDiscriminator(nn.Module):
  """LSTM discriminator: x int [B, T] or float [B, T, V] -> logits [B] from the last state.

  Attributes:
    vocab_size: V.
    embed_dim: E, the width of the discriminator's token embedding.
    hidden_dim: H, the LSTM width.
    dropout_rate: dropout on the last hidden state before the output layer.
  """
  vocab_size: int
  embed_dim: int = 32
  hidden_dim: int = 32
  dropout_rate: float = 0.25

  @nn.compact
  def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
    embedding = self.param('embedding', _uniform(1.0), (self.vocab_size, self.embed_dim))
    h = embed_tokens_or_relaxed(embedding, x)  # [B, T, E]
    cell = nn.OptimizedLSTMCell(self.hidden_dim, name='lstm')
    (_, last), _ = nn.RNN(cell, return_carry=True)(h)  # carry (c, h), each [B, H]
    last = nn.Dropout(self.dropout_rate)(last, deterministic=deterministic)
    return nn.Dense(1, name='output')(last)[:, 0]


def make_discriminator(kind: str, *, vocab_size: int, embed_dim: int,
                       filter_widths: Sequence[int] = SEQGAN_FILTER_WIDTHS,
                       num_filters: Sequence[int] = SEQGAN_NUM_FILTERS,
                       hidden_dim: int = 32, dropout_rate: float = 0.25) -> nn.Module:
  """The discriminator of `kind` ('cnn' or 'lstm'); its variables come from
  `module.init(key, tokens int [B, T])`. Sizes the kind does not use are ignored."""
  if kind == 'cnn':
    return CNNDiscriminator(vocab_size=vocab_size, embed_dim=embed_dim,
                            filter_widths=tuple(filter_widths), num_filters=tuple(num_filters),
                            dropout_rate=dropout_rate)
  if kind == 'lstm':
    return LSTMDiscriminator(vocab_size=vocab_size, embed_dim=embed_dim,
                             hidden_dim=hidden_dim, dropout_rate=dropout_rate)
  raise ValueError(f'unknown discriminator kind {kind!r}; expected one of {KINDS}')
