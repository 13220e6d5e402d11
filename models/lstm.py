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

from models import output_layer
from models import sampling
from models.autoregressive import AutoregressiveLM

Carry = Tuple[jax.Array, jax.Array]  # (h, c), each [B, H]

_GATES = ('i', 'f', 'og', 'c')  # input, forget, output, candidate (SeqGAN's names)


class LSTMLM(AutoregressiveLM):
  """Autoregressive LSTM over sequences of `seq_len` tokens from a vocabulary of `vocab_size`.

  Teacher forcing, log-probs, the prefix tree and sampling are `AutoregressiveLM`'s, over this
  class's `stepper` and `hidden_states_embedded`.

  Attributes:
    vocab_size: V, the number of tokens (token 0 doubles as the start token by default).
    embed_dim: E, the embedding width.
    hidden_dim: H, the LSTM width.
    seq_len: T, the fixed sequence length.
    init_scale: standard deviation of the N(0, init_scale²) initialiser of every parameter
      (1.0 for a SeqGAN-style oracle, 0.1 for a SeqGAN-style generator).
    start_token: the token whose embedding is the first input.
    logits_chunk_bytes: the most bytes of float32 logits `token_log_probs` holds at once per
      sequence batch (`models.output_layer`); a speed/memory knob, values are unaffected.
  """
  vocab_size: int
  embed_dim: int
  hidden_dim: int
  seq_len: int
  init_scale: float = 0.1
  start_token: int = 0
  logits_chunk_bytes: int = output_layer.CHUNK_BYTES

  def setup(self):
    init = nn.initializers.normal(self.init_scale)
    V, E, H = self.vocab_size, self.embed_dim, self.hidden_dim
    self.embedding = self.param('embedding', init, (V, E))
    self.W = [self.param(f'W{g}', init, (E, H)) for g in _GATES]
    self.U = [self.param(f'U{g}', init, (H, H)) for g in _GATES]
    self.b = [self.param(f'b{g}', init, (H,)) for g in _GATES]
    self.Wo = self.param('Wo', init, (H, V))
    self.bo = self.param('bo', init, (V,))

  # --- building blocks -------------------------------------------------------------------

  def _fused(self):
    # One [E, 4H] and one [H, 4H] matmul per step instead of eight small ones.
    return (jnp.concatenate(self.W, axis=1), jnp.concatenate(self.U, axis=1),
            jnp.concatenate(self.b, axis=0))

  @property
  def state_dim(self) -> int:
    """S, the width of the states the output layer reads (h_t): H."""
    return self.hidden_dim

  def initial_carry(self, batch_size: int) -> Carry:
    """Zero state: (h, c), each [batch_size, H]."""
    zeros = jnp.zeros((batch_size, self.hidden_dim), self.embedding.dtype)
    return zeros, zeros

  def _cell(self, carry: Carry, x_proj: jax.Array, U: jax.Array) -> Carry:
    """One LSTM step given the input projection x W + b: [B, 4H] -> new (h, c)."""
    h, c = carry
    z = x_proj + h @ U
    zi, zf, zo, zc = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(zf) * c + jax.nn.sigmoid(zi) * jnp.tanh(zc)
    h = jax.nn.sigmoid(zo) * jnp.tanh(c)
    return h, c

  def stepper(self):
    """One step from input embeddings: f(carry, x [B, E]) -> (new carry, logits [B, V]), with
    the fused gate matrices made once, outside the loops that call f."""
    W, U, b = self._fused()

    def step(carry: Carry, x: jax.Array):
      carry = self._cell(carry, x @ W + b, U)
      return carry, carry[0] @ self.Wo + self.bo

    return step

  # --- teacher forcing ---------------------------------------------------------------------

  def hidden_states_embedded(self, x: jax.Array) -> jax.Array:
    """Hidden states h_t for input embeddings x [B, T, E]: returns [B, T, H]."""
    W, U, b = self._fused()
    x_proj = jnp.swapaxes(x @ W + b, 0, 1)  # [T, B, 4H]: all input projections at once.

    def body(carry, xp):
      carry = self._cell(carry, xp, U)
      return carry, carry[0]

    _, hs = jax.lax.scan(body, self.initial_carry(x.shape[0]), x_proj)
    return jnp.swapaxes(hs, 0, 1)

  # --- scheduled mixing and free running, with differentiable hidden states ------------------

  def _run_mixed(self, key: jax.Array, num: int, data_proj, take_data, method: str,
                 with_cell: bool = False):
    """Runs the LSTM where each next input is a data token or the token it just sampled.

    Args:
      key: PRNG key; step t draws with split(key, T)[t], as `sample` does.
      num: the batch size (static).
      data_proj: [T, num, 4H] input projections x W + b of the teacher-forced inputs
        (start, x_0, ..., x_{T-2}), or None to run free.
      take_data: bool [T, num]: whether input t+1 is the data token x_t (row T-1 unused);
        None when data_proj is None.
      method: the categorical sampler.
      with_cell: also return the cell states (static).

    Returns:
      (samples int32 [num, T]: y_t drawn from the step-t distribution given the inputs fed;
      hidden [num, T, H]: h_t, differentiable w.r.t. the parameters through the recurrence and
      the embeddings of the inputs; the sampled tokens themselves carry no gradient), and
      with `with_cell` a third element, the cell states c_t [num, T, H], differentiable alike.
    """
    W, U, b = self._fused()
    keys = jax.random.split(key, self.seq_len)
    if data_proj is None:
      first = self.embed(self.start_tokens(num)) @ W + b
      xs = (keys, None, None)
    else:
      # Step t reads the projection of input t+1, i.e. of x_t (the last row is never used).
      first = data_proj[0]
      xs = (keys, jnp.roll(data_proj, -1, axis=0), take_data)

    def body(state, x):
      carry, x_proj = state
      k, next_data, take = x
      carry = self._cell(carry, x_proj, U)
      # Sampling is a discrete choice: no gradient flows through the drawn token.
      logits = jax.lax.stop_gradient(carry[0] @ self.Wo + self.bo)
      tok = sampling.categorical(k, logits, method=method)
      next_proj = self.embed(tok) @ W + b
      if next_data is not None:
        next_proj = jnp.where(take[:, None], next_data, next_proj)
      return (carry, next_proj), ((carry if with_cell else carry[0]), tok)

    _, (states, toks) = jax.lax.scan(body, (self.initial_carry(num), first), xs)
    states = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), states)
    toks = jnp.swapaxes(toks, 0, 1)
    return (toks, *states) if with_cell else (toks, states)

  def mixed_hidden_states(self, tokens: jax.Array, key: jax.Array, eps,
                          method: str = sampling.DEFAULT) -> jax.Array:
    """Hidden states under scheduled mixing (Bengio et al., 2015): int [B, T] -> [B, T, H].

    The first input is the start token; input t+1 is the data token x_t with probability
    `eps` (an independent coin per sequence and step), otherwise a token drawn from the model's
    own step-t distribution given the inputs fed so far. Row t predicts x_t, as in
    `hidden_states`; with eps = 1 these are the teacher-forced states, with eps = 0 free
    running. Gradients flow through the recurrence, not through the draws.

    Args:
      tokens: int [B, T] data sequences.
      key: PRNG key (coins and draws).
      eps: scalar in [0, 1], may be traced: the probability of feeding the data token.
      method: the categorical sampler, see `models.sampling.categorical`.
    """
    W, _, b = self._fused()
    # The same ops as `hidden_states_embedded`, so eps = 1 reproduces teacher forcing.
    data_proj = jnp.swapaxes(self.embed(self.inputs(tokens)) @ W + b, 0, 1)  # [T, B, 4H]
    k_draw, k_coin = jax.random.split(key)
    num = tokens.shape[0]
    # u < eps with u ~ U[0, 1): always true at eps = 1, never at eps = 0.
    take = jax.random.uniform(k_coin, (self.seq_len, num)) < eps
    return self._run_mixed(k_draw, num, data_proj, take, method)[1]

  def mixed_token_log_probs(self, tokens: jax.Array, key: jax.Array, eps,
                            method: str = sampling.DEFAULT) -> jax.Array:
    """log q(x_t | mixed inputs) of each data token under scheduled mixing: [B, T] -> [B, T].

    The inputs are those of `mixed_hidden_states` (data token with probability eps, else a
    model sample); with eps = 1 this equals `token_log_probs(tokens)`.
    """
    return self.token_log_probs_from_hidden(
        self.mixed_hidden_states(tokens, key, eps, method), tokens)

  def free_running_hidden_states(self, key: jax.Array, num: int,
                                 method: str = sampling.DEFAULT) -> Tuple[jax.Array, jax.Array]:
    """Ancestral samples with the hidden states that produced them (professor forcing).

    Returns:
      (samples int32 [num, T], equal to `sample(key, num, method=method)`; hidden [num, T, H],
      equal to `hidden_states(samples)`, differentiable w.r.t. the parameters through the
      recurrence and the embeddings of the sampled inputs, not through the draws).
    """
    return self._run_mixed(key, num, None, None, method)

  # --- behaviour (professor forcing's discriminator input) ------------------------------------

  def _behaviour_from_states(self, hidden: jax.Array, cell: jax.Array) -> jax.Array:
    # The next-token distribution of row t from h_t, as `logits` computes it.
    probs = jax.nn.softmax(hidden @ self.Wo + self.bo, axis=-1)
    return jnp.concatenate([cell, probs], axis=-1)

  def behaviour(self, tokens: jax.Array) -> jax.Array:
    """Teacher-forced behaviour: int [B, T] -> [B, T, H + V] = concat(c_t, softmax(logits_t)).

    Professor forcing's discriminator reads the generator's pre-tanh hidden activations and
    its softmax outputs (Lamb et al. 2016). For this LSTM, h_t = o_t · tanh(c_t), so the
    pre-tanh activation is the cell state c_t [H]; the softmax output is the next-token
    distribution of row t (which predicts x_t), as `logits`. Differentiable w.r.t. the
    parameters.
    """
    W, U, b = self._fused()
    x_proj = jnp.swapaxes(self.embed(self.inputs(tokens)) @ W + b, 0, 1)  # [T, B, 4H]

    def body(carry, xp):
      carry = self._cell(carry, xp, U)
      return carry, carry

    _, (hs, cs) = jax.lax.scan(body, self.initial_carry(tokens.shape[0]), x_proj)
    return self._behaviour_from_states(jnp.swapaxes(hs, 0, 1), jnp.swapaxes(cs, 0, 1))

  def free_running_behaviour(self, key: jax.Array, num: int,
                             method: str = sampling.DEFAULT) -> Tuple[jax.Array, jax.Array]:
    """Ancestral samples with the behaviour that produced them (professor forcing).

    Returns:
      (samples int32 [num, T], equal to `sample(key, num, method=method)`; behaviour
      [num, T, H + V] = concat(c_t, softmax(logits_t)), equal to `behaviour(samples)` and
      differentiable w.r.t. the parameters through the recurrence, the embeddings of the
      sampled inputs and the output layer, not through the draws).
    """
    toks, hs, cs = self._run_mixed(key, num, None, None, method, with_cell=True)
    return toks, self._behaviour_from_states(hs, cs)
