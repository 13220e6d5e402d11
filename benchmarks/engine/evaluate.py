"""Evaluation of one generator against the oracle: Monte-Carlo (and exact) divergences."""

import math

import jax
import jax.numpy as jnp

from benchmarks.analysis import bleu
from divergences import sequence as sequence_lib
import divergences

# The enumerated metrics kept as exact_<name> (js_pi is a vector over the π grid; the
# exposure_* and exacc_err metrics only with eval.exposure_bias). The Monte-Carlo ones are
# whatever `divergences.monte_carlo` returns, each with its standard error.
EXACT_METRICS = ('nll_oracle', 'nll_test', 'entropy_q', 'entropy_p', 'kl_pq', 'kl_qp',
                 'js_pi', 'exposure_model', 'exposure_oracle', 'exacc_err')


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


def next_token_log_probs(model, params, tokens: jax.Array, temperature=1.0) -> jax.Array:
  """Teacher-forced log softmax(logits / τ) at every prefix: int [n, T] -> [n, T, V].

  Holds all [n, T, V] at once: for enumeration (small V); see `accumulated_kl`.
  """
  return jax.nn.log_softmax(model.apply(params, tokens, method='logits') / temperature)


def sequences_per_chunk(generator, vocab_size: int, seq_len: int, cap: int) -> int:
  """How many sequences' [T, V] float32 logits fit `generator.logits_chunk_bytes` (1..cap)."""
  return max(1, min(cap, generator.logits_chunk_bytes // (seq_len * vocab_size * 4)))


def accumulated_kl(oracle, oracle_params, generator, params, tokens: jax.Array, temperature,
                   chunk: int) -> jax.Array:
  """Σ_t KL(P_t ‖ Q_τ,t) over the full vocabulary along each sequence: int [b, T] -> [b].

  P_t = oracle(· | x_<t), Q_τ,t = softmax(generator logits / τ)(· | x_<t). The hidden states
  of both models are computed for all b rows at once ([b, T, H]); the logits and their log
  softmax only for `chunk` sequences at a time ([chunk, T, V] each, `lax.map`), reduced to
  per-sequence sums inside the chunk (`divergences.sequence.accumulated_kl`), so memory is
  O(b·T·H + chunk·T·V), never [b, T, V].
  """
  h_p = oracle.apply(oracle_params, tokens, method='hidden_states')  # [b, T, H_p]
  h_q = generator.apply(params, tokens, method='hidden_states')      # [b, T, H_q]
  width_p = h_p.shape[-1]

  def one(h):  # [chunk, T, H_p + H_q] -> [chunk]
    lp = jax.nn.log_softmax(oracle.apply(oracle_params, h[..., :width_p],
                                         method='logits_from_hidden'))
    lq = jax.nn.log_softmax(generator.apply(params, h[..., width_p:],
                                            method='logits_from_hidden') / temperature)
    return sequence_lib.accumulated_kl(lp, lq)

  return batched(one, jnp.concatenate([h_p, h_q], axis=-1), chunk)


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
  other Q samples), as (mean, se) over the Q samples (benchmarks/analysis/bleu.py, a host callback).

  With `eval_cfg.exposure_bias`, also the exposure-bias diagnostic (Arora et al. 2022;
  `divergences.sequence.exposure_bias`): 'exposure_model' R = E_{x~Q_τ}[Σ_t KL(P_t ‖ Q_τ,t)]/T
  on the first `eval_cfg.exposure_samples` Q samples above, 'exposure_oracle' ε = the same on
  as many sequences of the P side (= kl_pq in expectation) and 'exacc_err' (R − ε)/ε
  (delta-method se); with `eval_cfg.exact` their exact values too. Q_τ is both the sampler of
  the prefixes and the model scored, as for every other metric. The [T, V] logits of both
  models are held for `sequences_per_chunk` sequences at a time
  (`generator.logits_chunk_bytes`).

  The returned function is pure and unjitted: the runner jits and maps it over seeds.
  All values are per token.
  """
  n, bs = eval_cfg.num_samples, eval_cfg.batch_size
  num_test, seq_len = problem.test.shape
  pis = jnp.asarray(pis, jnp.float32)
  oracle = problem.model
  vocab_size = oracle.vocab_size
  kl_chunk = sequences_per_chunk(generator, vocab_size, seq_len, bs)
  num_exposure = eval_cfg.exposure_samples
  if eval_cfg.exposure_bias and not (num_exposure == 0 or num_exposure >= 2):
    raise ValueError('--config.eval.exposure_samples: must be 0 (all samples) or at least 2 '
                     f'(for a standard error), got {num_exposure!r}')
  # The first K of each side: both are i.i.d. samples, so any K of them are too.
  k_q = n if num_exposure == 0 else min(n, num_exposure)
  k_p = num_test if num_exposure == 0 else min(num_test, num_exposure)

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
    if problem.valid is not None:  # model selection's own held-out set (problem.num_valid)
      out['nll_valid'] = divergences.mean_and_se(-batched(log_q, problem.valid, bs) / seq_len)
    if eval_cfg.bleu:
      refs = sample_chunked(oracle, problem.params, jax.random.fold_in(key, 2), num_test, bs,
                            seq_len, 1.0, eval_cfg.sampler)
      out['bleu'] = divergences.mean_and_se(
          bleu.bleu_jax(x_q, refs, max_n=eval_cfg.bleu_n))
      out['self_bleu'] = divergences.mean_and_se(
          bleu.self_bleu_jax(x_q, max_n=eval_cfg.bleu_n))
    if eval_cfg.exposure_bias:
      def acc(x):
        return accumulated_kl(oracle, problem.params, generator, params, x, tau, kl_chunk)
      out.update(sequence_lib.exposure_bias(batched(acc, x_q[:k_q], min(bs, k_q)),
                                            batched(acc, x_p[:k_p], min(bs, k_p)),
                                            seq_len=seq_len))
    if eval_cfg.exact:
      ex = divergences.exact(log_p, log_q,
                             vocab_size=vocab_size, seq_len=seq_len, pis=pis,
                             chunk_size=eval_cfg.enumerate_chunk,
                             max_sequences=eval_cfg.max_enumerate)
      if eval_cfg.exposure_bias:
        ex.update(sequence_lib.exact_exposure(
            lambda x: next_token_log_probs(oracle, problem.params, x),
            lambda x: next_token_log_probs(generator, params, x, tau),
            vocab_size=vocab_size, seq_len=seq_len,
            chunk_size=sequences_per_chunk(generator, vocab_size, seq_len,
                                           eval_cfg.enumerate_chunk),
            max_sequences=eval_cfg.max_enumerate))
      out.update({f'exact_{k}': ex[k] for k in EXACT_METRICS if k in ex})
      out['exact_mass_q'] = ex['mass_q']
    return out

  return evaluate
