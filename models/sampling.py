"""Categorical samplers over the last axis of a logits array."""

import jax
import jax.numpy as jnp

METHODS = ('gumbel', 'icdf')
DEFAULT = 'icdf'  # one uniform per token: ~4x faster than Gumbel-max at V=5000 on CPU


def categorical_icdf(key: jax.Array, logits: jax.Array) -> jax.Array:
  """Inverse-CDF sampling: one uniform per row. logits [..., V] -> int32 [...]."""
  probs = jax.nn.softmax(logits, axis=-1)
  cdf = jnp.cumsum(probs, axis=-1)
  u = jax.random.uniform(key, logits.shape[:-1], dtype=cdf.dtype)
  # Scale u by the last cdf value so round-off in the cumsum cannot push u past the end.
  idx = jnp.sum(cdf < u[..., None] * cdf[..., -1:], axis=-1)
  return jnp.minimum(idx, logits.shape[-1] - 1).astype(jnp.int32)


def categorical(key: jax.Array, logits: jax.Array, *, method: str = DEFAULT) -> jax.Array:
  """Draws one index per row from softmax(logits): [..., V] -> int32 [...].

  Args:
    key: PRNG key.
    logits: unnormalised log-probabilities [..., V].
    method: 'gumbel' (jax.random.categorical, Gumbel-max: V uniforms per row) or 'icdf'
      (inverse CDF: one uniform per row).
  """
  if method == 'gumbel':
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)
  if method == 'icdf':
    return categorical_icdf(key, logits)
  raise ValueError(f'unknown sampling method {method!r}; expected one of {METHODS}')
