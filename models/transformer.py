"""A small causal transformer decoder with the LSTM generator's interface.

Pre-layer-norm blocks (GPT-2's order): for each of `num_layers` blocks, on the residual
stream r [B, T, D],
  r = r + Attn(LN₁(r)),   Attn: `num_heads` causal heads of width D/heads, then a D×D projection
  r = r + MLP(LN₂(r)),    MLP: D → hidden_dim (GELU) → D
then a final layer norm, whose output h_t [D] is what the output layer softmax(h_t Wo + bo)
reads. Input t is the embedding of (start, x_0, …, x_{T-2})[t] plus a position vector:
learned ([T, D] parameters) or the fixed sinusoids of Vaswani et al. (2017).

Initialisation (documented because the suite compares architectures from their inits):
every matrix and the embeddings N(0, init_scale²), except the two projections that write into
the residual stream (attention output, MLP output), N(0, (init_scale/√(2·num_layers))²) as in
GPT-2, so the stream's variance at init does not grow with depth; biases 0; layer-norm
scales 1.

Sampling runs one position at a time under `lax.scan` with a key-value cache (the carry:
keys and values of every layer at every position, filled up to the current one, and the
position): a step costs O(T·D) per layer instead of recomputing the prefix. Teacher forcing
computes all positions at once with a causal mask; the two agree (tests/test_transformer.py).
"""

import math
from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import output_layer
from models import sampling
from models.autoregressive import AutoregressiveLM

POSITIONS = ('learned', 'sinusoidal')

# (keys [B, L, T, D], values [B, L, T, D], position int32 [B]): every leaf batch-first, so the
# prefix tree can repeat a carry along axis 0 as it does the LSTM's.
Carry = Tuple[jax.Array, jax.Array, jax.Array]

_LN_EPS = 1e-5


def sinusoids(length: int, width: int) -> jax.Array:
  """Vaswani et al.'s positions: [length, width], sin on even and cos on odd columns, the
  frequency of column pair i being 10000^(−2i/width)."""
  pos = jnp.arange(length, dtype=jnp.float32)[:, None]
  freq = jnp.exp(-math.log(10000.0) * jnp.arange(0, width, 2, dtype=jnp.float32) / width)
  table = jnp.zeros((length, width), jnp.float32)
  table = table.at[:, 0::2].set(jnp.sin(pos * freq))
  return table.at[:, 1::2].set(jnp.cos(pos * freq[:width // 2]))


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
  """Normalises the last axis to zero mean and unit variance, then x·scale + bias."""
  mean = x.mean(axis=-1, keepdims=True)
  var = jnp.square(x - mean).mean(axis=-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + _LN_EPS) * scale + bias


class TransformerLM(AutoregressiveLM):
  """Causal transformer over sequences of `seq_len` tokens from a vocabulary of `vocab_size`.

  Attributes:
    vocab_size: V.
    embed_dim: D, the width of the embeddings and of the residual stream.
    hidden_dim: the MLP's inner width.
    seq_len: T.
    num_layers: L, the number of blocks.
    num_heads: attention heads per block; must divide D.
    positions: 'learned' or 'sinusoidal'.
    init_scale: standard deviation of the initialiser (see the module docstring).
    start_token: the token whose embedding is the first input.
    logits_chunk_bytes: as `LSTMLM.logits_chunk_bytes` (`models.output_layer`).
  """
  vocab_size: int
  embed_dim: int
  hidden_dim: int
  seq_len: int
  num_layers: int = 2
  num_heads: int = 2
  positions: str = 'learned'
  init_scale: float = 0.1
  start_token: int = 0
  logits_chunk_bytes: int = output_layer.CHUNK_BYTES

  def setup(self):
    if self.embed_dim % self.num_heads:
      raise ValueError(f'num_heads ({self.num_heads}) must divide embed_dim ({self.embed_dim}).')
    if self.positions not in POSITIONS:
      raise ValueError(f'positions must be one of {POSITIONS}; got {self.positions!r}.')
    init = nn.initializers.normal(self.init_scale)
    residual = nn.initializers.normal(self.init_scale / math.sqrt(2 * self.num_layers))
    zeros, ones = nn.initializers.zeros, nn.initializers.ones
    V, D, M, L, T = (self.vocab_size, self.embed_dim, self.hidden_dim, self.num_layers,
                     self.seq_len)
    self.embedding = self.param('embedding', init, (V, D))
    if self.positions == 'learned':
      self.position = self.param('position', init, (T, D))
    else:
      self.position = sinusoids(T, D)
    # Each block's parameters stacked on a leading [L] axis.
    self.ln1_scale = self.param('ln1_scale', ones, (L, D))
    self.ln1_bias = self.param('ln1_bias', zeros, (L, D))
    self.Wqkv = self.param('Wqkv', init, (L, D, 3 * D))
    self.bqkv = self.param('bqkv', zeros, (L, 3 * D))
    self.Wproj = self.param('Wproj', residual, (L, D, D))
    self.bproj = self.param('bproj', zeros, (L, D))
    self.ln2_scale = self.param('ln2_scale', ones, (L, D))
    self.ln2_bias = self.param('ln2_bias', zeros, (L, D))
    self.W1 = self.param('W1', init, (L, D, M))
    self.b1 = self.param('b1', zeros, (L, M))
    self.W2 = self.param('W2', residual, (L, M, D))
    self.b2 = self.param('b2', zeros, (L, D))
    self.lnf_scale = self.param('lnf_scale', ones, (D,))
    self.lnf_bias = self.param('lnf_bias', zeros, (D,))
    self.Wo = self.param('Wo', init, (D, V))
    self.bo = self.param('bo', zeros, (V,))

  @property
  def state_dim(self) -> int:
    """S, the width of the states the output layer reads (the final layer norm's output): D."""
    return self.embed_dim

  # --- blocks --------------------------------------------------------------------------------

  def _heads(self, x: jax.Array) -> jax.Array:
    """[..., D] -> [..., heads, D/heads]."""
    return x.reshape(x.shape[:-1] + (self.num_heads, self.embed_dim // self.num_heads))

  def _attend(self, q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Scaled dot-product attention: q [B, Tq, D], k, v [B, Tk, D], mask bool [B or 1, Tq, Tk]
    (True: may attend) -> [B, Tq, D]."""
    q, k, v = self._heads(q), self._heads(k), self._heads(v)
    scores = jnp.einsum('bqhd,bkhd->bhqk', q, k) / math.sqrt(q.shape[-1])
    weights = jax.nn.softmax(jnp.where(mask[:, None], scores, -1e30), axis=-1)
    out = jnp.einsum('bhqk,bkhd->bqhd', weights, v)
    return out.reshape(out.shape[:-2] + (self.embed_dim,))

  def _mlp(self, layer: int, r: jax.Array) -> jax.Array:
    h = layer_norm(r, self.ln2_scale[layer], self.ln2_bias[layer])
    return jax.nn.gelu(h @ self.W1[layer] + self.b1[layer]) @ self.W2[layer] + self.b2[layer]

  def _qkv(self, layer: int, r: jax.Array):
    h = layer_norm(r, self.ln1_scale[layer], self.ln1_bias[layer])
    return jnp.split(h @ self.Wqkv[layer] + self.bqkv[layer], 3, axis=-1)

  def _final(self, r: jax.Array) -> jax.Array:
    return layer_norm(r, self.lnf_scale, self.lnf_bias)

  # --- teacher forcing -----------------------------------------------------------------------

  def residual_stream(self, x: jax.Array) -> jax.Array:
    """The residual stream after the last block, before the final layer norm: input
    embeddings x [B, T, E] -> [B, T, D] (row t has attended to inputs 0..t)."""
    T = x.shape[1]
    r = x + self.position[:T]
    mask = jnp.tril(jnp.ones((T, T), bool))[None]
    for layer in range(self.num_layers):
      q, k, v = self._qkv(layer, r)
      r = r + self._attend(q, k, v, mask) @ self.Wproj[layer] + self.bproj[layer]
      r = r + self._mlp(layer, r)
    return r

  def hidden_states_embedded(self, x: jax.Array) -> jax.Array:
    """Teacher-forced states for input embeddings x [B, T, E]: returns [B, T, D]."""
    return self._final(self.residual_stream(x))

  # --- one position at a time, with a key-value cache ------------------------------------------

  def initial_carry(self, batch_size: int) -> Carry:
    """An empty cache at position 0: keys and values [batch_size, L, T, D], position
    [batch_size]."""
    shape = (batch_size, self.num_layers, self.seq_len, self.embed_dim)
    dtype = self.embedding.dtype
    return (jnp.zeros(shape, dtype), jnp.zeros(shape, dtype),
            jnp.zeros((batch_size,), jnp.int32))

  def stepper(self):
    """One step from input embeddings: f(carry, x [B, E]) -> (new carry, logits [B, V]). The
    input sits at the carry's position; its keys and values are written there, it attends to
    positions ≤ its own, and the position advances by one."""
    T = self.seq_len

    def step(carry: Carry, x: jax.Array):
      keys, values, pos = carry
      here = jnp.arange(T)[None, :] == pos[:, None]          # [B, T]: the slot written now
      seen = (jnp.arange(T)[None, :] <= pos[:, None])[:, None]  # [B, 1, T]
      r = (x + self.position[pos])[:, None]                   # [B, 1, D]
      for layer in range(self.num_layers):
        q, k, v = self._qkv(layer, r)
        keys = keys.at[:, layer].set(jnp.where(here[..., None], k, keys[:, layer]))
        values = values.at[:, layer].set(jnp.where(here[..., None], v, values[:, layer]))
        att = self._attend(q, keys[:, layer], values[:, layer], seen)
        r = r + att @ self.Wproj[layer] + self.bproj[layer]
        r = r + self._mlp(layer, r)
      logits = self.logits_from_hidden(self._final(r[:, 0]))
      return (keys, values, pos + 1), logits

    return step

  # --- scheduled mixing and free running, with differentiable states ---------------------------

  def mixed_inputs(self, tokens: jax.Array, key: jax.Array, eps, method: str) -> jax.Array:
    """The inputs scheduled mixing feeds: int [B, T] = (start, y_0, …, y_{T-2}), where input
    t+1 is the data token x_t with probability eps (an independent coin per sequence and
    step) and otherwise a token drawn from the model's step-t distribution given the inputs
    fed so far. The draws carry no gradient: they are tokens."""
    k_draw, k_coin = jax.random.split(key)
    num = tokens.shape[0]
    take = jax.random.uniform(k_coin, (self.seq_len, num)) < eps  # as LSTMLM's coins
    step = self.stepper()

    def body(state, x):
      carry, prev = state
      k, data_tok, take_t = x
      carry, logits = step(carry, self.embed(prev))
      drawn = sampling.categorical(k, jax.lax.stop_gradient(logits), method=method)
      nxt = jnp.where(take_t, data_tok, drawn)
      return (carry, nxt), prev

    keys = jax.random.split(k_draw, self.seq_len)
    init = (self.initial_carry(num), self.start_tokens(num))
    _, fed = jax.lax.scan(body, init, (keys, tokens.T, take))
    return jax.lax.stop_gradient(jnp.swapaxes(fed, 0, 1))

  def mixed_hidden_states(self, tokens: jax.Array, key: jax.Array, eps,
                          method: str = sampling.DEFAULT) -> jax.Array:
    """States under scheduled mixing (Bengio et al., 2015): int [B, T] -> [B, T, D].

    The inputs are drawn one position at a time (`mixed_inputs`); the states are then the
    teacher-forced states of those inputs, differentiable w.r.t. the parameters through the
    network and the inputs' embeddings (not through the draws), as the LSTM's are. With
    eps = 1 they equal `hidden_states(tokens)`.
    """
    return self.hidden_states_embedded(self.embed(self.mixed_inputs(tokens, key, eps, method)))

  def mixed_token_log_probs(self, tokens: jax.Array, key: jax.Array, eps,
                            method: str = sampling.DEFAULT) -> jax.Array:
    """log q(x_t | mixed inputs) of each data token under scheduled mixing: [B, T] -> [B, T]."""
    return self.token_log_probs_from_hidden(
        self.mixed_hidden_states(tokens, key, eps, method), tokens)

  def free_running_hidden_states(self, key: jax.Array, num: int,
                                 method: str = sampling.DEFAULT) -> Tuple[jax.Array, jax.Array]:
    """Ancestral samples and the states that produced them: (int32 [num, T], equal to
    `sample(key, num, method=method)`; [num, T, D] = `hidden_states(samples)`, differentiable
    through the network and the sampled inputs' embeddings, not through the draws)."""
    toks = self.sample(key, num, method=method)
    return toks, self.hidden_states(toks)

  # --- behaviour (professor forcing's discriminator input) ------------------------------------

  def behaviour(self, tokens: jax.Array) -> jax.Array:
    """Teacher-forced behaviour: int [B, T] -> [B, T, D + V] = concat(r_t, softmax(logits_t)).

    Professor forcing's discriminator reads the generator's pre-activation state and its
    softmax outputs (Lamb et al. 2016). The LSTM gives its cell state c_t (before the tanh
    that makes h_t); the transformer gives r_t, its residual stream before the final layer
    norm that makes the state the output layer reads.
    """
    r = self.residual_stream(self.embed(self.inputs(tokens)))
    probs = jax.nn.softmax(self.logits_from_hidden(self._final(r)), axis=-1)
    return jnp.concatenate([r, probs], axis=-1)

  def free_running_behaviour(self, key: jax.Array, num: int,
                             method: str = sampling.DEFAULT) -> Tuple[jax.Array, jax.Array]:
    """Ancestral samples and the behaviour that produced them: (int32 [num, T], equal to
    `sample(key, num, method=method)`; [num, T, D + V] = `behaviour(samples)`)."""
    toks = self.sample(key, num, method=method)
    return toks, self.behaviour(toks)
