"""Teacher-forced quantities several schemes share: the per-token NLL of data (MLE's loss, also
SeqGAN's pre-training and professor forcing's first term), a model's next-token log-probs
along given sequences, and the exact conditionals of the mixture M_π = πP + (1−π)Q (CoT's
ideal mediator, direct minimisation's per-step target)."""

import jax
import jax.numpy as jnp


def nll(model, params, batch: jax.Array) -> jax.Array:
  """Per-token negative log-likelihood of each data sequence.

  Args:
    model: the generator module (an LSTMLM).
    params: its variables.
    batch: int32 [B, T] samples of P.

  Returns:
    [B]: −log Q(x) / T. Its mean over x ~ P is KL(P || Q)/T + H(P)/T, so its gradient is an
    unbiased estimate of the gradient of KL(P || Q)/T.
  """
  return -model.apply(params, batch, method='log_prob') / batch.shape[-1]


def exact_mediator_log_probs(p_next_log_probs: jax.Array, q_next_log_probs: jax.Array,
                             tokens: jax.Array, pi) -> jax.Array:
  """Next-token log-probs of the exact mixture M_π = π P + (1−π) Q along given sequences.

  M_π(x_t = v | s) = (π P(s v) + (1−π) Q(s v)) / (π P(s) + (1−π) Q(s)) for the prefix
  s = x_<t, i.e. a mixture of P(v|s) and Q(v|s) weighted by the posterior probability that
  s came from P; computed in log-space from teacher-forced next-token distributions, so no
  enumeration is needed. Its product along a sequence is the sequence-level mixture.

  Args:
    p_next_log_probs: log P(v | x_<t) (log-space), [B, T, V], row t from the prefix x_<t.
    q_next_log_probs: log Q(v | x_<t) (log-space), [B, T, V].
    tokens: int [B, T], the sequences x whose prefixes condition the rows.
    pi: the weight of P, scalar in [0, 1] (may be traced).

  Returns:
    [B, T, V]: log M_π(v | x_<t). Callers use it as a fixed target (stop its gradient: its
    derivative at π ∈ {0, 1} is not defined).
  """
  if p_next_log_probs.shape != q_next_log_probs.shape:
    raise ValueError(f'p_next_log_probs and q_next_log_probs must have the same shape; got '
                     f'{p_next_log_probs.shape} and {q_next_log_probs.shape}.')
  if p_next_log_probs.shape[:2] != tokens.shape:
    raise ValueError(f'tokens must be [B, T] = next-token log-probs [B, T, V] without V; got '
                     f'tokens {tokens.shape}, log-probs {p_next_log_probs.shape}.')

  def prefix_log_prob(next_log_probs):
    # log P(x_<t): exclusive cumulative sum of the realised tokens' log-probs, [B, T].
    tok = jnp.take_along_axis(next_log_probs, tokens[..., None], axis=-1)[..., 0]
    return jnp.cumsum(tok, axis=-1) - tok

  pi = jnp.asarray(pi, p_next_log_probs.dtype)
  # log 0 = −inf at the end points: that side's posterior weight is then exactly 0.
  log_wp = jnp.log(pi) + prefix_log_prob(p_next_log_probs)
  log_wq = jnp.log1p(-pi) + prefix_log_prob(q_next_log_probs)
  log_norm = jnp.logaddexp(log_wp, log_wq)
  # Posterior weights of P and Q given the prefix; a convex combination, so log M ≤ 0.
  log_post_p, log_post_q = (log_wp - log_norm)[..., None], (log_wq - log_norm)[..., None]
  return jnp.logaddexp(log_post_p + p_next_log_probs, log_post_q + q_next_log_probs)



def next_token_log_probs(model, params, tokens: jax.Array) -> jax.Array:
  """Teacher-forced next-token log-probs of a sequence model: int [B, T] -> [B, T, V]."""
  return jax.nn.log_softmax(model.apply(params, tokens, method='logits'), axis=-1)

