"""Divergences between categorical distributions given as log-probability vectors.

Every function takes log-probabilities (log-space) with the support on `axis`
and returns one value per distribution in the batch (the caller reduces).
Conventions: 0 · log 0 = 0, a support mismatch gives +inf (never NaN), and
`jax.grad` stays finite where log-probabilities of -inf appear.
"""

import jax
import jax.numpy as jnp


def _check_float(name: str, x: jax.Array) -> None:
  """Raises TypeError at trace time unless `x` holds floating log-probabilities."""
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(
        f'{name} must have a floating dtype (log-probabilities); got {x.dtype}.'
    )


def _check(log_p: jax.Array, log_q: jax.Array) -> None:
  """Raises at trace time unless `log_p` and `log_q` are comparable elementwise.

  Args:
    log_p: log-probabilities of P, any shape.
    log_q: log-probabilities of Q, any shape.

  Raises:
    TypeError: if either input is not floating.
    ValueError: if the shapes differ (no silent broadcasting); names both.
  """
  _check_float('log_p', log_p)
  _check_float('log_q', log_q)
  if jnp.shape(log_p) != jnp.shape(log_q):
    raise ValueError(
        'log_p and log_q must have the same shape; got '
        f'log_p.shape={jnp.shape(log_p)} and log_q.shape={jnp.shape(log_q)}.'
    )


def _safe_logaddexp(a: jax.Array, b: jax.Array) -> jax.Array:
  """Returns log(exp(a) + exp(b)) elementwise, with finite gradients at (-inf, -inf)."""
  both_zero = jnp.isneginf(a) & jnp.isneginf(b)
  # jnp.logaddexp's JVP is exp(-inf - -inf) = NaN there: feed it zeros, return log 0.
  out = jnp.logaddexp(jnp.where(both_zero, 0.0, a), jnp.where(both_zero, 0.0, b))
  return jnp.where(both_zero, -jnp.inf, out)


def _log_weights(pi: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Returns (log π, log(1 − π)) elementwise; -inf at the end points π ∈ {0, 1}.

  Args:
    pi: mixture weights in [0, 1], any shape.

  Returns:
    Two arrays shaped like `pi`.
  """
  positive = pi > 0
  below_one = pi < 1
  # Double where: log 0 = -inf with a zero (not inf · 0 = NaN) derivative; so
  # gradients with respect to π are exact only inside (0, 1).
  log_pi = jnp.where(positive, jnp.log(jnp.where(positive, pi, 1.0)), -jnp.inf)
  log_1m_pi = jnp.where(
      below_one, jnp.log1p(-jnp.where(below_one, pi, 0.0)), -jnp.inf
  )
  return log_pi, log_1m_pi


def _log_mixture_ratio(
    log_a: jax.Array, log_b: jax.Array, log_wa: jax.Array, log_wb: jax.Array
) -> jax.Array:
  """Returns log(M / A) with M = w_a A + w_b B, elementwise (broadcasting).

  Only meaningful where A > 0; elsewhere it returns a finite placeholder that
  callers must mask out.

  Args:
    log_a: log A (log-space).
    log_b: log B (log-space).
    log_wa: log w_a (log-space), -inf for a zero weight.
    log_wb: log w_b (log-space), -inf for a zero weight.

  Returns:
    The broadcast shape of the inputs.
  """
  a_pos = ~jnp.isneginf(log_a)
  # log(B / A) on A's support; 0 off it, so the masked entries have finite gradients.
  log_b_over_a = jnp.where(a_pos, log_b - jnp.where(a_pos, log_a, 0.0), 0.0)
  # log(w_a + w_b B/A) rather than log M - log A: exact 0 at w_a = 1 and accurate to
  # eps · w_b near it (the difference of logs loses eps · |log M| whatever w_b is).
  return _safe_logaddexp(log_wa, log_wb + log_b_over_a)


def _weighted(weight: jax.Array, value: jax.Array) -> jax.Array:
  """Returns weight · value, exactly 0 (never NaN) where weight == 0, even if value is inf."""
  nonzero = weight > 0
  # The inner where keeps 0 · inf out of the backward pass too.
  return jnp.where(nonzero, weight * jnp.where(nonzero, value, 0.0), 0.0)


def _kl_terms(log_p: jax.Array, log_q: jax.Array) -> jax.Array:
  """Returns p (log p − log q) elementwise (broadcasting), with 0 where p == 0."""
  p_pos = ~jnp.isneginf(log_p)
  # Double where: entries with p == 0 see finite inputs, so their gradients are 0, not NaN.
  safe_log_p = jnp.where(p_pos, log_p, 0.0)
  safe_log_q = jnp.where(p_pos, log_q, 0.0)
  # 0 · log(0 / q) = 0 even where q == 0; p > 0 = q gives p · inf = +inf.
  return jnp.where(p_pos, jnp.exp(safe_log_p) * (safe_log_p - safe_log_q), 0.0)


def _kl_to_mixture_terms(
    log_a: jax.Array, log_b: jax.Array, log_wa: jax.Array, log_wb: jax.Array
) -> jax.Array:
  """Returns a log(a / m) elementwise, m = w_a a + w_b b, with 0 where a == 0."""
  a_pos = ~jnp.isneginf(log_a)
  safe_log_a = jnp.where(a_pos, log_a, 0.0)
  log_m_over_a = _log_mixture_ratio(log_a, log_b, log_wa, log_wb)
  # m = 0 < a needs w_a = 0, a side the caller's zero weight discards: return +inf as a
  # constant, so its zero cotangent never meets d(a · inf)/da = inf (NaN).
  m_pos = ~jnp.isneginf(log_m_over_a)
  safe_log_m_over_a = jnp.where(m_pos, log_m_over_a, 0.0)
  terms = jnp.where(m_pos, -jnp.exp(safe_log_a) * safe_log_m_over_a, jnp.inf)
  return jnp.where(a_pos, terms, 0.0)


def _expand_pi(pi: jax.Array, shape: tuple[int, ...], axis: int) -> jax.Array:
  """Broadcasts `pi` against the batch shape of `shape` and re-inserts `axis` (size 1).

  Args:
    pi: weights broadcastable against `shape` without `axis`.
    shape: shape of the log-probability arrays, support on `axis`.
    axis: the support axis of `shape`.

  Returns:
    `pi` with a size-1 axis where the support is, ready to broadcast against `shape`.
  """
  ndim = len(shape)
  if not -ndim <= axis < ndim:
    raise ValueError(f'axis={axis} is out of range for shape {shape}.')
  axis = axis - ndim if axis >= 0 else axis
  batch_shape = shape[: ndim + axis] + shape[ndim + axis + 1 :]
  pi = jnp.broadcast_to(pi, jnp.broadcast_shapes(jnp.shape(pi), batch_shape))
  return jnp.expand_dims(pi, axis)


def kl(
    log_p: jax.typing.ArrayLike, log_q: jax.typing.ArrayLike, *, axis: int = -1
) -> jax.Array:
  """Kullback-Leibler divergence KL(P || Q) = Σ p (log p − log q).

  0 · log 0 = 0: entries with p == 0 contribute 0, even where q == 0. A support
  mismatch (p > 0 == q) gives +inf, never NaN. Gradients with respect to
  `log_q` stay finite where `log_p` holds -inf.

  Args:
    log_p: log-probabilities of P (log-space), shape `[..., n]`, support on `axis`.
    log_q: log-probabilities of Q (log-space), same shape as `log_p`.
    axis: the support axis.

  Returns:
    KL(P || Q) in nats, shape `[...]` (`log_p.shape` without `axis`).

  Raises:
    TypeError: if an input is not floating.
    ValueError: if the shapes differ.
  """
  log_p, log_q = jnp.asarray(log_p), jnp.asarray(log_q)
  _check(log_p, log_q)
  return jnp.sum(_kl_terms(log_p, log_q), axis=axis)


def entropy(log_p: jax.typing.ArrayLike, *, axis: int = -1) -> jax.Array:
  """Shannon entropy H(P) = −Σ p log p, with 0 · log 0 = 0.

  Args:
    log_p: log-probabilities of P (log-space), shape `[..., n]`, support on `axis`.
    axis: the support axis.

  Returns:
    H(P) in nats, shape `[...]`.

  Raises:
    TypeError: if `log_p` is not floating.
  """
  log_p = jnp.asarray(log_p)
  _check_float('log_p', log_p)
  p_pos = ~jnp.isneginf(log_p)
  # Double where, as in `kl`: p == 0 contributes 0 with a finite (zero) gradient.
  safe_log_p = jnp.where(p_pos, log_p, 0.0)
  terms = jnp.where(p_pos, jnp.exp(safe_log_p) * safe_log_p, 0.0)
  return -jnp.sum(terms, axis=axis)


def js_pi(
    log_p: jax.typing.ArrayLike,
    log_q: jax.typing.ArrayLike,
    pi: jax.typing.ArrayLike,
    *,
    axis: int = -1,
) -> jax.Array:
  """Generalised Jensen-Shannon divergence JS_π(P, Q) = π KL(P || M) + (1−π) KL(Q || M).

  M = π P + (1−π) Q, formed in log-space. A term whose weight is 0 (π = 0 or
  π = 1) contributes exactly 0, even if its KL is +inf. The value lies in
  [0, H(π)], H(π) = −π log π − (1−π) log(1−π), with equality on the right for
  disjoint supports; JS_π(P, Q) = JS_{1−π}(Q, P); π = 1/2 is the usual JS.

  Args:
    log_p: log-probabilities of P (log-space), shape `[..., n]`, support on `axis`.
    log_q: log-probabilities of Q (log-space), same shape as `log_p`.
    pi: weight of P in [0, 1]; a scalar or an array broadcastable against the
      batch shape `[...]` (may be traced, e.g. vmapped over; gradients with
      respect to it are exact inside (0, 1), and finite but not one-sided
      derivatives at the end points).
    axis: the support axis.

  Returns:
    JS_π(P, Q) in nats, shape `broadcast([...], pi.shape)`.

  Raises:
    TypeError: if an input is not floating.
    ValueError: if the shapes differ.

  References:
    Lin, Divergence measures based on the Shannon entropy, IEEE Trans. Inf.
    Theory, https://doi.org/10.1109/18.61115, 1991.
    Huszár, How (not) to train your generative model: scheduled sampling,
    likelihood, adversary?, https://arxiv.org/abs/1511.05101, 2015.
  """
  log_p, log_q = jnp.asarray(log_p), jnp.asarray(log_q)
  _check(log_p, log_q)
  pi = jnp.asarray(pi, dtype=log_p.dtype)
  log_pi, log_1m_pi = _log_weights(_expand_pi(pi, log_p.shape, axis))
  # p log(p / m) = −p log(m / p), with log(m / p) = log(π + (1−π) q/p): exact at π = 1.
  p_terms = _kl_to_mixture_terms(log_p, log_q, log_pi, log_1m_pi)
  q_terms = _kl_to_mixture_terms(log_q, log_p, log_1m_pi, log_pi)
  kl_pm = jnp.sum(p_terms, axis=axis)
  kl_qm = jnp.sum(q_terms, axis=axis)
  return _weighted(pi, kl_pm) + _weighted(1 - pi, kl_qm)


def js_pi_scaled(
    log_p: jax.typing.ArrayLike,
    log_q: jax.typing.ArrayLike,
    pi: jax.typing.ArrayLike,
    *,
    axis: int = -1,
) -> jax.Array:
  """Scaled generalised Jensen-Shannon divergence JS_π(P, Q) / (π (1−π)).

  Its limits are returned at the end points: KL(P || Q) at π = 0 and
  KL(Q || P) at π = 1, never NaN; gradients with respect to `log_p` and `log_q`
  are finite wherever the returned value is. It interpolates between the two
  KL directions, and equals 4 JS(P, Q) at π = 1/2.

  Args:
    log_p: log-probabilities of P (log-space), shape `[..., n]`, support on `axis`.
    log_q: log-probabilities of Q (log-space), same shape as `log_p`.
    pi: weight of P in [0, 1]; a scalar or an array broadcastable against the
      batch shape `[...]` (may be traced).
    axis: the support axis.

  Returns:
    JS_π(P, Q) / (π (1−π)) in nats, shape `broadcast([...], pi.shape)`.

  Raises:
    TypeError: if an input is not floating.
    ValueError: if the shapes differ.

  References:
    Huszár, How (not) to train your generative model: scheduled sampling,
    likelihood, adversary?, https://arxiv.org/abs/1511.05101, 2015.
  """
  log_p, log_q = jnp.asarray(log_p), jnp.asarray(log_q)
  _check(log_p, log_q)
  pi = jnp.asarray(pi, dtype=log_p.dtype)
  at_zero, at_one = pi <= 0, pi >= 1
  pi_e = _expand_pi(pi, log_p.shape, axis)
  # Double where: the limit not returned is computed as KL(X || X) = 0, so an infinite
  # KL in the unused direction cannot turn its zero cotangent into NaN.
  kl_pq = jnp.sum(_kl_terms(log_p, jnp.where(pi_e <= 0, log_q, log_p)), axis=axis)
  kl_qp = jnp.sum(_kl_terms(log_q, jnp.where(pi_e >= 1, log_p, log_q)), axis=axis)
  # Safe denominator: 1 at the end points, where a limit is returned instead.
  denominator = jnp.where(at_zero | at_one, 1.0, pi * (1 - pi))
  scaled = js_pi(log_p, log_q, pi, axis=axis) / denominator
  return jnp.where(at_zero, kl_pq, jnp.where(at_one, kl_qp, scaled))


def skew_kl(
    log_p: jax.typing.ArrayLike,
    log_q: jax.typing.ArrayLike,
    alpha: jax.typing.ArrayLike,
    *,
    axis: int = -1,
) -> jax.Array:
  """Skew Kullback-Leibler divergence KL(P || α P + (1−α) Q) (DistiLLM's SKL_α).

  α = 0 gives KL(P || Q) and α = 1 gives 0. Swapping the arguments gives the skew reverse
  KL: `skew_kl(log_q, log_p, α)` = KL(Q || (1−α) P + α Q) = SRKL_α. With M = β P + (1−β) Q,
  JS_β(P, Q) = β SKL_β(P, Q) + (1−β) SRKL_{1−β}(P, Q). Finite for α > 0 whatever the
  supports (the mixture covers P), +inf at α = 0 on a support mismatch, never NaN.

  Args:
    log_p: log-probabilities of P (log-space), shape `[..., n]`, support on `axis`.
    log_q: log-probabilities of Q (log-space), same shape as `log_p`.
    alpha: the weight of P in the mixture, in [0, 1]; a scalar or an array broadcastable
      against the batch shape `[...]` (may be traced).
    axis: the support axis.

  Returns:
    KL(P || α P + (1−α) Q) in nats, shape `broadcast([...], alpha.shape)`.

  Raises:
    TypeError: if an input is not floating.
    ValueError: if the shapes differ.

  References:
    Ko, Kim, Chen, Yun, DistiLLM: Towards Streamlined Distillation for Large Language
    Models, https://arxiv.org/abs/2402.03898, 2024.
  """
  log_p, log_q = jnp.asarray(log_p), jnp.asarray(log_q)
  _check(log_p, log_q)
  alpha = jnp.asarray(alpha, dtype=log_p.dtype)
  log_a, log_1m_a = _log_weights(_expand_pi(alpha, log_p.shape, axis))
  # p log(p / m) = −p log(m / p), log(m / p) = log(α + (1−α) q/p): exactly 0 at α = 1.
  return jnp.sum(_kl_to_mixture_terms(log_p, log_q, log_a, log_1m_a), axis=axis)


def total_variation(
    log_p: jax.typing.ArrayLike, log_q: jax.typing.ArrayLike, *, axis: int = -1
) -> jax.Array:
  """Total variation distance TV(P, Q) = ½ Σ |p − q|, in [0, 1].

  The gradient of |·| at p = q is taken as 0 (`jnp.abs`'s convention).

  Args:
    log_p: log-probabilities of P (log-space), shape `[..., n]`, support on `axis`.
    log_q: log-probabilities of Q (log-space), same shape as `log_p`.
    axis: the support axis.

  Returns:
    TV(P, Q), shape `[...]`.

  Raises:
    TypeError: if an input is not floating.
    ValueError: if the shapes differ.
  """
  log_p, log_q = jnp.asarray(log_p), jnp.asarray(log_q)
  _check(log_p, log_q)
  # exp(−inf) = 0 with derivative 0: zero atoms need no special case.
  return 0.5 * jnp.sum(jnp.abs(jnp.exp(log_p) - jnp.exp(log_q)), axis=axis)


def alpha_beta(
    log_p: jax.typing.ArrayLike,
    log_q: jax.typing.ArrayLike,
    alpha: float,
    beta: float,
    *,
    axis: int = -1,
) -> jax.Array:
  """The α-β divergence D_AB^{(α,β)}(P ‖ Q) (Cichocki, Cruces & Amari 2011; ABKD's loss).

  For α, β, α + β ≠ 0:
    −1/(αβ) Σ (p^α q^β − α/(α+β) p^{α+β} − β/(α+β) q^{α+β});
  and its limits (static branches on the Python floats α, β):
    β = 0:        1/α² Σ (p^α log(p^α/q^α) − p^α + q^α)   ((1, 0): KL(P‖Q))
    α = 0:        1/β² Σ (q^β log(q^β/p^β) − q^β + p^β)   ((0, 1): KL(Q‖P))
    α = −β ≠ 0:   1/α² Σ (log(q^α/p^α) + (q^α/p^α)^{−1} − 1)
    α = β = 0:    ½ Σ (log p − log q)².
  (α, β) = (½, ½) is 4× the squared Hellinger distance. ≥ 0, 0 iff P = Q.

  Args:
    log_p, log_q: log-probabilities (log-space), shape `[..., n]`, support on `axis`.
    alpha, beta: Python floats (they select the branch).
    axis: the support axis.

  Returns:
    D_AB^{(α,β)}(P ‖ Q), shape `[...]`.

  References:
    Cichocki, Cruces, Amari, Generalized Alpha-Beta Divergences and Their Application to
    Robust Nonnegative Matrix Factorization, Entropy 13(1), 2011. Wang et al., ABKD:
    Pursuing a Proper Allocation of the Probability Mass in Knowledge Distillation via
    α-β-Divergence, ICML 2025.
  """
  log_p, log_q = jnp.asarray(log_p), jnp.asarray(log_q)
  _check(log_p, log_q)
  a, b = float(alpha), float(beta)
  total = lambda x: jnp.sum(x, axis=axis)
  if a == 0.0 and b == 0.0:
    return 0.5 * total(jnp.square(log_p - log_q))
  if b == 0.0:
    pa, qa = jnp.exp(a * log_p), jnp.exp(a * log_q)
    return total(pa * a * (log_p - log_q) - pa + qa) / a ** 2
  if a == 0.0:
    pb, qb = jnp.exp(b * log_p), jnp.exp(b * log_q)
    return total(qb * b * (log_q - log_p) - qb + pb) / b ** 2
  if a + b == 0.0:
    d = a * (log_q - log_p)
    return total(d + jnp.exp(-d) - 1.0) / a ** 2
  s = a + b
  return -total(jnp.exp(a * log_p + b * log_q) - a / s * jnp.exp(s * log_p)
                - b / s * jnp.exp(s * log_q)) / (a * b)


def head_tail_gaps(
    log_p: jax.typing.ArrayLike,
    log_q: jax.typing.ArrayLike,
    mu: float = 0.5,
    *,
    axis: int = -1,
) -> tuple[jax.Array, jax.Array]:
  """The gaps Σ |p − q| over P's head and over its tail (AKL's weights; Wu et al. 2024).

  With P's atoms in decreasing order p_(1) ≥ p_(2) ≥ … and c_k = Σ_{j≤k} p_(j), the tail is
  {k : c_k > μ} and the head the rest, the top atom always in the head (AKL's code: the atom
  whose cumulative mass crosses μ is in the tail). Ties in p are ordered by index.

  Args:
    log_p, log_q: log-probabilities (log-space), shape `[..., n]`, support on `axis`.
    mu: the head's mass μ ∈ [0, 1].
    axis: the support axis.

  Returns:
    (g_head, g_tail), each shape `[...]`; g_head + g_tail = 2 TV(P, Q).
  """
  log_p, log_q = jnp.asarray(log_p), jnp.asarray(log_q)
  _check(log_p, log_q)
  log_p, log_q = jnp.moveaxis(log_p, axis, -1), jnp.moveaxis(log_q, axis, -1)
  order = jnp.argsort(-log_p, axis=-1, stable=True)
  p = jnp.exp(jnp.take_along_axis(log_p, order, axis=-1))
  q = jnp.exp(jnp.take_along_axis(log_q, order, axis=-1))
  gap = jnp.abs(p - q)
  tail = jnp.cumsum(p, axis=-1) > mu
  tail = tail.at[..., 0].set(False)
  return jnp.sum(jnp.where(tail, 0.0, gap), -1), jnp.sum(jnp.where(tail, gap, 0.0), -1)
