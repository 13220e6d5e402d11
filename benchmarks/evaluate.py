"""Evaluation of one generator against the oracle: Monte-Carlo (and exact) divergences."""

import math

import jax
import jax.numpy as jnp

import divergences

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


def make_evaluate(problem, generator, eval_cfg, pis):
  """Returns evaluate(gen_params, key) -> {name: (mean, se)} and, if exact, {exact_name: v}.

  Args:
    problem: models.Problem (oracle, test set and its log P).
    generator: the generator module (LSTMLM).
    eval_cfg: config.eval (num_samples, batch_size, temperature, sampler, exact, ...).
    pis: the π grid, a tuple of floats, for js_pi.

  The returned function is pure and unjitted: the runner jits and maps it over seeds.
  All values are per token.
  """
  n, bs, tau = eval_cfg.num_samples, eval_cfg.batch_size, eval_cfg.temperature
  seq_len = problem.test.shape[1]
  pis = jnp.asarray(pis, jnp.float32)
  oracle = problem.model

  def log_p(x):
    return oracle.apply(problem.params, x, method='log_prob')

  def log_q(params, x):
    # The evaluated model is the tempered generator; score with the same temperature.
    return generator.apply(params, x, tau, method='log_prob')

  def sample(params, key):
    num_chunks = math.ceil(n / bs)
    keys = jax.random.split(key, num_chunks)
    xs = jax.lax.map(
        lambda k: generator.apply(params, k, bs, tau, eval_cfg.sampler, method='sample'), keys)
    return xs.reshape(num_chunks * bs, seq_len)[:n]

  def evaluate(params, key):
    x_q = sample(params, key)
    logp_on_q = batched(log_p, x_q, bs)
    logq_on_q = batched(lambda x: log_q(params, x), x_q, bs)
    logq_on_p = batched(lambda x: log_q(params, x), problem.test, bs)
    out = divergences.monte_carlo(problem.test_logp, logq_on_p, logp_on_q, logq_on_q,
                                  seq_len=seq_len, pis=pis)
    if eval_cfg.exact:
      ex = divergences.exact(log_p, lambda x: log_q(params, x),
                             vocab_size=oracle.vocab_size, seq_len=seq_len, pis=pis,
                             chunk_size=eval_cfg.enumerate_chunk,
                             max_sequences=eval_cfg.max_enumerate)
      out.update({f'exact_{k}': ex[k] for k in EXACT_METRICS})
      out['exact_mass_q'] = ex['mass_q']
    return out

  return evaluate
