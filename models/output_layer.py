"""Log-probabilities of given tokens under a softmax output layer, in row chunks.

The teacher-forced loss of a language model needs log softmax(h W + b)[x] for N = B·T rows
over a vocabulary of V. Written naively, autodiff materialises several [N, V] arrays (the
logits, the softmax, a zero array for the scatter that transposes the token gather, and the
logits' cotangent). At SeqGAN sizes (N = 1,280, V = 5,000) each is 25 MB, and on CPU the
step's time goes into writing fresh buffers of that size, not into the matmuls.

`token_log_probs` computes the same value with a hand-written VJP over chunks of rows:

  forward:  per chunk, logits = [h, 1] [W; b]; lse = logsumexp(logits);
            out = logits[x] − lse. Saves only (h, W, b, x, lse), O(N·H + H·V).
  backward: per chunk, recomputes the logits and forms dlogits = g·(onehot(x) − softmax),
            the one-hot as an iota comparison (no scatter); accumulates [dW; db] =
            [h, 1]ᵀ dlogits and emits dh = dlogits Wᵀ.

Chunk buffers are [rows, V] with rows·V·4 bytes ≤ `chunk_bytes`, so they stay in cache and
are reused across loop iterations. Its values and gradients equal the naive expression's up
to float reassociation (tests/test_output_layer.py pins both). Forward-mode autodiff (jvp)
is not defined for it; nothing in the suite needs it.
"""

import functools
import math

import jax
import jax.numpy as jnp

CHUNK_BYTES = 4 * 2 ** 20  # 4 MiB of float32 logits per chunk: fastest on the 2-core CPU.


def num_chunks(rows: int, vocab: int, chunk_bytes: int = CHUNK_BYTES) -> int:
  """How many row chunks N rows of V logits are split into (at least 1)."""
  return max(1, min(rows, math.ceil(rows * vocab * 4 / chunk_bytes)))


def _split(x: jax.Array, n: int) -> jax.Array:
  """[N, ...] -> [n, ceil(N/n), ...], zero-padded at the end."""
  size = -(-x.shape[0] // n)
  x = jnp.pad(x, [(0, n * size - x.shape[0])] + [(0, 0)] * (x.ndim - 1))
  return x.reshape((n, size) + x.shape[1:])


def _merge(x: jax.Array, rows: int) -> jax.Array:
  """Inverse of _split: [n, size, ...] -> [rows, ...]."""
  return x.reshape((-1,) + x.shape[2:])[:rows]


def _forward(x, M, tokens, n):
  def one(args):
    xc, tc = args
    logits = xc @ M
    lse = jax.nn.logsumexp(logits, axis=-1)
    return jnp.take_along_axis(logits, tc[:, None], axis=-1)[:, 0] - lse, lse

  out, lse = jax.lax.map(one, (_split(x, n), _split(tokens, n)))
  rows = x.shape[0]
  return _merge(out, rows), _merge(lse, rows)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _chunked(x, M, tokens, n):
  """log softmax(x M)[tokens] for x [N, K], M [K, V], tokens int32 [N], in n row chunks."""
  return _forward(x, M, tokens, n)[0]


def _chunked_fwd(x, M, tokens, n):
  out, lse = _forward(x, M, tokens, n)
  return out, (x, M, tokens, lse)


def _chunked_bwd(n, residuals, g):
  x, M, tokens, lse = residuals
  vocab = M.shape[1]

  def body(dM, args):
    xc, tc, lc, gc = args
    probs = jnp.exp(xc @ M - lc[:, None])
    onehot = jnp.arange(vocab)[None, :] == tc[:, None]
    dlogits = (jnp.where(onehot, 1.0, 0.0) - probs) * gc[:, None]
    return dM + xc.T @ dlogits, dlogits @ M.T

  dM, dx = jax.lax.scan(body, jnp.zeros_like(M),
                        (_split(x, n), _split(tokens, n), _split(lse, n), _split(g, n)))
  return _merge(dx, x.shape[0]), dM, None


_chunked.defvjp(_chunked_fwd, _chunked_bwd)


def token_log_probs(h: jax.Array, W: jax.Array, b: jax.Array, tokens: jax.Array,
                    chunk_bytes: int = CHUNK_BYTES) -> jax.Array:
  """log softmax(h W + b)[tokens] row by row, differentiable w.r.t. h, W and b.

  Args:
    h: [..., H] hidden states.
    W: [H, V] output weights.
    b: [V] output bias.
    tokens: int [...] the token whose log-probability each row gives.
    chunk_bytes: the most bytes of float32 logits held at once.

  Returns:
    [...]: log-probabilities, the shape of `tokens`.
  """
  shape = tokens.shape
  h = h.reshape(-1, h.shape[-1])
  # The bias as a last row of the weights against a constant 1 feature: one matmul per
  # direction gives the logits, and dW with db, instead of a matmul plus a broadcast add
  # (forward) and a column sum (backward).
  x = jnp.concatenate([h, jnp.ones_like(h[:, :1])], axis=1)  # [N, H + 1]
  M = jnp.concatenate([W, b[None, :]], axis=0)  # [H + 1, V]
  n = num_chunks(h.shape[0], W.shape[1], chunk_bytes)
  return _chunked(x, M, tokens.reshape(-1).astype(jnp.int32), n).reshape(shape)
