"""Per-token estimators of KL(Q_t ‖ P_t) used by RL penalties and on-policy distillation.

With a token x ~ Q_t = Q(·|x_<t) and the log-ratio log r = log P_t(x) − log Q_t(x):

  k1 = −log r                  unbiased: E_Q[k1] = KL(Q_t‖P_t); can be negative
  k2 = ½ (log r)²              biased (E_Q[k2] ≥ ½ E_Q[log r]² ≥ 0; ≈ KL when P ≈ Q)
  k3 = (r − 1) − log r         unbiased (E_Q[r] = 1 where P ≪ Q) and ≥ 0 per sample

(Schulman's notes "Approximating KL divergence", 2020). The analytic per-token KL sums over
the vocabulary instead of sampling; its top-K form sums over Q_t's K most likely tokens only,
as such, or with both distributions renormalised over those K (a KL between two categoricals
on K tokens). Which *gradient* each of these follows depends on how it is used (a loss, a
reward, both): objectives/kl_estimator.py.

Shapes: log-probs [..., V] (full next-token distributions) or [...] (the sampled tokens').
"""

import jax
import jax.numpy as jnp

from divergences import categorical

SAMPLED = ('k1', 'k2', 'k3')


def k1(log_r: jax.Array) -> jax.Array:
  """−log r, elementwise: [...] -> [...]."""
  return -log_r


def k2(log_r: jax.Array) -> jax.Array:
  """½ (log r)², elementwise."""
  return 0.5 * jnp.square(log_r)


def k3(log_r: jax.Array) -> jax.Array:
  """(r − 1) − log r, elementwise (expm1 keeps it accurate, and ≥ 0, near r = 1)."""
  return jnp.expm1(log_r) - log_r


def sampled(name: str, log_p_tok: jax.Array, log_q_tok: jax.Array) -> jax.Array:
  """Estimator `name` (one of SAMPLED) at sampled tokens: log P, log Q of them [...] -> [...]."""
  fns = {'k1': k1, 'k2': k2, 'k3': k3}
  if name not in fns:
    raise ValueError(f'unknown sampled KL estimator {name!r}; known: {", ".join(SAMPLED)}')
  return fns[name](log_p_tok - log_q_tok)


def analytic(log_q: jax.Array, log_p: jax.Array) -> jax.Array:
  """KL(Q_t ‖ P_t) over the full vocabulary: [..., V] -> [...]."""
  return categorical.kl(log_q, log_p)


def top_k(log_q: jax.Array, log_p: jax.Array, k: int, *, renormalise: bool) -> jax.Array:
  """The analytic KL restricted to Q_t's k most likely tokens: [..., V] -> [...].

  renormalise=False: Σ_{v∈K} Q(v) (log Q(v) − log P(v)) (the full sum's first k terms);
  renormalise=True: KL(Q_K ‖ P_K) of both distributions renormalised over K (≥ 0). Which
  tokens are in K is a constant (no gradient through the choice). k = V gives the analytic KL
  either way.
  """
  if not 1 <= k <= log_q.shape[-1]:
    raise ValueError(f'top_k: k must be in [1, V={log_q.shape[-1]}], got {k}')
  lq, idx = jax.lax.top_k(log_q, k)
  lp = jnp.take_along_axis(log_p, idx, axis=-1)
  if renormalise:
    lq = lq - jax.nn.logsumexp(lq, axis=-1, keepdims=True)
    lp = lp - jax.nn.logsumexp(lp, axis=-1, keepdims=True)
  return jnp.sum(jnp.exp(lq) * (lq - lp), axis=-1)
