"""Discriminator reranking at inference: best of K generator samples by D's score.

Draw K candidates x_1..x_K ~ Q i.i.d., keep one whose score S(x) (e.g. D's logit) is largest,
breaking ties uniformly at random. The kept sequence has distribution R, which on an
enumerable space is exact (`reranked_probs`):

  With F_<(s) = Q(S < s), F_≤(s) = Q(S ≤ s) and q_s = F_≤(s) − F_<(s) the Q-mass of the level
  {S = s}: the largest score is s with probability F_≤(s)^K − F_<(s)^K. Given that, the
  candidates at level s are i.i.d. Q(· | S = s) and one of them is kept uniformly at random,
  independently of their identities, so the kept one is distributed as Q(· | S = s). Hence
    R(x) = Q(x) / q_s · (F_≤^K − F_<^K) = Q(x) · Σ_{k=0}^{K−1} F_≤^k · F_<^{K−1−k},  s = S(x),
  the sum form (computed in log space) being free of the cancellation in F_≤^K − F_<^K
  when q_s is tiny, and of underflow where R(x) ≈ Q(x)^K. With
  distinct scores (q_s = Q(x)) this is R(x) = (F_<(x) + Q(x))^K − F_<(x)^K, which tends to
  K Q(x) F_<(x)^{K−1} as Q(x) -> 0. K = 1 gives R = Q; as K grows R concentrates on the
  top-scored level of Q's support. With D = D* (a monotone function of P/Q) R favours
  sequences where P/Q is large.
"""

from typing import Callable

import jax
import jax.numpy as jnp


def reranked_probs(log_q: jax.Array, scores: jax.Array, num_candidates: int) -> jax.Array:
  """Exact probabilities of best-of-K reranking over an enumerated support.

  Args:
    log_q: log Q(x) for every x of the support (log-space), [N]; Q sums to 1 over them.
    scores: S(x), [N] (any real scores; equal values are ties, broken uniformly).
    num_candidates: K >= 1 (static).

  Returns:
    R(x), [N] (module docstring), summing to 1.
  """
  if log_q.shape != scores.shape or log_q.ndim != 1:
    raise ValueError(f'log_q and scores must be 1-D of one shape; got {log_q.shape} and '
                     f'{scores.shape}')
  return jnp.exp(reranked_log_probs_ranked(log_q, score_ranks(scores), num_candidates))


def score_ranks(scores: jax.Array):
  """What best-of-K needs of the scores [N] alone: (order, below, at_or_below), the
  permutation sorting them and, per x, the number of scores < S(x) and ≤ S(x) [N] each.
  Fixed scores (a reward) need it once: `reranked_log_probs_ranked` then sorts nothing."""
  order = jnp.argsort(scores)
  sorted_scores = scores[order]
  return (order, jnp.searchsorted(sorted_scores, scores, side='left'),
          jnp.searchsorted(sorted_scores, scores, side='right'))


def reranked_log_probs_ranked(log_q: jax.Array, ranks, num_candidates: int) -> jax.Array:
  """log R [N] from log Q [N] and the scores' `score_ranks`, in log-space throughout: the
  cumulative masses by a cumulative log-sum-exp and the series by a log-sum-exp, so
  R(x) ≈ Q(x)^K at the lowest score (float32 underflows there for Q(x)^K < 1e-38) stays
  finite: log R is −inf only where log Q is."""
  if num_candidates < 1:
    raise ValueError(f'num_candidates must be >= 1, got {num_candidates}')
  order, below, at_or_below = ranks
  log_cum = jnp.concatenate([jnp.full((1,), -jnp.inf, log_q.dtype),
                             jax.lax.cumlogsumexp(log_q[order])])
  log_lt, log_le = log_cum[below], log_cum[at_or_below]  # log Q(S < s), log Q(S ≤ s)
  k = jnp.arange(num_candidates, dtype=log_q.dtype)
  # k·log F_≤ + (K−1−k)·log F_<, with 0·(−inf) = 0 (F^0 = 1).
  term = lambda power, log_f: jnp.where(power == 0, 0.0, power * log_f[:, None])
  terms = term(k, log_le) + term(k[::-1], log_lt)
  return log_q + jax.scipy.special.logsumexp(terms, axis=-1)


def select_best(key: jax.Array, candidates: jax.Array, scores: jax.Array) -> jax.Array:
  """Keeps, per column, the candidate with the largest score, ties broken uniformly.

  Args:
    key: PRNG key for the tie-breaking.
    candidates: [K, B, ...] candidate sequences.
    scores: [K, B] their scores.

  Returns:
    [B, ...]: candidates[argmax_k scores[k, b], b].
  """
  best = scores.max(axis=0, keepdims=True)
  # A uniform key per candidate decides among the tied maxima: a uniform choice among them.
  u = jax.random.uniform(key, scores.shape)
  pick = jnp.argmax(jnp.where(scores == best, u, -1.0), axis=0)  # [B]
  return jnp.take_along_axis(candidates, pick.reshape((1, -1) + (1,) * (candidates.ndim - 2)),
                             axis=0)[0]


def rerank_sample(key: jax.Array, sample: Callable[[jax.Array, int], jax.Array],
                  score: Callable[[jax.Array], jax.Array], num: int,
                  num_candidates: int) -> jax.Array:
  """Draws `num` sequences by best-of-K reranking.

  Args:
    key: PRNG key.
    sample: (key, n) -> n generator samples [n, ...] (e.g. `LSTMLM.sample` via apply: [n, T]).
    score: samples [n, ...] -> scores [n] (e.g. a discriminator's logits; larger = more real).
    num: number of sequences returned (static).
    num_candidates: K (static).

  Returns:
    [num, ...] (int [num, T] for sequences), distributed as `reranked_probs` describes.
  """
  k_sample, k_tie = jax.random.split(key)
  cands = sample(k_sample, num * num_candidates)  # [K·num, T]
  scores = score(cands).reshape(num_candidates, num)
  return select_best(k_tie, cands.reshape((num_candidates, num) + cands.shape[1:]), scores)


def discriminator_score(disc, disc_params) -> Callable[[jax.Array], jax.Array]:
  """tokens int [n, T] -> the (deterministic) discriminator's logits [n]."""
  return lambda tokens: disc.apply(disc_params, tokens)
