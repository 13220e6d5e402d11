"""execute(config, output_dir): trains and evaluates every scheme of a run into its directory.

`benchmarks.run` (the command line) and the experiment engine (`engine.experiment`) call it;
it defines no flags.
"""

import jax

from benchmarks.analysis import report
from benchmarks.engine import configuration
from benchmarks.engine import distributed
from benchmarks.engine import memory
from benchmarks.engine import progress
from benchmarks.engine import rundir
from benchmarks.engine import train
from models import oracle
import objectives


def execute(config, output_dir: str, *, variants=None, overwrite: bool = False, log=print,
            title=None):
  """Trains and evaluates every scheme (or variant) of config into output_dir; the rows.

  The runner's whole job after flag parsing (`main` and `benchmarks.experiment` call it):
  validate, prepare the directory (resume or refuse), build the problem, the warm start when
  config.train.warm_start_steps > 0, then each scheme, writing results, checkpoints and the
  report after each. Raises ValueError (naming the flag) before any compute on bad input.
  Process 0 holds output_dir/.lock (rundir.prepare_output_dir) until it returns or raises.
  """
  try:
    return _execute(config, output_dir, variants=variants, overwrite=overwrite, log=log,
                    title=title)
  finally:
    rundir.release_lock(output_dir)  # taken by prepare_output_dir; no-op if not held


def _execute(config, output_dir: str, *, variants, overwrite: bool, log, title):
  """execute(), output_dir's lock released by the caller."""
  # Again for callers other than the command (experiments, tests), which validates before
  # jax.distributed starts: pure checks, 0.4 ms for `small` with every scheme.
  configuration.validate(config)
  jax.devices()  # the backend is up from here: the memory check sees the devices' limit
  # Before the hash: 'auto' on CPU is 'map', so config.json reads as before 'auto' existed.
  config = configuration.with_concrete_strategy(config)
  resolved = configuration.resolve_variants(config, variants)
  memory.check_run(config, resolved)  # once, under the devices' limit
  main_process = distributed.is_main_process()
  # Every process checks the directory; only process 0 writes (all see the same files).
  refusal = None
  try:
    config_hash = rundir.prepare_output_dir(output_dir, config, overwrite=overwrite,
                                            write=main_process, variants=variants, log=log)
  except (ValueError, OSError) as e:  # OSError: files.WriteError
    refusal = e
  if jax.process_count() > 1:  # all agree before any compute: none waits for a refused one
    distributed.agree_or_raise(refusal is not None)
  if refusal is not None:
    raise refusal
  store = rundir.Store(output_dir)  # ValueError naming the file when unreadable
  rundir.check_checkpoints(output_dir)  # likewise, before any compute
  say = log if main_process else (lambda s: None)
  title = title or f'divbench: preset {config.preset}'
  say(f'divbench: preset {config.preset}, schemes {",".join(resolved)}, {config.num_seeds} '
      f'seeds, devices ({jax.device_count()}): {jax.devices()}, output {output_dir}')
  problem = oracle.make_problem(config.problem)
  schemes = {label: objectives.make(name, cfg, problem) for label, (name, cfg) in resolved.items()}
  for label, scheme in schemes.items():
    if scheme.describe is not None:
      say(f'[{label}] {scheme.describe()}')
  # The run ETA of the progress lines: run-steps still to train per phase, rates so far.
  phases = [(label, name, cfg.train.num_steps,
             len(train.run_grid(schemes[label], range(cfg.num_seeds), cfg.pis)))
            for label, (name, cfg) in resolved.items()]
  if config.train.warm_start_steps:
    phases.insert(0, (train.WARM_START, 'mle', config.train.warm_start_steps, config.num_seeds))
  clock = progress.Clock(progress.steps_to_go(store.rows, phases))
  warm = None
  if config.train.warm_start_steps:
    warm, _ = train.warm_start(problem, config, store, config_hash=config_hash, log=say,
                               clock=clock)
  last = list(resolved)[-1]
  for label, (name, cfg) in resolved.items():
    train.train_scheme(label, schemes[label], problem, cfg, store, config_hash=config_hash,
                       log=say, warm=warm, base_scheme=name, clock=clock)
    if main_process:  # summary.md after each scheme; the figure (~0.3-0.8 s) once, at the end
      report.write_report(output_dir, store.rows, title=title, plot=label == last)
  return store.rows

