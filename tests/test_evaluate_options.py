"""Evaluation options: the temperature axis (eval.alphas), model selection, fresh test sets, BLEU."""

import tempfile
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _smoke
from benchmarks.engine import evaluate as evaluate_lib
from benchmarks.engine import rundir
from benchmarks.engine import train
from models import oracle as oracle_lib
import objectives

ALPHAS = (0.5, 1.0, 2.0)


def _config(**eval_fields):
  config = _smoke.smoke_config()
  config.eval.update(alphas=ALPHAS, **eval_fields)
  return config


def _train(config, out=None, runner_patch=None):
  problem = oracle_lib.make_problem(config.problem)
  scheme = objectives.make('mle', config, problem)
  out = out or tempfile.mkdtemp()
  store = rundir.Store(out)
  if runner_patch is None:
    train.train_scheme('mle', scheme, problem, config, store, config_hash='x',
                       log=lambda s: None)
  else:
    with mock.patch.object(train, 'make_runner', runner_patch):
      train.train_scheme('mle', scheme, problem, config, store,
                          config_hash='x', log=lambda s: None)
  return store.rows, out


def _alpha_rows(rows):
  return sorted((r for r in rows if r['phase'] == 'alpha'),
                key=lambda r: (r['seed'], r['alpha']))


def _strip(row):
  return {k: v for k, v in row.items() if k not in rundir.PER_INVOCATION}



def test_alpha_one_equals_the_plain_evaluation_and_the_grid_compiles_once():
  config = _config()
  problem = oracle_lib.make_problem(config.problem)
  scheme = objectives.make('mle', config, problem)
  runner = train.make_runner(scheme, problem, config)
  keys = train.run_keys(config.seed, range(config.num_seeds))
  params = runner.generator_params(runner.init(keys))
  first = runner.evaluate_alphas(params, keys, jnp.asarray(ALPHAS))
  with _smoke.counting_compiles() as compiles:
    second = runner.evaluate_alphas(params, keys, jnp.asarray((0.7, 1.3, 2.9)))
  assert compiles.count == 0  # another grid: no recompile
  evaluate = evaluate_lib.make_evaluate(problem, scheme.generator, config.eval, config.pis)
  for r in range(config.num_seeds):
    p = jax.tree.map(lambda x: x[r], params)
    plain = evaluate(p, jax.random.fold_in(keys[r], train.ALPHA_SALT))
    for name, (mean, se) in plain.items():
      np.testing.assert_allclose(first[name][0][r, 1], mean, rtol=1e-5, err_msg=name)
      np.testing.assert_allclose(first[name][1][r, 1], se, rtol=1e-5, err_msg=name)
    # α multiplies the logits: α = 2 is the generator at temperature 1/2.
    cold = evaluate(p, jax.random.fold_in(keys[r], train.ALPHA_SALT), 0.5)
    np.testing.assert_allclose(first['entropy_q'][0][r, 2], cold['entropy_q'][0], rtol=1e-5)
  # Sharper (α > 1) means lower entropy on the same key.
  assert np.all(first['entropy_q'][0][:, 2] < first['entropy_q'][0][:, 1])
  assert np.all(second['entropy_q'][0][:, 0] > second['entropy_q'][0][:, 1])


def test_fresh_test_changes_only_the_p_side():
  config = _config()
  problem = oracle_lib.make_problem(config.problem)
  gen = objectives.make('mle', config, problem)
  params = gen.generator_params(gen.init(jax.random.PRNGKey(0)))
  key = jax.random.PRNGKey(7)
  fixed = evaluate_lib.make_evaluate(problem, gen.generator, config.eval, config.pis)(
      params, key)
  config.eval.fresh_test = True
  fresh_fn = evaluate_lib.make_evaluate(problem, gen.generator, config.eval, config.pis)
  fresh = fresh_fn(params, key)
  for name in ('nll_oracle', 'entropy_q', 'kl_qp'):  # the Q side: same samples
    np.testing.assert_array_equal(fixed[name][0], fresh[name][0])
  # The P side: another sample of the same oracle (agrees within a few standard errors).
  assert fixed['entropy_p'][0] != fresh['entropy_p'][0]
  se = np.hypot(fixed['entropy_p'][1], fresh['entropy_p'][1])
  assert abs(fixed['entropy_p'][0] - fresh['entropy_p'][0]) < 5 * se
  # Keyed like the evaluation: the same key gives the same numbers, another key others.
  np.testing.assert_array_equal(fresh_fn(params, key)['nll_test'][0], fresh['nll_test'][0])
  assert fresh_fn(params, jax.random.PRNGKey(8))['entropy_p'][0] != fresh['entropy_p'][0]


def test_nll_test_selection_picks_the_best_evaluation_and_last_the_final():
  rows, _ = _train(_config(select='nll_test'))
  alpha = _alpha_rows(rows)
  assert len(alpha) == len(ALPHAS) * 2
  for seed in (0, 1):
    train_rows = [r for r in rows if r['phase'] == 'train' and r['seed'] == seed]
    best = min(train_rows, key=lambda r: r['nll_test'])
    assert {r['step'] for r in alpha if r['seed'] == seed} == {best['step']}
  rows, out = _train(_config(select='last'))
  assert {r['step'] for r in _alpha_rows(rows)} == {10}
  assert not any('best' in name for name in __import__('os').listdir(out + '/checkpoints'))


def test_nll_valid_selection_uses_the_validation_set_apart_from_the_test_set():
  # problem.num_valid adds a held-out set of its own key: the train and test sets are those
  # drawn without it, every evaluation reports nll_valid on it, and eval.select='nll_valid'
  # picks, per run, the evaluation with the lowest nll_valid (not nll_test).
  config = _config(select='nll_valid')
  config.problem.num_valid = 128
  plain = oracle_lib.make_problem(_config().problem)
  problem = oracle_lib.make_problem(config.problem)
  assert plain.valid is None
  np.testing.assert_array_equal(problem.train, plain.train)
  np.testing.assert_array_equal(problem.test, plain.test)
  assert problem.valid.shape == (128, config.problem.seq_len)
  assert not np.array_equal(problem.valid, problem.test[:128])
  rows, _ = _train(config)
  alpha = _alpha_rows(rows)
  for seed in (0, 1):
    train_rows = [r for r in rows if r['phase'] == 'train' and r['seed'] == seed]
    assert all(np.isfinite(r['nll_valid']) and r['nll_valid_se'] > 0 for r in train_rows)
    best = min(train_rows, key=lambda r: r['nll_valid'])
    assert {r['step'] for r in alpha if r['seed'] == seed} == {best['step']}


def test_interrupted_run_resumes_to_identical_alpha_rows():
  config = _config(select='nll_test')  # the selection's own checkpoint resumes too
  reference, _ = _train(config)
  original = train.make_runner
  out = tempfile.mkdtemp()

  def dies_after_one_chunk(*args, **kwargs):
    runner = original(*args, **kwargs)
    calls = []

    def chunk(*a):
      if calls:
        raise KeyboardInterrupt  # as a kill after the first chunk's checkpoint
      calls.append(1)
      return runner.chunk(*a)
    return runner._replace(chunk=chunk)

  with pytest.raises(KeyboardInterrupt):
    _train(config, out, dies_after_one_chunk)
  resumed, _ = _train(config, out)
  assert [_strip(r) for r in _alpha_rows(resumed)] == [
      _strip(r) for r in _alpha_rows(reference)]
  # Killed after the last checkpoint but before the sweep: the sweep alone is redone.
  store = rundir.Store(out)
  store.rows = [r for r in store.rows if r['phase'] != 'alpha']
  store.save()
  again, _ = _train(config, out)
  assert [_strip(r) for r in _alpha_rows(again)] == [_strip(r) for r in _alpha_rows(reference)]


def test_bad_alphas_and_selection_name_their_flag():
  from benchmarks.engine import configuration
  for field, value, flag in [('alphas', (1.0, -0.5), '--config.eval.alphas'),
                             ('alphas', ('a',), '--config.eval.alphas'),
                             ('select', 'best', '--config.eval.select'),
                             ('select', 'nll_valid', '--config.eval.select: .nll_valid. '
                                                     'selects on the validation set')]:
    config = _config()
    config.eval[field] = value
    with pytest.raises(ValueError, match=flag):
      configuration.validate(config)
  for bad in (1, -1):
    config = _config()
    config.problem.num_valid = bad
    with pytest.raises(ValueError, match='--config.problem.num_valid: must be 0'):
      configuration.validate(config)


def test_bleu_metrics_equal_the_host_functions_on_the_same_samples():
  from benchmarks.analysis import bleu
  config = _config(bleu=True, bleu_n=3)
  problem = oracle_lib.make_problem(config.problem)
  gen = objectives.make('mle', config, problem)
  params = gen.generator_params(gen.init(jax.random.PRNGKey(0)))
  key = jax.random.PRNGKey(3)
  out = jax.jit(evaluate_lib.make_evaluate(problem, gen.generator, config.eval, config.pis))(
      params, key)
  ec = config.eval
  x_q = evaluate_lib.sample_chunked(gen.generator, params, key, ec.num_samples, ec.batch_size,
                                    config.problem.seq_len, 1.0, ec.sampler)
  refs = evaluate_lib.sample_chunked(problem.model, problem.params, jax.random.fold_in(key, 2),
                                     config.problem.num_test, ec.batch_size,
                                     config.problem.seq_len, 1.0, ec.sampler)
  b = bleu.sentence_bleu(np.asarray(x_q), np.asarray(refs), max_n=3)
  s = bleu.self_bleu(np.asarray(x_q), max_n=3)
  np.testing.assert_allclose(out['bleu'][0], b.mean(), rtol=1e-5)
  np.testing.assert_allclose(out['bleu'][1], b.std(ddof=1) / np.sqrt(len(b)), rtol=1e-4)
  np.testing.assert_allclose(out['self_bleu'][0], s.mean(), rtol=1e-5)
  assert 0 < out['self_bleu'][0] < 1
