"""Finite-state oracles: an order-k n-gram (Markov) model, P(x_t | x_<t) = θ[c_t] with c_t the
previous k tokens, and a random probabilistic deterministic finite automaton (`AutomatonLM`).

The context of position t is its k previous tokens, padded at the start with a begin symbol:
with digits d = token + 1 (0 for "before the start"), c_t = Σ_{j=1..k} d_{t−j} (V+1)^{j−1},
the newest token least significant, so there are (V+1)^k contexts and the table θ holds one
next-token distribution per context, log-probabilities [(V+1)^k, V]. A random oracle draws
each row from a symmetric Dirichlet(α) (`concentration`; small α: peaked rows, low entropy),
in log space (log-gamma draws normalised), so no atom underflows to log 0.

It offers the methods the schemes and the evaluation call on an oracle, with the LSTM's
meanings: `hidden_states` (here the context id of each position, int32 [B, T, 1]: what
predicts x_t) with `logits_from_hidden` (the table's row), `logits`, `token_log_probs`,
`log_prob`, `prefix_tree_logits`, `all_log_probs` and `sample`. It is an oracle only: the
generator schemes train is the LSTM.
"""

from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import autoregressive
from models import sampling


def random_log_table(key: jax.Array, num_contexts: int, vocab_size: int,
                     concentration: float) -> jax.Array:
  """[num_contexts, V] rows log Dirichlet(concentration · 1_V), drawn in log space."""
  g = jax.random.loggamma(key, concentration, (num_contexts, vocab_size))
  return g - jax.scipy.special.logsumexp(g, axis=-1, keepdims=True)


class FiniteStateLM(nn.Module):
  """A language model whose next-token law depends on a finite state (a context id) that
  each token moves deterministically: `log_table` [num_contexts, V] the next-token
  log-probabilities of each state, `next_context` the move, state 0 at the start. Subclasses
  give the states' meaning (module docstring)."""
  vocab_size: int
  seq_len: int

  @property
  def num_contexts(self) -> int:
    raise NotImplementedError

  def next_context(self, context: jax.Array, token: jax.Array) -> jax.Array:
    """The state after `token` follows `context` (int arrays of one shape)."""
    raise NotImplementedError

  def __call__(self, tokens: jax.Array) -> jax.Array:
    return self.logits(tokens)

  def hidden_states(self, tokens: jax.Array) -> jax.Array:
    """The context id of each position: int [B, T] -> int32 [B, T, 1] (c_t predicts x_t)."""
    def body(context, token):
      return self.next_context(context, token), context
    start = jnp.zeros(tokens.shape[:1], jnp.int32)
    _, contexts = jax.lax.scan(body, start, jnp.swapaxes(tokens, 0, 1).astype(jnp.int32))
    return jnp.swapaxes(contexts, 0, 1)[..., None]

  def logits_from_hidden(self, hidden: jax.Array) -> jax.Array:
    """Context ids [..., 1] -> the log-probabilities of their next token [..., V]. The ids
    may arrive as floats (the evaluation concatenates both models' hidden states): exact
    below 2^24, which oracle.NGRAM_MAX_ENTRIES keeps the number of contexts under."""
    return self.log_table[hidden[..., 0].astype(jnp.int32)]

  def logits(self, tokens: jax.Array) -> jax.Array:
    """Teacher-forced next-token log-probabilities: int [B, T] -> [B, T, V]."""
    return self.logits_from_hidden(self.hidden_states(tokens))

  def token_log_probs(self, tokens: jax.Array, temperature: float = 1.0) -> jax.Array:
    """log p_τ(x_t | x_<t): int [B, T] -> [B, T] (τ: softmax(log θ / τ))."""
    log_p = jax.nn.log_softmax(self.logits(tokens) / temperature, axis=-1)
    return jnp.take_along_axis(log_p, tokens[..., None].astype(jnp.int32), axis=-1)[..., 0]

  def log_prob(self, tokens: jax.Array, temperature: float = 1.0) -> jax.Array:
    """log p(x): int [B, T] -> [B]."""
    return self.token_log_probs(tokens, temperature).sum(axis=-1)

  def prefix_tree_logits(self) -> Tuple[jax.Array, ...]:
    """Next-token log-probabilities of every prefix, level by level: level t [V^t, V], row i
    the prefix whose tokens are i's base-V digits, oldest first (LSTMLM's order)."""
    V = self.vocab_size
    levels, contexts = [], jnp.zeros((1,), jnp.int32)
    for t in range(self.seq_len):
      levels.append(self.log_table[contexts])
      if t + 1 < self.seq_len:  # prefix i's children are i·V + v
        contexts = self.next_context(jnp.repeat(contexts, V),
                                     jnp.tile(jnp.arange(V, dtype=jnp.int32), contexts.shape[0]))
    return tuple(levels)

  def all_log_probs(self, temperature: float = 1.0) -> jax.Array:
    """log p(x) of every x ∈ V^T in lexicographic order: [V^T]."""
    return autoregressive.log_probs_from_tree(self.prefix_tree_logits(), temperature)

  def sample(self, key: jax.Array, num: int, temperature: float = 1.0,
             method: str = sampling.DEFAULT) -> jax.Array:
    """Ancestral samples int32 [num, T] of softmax(log θ / temperature)."""
    def body(context, k):
      tok = sampling.categorical(k, self.log_table[context] / temperature, method=method)
      return self.next_context(context, tok), tok

    keys = jax.random.split(key, self.seq_len)
    _, toks = jax.lax.scan(body, jnp.zeros((num,), jnp.int32), keys)
    return jnp.swapaxes(toks, 0, 1).astype(jnp.int32)

  def entropy(self) -> jax.Array:
    """H(P) of whole sequences in closed form (nats): Σ_t Σ_c Pr(c_t = c) H(θ_c), the context
    law propagated through the chain (the n-gram entropy rate over T steps, exactly)."""
    V, n = self.vocab_size, self.num_contexts
    p_table = jnp.exp(self.log_table)
    row_entropy = -jnp.sum(p_table * jnp.where(p_table > 0, self.log_table, 0.0), axis=-1)
    # Successor context of (c, v), and the context law's update through it.
    successor = self.next_context(jnp.arange(n, dtype=jnp.int32)[:, None],
                                  jnp.arange(V, dtype=jnp.int32)[None, :])  # [n, V]
    law = jnp.zeros((n,), p_table.dtype).at[0].set(1.0)
    total = 0.0
    for _ in range(self.seq_len):
      total += law @ row_entropy
      law = jnp.zeros_like(law).at[successor.reshape(-1)].add(
          (law[:, None] * p_table).reshape(-1))
    return total


class NGramLM(FiniteStateLM):
  """An order-k Markov model over V tokens, sequences of length T (module docstring)."""
  order: int = 2
  concentration: float = 1.0

  def setup(self):
    self.log_table = self.param(
        'log_table', lambda key: random_log_table(key, self.num_contexts, self.vocab_size,
                                                  self.concentration))

  @property
  def num_contexts(self) -> int:
    return (self.vocab_size + 1) ** self.order

  def next_context(self, context: jax.Array, token: jax.Array) -> jax.Array:
    return (context * (self.vocab_size + 1) + token + 1) % self.num_contexts


class AutomatonLM(FiniteStateLM):
  """A random probabilistic deterministic finite automaton: `num_states` states, state 0 at
  the start; in state s the next token is drawn from θ_s ~ Dirichlet(concentration · 1) and
  moves the automaton to δ(s, token), drawn uniformly among the states (the `transitions`
  parameter, int32 [S, V]), or with `out_degree` k > 0 among k distinct states drawn for s
  (so s has at most k successors: the automaton's branching, as in the automata literature's
  out-degree control; every token keeps a positive probability). An order-k n-gram is the
  automaton whose states are contexts."""
  num_states: int = 8
  concentration: float = 1.0
  out_degree: int = 0

  def setup(self):
    def init(key):
      k_emit, k_move = jax.random.split(key)
      S, V = self.num_states, self.vocab_size
      if 0 < self.out_degree < S:
        k_succ, k_pick = jax.random.split(k_move)
        successors = jax.vmap(lambda k: jax.random.permutation(k, S)[:self.out_degree])(
            jax.random.split(k_succ, S))                                    # [S, k]
        pick = jax.random.randint(k_pick, (S, V), 0, self.out_degree)
        moves = jnp.take_along_axis(successors, pick, axis=1).astype(jnp.int32)
      else:
        moves = jax.random.randint(k_move, (S, V), 0, S, jnp.int32)
      return {'log_table': random_log_table(k_emit, S, V, self.concentration),
              'transitions': moves}
    tables = self.param('automaton', init)
    self.log_table, self.transitions = tables['log_table'], tables['transitions']

  @property
  def num_contexts(self) -> int:
    return self.num_states

  def next_context(self, context: jax.Array, token: jax.Array) -> jax.Array:
    return self.transitions[context, token]
