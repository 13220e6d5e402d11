"""Evaluation of one generator against the oracle: Monte-Carlo (and exact) divergences."""

import math

import jax
import jax.numpy as jnp

import divergences
from benchmarks import bleu as bleu_lib

# Metric names reported with a standard error; js_pi is a vector over the π grid.
MC_METRICS = ('nll_oracle', 'nll_test', 'entropy_q', 'entropy_p', 'kl_pq', 'kl_qp', 'js_pi')
EXACT_METRICS = ('nll_oracle', 'nll_test', 'entropy_q', 'entropy_p', 'kl_pq', 'kl_qp',
                 'js_pi')


def batched(fn, x: jax.Array, batch_size: int) -> jax.Array:
  """Applies fn to x [N, ...] in chunks of batch_size rows (lax.map): memory O(batch_size)."""
  n = x.shape[0]
  num_chunks = math.ceil(n / batch_size)
  pad = num_chunks * batch_size - n
  xp = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
  out = jax.lax.map(fn, xp.reshape(num_chunks, batch_size, *x.shape[1:]))
  return out.reshape(num_chunks * batch_size, *out.shape[2:])[:n]


def sample_chunked(model, params, key: jax.Array, num: int, batch_size: int, seq_len: int,
                   temperature=1.0, method: str = 'icdf') -> jax.Array:
  """num ancestral samples of `model`, int32 [num, T], drawn batch_size at a time (lax.map)."""
  num_chunks = math.ceil(num / batch_size)
  keys = jax.random.split(key, num_chunks)
  xs = jax.lax.map(lambda k: model.apply(params, k, batch_size, temperature, method,
                                         method='sample'), keys)
  return xs.reshape(num_chunks * batch_size, seq_len)[:num]


def make_evaluate(problem, generator, eval_cfg, pis):
  """Returns evaluate(gen_params, key, temperature=None) -> {name: (mean, se)} (+ exact_*).

  Args:
    problem: models.Problem (oracle, test set and its log P).
    generator: the generator module (LSTMLM).
    eval_cfg: config.eval (num_samples, batch_size, temperature, sampler, fresh_test, exact,
      ...).
    pis: the π grid, a tuple of floats, for js_pi.

  The evaluated model is the generator at `temperature` (logits / temperature; None =
  eval_cfg.temperature; may be traced, so a grid of temperatures maps in one compile): it is
  both sampled and scored at that temperature. The P side is the fixed test set, or with
  `eval_cfg.fresh_test` as many fresh oracle samples drawn with fold_in(key, 1) (the Q samples
  use `key` itself, so the Q side is the same either way).

  With `eval_cfg.bleu`, also 'bleu' (BLEU-`bleu_n` of each Q sample against num_test fresh
  oracle references drawn with fold_in(key, 2)) and 'self_bleu' (each Q sample against the
  other Q samples), as (mean, se) over the Q samples (benchmarks/bleu.py, a host callback).

  The returned function is pure and unjitted: the runner jits and maps it over seeds.
  All values are per token.
  """
  n, bs = eval_cfg.num_samples, eval_cfg.batch_size
  num_test, seq_len = problem.test.shape
  pis = jnp.asarray(pis, jnp.float32)
  oracle = problem.model

  def log_p(x):
    return oracle.apply(problem.params, x, method='log_prob')

  def test_side(key):
    """(x ~ P [M, T], log P(x) [M]): fixed, or fresh with `fresh_test`."""
    if not eval_cfg.fresh_test:
      return problem.test, problem.test_logp
    x_p = sample_chunked(oracle, problem.params, jax.random.fold_in(key, 1), num_test, bs,
                         seq_len, 1.0, eval_cfg.sampler)
    return x_p, batched(log_p, x_p, bs)

  def evaluate(params, key, temperature=None):
    tau = eval_cfg.temperature if temperature is None else temperature
    log_q = lambda x: generator.apply(params, x, tau, method='log_prob')  # noqa: E731
    x_q = sample_chunked(generator, params, key, n, bs, seq_len, tau, eval_cfg.sampler)
    x_p, logp_on_p = test_side(key)
    logp_on_q = batched(log_p, x_q, bs)
    logq_on_q = batched(log_q, x_q, bs)
    logq_on_p = batched(log_q, x_p, bs)
    out = divergences.monte_carlo(logp_on_p, logq_on_p, logp_on_q, logq_on_q,
                                  seq_len=seq_len, pis=pis)
    if eval_cfg.bleu:
      refs = sample_chunked(oracle, problem.params, jax.random.fold_in(key, 2), num_test, bs,
                            seq_len, 1.0, eval_cfg.sampler)
      out['bleu'] = divergences.mean_and_se(
          bleu_lib.bleu_jax(x_q, refs, max_n=eval_cfg.bleu_n))
      out['self_bleu'] = divergences.mean_and_se(
          bleu_lib.self_bleu_jax(x_q, max_n=eval_cfg.bleu_n))
    if eval_cfg.exact:
      ex = divergences.exact(log_p, log_q,
                             vocab_size=oracle.vocab_size, seq_len=seq_len, pis=pis,
                             chunk_size=eval_cfg.enumerate_chunk,
                             max_sequences=eval_cfg.max_enumerate)
      out.update({f'exact_{k}': ex[k] for k in EXACT_METRICS})
      out['exact_mass_q'] = ex['mass_q']
    return out

  return evaluate
