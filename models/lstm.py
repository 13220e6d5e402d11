"""The LSTM language model shared by the oracle and the generator.

The equations are those of the SeqGAN oracle (shared/reference/README.md): per step, with
batch rows,
  i = σ(x Wi + h Ui + bi),  f = σ(x Wf + h Uf + bf),  o = σ(x Wog + h Uog + bog),
  c̃ = tanh(x Wc + h Uc + bc),  c = f·c + i·c̃,  h = o·tanh(c),  logits = h Wo + bo,
starting from h = c = 0 and x = embedding[start_token]; each next input is the embedding of
the token just emitted (sampled, or the data token under teacher forcing).

Parameter names match the SeqGAN oracle file, so `{'params': dict(np.load(file))}` is a valid
variable dict for `LSTMLM(vocab_size=5000, embed_dim=32, hidden_dim=32, seq_len=20)`.
"""

from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import sampling

Carry = Tuple[jax.Array, jax.Array]  # (h, c), each [B, H]

_GATES = ('i', 'f', 'og', 'c')  # input, forget, output, candidate (SeqGAN's names)


class LSTMLM(nn.Module):
  """Autoregressive LSTM over sequences of `seq_len` tokens from a vocabulary of `vocab_size`.

  Attributes:
    vocab_size: V, the number of tokens (token 0 doubles as the start token by default).
    embed_dim: E, the embedding width.
    hidden_dim: H, the LSTM width.
    seq_len: T, the fixed sequence length.
    init_scale: standard deviation of the N(0, init_scale²) initialiser of every parameter
      (1.0 for a SeqGAN-style oracle, 0.1 for a SeqGAN-style generator).
    start_token: the token whose embedding is the first input.
  """
  vocab_size: int
  embed_dim: int
  hidden_dim: int
  seq_len: int
  init_scale: float = 0.1
  start_token: int = 0

  def setup(self):
    init = nn.initializers.normal(self.init_scale)
    V, E, H = self.vocab_size, self.embed_dim, self.hidden_dim
    self.embedding = self.param('embedding', init, (V, E))
    self.W = [self.param(f'W{g}', init, (E, H)) for g in _GATES]
    self.U = [self.param(f'U{g}', init, (H, H)) for g in _GATES]
    self.b = [self.param(f'b{g}', init, (H,)) for g in _GATES]
    self.Wo = self.param('Wo', init, (H, V))
    self.bo = self.param('bo', init, (V,))

  def __call__(self, tokens: jax.Array) -> jax.Array:
    """Teacher-forced next-token logits: alias of `logits` (used by `init`)."""
    return self.logits(tokens)

  # --- building blocks -------------------------------------------------------------------

  def _fused(self):
    # One [E, 4H] and one [H, 4H] matmul per step instead of eight small ones.
    return (jnp.concatenate(self.W, axis=1), jnp.concatenate(self.U, axis=1),
            jnp.concatenate(self.b, axis=0))

  def initial_carry(self, batch_size: int) -> Carry:
    """Zero state: (h, c), each [batch_size, H]."""
    zeros = jnp.zeros((batch_size, self.hidden_dim), self.embedding.dtype)
    return zeros, zeros

  def start_tokens(self, batch_size: int) -> jax.Array:
    """The first inputs: int32 [batch_size] filled with `start_token`."""
    return jnp.full((batch_size,), self.start_token, jnp.int32)

  def _cell(self, carry: Carry, x_proj: jax.Array, U: jax.Array) -> Carry:
    """One LSTM step given the input projection x W + b: [B, 4H] -> new (h, c)."""
    h, c = carry
    z = x_proj + h @ U
    zi, zf, zo, zc = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(zf) * c + jax.nn.sigmoid(zi) * jnp.tanh(zc)
    h = jax.nn.sigmoid(zo) * jnp.tanh(c)
    return h, c

  def embed(self, tokens: jax.Array) -> jax.Array:
    """Token embeddings: int [...] -> [..., E]."""
    return self.embedding[tokens]

  def embed_soft(self, weights: jax.Array) -> jax.Array:
    """Embeddings of relaxed one-hots (e.g. Gumbel-softmax): [..., V] -> [..., E]."""
    return weights @ self.embedding

  def step_embedded(self, carry: Carry, x: jax.Array) -> Tuple[Carry, jax.Array]:
    """One step from input embeddings x [B, E]: returns (new carry, logits [B, V])."""
    W, U, b = self._fused()
    carry = self._cell(carry, x @ W + b, U)
    return carry, carry[0] @ self.Wo + self.bo

  def step(self, carry: Carry, tokens: jax.Array) -> Tuple[Carry, jax.Array]:
    """One step from input tokens [B] (the previous tokens): (new carry, logits [B, V])."""
    return self.step_embedded(carry, self.embed(tokens))

  # --- teacher forcing ---------------------------------------------------------------------

  def inputs(self, tokens: jax.Array) -> jax.Array:
    """Teacher-forced inputs: [B, T] -> [B, T] = (start, x_0, ..., x_{T-2})."""
    start = self.start_tokens(tokens.shape[0])[:, None]
    return jnp.concatenate([start, tokens[:, :-1]], axis=1)

  def hidden_states_embedded(self, x: jax.Array) -> jax.Array:
    """Hidden states h_t for input embeddings x [B, T, E]: returns [B, T, H]."""
    W, U, b = self._fused()
    x_proj = jnp.swapaxes(x @ W + b, 0, 1)  # [T, B, 4H]: all input projections at once.

    def body(carry, xp):
      carry = self._cell(carry, xp, U)
      return carry, carry[0]

    _, hs = jax.lax.scan(body, self.initial_carry(x.shape[0]), x_proj)
    return jnp.swapaxes(hs, 0, 1)

  def hidden_states(self, tokens: jax.Array) -> jax.Array:
    """Teacher-forced hidden states: tokens int [B, T] -> [B, T, H] (h_t predicts x_t)."""
    return self.hidden_states_embedded(self.embed(self.inputs(tokens)))

  def logits(self, tokens: jax.Array) -> jax.Array:
    """Teacher-forced next-token logits: int [B, T] -> [B, T, V] (row t predicts x_t)."""
    return self.hidden_states(tokens) @ self.Wo + self.bo

  def token_log_probs(self, tokens: jax.Array, temperature: float = 1.0) -> jax.Array:
    """log p(x_t | x_<t) for each position: int [B, T] -> [B, T].

    With `temperature` τ ≠ 1 these are the log-probs of the tempered model softmax(logits/τ),
    the distribution `sample(..., temperature=τ)` draws from.
    """
    logp = jax.nn.log_softmax(self.logits(tokens) / temperature, axis=-1)
    return jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]

  def log_prob(self, tokens: jax.Array, temperature: float = 1.0) -> jax.Array:
    """Sequence log-probability log p(x) (of the tempered model): int [B, T] -> [B]."""
    return self.token_log_probs(tokens, temperature).sum(axis=-1)

  # --- free running ------------------------------------------------------------------------

  def sample(self, key: jax.Array, num: int, temperature: float = 1.0,
             method: str = sampling.DEFAULT) -> jax.Array:
    """Ancestral samples: int32 [num, T], drawn from softmax(logits / temperature).

    Args:
      key: PRNG key.
      num: number of sequences (static).
      temperature: scalar (may be traced); 1.0 samples the model itself.
      method: the categorical sampler, see `models.sampling.categorical`.
    """
    W, U, b = self._fused()

    def body(state, k):
      carry, prev = state
      carry = self._cell(carry, self.embed(prev) @ W + b, U)
      logits = (carry[0] @ self.Wo + self.bo) / temperature
      tok = sampling.categorical(k, logits, method=method)
      return (carry, tok), tok

    keys = jax.random.split(key, self.seq_len)
    init = (self.initial_carry(num), self.start_tokens(num))
    _, toks = jax.lax.scan(body, init, keys)
    return jnp.swapaxes(toks, 0, 1)
