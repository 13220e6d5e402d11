"""What every autoregressive generator shares, whatever computes its states (LSTM, transformer).

A subclass defines the parameters `embedding` [V, E], `Wo` [S, V] and `bo` [V] (S: the width
of the states the output layer reads, `state_dim`) and four methods:
  initial_carry(batch_size) -> carry       the state before the first input (a pytree whose
                                           leaves all have the batch on axis 0)
  stepper() -> f(carry, x [B, E]) -> (carry, logits [B, V])
                                           one step from an input embedding, with whatever
                                           the step reads hoisted out of the loops that call it
  hidden_states_embedded(x [B, T, E]) -> [B, T, S]
                                           teacher-forced states: row t has read inputs 0..t
Everything else (teacher forcing through the chunked output layer, log-probs, every sequence
at once, ancestral and relaxed sampling) is written here once, in terms of those.
"""

from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import output_layer
from models import sampling


def log_probs_from_tree(levels, temperature: float = 1.0) -> jax.Array:
  """log p(x) of every sequence x ∈ V^T in lexicographic order, [V^T], from the next-token
  logits of every prefix level by level (`prefix_tree_logits`: level t [V^t, V])."""
  log_p = jnp.zeros((1,), levels[0].dtype)
  for logits in levels:
    log_p = (log_p[:, None] + jax.nn.log_softmax(logits / temperature, axis=-1)).reshape(-1)
  return log_p


class AutoregressiveLM(nn.Module):
  """The shared methods; the fields (vocab_size, seq_len, start_token, logits_chunk_bytes)
  and parameters come from the subclass."""

  def __call__(self, tokens: jax.Array) -> jax.Array:
    """Teacher-forced next-token logits: alias of `logits` (used by `init`)."""
    return self.logits(tokens)

  # --- inputs ------------------------------------------------------------------------------

  def start_tokens(self, batch_size: int) -> jax.Array:
    """The first inputs: int32 [batch_size] filled with `start_token`."""
    return jnp.full((batch_size,), self.start_token, jnp.int32)

  def embed(self, tokens: jax.Array) -> jax.Array:
    """Token embeddings: int [...] -> [..., E]."""
    return self.embedding[tokens]

  def embed_soft(self, weights: jax.Array) -> jax.Array:
    """Embeddings of relaxed one-hots (e.g. Gumbel-softmax): [..., V] -> [..., E]."""
    return weights @ self.embedding

  def inputs(self, tokens: jax.Array) -> jax.Array:
    """Teacher-forced inputs: [B, T] -> [B, T] = (start, x_0, ..., x_{T-2})."""
    start = self.start_tokens(tokens.shape[0])[:, None]
    return jnp.concatenate([start, tokens[:, :-1]], axis=1)

  def step_embedded(self, carry, x: jax.Array):
    """One step from input embeddings x [B, E]: returns (new carry, logits [B, V])."""
    return self.stepper()(carry, x)

  def step(self, carry, tokens: jax.Array):
    """One step from input tokens [B] (the previous tokens): (new carry, logits [B, V])."""
    return self.step_embedded(carry, self.embed(tokens))

  # --- teacher forcing ---------------------------------------------------------------------

  def hidden_states(self, tokens: jax.Array) -> jax.Array:
    """Teacher-forced states: tokens int [B, T] -> [B, T, S] (row t predicts x_t)."""
    return self.hidden_states_embedded(self.embed(self.inputs(tokens)))

  def logits(self, tokens: jax.Array) -> jax.Array:
    """Teacher-forced next-token logits: int [B, T] -> [B, T, V] (row t predicts x_t)."""
    return self.logits_from_hidden(self.hidden_states(tokens))

  def logits_from_hidden(self, hidden: jax.Array) -> jax.Array:
    """The output layer: states [..., S] (from `hidden_states`) -> logits [..., V].
    With `hidden_states`, the interface through which the schemes read a teacher's
    next-token distributions in row chunks (objectives/token_terms.py)."""
    return hidden @ self.Wo + self.bo

  def token_log_probs(self, tokens: jax.Array, temperature: float = 1.0) -> jax.Array:
    """log p(x_t | x_<t) for each position: int [B, T] -> [B, T].

    With `temperature` τ ≠ 1 these are the log-probs of the tempered model softmax(logits/τ),
    the distribution `sample(..., temperature=τ)` draws from.
    """
    return self.token_log_probs_from_hidden(self.hidden_states(tokens), tokens, temperature)

  def token_log_probs_from_hidden(self, hidden: jax.Array, tokens: jax.Array,
                                  temperature: float = 1.0) -> jax.Array:
    """log softmax(h_t Wo + bo)[x_t] / τ-tempered: hidden [B, T, S], tokens [B, T] -> [B, T].

    Computed in row chunks with a hand-written gradient (`models.output_layer`): the [B, T, V]
    logits are never held at once.
    """
    return output_layer.token_log_probs(hidden, self.Wo / temperature, self.bo / temperature,
                                        tokens, self.logits_chunk_bytes)

  def log_prob(self, tokens: jax.Array, temperature: float = 1.0) -> jax.Array:
    """Sequence log-probability log p(x) (of the tempered model): int [B, T] -> [B]."""
    return self.token_log_probs(tokens, temperature).sum(axis=-1)

  # --- every sequence at once (enumerable problems) -------------------------------------------

  def prefix_tree_logits(self) -> Tuple[jax.Array, ...]:
    """Next-token logits of every prefix, level by level: T arrays, level t [V^t, V] (row i:
    the prefix whose tokens are i's base-V digits, oldest first; level 0 is the empty prefix).

    Each prefix's state is computed once and its V children share one output layer: Σ_{t<T}
    V^t steps instead of T·V^T for teacher forcing over every sequence. Differentiable;
    memory O(V^T) (the last level).
    """
    V = self.vocab_size
    carry, prev = self.initial_carry(1), self.start_tokens(1)
    levels = []
    for t in range(self.seq_len):
      carry, logits = self.step(carry, prev)                 # [n, ...] each, [n, V]
      levels.append(logits)
      if t + 1 < self.seq_len:  # prefix i's children are i·V + v (the newest digit last)
        carry = jax.tree.map(lambda a: jnp.repeat(a, V, axis=0), carry)
        prev = jnp.tile(jnp.arange(V, dtype=jnp.int32), logits.shape[0])
    return tuple(levels)

  def all_log_probs(self, temperature: float = 1.0) -> jax.Array:
    """log p(x) of every sequence x ∈ V^T, in lexicographic order (that of
    `divergences.enumerate_sequences`): [V^T]. Over the prefix tree (`prefix_tree_logits`)."""
    return log_probs_from_tree(self.prefix_tree_logits(), temperature)

  # --- free running ------------------------------------------------------------------------

  def sample(self, key: jax.Array, num: int, temperature: float = 1.0,
             method: str = sampling.DEFAULT) -> jax.Array:
    """Ancestral samples: int32 [num, T], drawn from softmax(logits / temperature).

    Args:
      key: PRNG key; step t draws with split(key, T)[t].
      num: number of sequences (static).
      temperature: scalar (may be traced); 1.0 samples the model itself.
      method: the categorical sampler, see `models.sampling.categorical`.
    """
    step = self.stepper()

    def body(state, k):
      carry, prev = state
      carry, logits = step(carry, self.embed(prev))
      tok = sampling.categorical(k, logits / temperature, method=method)
      return (carry, tok), tok

    keys = jax.random.split(key, self.seq_len)
    init = (self.initial_carry(num), self.start_tokens(num))
    _, toks = jax.lax.scan(body, init, keys)
    return jnp.swapaxes(toks, 0, 1)

  def sample_relaxed(self, key: jax.Array, num: int, tau, hard: bool = False
                     ) -> Tuple[jax.Array, jax.Array]:
    """Gumbel-softmax samples (Jang et al. 2017; Maddison et al. 2017), differentiable.

    At step t, with logits l_t and g ~ Gumbel(0, 1)^V, the relaxed one-hot is
    y_t = softmax((l_t + g) / tau) and the token is x_t = argmax(l_t + g) (Gumbel-max, so x_t ~
    softmax(l_t) given the inputs fed so far). The next input is the soft embedding
    y_t @ embedding (`embed_soft`). With `hard` (straight-through), y_t becomes
    onehot(x_t) + y_t − stop_gradient(y_t): its values are one-hots, so inputs and tokens are
    exactly those of ancestral sampling from the model, while gradients are those of the soft
    sample. As tau -> 0 the soft rows approach one-hots and the tokens follow the model.

    Args:
      key: PRNG key.
      num: number of sequences (static).
      tau: temperature > 0, scalar (may be traced).
      hard: straight-through one-hots (static).

    Returns:
      (tokens int32 [num, T]; relaxed one-hots [num, T, V], rows non-negative summing to 1,
      differentiable w.r.t. the parameters through the logits and the fed-back embeddings).
    """
    step = self.stepper()

    def body(state, k):
      carry, x = state
      carry, logits = step(carry, x)
      perturbed = logits + jax.random.gumbel(k, logits.shape, logits.dtype)
      soft = jax.nn.softmax(perturbed / tau, axis=-1)
      tok = jnp.argmax(perturbed, axis=-1).astype(jnp.int32)
      if hard:
        soft = jax.nn.one_hot(tok, self.vocab_size, dtype=soft.dtype) + (
            soft - jax.lax.stop_gradient(soft))
      return (carry, self.embed_soft(soft)), (tok, soft)

    keys = jax.random.split(key, self.seq_len)
    init = (self.initial_carry(num), self.embed(self.start_tokens(num)))
    _, (toks, soft) = jax.lax.scan(body, init, keys)
    return jnp.swapaxes(toks, 0, 1), jnp.swapaxes(soft, 0, 1)
