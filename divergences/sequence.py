"""Divergences between autoregressive sequence distributions with tractable log-probs.

This module knows no model: it takes arrays of sequence log-probabilities
(Monte-Carlo estimates with standard errors) or callables mapping int32
sequences `[n, T]` to log-probabilities `[n]` (exact values by enumeration).
Every value is per token: a sequence-level quantity divided by `seq_len`.
P is the oracle (data) distribution and Q the model (generator).

Metrics (per token):
  nll_oracle = E_Q[−log P]   nll_test = E_P[−log Q]
  entropy_q  = E_Q[−log Q]   entropy_p = E_P[−log P]
  kl_pq = E_P[log P − log Q] = KL(P || Q)
  kl_qp = E_Q[log Q − log P] = KL(Q || P)
  js_pi = π E_P[log P − log M] + (1−π) E_Q[log Q − log M], M = π P + (1−π) Q
Exposure bias (`exposure_bias`, `exact_exposure`), A(x) = Σ_t KL(P(·|x_<t) || Q(·|x_<t)):
  exposure_model = E_Q[A] / T   exposure_oracle = E_P[A] / T (= kl_pq)
  exacc_err = exposure_model / exposure_oracle − 1
"""

from collections.abc import Callable
import math

import jax
import jax.numpy as jnp
import numpy as np

from divergences import categorical
from divergences.categorical import _check_float
from divergences.categorical import _log_mixture_ratio
from divergences.categorical import _log_weights
from divergences.categorical import _weighted

# Indices are int32: V^T (plus one padded chunk) must stay below this.
_MAX_INDEX = np.iinfo(np.int32).max
# Rows of `_expectation_sums`: Σ A v for these v, then log(A / M) for each π.
_MASS, _NEG_LOG_A, _NEG_LOG_B, _LOG_A_OVER_B = range(4)


def _check_pis(pis: jax.typing.ArrayLike) -> jax.Array:
  """Returns `pis` as a floating array, raising at trace time unless it is 1-D."""
  pis = jnp.asarray(pis)
  if not jnp.issubdtype(pis.dtype, jnp.floating):
    pis = pis.astype(jnp.result_type(float))
  if pis.ndim != 1:
    raise ValueError(f'pis must be 1-D, shape [K]; got shape {pis.shape}.')
  return pis


def _check_samples(
    name_p: str, log_p: jax.typing.ArrayLike, name_q: str, log_q: jax.typing.ArrayLike
) -> tuple[jax.Array, jax.Array]:
  """Returns two paired 1-D sample arrays, raising at trace time on bad dtypes/shapes."""
  log_p, log_q = jnp.asarray(log_p), jnp.asarray(log_q)
  _check_float(name_p, log_p)
  _check_float(name_q, log_q)
  if log_p.ndim != 1 or log_p.shape != log_q.shape:
    raise ValueError(
        f'{name_p} and {name_q} must be 1-D with the same shape (one entry per '
        f'sample; vmap for batches); got {name_p}.shape={log_p.shape} and '
        f'{name_q}.shape={log_q.shape}.'
    )
  if log_p.shape[0] < 2:
    raise ValueError(
        f'{name_p} needs at least 2 samples for a standard error; got {log_p.shape}.'
    )
  return log_p, log_q


def _mean_and_var(values: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean and unbiased (ddof=1) variance over the last axis: [..., n] -> [...] each."""
  return jnp.mean(values, axis=-1), jnp.var(values, axis=-1, ddof=1)


def mean_and_se(
    values: jax.typing.ArrayLike, *, axis: int = -1
) -> tuple[jax.Array, jax.Array]:
  """Sample mean and its standard error, std(ddof=1) / sqrt(n).

  Args:
    values: i.i.d. samples along `axis`, shape `[..., n]`, n >= 2.
    axis: the sample axis.

  Returns:
    (mean, se), each of shape `[...]`. se is +inf where the mean is infinite.
  """
  values = jnp.asarray(values)
  n = values.shape[axis]
  mean = jnp.mean(values, axis=axis)
  # ddof=1: the unbiased sample variance; the mean's variance is that over n.
  se = jnp.std(values, axis=axis, ddof=1) / math.sqrt(n)
  # inf - inf makes std NaN; an infinite mean has an infinite error instead.
  return mean, jnp.where(jnp.isinf(mean), jnp.inf, se)


def monte_carlo(
    logp_on_p: jax.typing.ArrayLike,
    logq_on_p: jax.typing.ArrayLike,
    logp_on_q: jax.typing.ArrayLike,
    logq_on_q: jax.typing.ArrayLike,
    *,
    seq_len: int,
    pis: jax.typing.ArrayLike,
) -> dict[str, tuple[jax.Array, jax.Array]]:
  """Monte-Carlo estimates of the per-token metrics, with standard errors.

  Uses N samples x ~ P (e.g. the held-out test set) and M samples x ~ Q; the two
  sets are independent. kl_pq and kl_qp are paired estimates on one sample set
  (KL(P || Q) on the P samples, KL(Q || P) on the Q samples). js_pi combines both
  sets: se = sqrt(π² var_P / N + (1−π)² var_Q / M); a zero-weight side adds
  exactly 0 (never NaN), so js_pi is exactly 0 at π ∈ {0, 1}. Works under
  `jax.jit` and `jax.vmap` (e.g. over a leading seed axis of the Q-side arrays).

  Args:
    logp_on_p: log P(x) (log-space) for x ~ P, shape `[N]`.
    logq_on_p: log Q(x) (log-space) for the same x, shape `[N]`.
    logp_on_q: log P(x) (log-space) for x ~ Q, shape `[M]`.
    logq_on_q: log Q(x) (log-space) for the same x, shape `[M]`.
    seq_len: T, the number of tokens per sequence (per-token normaliser).
    pis: weights π of P in [0, 1] for js_pi, shape `[K]` (may be traced).

  Returns:
    A dict from metric name to (mean, se): `nll_oracle`, `nll_test`,
    `entropy_q`, `entropy_p`, `kl_pq`, `kl_qp` (scalars) and `js_pi`
    (shape `[K]` each), all in nats per token.
  """
  logp_on_p, logq_on_p = _check_samples('logp_on_p', logp_on_p, 'logq_on_p', logq_on_p)
  logp_on_q, logq_on_q = _check_samples('logp_on_q', logp_on_q, 'logq_on_q', logq_on_q)
  pis = _check_pis(pis)
  n, m = logp_on_p.shape[0], logp_on_q.shape[0]

  log_pi, log_1m_pi = _log_weights(pis[:, None])  # [K, 1]
  # log(P / M) = −log(π + (1−π) Q/P): exactly 0 at π = 1 and accurate near it.
  log_p_over_m = -_log_mixture_ratio(logp_on_p, logq_on_p, log_pi, log_1m_pi)
  log_q_over_m = -_log_mixture_ratio(logq_on_q, logp_on_q, log_1m_pi, log_pi)
  mean_p, var_p = _mean_and_var(log_p_over_m / seq_len)  # [K] each.
  mean_q, var_q = _mean_and_var(log_q_over_m / seq_len)
  js_mean = _weighted(pis, mean_p) + _weighted(1 - pis, mean_q)
  # The two sample sets are independent, so the variances of the weighted means add.
  js_var = _weighted(pis**2, var_p / n) + _weighted((1 - pis) ** 2, var_q / m)

  return {
      'nll_oracle': mean_and_se(-logp_on_q / seq_len),
      'nll_test': mean_and_se(-logq_on_p / seq_len),
      'entropy_q': mean_and_se(-logq_on_q / seq_len),
      'entropy_p': mean_and_se(-logp_on_p / seq_len),
      'kl_pq': mean_and_se((logp_on_p - logq_on_p) / seq_len),
      'kl_qp': mean_and_se((logq_on_q - logp_on_q) / seq_len),
      'js_pi': (js_mean, jnp.sqrt(js_var)),
  }


def enumerate_sequences(
    vocab_size: int, seq_len: int, start: jax.typing.ArrayLike, size: int
) -> jax.Array:
  """The sequences with lexicographic indices start, ..., start + size − 1.

  Index i is written in base `vocab_size` with `seq_len` digits, most
  significant first. Indices at or above V^T wrap around (each digit is taken
  modulo V), so padded rows are still valid token sequences.

  Args:
    vocab_size: V, the number of tokens.
    seq_len: T, the sequence length.
    start: index of the first sequence, int scalar (may be traced).
    size: number of sequences (static).

  Returns:
    Tokens, int32 `[size, seq_len]`.
  """
  if vocab_size**seq_len > _MAX_INDEX:
    raise ValueError(
        f'vocab_size**seq_len = {vocab_size}**{seq_len} = {vocab_size**seq_len} '
        f'does not fit int32 indices (max {_MAX_INDEX}).'
    )
  powers = np.array(
      [vocab_size ** (seq_len - 1 - t) for t in range(seq_len)], dtype=np.int32
  )
  index = jnp.asarray(start, jnp.int32) + jnp.arange(size, dtype=jnp.int32)
  return (index[:, None] // powers) % vocab_size


def _expectation_sums(
    log_a: jax.Array, log_b: jax.Array, log_wa: jax.Array, log_wb: jax.Array
) -> jax.Array:
  """Returns Σ_x A(x) v(x) for v = [1, −log A, −log B, log A/B, log A/M_1..K].

  Terms with A(x) = 0 contribute exactly 0 (0 · log 0 = 0).

  Args:
    log_a: log A(x) (log-space), shape `[n]`; -inf for padded rows.
    log_b: log B(x) (log-space), shape `[n]`.
    log_wa: log of A's mixture weight per π (log-space), shape `[K]`.
    log_wb: log of B's mixture weight per π (log-space), shape `[K]`.

  Returns:
    Shape `[4 + K]`.
  """
  a_pos = ~jnp.isneginf(log_a)
  # Double where: rows with A = 0 see finite inputs (no NaN from −inf − −inf).
  safe_log_a = jnp.where(a_pos, log_a, 0.0)
  safe_log_b = jnp.where(a_pos, log_b, 0.0)
  log_m_over_a = _log_mixture_ratio(log_a, log_b, log_wa[:, None], log_wb[:, None])  # [K, n]
  # Rows in the order _MASS, _NEG_LOG_A, _NEG_LOG_B, _LOG_A_OVER_B, then log(A / M_k).
  basic = [jnp.ones_like(safe_log_a), -safe_log_a, -safe_log_b, safe_log_a - safe_log_b]
  values = jnp.concatenate([jnp.stack(basic), -log_m_over_a])  # [4 + K, n]
  terms = jnp.where(a_pos, jnp.exp(safe_log_a) * values, 0.0)
  return jnp.sum(terms, axis=-1)


def _enumerable(vocab_size: int, seq_len: int, max_sequences: int, instead: str) -> int:
  """V^T, or ValueError when it exceeds max_sequences (naming the estimator to use instead)."""
  num = vocab_size**seq_len
  if num > max_sequences:
    raise ValueError(
        f'Exact enumeration of V^T = {vocab_size}^{seq_len} = {num} sequences '
        f'(V={vocab_size}, T={seq_len}) exceeds max_sequences={max_sequences}; '
        f'use {instead} instead, or raise max_sequences.'
    )
  return num


def exact(
    log_prob_p: Callable[[jax.Array], jax.Array],
    log_prob_q: Callable[[jax.Array], jax.Array],
    *,
    vocab_size: int,
    seq_len: int,
    pis: jax.typing.ArrayLike,
    chunk_size: int = 4096,
    max_sequences: int = 10**7,
) -> dict[str, jax.Array]:
  """Exact per-token metrics by enumerating all V^T sequences.

  Sequences are enumerated in chunks inside `jax.lax.scan`, so peak memory is
  O(chunk_size); the last chunk is padded and its padded rows masked out. Sums
  are accumulated across chunks with Kahan compensation. Jit with the callables
  and integer knobs closed over; `pis` may be traced.

  Args:
    log_prob_p: callable, tokens int32 `[n, T]` -> log P(x) (log-space) `[n]`.
    log_prob_q: callable, tokens int32 `[n, T]` -> log Q(x) (log-space) `[n]`.
    vocab_size: V, the number of tokens.
    seq_len: T, the sequence length.
    pis: weights π of P in [0, 1] for js_pi, shape `[K]`.
    chunk_size: sequences per chunk.
    max_sequences: refuse to enumerate more than this many sequences.

  Returns:
    A dict of per-token values in nats: `nll_oracle`, `nll_test`, `entropy_q`,
    `entropy_p`, `kl_pq` (KL(P || Q)), `kl_qp` (KL(Q || P)) as scalars,
    `js_pi` of shape `[K]`; and `mass_p` = Σ P(x), `mass_q` = Σ Q(x), which
    should be 1 (a sanity value, not divided by T).

  Raises:
    ValueError: if V^T exceeds `max_sequences`, or a callable returns the
      wrong shape.
  """
  num = _enumerable(vocab_size, seq_len, max_sequences, 'monte_carlo')
  chunk = min(chunk_size, num)
  n_chunks = -(-num // chunk)
  if n_chunks * chunk > _MAX_INDEX:
    raise ValueError(f'{n_chunks * chunk} padded sequences overflow int32 indices.')
  pis = _check_pis(pis)

  tokens = jax.ShapeDtypeStruct((chunk, seq_len), jnp.int32)
  out_p = jax.eval_shape(log_prob_p, tokens)
  out_q = jax.eval_shape(log_prob_q, tokens)
  for name, out in (('log_prob_p', out_p), ('log_prob_q', out_q)):
    if out.shape != (chunk,):
      raise ValueError(
          f'{name} must map int32 [n, T] to [n]; got {out.shape} for n={chunk}, '
          f'T={seq_len}.'
      )
  dtype = jnp.result_type(out_p.dtype, out_q.dtype)
  log_pi, log_1m_pi = _log_weights(pis.astype(dtype))

  def chunk_sums(i):
    start = i * chunk
    x = enumerate_sequences(vocab_size, seq_len, start, chunk)
    valid = start + jnp.arange(chunk) < num
    # Padded rows get log-probability −inf, so they add exactly 0 to every sum.
    log_p = jnp.where(valid, log_prob_p(x).astype(dtype), -jnp.inf)
    log_q = jnp.where(valid, log_prob_q(x).astype(dtype), -jnp.inf)
    return jnp.stack([
        _expectation_sums(log_p, log_q, log_pi, log_1m_pi),
        _expectation_sums(log_q, log_p, log_1m_pi, log_pi),
    ])  # [2, 4 + K]: P-weighted sums, Q-weighted sums.

  def kahan_step(carry, i):
    total, compensation = carry
    y = chunk_sums(i) - compensation
    new_total = total + y
    # Kahan: recover the low-order bits lost in the addition; 0 once a sum is inf.
    compensation = jnp.where(
        jnp.isfinite(new_total), (new_total - total) - y, 0.0
    )
    return (new_total, compensation), None

  zeros = jnp.zeros((2, 4 + pis.shape[0]), dtype)
  (sums, _), _ = jax.lax.scan(kahan_step, (zeros, zeros), jnp.arange(n_chunks))
  on_p, on_q = sums[0], sums[1]
  pis = pis.astype(dtype)
  # A zero weight masks its side's sum exactly, even where that sum is +inf.
  js = _weighted(pis, on_p[4:]) + _weighted(1 - pis, on_q[4:])
  return {
      'nll_oracle': on_q[_NEG_LOG_B] / seq_len,
      'nll_test': on_p[_NEG_LOG_B] / seq_len,
      'entropy_q': on_q[_NEG_LOG_A] / seq_len,
      'entropy_p': on_p[_NEG_LOG_A] / seq_len,
      'kl_pq': on_p[_LOG_A_OVER_B] / seq_len,
      'kl_qp': on_q[_LOG_A_OVER_B] / seq_len,
      'js_pi': js / seq_len,
      'mass_p': on_p[_MASS],
      'mass_q': on_q[_MASS],
  }


# Exposure bias (Arora et al. 2022): the per-step forward KL accumulated along prefixes drawn
# from the model (R) against along prefixes drawn from the oracle (ε).


def accumulated_kl(
    p_next_log_probs: jax.typing.ArrayLike, q_next_log_probs: jax.typing.ArrayLike
) -> jax.Array:
  """Σ_t KL(P_t || Q_t) along each sequence, with P_t = P(· | x_<t), Q_t = Q(· | x_<t).

  The forward KL between the two next-token distributions over the full
  vocabulary at every prefix of a given sequence x, summed over its T
  positions. Its mean over x ~ P is KL(P || Q) (chain rule); over x ~ Q it is
  the error accumulated on the model's own prefixes (see `exposure_bias`).

  Args:
    p_next_log_probs: log P(v | x_<t) (log-space, normalised over v), shape
      `[..., T, V]`: row t is the distribution of x_t given the prefix x_<t.
    q_next_log_probs: log Q(v | x_<t), the same shape.

  Returns:
    Σ_t KL(P_t || Q_t) in nats per sequence (not divided by T), shape `[...]`.

  Raises:
    TypeError, ValueError: as `divergences.categorical.kl`, or rank < 2.
  """
  p_next_log_probs = jnp.asarray(p_next_log_probs)
  if p_next_log_probs.ndim < 2:
    raise ValueError(
        'p_next_log_probs must have shape [..., T, V]; got shape '
        f'{p_next_log_probs.shape}.'
    )
  return jnp.sum(categorical.kl(p_next_log_probs, q_next_log_probs), axis=-1)


def exposure_bias(
    acc_on_q: jax.typing.ArrayLike, acc_on_p: jax.typing.ArrayLike, *, seq_len: int
) -> dict[str, tuple[jax.Array, jax.Array]]:
  """Monte-Carlo exposure-bias diagnostic (Arora et al. 2022), with standard errors.

  With A(x) = Σ_t KL(P_t || Q_t) along x (`accumulated_kl`):
    exposure_model  R = E_{x~Q}[A(x)] / T   (the model's own prefixes),
    exposure_oracle ε = E_{x~P}[A(x)] / T   (oracle prefixes; = KL(P || Q) / T
                                             exactly in expectation, chain rule),
    exacc_err       (R − ε) / ε             (Arora et al.'s ExAccErr, as a
                                             fraction, not %; R/ε = 1 + exacc_err).
  R and ε are plain means with se = std(ddof=1)/sqrt(n). The two sample sets
  are independent, so the ratio's se is the delta method's
  sqrt(se_R² + (R/ε)² se_ε²) / ε. Works under `jax.jit` and `jax.vmap`.

  Args:
    acc_on_q: A(x) for M samples x ~ Q, shape `[M]`, M >= 2.
    acc_on_p: A(x) for N samples x ~ P, shape `[N]`, N >= 2.
    seq_len: T, the per-token normaliser.

  Returns:
    {'exposure_model', 'exposure_oracle', 'exacc_err'} -> (mean, se), scalars.
  """
  sides = {'acc_on_q': jnp.asarray(acc_on_q), 'acc_on_p': jnp.asarray(acc_on_p)}
  for name, values in sides.items():
    _check_float(name, values)
    if values.ndim != 1 or values.shape[0] < 2:
      raise ValueError(
          f'{name} must be 1-D with at least 2 samples (one entry per sequence); '
          f'got shape {values.shape}.'
      )
  r, se_r = mean_and_se(sides['acc_on_q'] / seq_len)
  eps, se_eps = mean_and_se(sides['acc_on_p'] / seq_len)
  ratio = r / eps
  # Delta method: Var(R/ε) ≈ (Var R + (R/ε)² Var ε) / ε² for independent R and ε.
  se_ratio = jnp.sqrt(se_r**2 + (ratio * se_eps) ** 2) / eps
  return {
      'exposure_model': (r, se_r),
      'exposure_oracle': (eps, se_eps),
      'exacc_err': (ratio - 1.0, se_ratio),
  }


def _kahan_sum(chunk_sums: Callable[[jax.Array], jax.Array], n_chunks: int,
               zeros: jax.Array) -> jax.Array:
  """Σ_i chunk_sums(i) over i < n_chunks (`lax.scan`, Kahan-compensated), shaped `zeros`."""

  def step(carry, i):
    total, compensation = carry
    y = chunk_sums(i) - compensation
    new_total = total + y
    # The low-order bits lost in the addition; 0 once a sum is inf.
    compensation = jnp.where(jnp.isfinite(new_total), (new_total - total) - y, 0.0)
    return (new_total, compensation), None

  (total, _), _ = jax.lax.scan(step, (zeros, zeros), jnp.arange(n_chunks))
  return total


def exact_exposure(
    next_log_probs_p: Callable[[jax.Array], jax.Array],
    next_log_probs_q: Callable[[jax.Array], jax.Array],
    *,
    vocab_size: int,
    seq_len: int,
    chunk_size: int = 4096,
    max_sequences: int = 10**7,
) -> dict[str, jax.Array]:
  """The exposure-bias diagnostic exactly, by enumerating all V^T sequences.

  Σ_x Q(x) A(x) / T and Σ_x P(x) A(x) / T with A(x) = Σ_t KL(P_t || Q_t) along
  x (`accumulated_kl`); P(x) and Q(x) are read off the same next-token
  distributions. exposure_oracle equals `exact(...)['kl_pq']` up to rounding.
  Chunked in `lax.scan` with Kahan-compensated sums, as `exact`; memory is
  O(chunk_size · T · V).

  Args:
    next_log_probs_p: callable, tokens int32 `[n, T]` -> log P(v | x_<t)
      (log-space, normalised) `[n, T, V]`.
    next_log_probs_q: callable, the same for Q.
    vocab_size: V.
    seq_len: T.
    chunk_size: sequences per chunk.
    max_sequences: refuse to enumerate more than this many sequences.

  Returns:
    {'exposure_model': R, 'exposure_oracle': ε, 'exacc_err': (R − ε)/ε},
    scalars (per token; exacc_err a fraction).

  Raises:
    ValueError: if V^T exceeds `max_sequences`, or a callable returns the
      wrong shape.
  """
  num = _enumerable(vocab_size, seq_len, max_sequences, 'exposure_bias')
  chunk = min(chunk_size, num)
  n_chunks = -(-num // chunk)
  if n_chunks * chunk > _MAX_INDEX:
    raise ValueError(f'{n_chunks * chunk} padded sequences overflow int32 indices.')
  tokens = jax.ShapeDtypeStruct((chunk, seq_len), jnp.int32)
  outs = [jax.eval_shape(f, tokens) for f in (next_log_probs_p, next_log_probs_q)]
  for name, out in zip(('next_log_probs_p', 'next_log_probs_q'), outs):
    if out.shape != (chunk, seq_len, vocab_size):
      raise ValueError(
          f'{name} must map int32 [n, T] to [n, T, V]; got {out.shape} for n={chunk}, '
          f'T={seq_len}, V={vocab_size}.'
      )
  dtype = jnp.result_type(*(out.dtype for out in outs))

  def chunk_sums(i):
    start = i * chunk
    x = enumerate_sequences(vocab_size, seq_len, start, chunk)
    valid = start + jnp.arange(chunk) < num
    lp = next_log_probs_p(x).astype(dtype)
    lq = next_log_probs_q(x).astype(dtype)
    acc = accumulated_kl(lp, lq)  # [chunk]

    def weighted_sum(next_log_probs):
      log_w = jnp.take_along_axis(next_log_probs, x[..., None], axis=-1)[..., 0].sum(-1)
      # 0 · A = 0 for sequences of weight 0 (and padded rows), even where A = inf.
      positive = valid & ~jnp.isneginf(log_w)
      terms = jnp.exp(jnp.where(positive, log_w, 0.0)) * jnp.where(positive, acc, 0.0)
      return jnp.sum(jnp.where(positive, terms, 0.0))

    return jnp.stack([weighted_sum(lq), weighted_sum(lp)])

  on_q, on_p = _kahan_sum(chunk_sums, n_chunks, jnp.zeros(2, dtype))
  r, eps = on_q / seq_len, on_p / seq_len
  return {'exposure_model': r, 'exposure_oracle': eps, 'exacc_err': (r - eps) / eps}
