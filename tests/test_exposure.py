"""The exposure-bias diagnostic (Arora et al. 2022): divergences.sequence and its evaluation.

R = E_{x~Q}[Σ_t KL(P_t‖Q_t)]/T on the model's own prefixes, ε = the same on oracle prefixes
(= KL(P‖Q)/T by the chain rule), exacc_err = (R − ε)/ε. Tabular references: first-order
tables [T, V (previous token), V (next token)] whose prefix marginals are a product of matrices,
so R and ε have a closed form independent of any enumeration of sequences.
"""

import itertools
import os
import tempfile
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

import _smoke
from benchmarks import configs
from benchmarks.analysis import report
from benchmarks.engine import evaluate as evaluate_lib
from divergences import sequence
from models import lstm
from models import oracle as oracle_lib
import objectives

NAMES = ('exposure_model', 'exposure_oracle', 'exacc_err')


def test_accumulated_kl_is_the_hand_computed_sum_of_per_step_kls():
  # Step 0: P = (½, ½, 0), Q = (¼, ¼, ½): KL = log 2 (the p = 0 entry adds 0).
  # Step 1: P uniform, Q = (½, ¼, ¼): KL = ⅓ log(⅔ · (4/3)²) = ⅓ log(32/27).
  with np.errstate(divide='ignore'):  # log 0
    p = np.log([[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
  q = np.log([[0.25, 0.25, 0.5], [0.5, 0.25, 0.25]])
  expected = np.log(2) + np.log(32 / 27) / 3
  out = jax.jit(sequence.accumulated_kl)(jnp.asarray(p, jnp.float32),
                                         jnp.asarray(q, jnp.float32))
  np.testing.assert_allclose(out, expected, rtol=1e-6)
  # Batched: [..., T, V] -> [...]; swapping the steps' roles of P and Q is another number.
  batch = jnp.asarray(np.stack([[p, q], [q, p]]), jnp.float32)  # [2, 2 (P, Q), T, V]
  both = sequence.accumulated_kl(batch[:, 0], batch[:, 1])
  assert both.shape == (2,)
  np.testing.assert_allclose(both[0], expected, rtol=1e-6)
  assert np.isinf(both[1])  # Q puts mass where P's step 0 has none: KL(Q‖P) = +inf.
  with pytest.raises(ValueError, match=r'\[\.\.\., T, V\]'):
    sequence.accumulated_kl(jnp.zeros(3), jnp.zeros(3))


def test_exposure_bias_means_and_delta_method_se_match_numpy():
  rng = np.random.default_rng(0)
  acc_q, acc_p = rng.gamma(3.0, 1.0, 400), rng.gamma(2.0, 1.0, 300)
  out = sequence.exposure_bias(jnp.asarray(acc_q, jnp.float32), jnp.asarray(acc_p, jnp.float32),
                               seq_len=4)
  r, eps = acc_q.mean() / 4, acc_p.mean() / 4
  se_r, se_e = acc_q.std(ddof=1) / 4 / 20, acc_p.std(ddof=1) / 4 / np.sqrt(300)
  np.testing.assert_allclose(out['exposure_model'], (r, se_r), rtol=1e-5)
  np.testing.assert_allclose(out['exposure_oracle'], (eps, se_e), rtol=1e-5)
  np.testing.assert_allclose(out['exacc_err'][0], r / eps - 1, rtol=1e-5)
  np.testing.assert_allclose(out['exacc_err'][1],
                             np.sqrt(se_r**2 / eps**2 + r**2 * se_e**2 / eps**4), rtol=1e-5)
  with pytest.raises(ValueError, match='acc_on_p'):
    sequence.exposure_bias(jnp.ones(4), jnp.ones(1), seq_len=4)


def test_delta_method_se_of_exacc_err_is_its_spread_over_replicates():
  # 4,000 replicate evaluations of (M, N) = (200, 150) sequences: the delta-method se should
  # be the standard deviation of the ratio estimates (within the sampling noise of ~2%).
  rng = np.random.default_rng(1)
  acc_q = jnp.asarray(rng.gamma(3.0, 1.0, (4000, 200)), jnp.float32)
  acc_p = jnp.asarray(rng.gamma(2.0, 1.2, (4000, 150)), jnp.float32)
  out = jax.vmap(lambda q, p: sequence.exposure_bias(q, p, seq_len=1)['exacc_err'])(acc_q, acc_p)
  mean, se = np.asarray(out[0]), np.asarray(out[1])
  np.testing.assert_allclose(np.median(se), mean.std(), rtol=0.06)
  np.testing.assert_allclose(mean.mean(), 3.0 / 2.4 - 1, atol=3 * mean.std() / np.sqrt(4000)
                             + 0.01)  # the ratio estimator's O(1/N) bias is ~0.006 here


def _table(rng, vocab_size, seq_len):
  return scipy.special.log_softmax(rng.normal(size=(seq_len, vocab_size, vocab_size)), -1)


def _next_log_probs_fn(table):
  """int32 [n, T] -> [n, T, V]: row t is table[t, x_{t−1}] with x_{−1} = 0."""
  table = jnp.asarray(table)

  def fn(x):
    prev = jnp.concatenate([jnp.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
    return table[jnp.arange(x.shape[1]), prev]

  return fn


def _closed_form(table_p, table_q):
  """(R, ε) per token from the prefix marginals of Q and P (no sequence enumeration)."""
  seq_len, vocab_size, _ = table_p.shape
  kl = np.sum(np.exp(table_p) * (table_p - table_q), axis=-1)  # [T, V]: KL given x_{t−1}
  out = []
  for table in (table_q, table_p):
    marginal = np.eye(vocab_size)[0]  # law of x_{−1} (the start token)
    total = 0.0
    for t in range(seq_len):
      total += marginal @ kl[t]
      marginal = marginal @ np.exp(table[t])
    out.append(total / seq_len)
  return out


def test_exact_exposure_equals_closed_form_and_oracle_prefixes_give_kl_pq():
  rng = np.random.default_rng(2)
  table_p, table_q = _table(rng, 3, 4), _table(rng, 3, 4)
  r, eps = _closed_form(table_p, table_q)
  # The chain rule by brute force: KL(P‖Q)/T over all V^T sequences.
  x = np.array(list(itertools.product(range(3), repeat=4)))
  prev = np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
  lp = table_p[np.arange(4), prev, x].sum(-1)
  lq = table_q[np.arange(4), prev, x].sum(-1)
  np.testing.assert_allclose(eps, np.sum(np.exp(lp) * (lp - lq)) / 4, rtol=1e-12)
  with jax.enable_x64(True):
    fp, fq = _next_log_probs_fn(table_p), _next_log_probs_fn(table_q)
    ex = jax.jit(lambda: sequence.exact_exposure(fp, fq, vocab_size=3, seq_len=4,
                                                 chunk_size=7))()  # 12 chunks, last padded
    seq = sequence.exact(lambda x: jnp.take_along_axis(fp(x), x[..., None], -1).sum((1, 2)),
                         lambda x: jnp.take_along_axis(fq(x), x[..., None], -1).sum((1, 2)),
                         vocab_size=3, seq_len=4, pis=(0.5,), chunk_size=7)
    np.testing.assert_allclose(ex['exposure_model'], r, rtol=1e-12)
    np.testing.assert_allclose(ex['exposure_oracle'], eps, rtol=1e-12)
    np.testing.assert_allclose(ex['exposure_oracle'], seq['kl_pq'], rtol=1e-12)
    np.testing.assert_allclose(ex['exacc_err'], (r - eps) / eps, rtol=1e-10)
  # float32, as evaluations run: the same to rounding.
  ex32 = sequence.exact_exposure(_next_log_probs_fn(table_p.astype(np.float32)),
                                 _next_log_probs_fn(table_q.astype(np.float32)),
                                 vocab_size=3, seq_len=4)
  np.testing.assert_allclose([ex32['exposure_model'], ex32['exposure_oracle']], [r, eps],
                             rtol=1e-5)
  with pytest.raises(ValueError, match='max_sequences'):
    sequence.exact_exposure(fp, fq, vocab_size=3, seq_len=4, max_sequences=80)


def _sample(rng, table, n):
  seq_len, vocab_size, _ = table.shape
  x, prev = np.zeros((n, seq_len), np.int32), np.zeros(n, np.int64)
  for t in range(seq_len):
    cdf = np.cumsum(np.exp(table[t, prev]), axis=-1)
    x[:, t] = np.minimum((rng.uniform(size=(n, 1)) * cdf[:, -1:] > cdf).sum(-1), vocab_size - 1)
    prev = x[:, t]
  return x


def test_monte_carlo_exposure_is_within_a_few_se_of_the_closed_form():
  rng = np.random.default_rng(3)
  table_p, table_q = _table(rng, 4, 5), _table(rng, 4, 5)
  r, eps = _closed_form(table_p, table_q)
  fp = _next_log_probs_fn(table_p.astype(np.float32))
  fq = _next_log_probs_fn(table_q.astype(np.float32))
  acc = jax.jit(lambda x: sequence.accumulated_kl(fp(x), fq(x)))
  out = sequence.exposure_bias(acc(_sample(rng, table_q, 4000)), acc(_sample(rng, table_p, 3000)),
                               seq_len=5)
  for name, exact in zip(NAMES, (r, eps, (r - eps) / eps)):
    mean, se = out[name]
    assert 0 < se < 0.1 * abs(exact), name
    assert abs(mean - exact) < 4 * se, (name, float(mean), exact, float(se))


def test_chunked_accumulated_kl_equals_the_unchunked_one_and_stays_small():
  # V large enough that [N, T, V] (N = 64, T = 10, V = 2,000: 5 MB) dwarfs a chunk.
  models = [lstm.LSTMLM(vocab_size=2_000, embed_dim=8, hidden_dim=h, seq_len=10,
                        init_scale=s, logits_chunk_bytes=2 ** 18) for h, s in ((8, 1.0), (6, .3))]
  x = jax.random.randint(jax.random.PRNGKey(0), (64, 10), 0, 2_000)
  (op, gp) = [m.init(jax.random.PRNGKey(i), x[:1]) for i, m in enumerate(models)]
  oracle, gen = models
  chunk = evaluate_lib.sequences_per_chunk(gen, 2_000, 10, 64)
  assert chunk == 3  # 256 KiB / (10 · 2,000 · 4 bytes)
  reference = jax.jit(lambda x: sequence.accumulated_kl(
      evaluate_lib.next_token_log_probs(oracle, op, x),
      evaluate_lib.next_token_log_probs(gen, gp, x, 0.7)))(x)
  # 64 = 21 chunks of 3 sequences + a padded one.
  fn = jax.jit(lambda x: evaluate_lib.accumulated_kl(oracle, op, gen, gp, x, 0.7, chunk))
  compiled = fn.lower(x).compile()
  np.testing.assert_allclose(compiled(x), reference, rtol=2e-6)
  full = 64 * 10 * 2_000 * 4
  assert compiled.memory_analysis().temp_size_in_bytes < full / 4
  # The seqgan preset: 10 of its 20 × 5,000 logits per 4 MiB chunk.
  seqgan = configs.get_preset('seqgan')
  assert evaluate_lib.sequences_per_chunk(
      lstm.LSTMLM(vocab_size=5_000, embed_dim=32, hidden_dim=32, seq_len=20),
      5_000, 20, seqgan.eval.batch_size) == 10


def _prefix_exposure(oracle, op, gen, gp, tau, vocab_size, seq_len):
  """R and ε per token as Σ_t Σ_{x<t} Q(x<t) KL_t(x<t): every prefix, not every sequence."""
  x = np.array(list(itertools.product(range(vocab_size), repeat=seq_len - 1)), np.int32)
  x = np.concatenate([x, np.zeros_like(x[:, :1])], axis=1)  # the last token is never read
  lp = np.asarray(evaluate_lib.next_token_log_probs(oracle, op, x), np.float64)
  lq = np.asarray(evaluate_lib.next_token_log_probs(gen, gp, x, tau), np.float64)
  kl = np.sum(np.exp(lp) * (lp - lq), axis=-1)  # [V^(T−1), T]
  out = []
  for logs in (lq, lp):
    tok = np.take_along_axis(logs, x[..., None], -1)[..., 0]
    prefix = np.concatenate([np.zeros((len(x), 1)), np.cumsum(tok, 1)[:, :-1]], 1)  # log Q(x<t)
    total = 0.0
    for t in range(seq_len):
      # Each prefix of length t appears V^(T−1−t) times among the rows.
      total += np.sum(np.exp(prefix[:, t]) * kl[:, t]) / vocab_size ** (seq_len - 1 - t)
    out.append(total / seq_len)
  return out


def test_evaluation_on_the_enumerable_problem_matches_enumeration():
  config = configs.get_preset('enumerable')
  config.problem.update(vocab_size=5, seq_len=5, num_train=64, num_test=3_000)
  config.eval.update(num_samples=3_000, batch_size=1_000, exposure_samples=0)
  problem = oracle_lib.make_problem(config.problem)
  gen = objectives.make('mle', config, problem)
  params = gen.generator_params(gen.init(jax.random.PRNGKey(0)))
  evaluate = jax.jit(evaluate_lib.make_evaluate(problem, gen.generator, config.eval, config.pis))
  outs = {1.0: evaluate(params, jax.random.PRNGKey(1), 1.0)}
  with _smoke.counting_compiles() as compiles:  # Q_τ samples the prefixes and is scored
    outs[0.7] = evaluate(params, jax.random.PRNGKey(1), 0.7)
  assert compiles.count == 0  # another τ: no recompile
  for tau, out in outs.items():
    r, eps = _prefix_exposure(problem.model, problem.params, gen.generator, params, tau, 5, 5)
    np.testing.assert_allclose(out['exact_exposure_model'], r, rtol=1e-5)
    np.testing.assert_allclose(out['exact_exposure_oracle'], eps, rtol=1e-5)
    np.testing.assert_allclose(out['exact_exposure_oracle'], out['exact_kl_pq'], rtol=1e-5)
    np.testing.assert_allclose(out['exact_exacc_err'], r / eps - 1, rtol=1e-4, atol=1e-6)
    for name in NAMES:
      mean, se = out[name]
      assert abs(mean - out[f'exact_{name}']) < 4 * se, (tau, name, mean, se)
    # On oracle prefixes, Σ_t KL_t is a Rao-Blackwellised kl_pq: the same mean, smaller se.
    assert out['exposure_oracle'][1] < out['kl_pq'][1]


def test_smoke_run_reports_the_diagnostic_in_rows_and_summary():
  config = _smoke.smoke_config()
  config.train.num_steps = 0  # the rows of the initial evaluation: no training to compile
  _, rows = _smoke.final_rows('mle', config)
  for row in rows:
    for name in NAMES:
      assert np.isfinite(row[name]) and row[f'{name}_se'] > 0, name
    np.testing.assert_allclose(row['exacc_err'],
                               row['exposure_model'] / row['exposure_oracle'] - 1, rtol=1e-4)
  out = tempfile.mkdtemp()
  report.write_report(out, rows, title='t')
  with open(os.path.join(out, 'summary.md')) as f:
    header = next(line for line in f if line.startswith('| scheme'))
  assert all(f' {name} ' in header for name in NAMES)


def test_switch_and_sample_count():
  config = _smoke.smoke_config()
  problem = oracle_lib.make_problem(config.problem)
  gen = objectives.make('mle', config, problem)
  params = gen.generator_params(gen.init(jax.random.PRNGKey(0)))

  def keys(**fields):
    config.eval.update(**fields)
    evaluate = evaluate_lib.make_evaluate(problem, gen.generator, config.eval, config.pis)
    return set(jax.eval_shape(evaluate, params, jax.random.PRNGKey(0)))

  assert not keys(exposure_bias=False) & set(NAMES)
  assert set(NAMES) <= keys(exposure_bias=True)
  config.eval.exposure_samples = 1
  with pytest.raises(ValueError, match='--config.eval.exposure_samples'):
    evaluate_lib.make_evaluate(problem, gen.generator, config.eval, config.pis)
  # Only the first exposure_samples sequences of each side are scored.
  config.eval.update(exposure_samples=10, num_samples=64)
  small = evaluate_lib.make_evaluate(problem, gen.generator, config.eval, config.pis)
  seen = []
  real = sequence.exposure_bias

  def spy(acc_on_q, acc_on_p, *, seq_len):
    seen.append((acc_on_q.shape, acc_on_p.shape))
    return real(acc_on_q, acc_on_p, seq_len=seq_len)

  with mock.patch.object(sequence, 'exposure_bias', spy):
    jax.eval_shape(small, params, jax.random.PRNGKey(0))
  assert seen == [((10,), (10,))]
