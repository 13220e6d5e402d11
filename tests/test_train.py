"""Tests of the seed-mapped training loop: shapes, tracing, strategies, determinism, resume."""

import functools
import os
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import configs
from benchmarks.engine import configuration
from benchmarks.engine import files
from benchmarks.engine import progress
from benchmarks.engine import rundir
from benchmarks.engine import train
from models import oracle as oracle_lib
import objectives


def _config(strategy='map', **train_overrides):
  c = configs.get_preset('smoke')
  c.train.update(dict(dict(seed_strategy=strategy, eval_every=5, num_steps=10),
                      **train_overrides))
  c.eval.update(num_samples=64, batch_size=32)
  return c


@functools.lru_cache(maxsize=None)
def _problem():
  return oracle_lib.make_problem(_config().problem)


@functools.lru_cache(maxsize=None)
def _runner(strategy='map', eval_every=5, map_batch_size=2):
  """One compiled runner per setting (compiling dominates these tests' time)."""
  config = _config(strategy, eval_every=eval_every, map_batch_size=map_batch_size)
  scheme = objectives.make('mle', config, _problem())
  return train.make_runner(scheme, _problem(), config)


def _run(config, seeds, num_chunks=1):
  """Final states and evaluations of the given seed indices after num_chunks chunks."""
  tc = config.train
  runner = _runner(tc.seed_strategy, tc.eval_every, tc.map_batch_size)
  keys = train.run_keys(config.seed, seeds)
  pis = train.pis_array([(s, None) for s in seeds])
  states = runner.init(keys)
  for c in range(num_chunks):
    states, metrics = runner.chunk(states, keys, pis, jnp.int32(c * config.train.eval_every),
                                   _problem().train)
  return states, metrics, runner.evaluate(states, keys, num_chunks * config.train.eval_every)


class RunnerTest(parameterized.TestCase):

  def test_shapes_over_seeds(self):
    config = _config()
    states, metrics, evals = _run(config, [0, 1, 2])
    v, e = config.problem.vocab_size, config.generator.embed_dim
    chex.assert_shape(states.params['params']['embedding'], (3, v, e))
    chex.assert_shape(metrics['loss'], (3, config.train.eval_every))
    chex.assert_shape(evals['nll_test'], [(3,), (3,)])
    chex.assert_shape(evals['js_pi'], [(3, len(config.pis))] * 2)
    chex.assert_tree_all_finite((states.params, metrics, evals))

  def test_schemes_of_one_run_share_the_evaluation_programs(self):
    # Built once per (problem, generator, evaluation settings): a program with a host callback
    # (eval.bleu) is not stored in the persistent compilation cache, so sharing is what keeps
    # the schemes of a run to one compile of it. Building compiles nothing.
    config = _config()
    config.eval.bleu = True
    problem = _problem()
    mle_runner = train.make_runner(objectives.make('mle', config, problem), problem, config)
    ss_runner = train.make_runner(objectives.make('scheduled_sampling', config, problem),
                                  problem, config)
    self.assertIs(ss_runner.evaluate_generators, mle_runner.evaluate_generators)
    self.assertIs(ss_runner.evaluate_alphas, mle_runner.evaluate_alphas)
    for change in ({'eval.num_samples': 32}, {'pis': (0.25,)}, {'train.seed_strategy': 'vmap'}):
      other = _config()
      other.eval.bleu = True
      other.update_from_flattened_dict(change)
      runner = train.make_runner(objectives.make('mle', other, problem), problem, other)
      self.assertIsNot(runner.evaluate_generators, mle_runner.evaluate_generators, change)
    problem2 = oracle_lib.make_problem(config.problem)  # equal values, another problem
    runner = train.make_runner(objectives.make('mle', config, problem2), problem2, config)
    self.assertIsNot(runner.evaluate_generators, mle_runner.evaluate_generators)

  def test_chunk_traces_once(self):
    config = _config()
    scheme = objectives.make('mle', config, _problem())
    chex.clear_trace_counter()
    runner = train.make_runner(scheme, _problem(), config, max_traces=1)
    keys = train.run_keys(0, [0, 1])
    pis = train.pis_array([(0, None), (1, None)])
    states = runner.init(keys)
    for c in range(3):  # a new start step must not retrace
      states, _ = runner.chunk(states, keys, pis, jnp.int32(5 * c), _problem().train)
    # The guard is live: a different number of seeds is a new trace, and is refused.
    keys3 = train.run_keys(0, [0, 1, 2])
    with self.assertRaises(AssertionError):
      runner.chunk(runner.init(keys3), keys3, train.pis_array([(0, None)] * 3), jnp.int32(0),
                   _problem().train)

  @parameterized.parameters('map', 'vmap', 'batched')
  def test_strategy_equals_single_seed_runs(self, strategy):
    seeds = [0, 1, 2]
    states, _, evals = _run(_config(strategy, map_batch_size=2), seeds)
    for i, s in enumerate(seeds):
      single, _, ev1 = _run(_config('map'), [s])
      chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], states.params),
                                  jax.tree.map(lambda x: x[0], single.params), atol=1e-5)
      np.testing.assert_allclose(evals['kl_pq'][0][i], ev1['kl_pq'][0][0], atol=1e-5)
      np.testing.assert_allclose(evals['js_pi'][0][i], ev1['js_pi'][0][0], atol=1e-5)

  def test_auto_is_map_on_cpu_and_vmap_on_accelerators(self):
    self.assertEqual(train.concrete_strategy('auto', 'cpu'), 'map')
    for platform in ('gpu', 'cuda', 'rocm', 'tpu'):
      self.assertEqual(train.concrete_strategy('auto', platform), 'vmap')
    for strategy in ('map', 'vmap', 'batched'):
      self.assertEqual(train.concrete_strategy(strategy, 'gpu'), strategy)
    config = _config('auto')
    self.assertEqual(configuration.with_concrete_strategy(config).train.seed_strategy,
                     train.concrete_strategy('auto', jax.default_backend()))
    self.assertEqual(config.train.seed_strategy, 'auto')  # a copy: the caller's is unchanged

  def test_same_key_same_numbers(self):
    a = _run(_config(), [0, 1])
    b = _run(_config(), [0, 1])
    chex.assert_trees_all_equal(a, b)
    # Different seeds really differ.
    self.assertFalse(np.allclose(a[0].params['params']['Wo'][0], a[0].params['params']['Wo'][1]))

  def test_chunking_does_not_change_numbers(self):
    one = _run(_config(eval_every=10), [0])[0]
    two = _run(_config(eval_every=5), [0], num_chunks=2)[0]
    chex.assert_trees_all_close(one.params, two.params, atol=1e-6)


def _nan_scheme(config, problem):
  """MLE, except runs trained with π > 0.5 get NaN parameters (a diverging seed)."""
  mle = objectives.make('mle', config, problem)

  def step(state, batch, key, pi):
    state, metrics = mle.step(state, batch, key, pi)
    poison = jnp.where(pi > 0.5, jnp.nan, 1.0)
    return state.replace(params=jax.tree.map(lambda p: p * poison, state.params)), metrics

  return mle._replace(step=step, uses_pi=True)


def _strip(rows):
  return [{k: v for k, v in r.items() if k not in rundir.PER_INVOCATION} for r in rows]


def _interrupt_and_resume(scheme, problem, config, step, before_resume=lambda out: None):
  """Trains into a fresh directory, interrupted right after the progress line of `step`,
  calls before_resume(directory), then reruns it. Returns (the last row step before the
  rerun, the rerun's first progress line, the rows after it)."""
  out = tempfile.mkdtemp()

  def interrupt(line):
    if f'step {step}/' in line:
      raise KeyboardInterrupt
  try:
    train.train_scheme('mle', scheme, problem, config, rundir.Store(out),
                        config_hash='x', log=interrupt)
  except KeyboardInterrupt:
    pass
  else:
    raise AssertionError(f'never reached step {step}')
  before_resume(out)
  resumed, lines = rundir.Store(out), []
  last = max(r['step'] for r in resumed.rows)
  train.train_scheme('mle', scheme, problem, config, resumed,
                      config_hash='x', log=lines.append)
  return last, lines[0], rundir.Store(out).rows


class TrainSchemeTest(absltest.TestCase):

  def test_diverged_runs_are_flagged_and_isolated(self):
    config = _config()
    config.pis = (0.2, 0.9)
    out = tempfile.mkdtemp()
    store = rundir.Store(out)
    train.train_scheme('nan', _nan_scheme(config, _problem()), _problem(), config, store,
                       config_hash='x', log=lambda s: None)
    last = [r for r in store.rows if r['step'] == 10]
    self.assertLen(last, 2 * config.num_seeds)
    for r in last:
      self.assertEqual(r['diverged'], r['pi'] == 0.9)
      if r['diverged']:
        self.assertIsNone(r['kl_pq'])
    # Healthy runs equal plain MLE runs of the same seeds.
    _, _, evals = _run(config, list(range(config.num_seeds)), num_chunks=2)
    healthy = sorted((r['seed'], r['kl_pq']) for r in last if not r['diverged'])
    np.testing.assert_allclose([v for _, v in healthy], evals['kl_pq'][0], rtol=1e-5)

  def test_interrupted_run_resumes_to_same_rows(self):
    config = _config()
    full_dir = tempfile.mkdtemp()
    problem = _problem()
    scheme = objectives.make('mle', config, problem)
    full = rundir.Store(full_dir)
    train.train_scheme('mle', scheme, problem, config, full,
                        config_hash='x', log=lambda s: None)
    last_row_step, first_line, rows = _interrupt_and_resume(scheme, problem, config, 5)
    self.assertEqual(last_row_step, 5)
    self.assertIn('resuming at step 5', first_line)
    self.assertEqual(_strip(rows), _strip(full.rows))

  def test_finished_scheme_without_its_checkpoint_is_not_trained_again(self):
    # An experiment committed as it runs keeps a finished scheme's rows, not its checkpoint:
    # the rows stand. A scheme whose rows stop short (or the warm start) still trains.
    config, problem, out = _config(), _problem(), tempfile.mkdtemp()
    scheme = objectives.make('mle', config, problem)
    train.train_scheme('mle', scheme, problem, config, rundir.Store(out), config_hash='x',
                       log=lambda s: None)
    before = rundir.Store(out).rows
    os.remove(rundir.checkpoint_path(out, 'mle'))
    lines = []
    states, diverged = train.train_scheme('mle', scheme, problem, config, rundir.Store(out),
                                          config_hash='x', log=lines.append)
    self.assertIsNone(states)
    self.assertEqual(diverged.tolist(), [False] * config.num_seeds)
    self.assertEqual(lines, ['[mle] finished: its rows reach step 10 and it has no '
                             'checkpoint; not trained again'])
    self.assertEqual(rundir.Store(out).rows, before)
    store = rundir.Store(out)
    store.truncate('mle', 5)  # rows of an unfinished scheme: trained again from step 0
    states, _ = train.train_scheme('mle', scheme, problem, config, store, config_hash='x',
                                   log=lambda s: None)
    self.assertIsNotNone(states)
    self.assertEqual(_strip(rundir.Store(out).rows), _strip(before))

  def test_checkpoints_between_evaluations(self):
    # checkpoint_every=1 with eval_every=5: a checkpoint and a progress line after every
    # step, rows only at evaluations with the numbers of one chunk per evaluation, and a
    # run interrupted between evaluations resumes to the same rows (its interval's training
    # metrics so far travel in the checkpoint).
    problem = _problem()
    plain_dir, fine_dir = tempfile.mkdtemp(), tempfile.mkdtemp()
    plain = rundir.Store(plain_dir)
    train.train_scheme('mle', objectives.make('mle', _config(), problem), problem, _config(),
                       plain, config_hash='x', log=lambda s: None)
    config = _config(checkpoint_every=1)
    scheme = objectives.make('mle', config, problem)
    fine, lines = rundir.Store(fine_dir), []
    train.train_scheme('mle', scheme, problem, config, fine,
                        config_hash='x', log=lines.append)
    self.assertEqual([(r['seed'], r['step']) for r in fine.rows],
                     [(r['seed'], r['step']) for r in plain.rows])
    between = [line for line in lines if 'checkpoint; evaluation at step' in line]
    self.assertLen(between, 8)  # steps 1-4 and 6-9
    self.assertIn('ETA', between[0])
    self.assertIn('train_loss', plain.rows[-1])  # (step-0 rows have no training metrics)
    for a, b in zip(plain.rows, fine.rows):
      for key in ('kl_pq', 'nll_oracle', 'train_loss'):
        self.assertEqual(key in b, key in a)
        if key in a:
          np.testing.assert_allclose(b[key], a[key], rtol=1e-5, err_msg=key)

    last_row_step, first_line, rows = _interrupt_and_resume(scheme, problem, config, 7)
    self.assertEqual(last_row_step, 5)  # rows at evaluations only
    self.assertIn('resuming at step 7', first_line)
    self.assertEqual(_strip(rows), _strip(fine.rows))
    # train_seconds counts training over both invocations: the resumed invocation's clock
    # (wall_time) restarts, train_seconds goes on from the checkpoint at step 7.
    at = {r['step']: r for r in rows if r['seed'] == 0}
    self.assertEqual(at[0]['train_seconds'], 0.0)
    self.assertAlmostEqual(at[5]['train_seconds'], at[5]['wall_time'], places=2)
    self.assertGreaterEqual(at[10]['train_seconds'] - at[10]['wall_time'],
                            at[5]['train_seconds'])
    self.assertEqual(rundir.cumulative_seconds([r for r in rows if r['seed'] == 0]),
                     {s: at[s]['train_seconds'] for s in (0, 5, 10)})

  def test_checkpoint_of_older_code_resumes_with_seconds_from_the_rows(self):
    # A checkpoint written before train_seconds existed has no 'seconds': the resumed run
    # starts from the rows' lower bound (here row 5's wall_time; steps 6-7 are not counted).
    import flax.serialization
    def drop_seconds(out):
      path = rundir.checkpoint_path(out, 'mle')
      saved = flax.serialization.msgpack_restore(open(path, 'rb').read())
      self.assertIn('seconds', saved)
      del saved['seconds']
      files.atomic_write(path, flax.serialization.msgpack_serialize(saved))
    problem, config = _problem(), _config(checkpoint_every=1)
    _, first_line, rows = _interrupt_and_resume(objectives.make('mle', config, problem),
                                                problem, config, 7, drop_seconds)
    self.assertIn('resuming at step 7', first_line)
    at = {r['step']: r for r in rows if r['seed'] == 0}
    self.assertAlmostEqual(at[10]['train_seconds'] - at[10]['wall_time'], at[5]['wall_time'],
                           places=2)

  def test_cumulative_seconds_of_rows_without_train_seconds(self):
    # Rows of older code: wall_time differences, a clock that went down (a resumed
    # invocation) counting its own; rows with train_seconds take it as it is.
    old = [dict(step=s, wall_time=w) for s, w in ((0, 0.0), (5, 3.0), (10, 7.0), (15, 2.5))]
    self.assertEqual(rundir.cumulative_seconds(old), {0: 0.0, 5: 3.0, 10: 7.0, 15: 9.5})
    new = old + [dict(step=20, wall_time=4.0, train_seconds=11.0),
                 dict(step=20, phase='alpha', wall_time=99.0)]  # the α sweep: not a curve
    self.assertEqual(rundir.cumulative_seconds(new)[20], 11.0)


class ProgressTest(absltest.TestCase):

  def test_rate_and_eta(self):
    self.assertEqual(progress.progress(200, 1800, 10.0), '10.0s, 20 steps/s, ETA 1m30s')
    self.assertEqual(progress.progress(100, 360_000, 50.0), '50.0s, 2 steps/s, ETA 50h00m')
    self.assertEqual(progress.progress(0, 100, 0.0), '0.0s, nan steps/s, ETA ?')


if __name__ == '__main__':
  absltest.main()
