"""Per-position terms of teacher and student on given prefixes, for schemes that score every
next-token distribution against the oracle's (distill, kl_estimator).

The full-vocabulary logits of both models are formed in row chunks of at most
`chunk_bytes` float32 bytes each, under `jax.checkpoint` (the backward pass recomputes a
chunk's logits), so memory stays O(chunk × V) at V = 5000.
"""

from typing import Callable

import jax
import jax.numpy as jnp

from models import output_layer


def in_row_chunks(fn: Callable, num_chunks: int, *arrays: jax.Array):
  """fn over row chunks of [N, ...] arrays under jax.checkpoint; outputs [N, ...] each."""
  rows = arrays[0].shape[0]
  size = -(-rows // num_chunks)

  def split(x):  # zero rows pad the last chunk; their outputs are dropped below
    x = jnp.pad(x, [(0, num_chunks * size - rows)] + [(0, 0)] * (x.ndim - 1))
    return x.reshape((num_chunks, size) + x.shape[1:])

  outs = jax.lax.map(jax.checkpoint(lambda args: fn(*args)), tuple(map(split, arrays)))
  return jax.tree.map(lambda y: y.reshape((-1,) + y.shape[2:])[:rows], outs)


def per_token_terms(teacher_logits_fn: Callable, teacher_hidden: jax.Array,
                    student_logits_fn: Callable, student_hidden: jax.Array,
                    tokens: jax.Array, token_fn: Callable, *,
                    chunk_bytes: int = output_layer.CHUNK_BYTES):
  """A term of each position's two next-token distributions, and the realised tokens'
  student log-probs, in row chunks.

  Args:
    teacher_logits_fn: hidden [n, Hp] -> the teacher's logits [n, V] (constants).
    teacher_hidden: [B, T, Hp] the teacher's teacher-forced hidden states on `tokens`.
    student_logits_fn: hidden [n, Hq] -> the student's logits [n, V] (differentiable).
    student_hidden: [B, T, Hq] the student's hidden states on `tokens` (differentiable).
    tokens: int [B, T], the prefixes' sequences (row t of a sequence is conditioned on x_<t).
    token_fn: (log P [n, V], log Q [n, V], the realised tokens int [n]) -> [n].
    chunk_bytes: at most this many bytes of float32 logits per model and chunk.

  Returns:
    (d, log_q_tok), each [B, T]: d_t = token_fn(P(·|x_<t), Q(·|x_<t), x_t) and
    log Q(x_t | x_<t).
  """
  b, t = tokens.shape
  vocab = jax.eval_shape(student_logits_fn, student_hidden[0, :1]).shape[-1]

  def chunk(h_p, h_q, x):
    log_p = jax.nn.log_softmax(teacher_logits_fn(h_p), axis=-1)
    log_q = jax.nn.log_softmax(student_logits_fn(h_q), axis=-1)
    return token_fn(log_p, log_q, x), jnp.take_along_axis(log_q, x[:, None], axis=-1)[:, 0]

  n = output_layer.num_chunks(b * t, vocab, chunk_bytes)
  d, log_q_tok = in_row_chunks(chunk, n, teacher_hidden.reshape(b * t, -1),
                               student_hidden.reshape(b * t, -1), tokens.reshape(-1))
  return d.reshape(b, t), log_q_tok.reshape(b, t)


def model_terms(student, params, teacher, teacher_params, tokens: jax.Array,
                token_fn: Callable, *, chunk_bytes: int = output_layer.CHUNK_BYTES):
  """`per_token_terms` of two LSTMLMs (student differentiated, teacher constant) on tokens."""
  h_p = jax.lax.stop_gradient(teacher.apply(teacher_params, tokens, method='hidden_states'))
  h_q = student.apply(params, tokens, method='hidden_states')
  return per_token_terms(
      lambda h: jax.lax.stop_gradient(teacher.apply(teacher_params, h,
                                                    method='logits_from_hidden')), h_p,
      lambda h: student.apply(params, h, method='logits_from_hidden'), h_q, tokens, token_fn,
      chunk_bytes=chunk_bytes)


def leave_one_out(costs: jax.Array, mask: jax.Array) -> jax.Array:
  """For each masked row, the mean of the *other* masked rows' costs at the same position
  (0 when there is none): [B, T], bool [B] -> [B, T] (entries of unmasked rows unused).
  Independent of the row itself, so subtracting it from a score-function term keeps it
  unbiased."""
  m = mask.astype(costs.dtype)[:, None]
  others = m.sum(axis=0, keepdims=True) - m
  total = (costs * m).sum(axis=0, keepdims=True) - costs * m
  return jnp.where(others > 0, total / jnp.maximum(others, 1.0), 0.0)


BASELINES = ('loo', 'none')


def baseline(costs: jax.Array, mask: jax.Array, kind, *, flag: str) -> jax.Array:
  """The baseline [B, T] subtracted from the score-function returns `costs` [B, T] of the
  rows `mask` (bool [B]): 'loo' (`leave_one_out`), 'none' (0), or a constant broadcastable
  to [B, T] (e.g. 0.0 for an expectation by enumeration). ValueError naming `flag` (the
  config field) for an unknown name."""
  if isinstance(kind, str):
    if kind not in BASELINES:
      raise ValueError(f'{flag}: unknown {kind!r}; known: {", ".join(BASELINES)}')
    return leave_one_out(costs, mask) if kind == 'loo' else jnp.zeros_like(costs)
  return jnp.broadcast_to(jnp.asarray(kind, costs.dtype), costs.shape)


def costs_to_go(k: jax.Array, *, include_current: bool) -> jax.Array:
  """Σ_{s≥t} k_s (include_current) or Σ_{s>t} k_s along the last axis: [..., T] -> [..., T]."""
  total = jnp.cumsum(k[..., ::-1], axis=-1)[..., ::-1]
  return total if include_current else total - k
