"""The training loop: chunks of lax.scan steps, jitted once and mapped over runs.

A *run* is one (seed, π) pair. Its key is fold_in(PRNGKey(config.seed), seed), shared by all
π of that seed (common random numbers across a π sweep). From the run key:
  fold_in(key, 0) initialises the scheme, fold_in(key, 1) shuffles the data (one permutation
  per epoch), fold_in(fold_in(key, 2), step) is the step's key, fold_in(fold_in(key, 3), step)
  the evaluation's key.
So a run is a pure function of its key and the step count: chunking, resuming and the seed
strategy do not change its numbers.

Warm start (config.train.warm_start_steps = K > 0): before any scheme, MLE trains K steps
once per seed with the keys fold_in(run key, WARM_START_SALT) (so its data order and init
differ from the `mle` scheme's own), and every scheme's runs of that seed (all π) start their
generator from its final parameters (`warm_start`); its rows have scheme 'warm_start' and
phase 'warm_start', the schemes' rows phase 'train'.

α sweep (config.eval.alphas non-empty): after training, each run's selected generator (the
last, or with config.eval.select = 'nll_valid' / 'nll_test' the one of the evaluation with the
lowest value of that metric, tracked in checkpoints/<scheme>.best.msgpack) is evaluated at every inverse
temperature α (logits × α) with the key fold_in(run key, ALPHA_SALT), the same for every α
(common random numbers along the curve), in one compiled map over α. Its rows have phase
'alpha', the field 'alpha' and 'step' = the selected step.
"""

import functools
import os
import time
from typing import NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.analysis import events
from benchmarks.engine import distributed
from benchmarks.engine import evaluate as evaluate_lib
from benchmarks.engine import progress
from benchmarks.engine import rundir
from objectives import mle

STRATEGIES = ('auto', 'map', 'vmap', 'batched')
WARM_START = 'warm_start'    # the scheme label (rows, checkpoint) of the warm-start phase
WARM_START_SALT = 4          # warm-start run keys: fold_in(run key, WARM_START_SALT)
ALPHA = progress.ALPHA       # the rows' phase of the α sweep (config.eval.alphas)
ALPHA_SALT = 5               # α-sweep evaluation keys: fold_in(run key, ALPHA_SALT)
BEST_SUFFIX = '.best'        # checkpoints/<scheme>.best.msgpack: the selected generators


def concrete_strategy(strategy: str, platform=None) -> str:
  """The seed axis strategy to run: 'auto' is 'map' on CPU (the step is compute-bound: a
  vmap over seeds costs more per seed) and 'vmap' on accelerators (one seed uses a fraction of
  the device); others are themselves. platform: jax.default_backend() when None."""
  if strategy != 'auto':
    return strategy
  return 'map' if (platform or jax.default_backend()) == 'cpu' else 'vmap'


def over_runs(fn, strategy: str, batch_size: int = 1):
  """Maps fn over the leading (run) axis of all its arguments.

  'vmap' vectorises (best on accelerators); 'map' is a sequential lax.map (best on CPU,
  where the step is compute-bound); 'batched' is lax.map over vmapped groups of batch_size.
  All give the same numbers up to float reassociation.
  """
  if strategy == 'vmap':
    return jax.vmap(fn)
  if strategy not in ('map', 'batched'):
    raise ValueError(f'config.train.seed_strategy: unknown {strategy!r}; known: {STRATEGIES}')
  size = batch_size if strategy == 'batched' else None

  def mapped(*args):
    return jax.lax.map(lambda a: fn(*a), args, batch_size=size)
  return mapped


def parse_inject_nan(text: str):
  """config.train.inject_nan 'SEED:STEP' -> (SEED, STEP); '' -> None. ValueError otherwise."""
  if not text:
    return None
  parts = str(text).split(':')
  try:
    seed, step = (int(p) for p in parts)
  except ValueError:
    raise ValueError(f'--config.train.inject_nan: expected SEED:STEP (two integers, e.g. '
                     f'1:5), got {text!r}') from None
  return seed, step


def poison(state, where):
  """Every float leaf of state set to NaN where `where` (a bool scalar); others unchanged."""
  def leaf(x):
    x = jnp.asarray(x)
    return jnp.where(where, jnp.nan, x) if jnp.issubdtype(x.dtype, jnp.floating) else x
  return jax.tree_util.tree_map(leaf, state)


def run_keys(seed: int, seeds: Sequence[int]) -> jax.Array:
  """Keys of the given seed indices: [len(seeds)] keys."""
  base = jax.random.PRNGKey(seed)
  return jnp.stack([jax.random.fold_in(base, s) for s in seeds])


class Runner(NamedTuple):
  """Jitted functions over stacked runs (leading axis R).

  init(keys [R], warm=None) -> states [R, ...]; warm: generator variables stacked [R, ...]
    to start every run's generator from (a warm start), else drawn from the keys.
  chunk(states, keys [R], pis [R], start, data [N, T]) -> (states, {metric: [R, K]}),
    K = chunk_steps(config.train) steps starting at global step `start`.
  evaluate(states, keys [R], step) -> {metric: [R] or [R, len(pis)]} (value, se pairs)
  finite(states) -> bool [R]: whether every generator parameter is finite.
  generator_params(states) -> the generators' variables [R, ...].
  keep_best(best, states, value [R], step) -> best: per run, the generator variables, value
    and step of the lowest `value` so far (best = {'params', 'value', 'step'}; NaN never wins).
  evaluate_alphas(params [R, ...], keys [R], alphas [A]) -> {metric: [R, A] (or [R, A, K])}:
    the generators at every inverse temperature α, one compile for the grid.
  evaluate_generators(params [R, ...], keys [R], step): the jitted evaluation `evaluate`
    calls on generator_params(states) (one program for every scheme with this generator).
  """
  init: callable
  chunk: callable
  evaluate: callable
  finite: callable
  generator_params: callable
  keep_best: callable
  evaluate_alphas: callable
  evaluate_generators: callable


def chunk_steps(tc) -> int:
  """Steps per jitted chunk: train.checkpoint_every (a divisor of eval_every) or, at 0,
  eval_every. A checkpoint and a progress line follow every chunk; an evaluation every
  eval_every steps. The chunking changes no number (each step's key and batch depend on its
  global index only)."""
  return tc.checkpoint_every or tc.eval_every


class _Evaluation(NamedTuple):
  key: tuple        # what else the programs depend on: generator, eval settings, π, run axis
  problem: object   # the problem they close over (compared by identity)
  programs: tuple   # (evaluate_generators, evaluate_alphas)


_LAST_EVALUATION = []  # [_Evaluation] of the last make_runner call: one slot, no growth


def evaluation_programs(problem, generator, config, strategy, bsz, devices):
  """(evaluate_generators(params, keys, step), evaluate_alphas(params, keys, alphas)): the
  jitted evaluation of generator variables mapped over runs.

  They see only the generators' variables, so they are the same for every scheme of a run
  with the same generator and evaluation settings, and are built once for them: the schemes
  of one run share the compiled programs (the last ones built are kept). The persistent
  compilation cache would give the same for most programs, but not for one with a host
  callback (eval.bleu), which it does not store.
  """
  key = (generator, config.eval.to_json(), tuple(config.pis), strategy, bsz,
         tuple(devices) if devices is not None else None)
  if _LAST_EVALUATION and _LAST_EVALUATION[0].problem is problem \
      and _LAST_EVALUATION[0].key == key:
    return _LAST_EVALUATION[0].programs
  evaluate_one = evaluate_lib.make_evaluate(problem, generator, config.eval, config.pis)

  @jax.jit
  def evaluate_generators(params, keys, step):
    def local(params, keys, step):
      def one(p, key):
        key = jax.random.fold_in(jax.random.fold_in(key, 3), step)
        return evaluate_one(p, key)
      return over_runs(one, strategy, bsz)(params, keys)
    return distributed.over_devices(local, 2, 1, devices)(params, keys, step)

  @jax.jit
  def evaluate_alphas(params, keys, alphas):
    def local(params, keys, alphas):
      def one(p, key):
        key = jax.random.fold_in(key, ALPHA_SALT)
        # logits × α = logits / τ with τ = 1/α; lax.map: one compile for the grid.
        return jax.lax.map(lambda a: evaluate_one(p, key, 1.0 / a), alphas)
      return over_runs(one, strategy, bsz)(params, keys)
    return distributed.over_devices(local, 2, 1, devices)(params, keys, alphas)

  _LAST_EVALUATION[:] = [_Evaluation(key, problem, (evaluate_generators, evaluate_alphas))]
  return evaluate_generators, evaluate_alphas



def make_runner(scheme, problem, config, *, max_traces=None) -> Runner:
  """Builds the jitted init / chunk / evaluate functions of one scheme.

  With max_traces = n, the chunk is wrapped in chex.assert_max_traces(n=n) (for tests: chex
  counts traces per definition site, so call chex.clear_trace_counter() first).

  config.train.inject_nan = 'SEED:STEP' (testing) poisons, inside the chunk, the state of the
  runs whose key is seed SEED's run key (all its π; not the warm start, whose keys are salted)
  right after update number STEP (global step index STEP - 1). '' adds nothing to the chunk.
  """
  tc = config.train
  strategy, bsz = concrete_strategy(tc.seed_strategy), tc.map_batch_size
  num_train, batch_size, num_steps = problem.train.shape[0], tc.batch_size, chunk_steps(tc)
  steps_per_epoch = num_train // batch_size
  inject = parse_inject_nan(tc.inject_nan)
  if inject is not None:
    inject_key = np.asarray(run_keys(config.seed, [inject[0]])[0])

  def permutation(data_key, i):
    return jax.random.permutation(jax.random.fold_in(data_key, i // steps_per_epoch), num_train)

  def chunk_one(state, key, pi, start, data):
    data_key, step_key = jax.random.fold_in(key, 1), jax.random.fold_in(key, 2)

    def body(carry, i):
      state, perm = carry
      # A new epoch's permutation only at its first step (i is the same for every run, so
      # under vmap this stays a real branch): sorting 10k keys costs more than a step.
      j = i % steps_per_epoch
      perm = jax.lax.cond(j == 0, lambda: permutation(data_key, i), lambda: perm)
      batch = data[jax.lax.dynamic_slice(perm, (j * batch_size,), (batch_size,))]
      state, metrics = scheme.step(state, batch, jax.random.fold_in(step_key, i), pi)
      if inject is not None:  # testing: this run's state becomes NaN after update STEP
        state = poison(state, (i + 1 == inject[1]) & jnp.all(key == inject_key))
      return (state, perm), metrics

    (state, _), metrics = jax.lax.scan(body, (state, permutation(data_key, start)),
                                       start + jnp.arange(num_steps))
    return state, metrics

  devices = distributed.shard_devices(config)

  def chunk_local(states, keys, pis, start, data):
    fn = functools.partial(chunk_one, start=start, data=data)
    return over_runs(fn, strategy, bsz)(states, keys, pis)

  def chunk(states, keys, pis, start, data):
    return distributed.over_devices(chunk_local, 3, 2, devices)(states, keys, pis, start, data)

  if max_traces is not None:
    chunk = chex.assert_max_traces(chunk, n=max_traces)
  chunk = jax.jit(chunk)

  @jax.jit
  def init(keys, warm=None):
    if warm is None:
      fn = over_runs(lambda k: scheme.init(jax.random.fold_in(k, 0)), strategy, bsz)
      return distributed.over_devices(fn, 1, 0, devices)(keys)
    fn = over_runs(lambda k, w: scheme.init(jax.random.fold_in(k, 0), w), strategy, bsz)
    return distributed.over_devices(fn, 2, 0, devices)(keys, warm)

  evaluate_generators, evaluate_alphas = evaluation_programs(
      problem, scheme.generator, config, strategy, bsz, devices)

  @jax.jit
  def finite(states):
    params = jax.vmap(scheme.generator_params)(states)
    leaves = [jnp.isfinite(x).reshape(x.shape[0], -1).all(axis=1)
              for x in jax.tree_util.tree_leaves(params)]
    return jnp.stack(leaves).all(axis=0)

  generator_params = jax.jit(jax.vmap(scheme.generator_params))

  def evaluate(states, keys, step):
    return evaluate_generators(generator_params(states), keys, step)

  @jax.jit
  def keep_best(best, states, value, step):
    better = value < best['value']  # False for NaN: a diverged evaluation never wins
    def pick(new, old):
      return jnp.where(better.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
    return {'params': jax.tree.map(pick, jax.vmap(scheme.generator_params)(states),
                                   best['params']),
            'value': jnp.where(better, value, best['value']),
            'step': jnp.where(better, step, best['step'])}

  return Runner(init, chunk, evaluate, finite, generator_params, keep_best, evaluate_alphas,
                evaluate_generators)


def run_grid(scheme, seeds: Sequence[int], pis: Sequence[float]):
  """The (seed, π) runs of a scheme: π-major, seeds inner; π is None when unused."""
  if not scheme.uses_pi:
    return [(s, None) for s in seeds]
  return [(s, p) for p in pis for s in seeds]


def pis_array(runs) -> jax.Array:
  """The per-run π as float32 [R]; NaN where a scheme takes no π."""
  return jnp.asarray([np.nan if p is None else p for _, p in runs], jnp.float32)


def rows_of(name, runs, step, evals, train_metrics, diverged, extra):
  """One JSON row per run from stacked evaluation outputs (numpy)."""
  pis_grid = extra.pop('pis_grid')
  rows = []
  for r, (seed, pi) in enumerate(runs):
    row = dict(scheme=name, seed=seed, pi=pi, step=step, diverged=bool(diverged[r]), **extra)
    for key, value in evals.items():
      pairs = value if isinstance(value, tuple) else (value, None)
      for suffix, arr in zip(('', '_se'), pairs):
        if arr is None:
          continue
        v = None if diverged[r] else np.asarray(arr[r])
        if key.endswith('js_pi'):  # a vector over the π grid -> {"0.1": ...}
          v = {f'{p:g}': (None if v is None else v[i]) for i, p in enumerate(pis_grid)}
        row[key + suffix] = v
    for key, arr in train_metrics.items():
      row[f'train_{key}'] = None if diverged[r] else np.asarray(arr[r]).mean()
    rows.append(row)
  return rows


def _describe(evals, diverged) -> str:
  """A short progress string: mean over healthy runs of a few metrics."""
  ok = ~diverged
  if not ok.any():
    return 'all runs diverged'
  parts = []
  for key in ('nll_test', 'kl_pq', 'nll_oracle', 'entropy_q', 'kl_qp'):
    if key in evals:
      parts.append(f'{key} {np.asarray(evals[key][0])[:len(ok)][ok].mean():.3f}')
  return '  '.join(parts)


class _Job(NamedTuple):
  """What one call of `train_scheme` holds fixed: the runs, their keys and π on the devices,
  the data, the jitted functions and the rows' constant fields."""
  name: str
  runs: list         # [(seed, π)] of the real runs
  num_padded: int    # len(runs) plus the padding runs that keep the run axis divisible
  seeds: np.ndarray  # the seed of each of the num_padded runs
  devices: object
  keys: jax.Array
  pis: jax.Array
  data: object
  runner: Runner
  extra: dict        # the rows' constant fields
  config: object


def _job(name, scheme, problem, config, *, config_hash, phase, key_salt, base_scheme) -> _Job:
  runs = run_grid(scheme, range(config.num_seeds), config.pis)
  # Padding runs (copies of the last) keep the run axis divisible by the device count;
  # their rows are never written.
  all_runs = distributed.padded_runs(runs, distributed.num_shards(config))
  devices = distributed.shard_devices(config)
  keys = run_keys(config.seed, [s for s, _ in all_runs])
  if key_salt is not None:
    keys = jax.vmap(lambda k: jax.random.fold_in(k, key_salt))(keys)
  # One process: the data stay on the device. Several: a host array, replicated by jit.
  data = problem.train if jax.process_count() == 1 else np.asarray(problem.train)
  device = jax.devices()[0]
  extra = dict(config_hash=config_hash, device=f'{device.platform}:{device.device_kind}',
               phase=phase, base_scheme=base_scheme or name)
  return _Job(name, runs, len(all_runs), np.asarray([s for s, _ in all_runs]), devices,
              distributed.to_global(keys, devices),
              distributed.to_global(pis_array(all_runs), devices), data,
              make_runner(scheme, problem, config), extra, config)


def _warm_states(job: _Job, warm):
  """Each run's initial state, its generator from its seed's warm start when given."""
  if warm is not None:
    warm = distributed.to_global(
        jax.tree_util.tree_map(lambda x: np.asarray(x)[job.seeds], warm), job.devices)
  return job.runner.init(job.keys, warm)


def _evaluation_rows(job: _Job, step, evals, pending, diverged, **fields):
  return rows_of(job.name, job.runs, step, evals, pending, diverged,
               dict(job.extra, pis_grid=job.config.pis, **fields))


class _Best:
  """The selected generators of the α sweep: per run, the evaluation with the lowest
  config.eval.select metric ('nll_valid' or 'nll_test')."""

  def __init__(self, job: _Job, states):
    self.job = job
    self.value = {'params': job.runner.generator_params(states),
                  'value': distributed.to_global(np.full(job.num_padded, np.inf, np.float32),
                                                 job.devices),
                  'step': distributed.to_global(np.zeros(job.num_padded, np.int32),
                                                job.devices)}

  def track(self, states, evals, step) -> None:
    value = distributed.to_global(np.asarray(evals[self.job.config.eval.select][0], np.float32),
                                  self.job.devices)
    self.value = self.job.runner.keep_best(self.value, states, value, np.int32(step))


def _finished_rows(rows, name, phase, num_runs, num_steps, num_alphas):
  """The bool [num_runs] diverged flags of a finished scheme's rows, or None when they are
  not all there: every run's evaluation at num_steps and, with an α sweep, its rows."""
  final = [r for r in rows if r['scheme'] == name and r.get('phase') == phase
           and r['step'] == num_steps]
  swept = sum(1 for r in rows if r['scheme'] == name and r.get('phase') == ALPHA)
  if len(final) != num_runs or swept != num_runs * num_alphas:
    return None
  return np.array([bool(r['diverged']) for r in final])


def train_scheme(name, scheme, problem, config, store, *, config_hash, log=print, warm=None,
                 phase='train', key_salt=None, base_scheme=None, clock=None):
  """Trains all runs of one scheme into store.output_dir, evaluating, saving and logging after
  every chunk.

  Resumes from checkpoints/<name>.msgpack when present. A scheme (not the warm start) whose
  rows are all there but whose checkpoint is not (an experiment committed as it runs keeps
  finished schemes' rows, not their checkpoints) is not trained again: it returns
  (None, diverged flags from its rows). A run whose generator or loss
  becomes non-finite is marked diverged; its rows carry `diverged: true` and null metrics,
  and the other runs are unaffected (runs never share computation).

  Multi-host (after jax.distributed.initialize): every process calls this with the same
  arguments; the runs are sharded over all hosts' devices, results are gathered to every
  process, and only process 0 writes files and logs. The output directory must be shared.

  Args (beyond the obvious): warm, the generator variables of each seed stacked [S, ...]
  (host arrays, seed index on the leading axis) that every run of that seed starts from;
  phase, the rows' 'phase'; key_salt, when set the run keys are fold_in(run key, key_salt);
  base_scheme, the rows' 'base_scheme' (the registered scheme of a labelled variant);
  clock, the run's `progress.Clock` (its progress lines then give the run's ETA).

  With config.train.tensorboard, process 0 also writes each evaluation's rows as TensorBoard
  events under <output_dir>/tensorboard/<name>/ (`analysis.events`), flushed after each
  chunk; a fresh start (no checkpoint) first removes that directory's stale events.

  Returns:
    (states, diverged): the final stacked states of all runs (padding included), as the
    runner holds them (sharded on multi-host), and the bool [R] diverged flags of the real
    runs.
  """
  tc, output_dir = config.train, store.output_dir
  job = _job(name, scheme, problem, config, config_hash=config_hash, phase=phase,
             key_salt=key_salt, base_scheme=base_scheme)
  main = distributed.is_main_process()
  if not main:
    log = lambda s: None  # noqa: E731  (only process 0 reports)
  clock = clock or progress.Clock([])
  states = _warm_states(job, warm)
  diverged = np.zeros(job.num_padded, bool)
  alphas = tuple(config.eval.alphas) if phase == 'train' else ()
  best = _Best(job, states) if alphas and config.eval.select != 'last' else None
  restored = rundir.load_checkpoint(output_dir, name, states, diverged, pending=True)
  if restored is None and phase != WARM_START:
    done = _finished_rows(store.rows, name, phase, len(job.runs), tc.num_steps, len(alphas))
    if done is not None:  # the rows stand (an experiment's committed directory: WORKSPACE)
      log(f'[{name}] finished: its rows reach step {tc.num_steps} and it has no checkpoint; '
          'not trained again')
      return None, done
  writer = None
  if main and tc.tensorboard:
    writer = events.Writer(os.path.join(output_dir, events.DIRECTORY))
    if restored is None:  # events of an overwritten run, or of one killed before a checkpoint
      writer.clear(name)

  def save_rows(rows):
    store.add(rows)
    if main:
      store.save()
      if writer is not None:  # after results.jsonl, before the checkpoint: a kill in
        writer.write(rows)    # between repeats at most this step's (identical) points
        writer.flush()

  pending = {}  # host training metrics {name: [R, k]} of the evaluation interval so far
  spent = 0.0  # seconds of this scheme's training kept in earlier invocations (train_seconds)
  if restored is not None:
    step, states, diverged, pending, spent = restored
    if spent is None:  # a checkpoint of older code: a lower bound from the rows
      spent = max(rundir.cumulative_seconds(
          [r for r in store.rows if r['scheme'] == name and r['step'] <= step]).values(),
                  default=0.0)
    states = distributed.to_global(states, job.devices)
    if best is not None:  # written before the main checkpoint: never older than it
      best.value = distributed.to_global(rundir.load_checkpoint(
          output_dir, name + BEST_SUFFIX, distributed.to_host(best.value), diverged)[1],
                                         job.devices)
    store.truncate(name, step)
    log(f'[{name}] resuming at step {step}/{tc.num_steps} from its checkpoint')
  else:
    step = 0
    store.truncate(name, -1)
    evals = distributed.to_host(job.runner.evaluate(states, job.keys, 0))
    if best is not None:
      best.track(states, evals, 0)
    save_rows(_evaluation_rows(job, 0, evals, {}, diverged, wall_time=0.0, train_seconds=0.0))
    log(f'[{name}] {len(job.runs)} runs, step 0/{tc.num_steps}: '
        f'{_describe(evals, diverged[:len(job.runs)])}')

  t0, first = time.time(), step  # steps trained before this invocation do not count
  while step < tc.num_steps:
    states, metrics = job.runner.chunk(states, job.keys, job.pis, np.int32(step), job.data)
    step += chunk_steps(tc)
    metrics = distributed.to_host(metrics)
    pending = {k: np.concatenate([pending[k], np.asarray(v)], axis=1) if k in pending
               else np.asarray(v) for k, v in metrics.items()}
    healthy = np.array(distributed.to_host(job.runner.finite(states)))
    for arr in metrics.values():
      healthy &= np.isfinite(np.asarray(arr)).reshape(job.num_padded, -1).all(axis=1)
    newly = (~healthy & ~diverged)[:len(job.runs)]
    diverged = diverged | ~healthy
    evaluated = step % tc.eval_every == 0
    if evaluated:
      evals = distributed.to_host(job.runner.evaluate(states, job.keys, step))
      if best is not None:
        best.track(states, evals, step)
      now = time.time() - t0
      save_rows(_evaluation_rows(job, step, evals, pending, diverged, wall_time=now,
                                 train_seconds=spent + now))
      pending = {}
    host_states = distributed.to_host(states)  # a collective: every process gathers
    host_best = None if best is None or not evaluated else distributed.to_host(best.value)
    if main:
      if host_best is not None:  # before the main checkpoint (see the resume above)
        rundir.save_checkpoint(output_dir, name + BEST_SUFFIX, step, host_best, diverged)
      rundir.save_checkpoint(output_dir, name, step, host_states, diverged, pending,
                             seconds=spent + time.time() - t0)
    note = f'  ({int(newly.sum())} newly diverged)' if newly.any() else ''
    timing = clock.line(base_scheme or name, name, step - first, tc.num_steps - step,
                        time.time() - t0, runs=len(job.runs))
    status = (_describe(evals, diverged[:len(job.runs)]) if evaluated else
              f'checkpoint; evaluation at step {step - step % tc.eval_every + tc.eval_every}')
    log(f'[{name}] step {step}/{tc.num_steps} ({timing}, '
        f'{int((~diverged[:len(job.runs)]).sum())}/{len(job.runs)} ok): {status}{note}')
  if alphas and not any(r['scheme'] == name and r.get('phase') == ALPHA for r in store.rows):
    _alpha_sweep(job, states, best, diverged, alphas, store, main, log, t0)
  if writer is not None:
    writer.close()
  return states, diverged[:len(job.runs)]


def _alpha_sweep(job: _Job, states, best, diverged, alphas, store, main, log, t0) -> None:
  """Rows of phase 'alpha': the last (or the selected: config.eval.select) generators of every run at
  each inverse temperature α, one compiled map over α."""
  t_alpha = time.time()
  params = job.runner.generator_params(states) if best is None else best.value['params']
  evals = distributed.to_host(job.runner.evaluate_alphas(params, job.keys,
                                                         jnp.asarray(alphas, jnp.float32)))
  num_steps = job.config.train.num_steps
  selected = (np.full(job.num_padded, num_steps) if best is None
              else np.asarray(distributed.to_host(best.value['step'])))
  for i, alpha in enumerate(alphas):
    at = jax.tree_util.tree_map(lambda x: np.asarray(x)[:, i], evals)
    rows = _evaluation_rows(job, num_steps, at, {}, diverged, phase=ALPHA,
                            wall_time=time.time() - t0)
    store.add(dict(r, alpha=float(alpha), step=int(selected[k])) for k, r in enumerate(rows))
  if main:
    store.save()
  log(f'[{job.name}] α sweep: {len(alphas)} inverse temperatures x {len(job.runs)} runs of '
      f'the {"last" if best is None else job.config.eval.select + "-selected"} generators in '
      f'{time.time() - t_alpha:.1f}s')


def warm_start(problem, config, store, *, config_hash, log=print, clock=None):
  """The warm-start phase: MLE for config.train.warm_start_steps steps, once per seed.

  Resumes from its checkpoint like a scheme (a finished phase is not rerun). clock: the
  run's, as in `train_scheme`.

  Returns:
    (generator variables stacked [S, ...] on the host, seed index first; diverged bool [S]).
  """
  import copy
  cfg = copy.deepcopy(config)
  with cfg.unlocked():
    cfg.train.num_steps = config.train.warm_start_steps
  scheme = mle.make(cfg, problem)
  states, diverged = train_scheme(WARM_START, scheme, problem, cfg, store,
                                  config_hash=config_hash, log=log, phase=WARM_START,
                                  key_salt=WARM_START_SALT, base_scheme='mle', clock=clock)
  num_seeds = config.num_seeds
  states = distributed.to_host(states)  # a collective on multi-host: every process calls warm_start
  params = jax.tree_util.tree_map(lambda x: np.asarray(x)[:num_seeds],
                                  jax.vmap(scheme.generator_params)(states))
  return params, diverged
