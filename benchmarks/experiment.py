"""Runs an experiment: `python -m benchmarks.experiment NAME [--quick] [--num_seeds=N]`.

An experiment (benchmarks/experiments/) turns a paper's claim into runs, a figure and a table.
Its runs go through the runner (`benchmarks.runner.execute`: same keys, resume, atomic files,
bad-input checks before any compute), so an interrupted experiment resumes where it stopped.
`--list` prints every experiment with the claim it tests.

Output: DIR/NAME/{results.jsonl, config.json, table.md, *.png} and DIR/NAME/runs/<run>/ (each
run's own results, checkpoints and summary). DIR defaults to results/experiments.
"""

import datetime
import json
import os
import platform
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS


def _define_flags():
  """The command-line flags, defined only when run as a program (benchmarks.throughput and
  others, imported alongside in one test process, own --num_seeds and --output_dir too)."""
  flags.DEFINE_bool('list', False, 'List the experiments and the claims they test.')
  flags.DEFINE_bool('quick', False, 'Shrink every size: well under a minute (CI).')
  flags.DEFINE_bool('draw_only', False, 'Train nothing: draw the figures and table.md from '
                    'the rows the runs have written so far (an unfinished experiment).')
  flags.DEFINE_integer('num_seeds', None, "Seeds per run (default: the experiment's).")
  flags.DEFINE_string('output_dir', os.path.join('results', 'experiments'),
                      'Where DIR/NAME/ goes. A rerun with the same options resumes.')
  flags.DEFINE_string('preset', None, "The problem's preset, for experiments that offer a "
                      'choice (--list shows them); default: the experiment\'s first.')
  flags.DEFINE_bool('overwrite', False, 'Discard runs of a different config found in '
                    'DIR/NAME/runs/ instead of refusing.')


def listing() -> str:
  """One line per experiment: its name and the claim it tests."""
  from benchmarks import experiments
  width = max(len(n) for n in experiments.REGISTRY)
  def presets(exp):
    return f' [--preset: {", ".join(exp.presets)}]' if exp.presets else ''
  return '\n'.join(f'{name:<{width}}  {exp.claim}{presets(exp)}'
                   for name, exp in experiments.REGISTRY.items())


def check_options(experiment, options) -> None:
  """ValueError naming the flag when --preset or --num_seeds do not fit the experiment."""
  if options.num_seeds is not None and options.num_seeds < 2:
    raise ValueError(f'--num_seeds: must be at least 2 (confidence intervals), got '
                     f'{options.num_seeds}')
  if options.preset is not None and options.preset not in experiment.presets:
    offered = (f'one of {", ".join(experiment.presets)}' if experiment.presets
               else 'none: it fixes its own problem')
    raise ValueError(f'--preset: {experiment.name} takes {offered}; got {options.preset!r}')


def resolve(experiment, options):
  """{run label: (config, variants)} of the experiment, every one validated; no compute.

  Raises ValueError naming the run and the field.
  """
  from benchmarks import runner as run_lib
  out = {}
  for label, r in experiment.runs(options).items():
    overrides = dict(r.overrides)
    num_seeds = options.num_seeds or overrides.pop('num_seeds', None)
    overrides.pop('num_seeds', None)
    try:
      config = run_lib.build_config(r.preset, overrides, num_seeds=num_seeds)
      run_lib.validate(config)
      run_lib.resolve_variants(config, r.variants)
    except (ValueError, KeyError, AttributeError) as e:
      raise ValueError(f'run {label!r} of {experiment.name}: {e}') from None
    out[label] = (config, r.variants)
  return out


def header(experiment, options, wall_time: float, partial: str = '') -> str:
  """The table's preamble: claim, command, date, device, wall time (or, for a partial
  drawing, `partial`: what it was drawn from)."""
  import jax
  device = jax.devices()[0]
  cmd = f'python -m benchmarks.experiment {experiment.name}'
  cmd += ' --quick' if options.quick else ''
  cmd += f' --num_seeds={options.num_seeds}' if options.num_seeds else ''
  cmd += f' --preset={options.preset}' if options.preset else ''
  return '\n'.join([
      f'# {experiment.name}', '', f'**Claim tested.** {experiment.claim}', '',
      f'Command: `{cmd}`  ',
      f'Date: {datetime.date.today().isoformat()}; device: {device.platform} '
      f'({device.device_kind}, {jax.device_count()} device(s), {os.cpu_count()} CPU cores, '
      f'{platform.machine()}); ' + (partial or f'wall time of this invocation: {wall_time:.0f} '
                                    's (a resumed invocation counts only what it ran).'), ''])


def computed_rows(experiment, options, log) -> list:
  """The experiment's computed (not trained) rows; [] when it has no `compute`."""
  if experiment.compute is None:
    return []
  from benchmarks import results
  log(f'== {experiment.name}: computing')
  return [results._clean(r) for r in experiment.compute(options)]  # pylint: disable=protected-access


def run_experiment(experiment, options, output_dir: str, *, overwrite: bool = False,
                   log=print):
  """Runs, computes and draws one experiment into output_dir/<name>/; returns its rows.

  Holds output_dir/<name>/.lock meanwhile: a second invocation into it is refused (ValueError
  naming --output_dir) before anything is written.
  """
  from benchmarks import results
  from benchmarks import runner as run_lib
  from benchmarks.experiments import base
  check_options(experiment, options)
  resolved = resolve(experiment, options)  # every run checked before anything runs
  out = os.path.join(output_dir, base.output_name(experiment, options))
  os.makedirs(out, exist_ok=True)
  results.acquire_lock(out, log=log)  # each run's directory has its own (execute)
  try:
    results.atomic_write(os.path.join(out, 'config.json'), json.dumps({
        'experiment': experiment.name, 'claim': experiment.claim, 'options': options._asdict(),
        'runs': {label: {'config': config.to_dict(),
                         'variants': {k: [n, dict(o)] for k, (n, o) in variants.items()}}
                 for label, (config, variants) in resolved.items()}},
        indent=2, sort_keys=True, default=str))
    t0 = time.time()
    rows = []
    for i, (label, (config, variants)) in enumerate(resolved.items()):
      log(f'== {experiment.name}: run {i + 1}/{len(resolved)} {label!r} '
          f'({time.time() - t0:.0f}s so far)')
      run_rows = run_lib.execute(config, os.path.join(out, 'runs', label), variants=variants,
                                 overwrite=overwrite, log=log,
                                 title=f'{experiment.name}: run {label}')
      rows += [dict(r, run=label) for r in run_rows]
    rows += computed_rows(experiment, options, log)
    results.atomic_write(os.path.join(out, 'results.jsonl'),
                         ''.join(json.dumps(r) + '\n' for r in rows))
    table = experiment.draw(rows, out, options)
    results.atomic_write(os.path.join(out, 'table.md'),
                         header(experiment, options, time.time() - t0) + '\n' + table)
    return rows
  finally:
    results.release_lock(out)


def draw_partial(experiment, options, output_dir: str, *, log=print) -> str:
  """Draws output_dir/<name>/ from the rows its runs have written so far, training nothing;
  returns the table's path.

  For an unfinished (running, stopped or interrupted) experiment: the figures and table.md
  are drawn as by a finished one, from every run directory's results.jsonl that exists, with
  a header saying the result is partial (an experiment's `compute` rows are computed as in a
  full run, unless its `partial_compute` is False). A finished experiment (its own
  results.jsonl newer than every run's) is redrawn from its rows as they are, `compute` rows
  included, and says so. Takes no lock (every file it reads or writes is replaced whole, so it
  can run beside the experiment). Raises ValueError naming --draw_only when there is nothing
  to draw.
  """
  from benchmarks import results
  from benchmarks.experiments import base
  check_options(experiment, options)
  out = os.path.join(output_dir, base.output_name(experiment, options))
  paths = {label: os.path.join(out, 'runs', label, 'results.jsonl')
           for label in resolve(experiment, options)}
  present = [label for label, path in paths.items() if os.path.exists(path)]
  final = os.path.join(out, 'results.jsonl')
  if present and os.path.exists(final) and os.path.getmtime(final) >= max(
      os.path.getmtime(paths[label]) for label in present):
    with open(final) as f:  # computed rows have no scheme or step: not read_rows's rows
      rows = [json.loads(line) for line in f if line.strip()]
    note = (f'redrawn with --draw_only from the finished experiment\'s results.jsonl '
            f'({len(rows)} rows; its wall time is in the log of the run that finished it).')
  else:
    rows = [dict(r, run=label) for label in present
            for r in results.read_rows(paths[label])]
    if not rows:
      raise ValueError(f'--draw_only: no rows in {out}/runs/ yet; start the experiment '
                       'first (without --draw_only)')
    later = experiment.compute is not None and not experiment.partial_compute
    if not later:
      rows += computed_rows(experiment, options, log)
    note = (f'**partial**: drawn with --draw_only from the rows written so far (runs with '
            f'rows: {", ".join(present)}; {len(rows)} rows)'
            + ('; its computed rows come when the experiment finishes.' if later else '.'))
  table = experiment.draw(rows, out, options)
  head = header(experiment, options, 0.0, partial=note)
  path = os.path.join(out, 'table.md')
  results.atomic_write(path, head + '\n' + table)
  log(f'drew {out}/ (table.md, *.png) from {len(rows)} rows of {", ".join(present)}')
  return path


def main(argv):
  from benchmarks import experiments
  from benchmarks import runner
  from benchmarks.experiments import base
  if FLAGS.list:
    print(listing())
    return
  names = argv[1:]
  with runner.exits_on_bad_input():
    if len(names) != 1:
      raise ValueError(f'NAME: give one experiment (got {len(names)}); known: '
                       f'{", ".join(experiments.REGISTRY)} (--list describes them)')
    if names[0] not in experiments.REGISTRY:
      raise ValueError(f'NAME: unknown experiment {names[0]!r}; known: '
                       f'{", ".join(experiments.REGISTRY)}')
    experiment = experiments.REGISTRY[names[0]]
    options = base.Options(quick=FLAGS.quick, num_seeds=FLAGS.num_seeds, preset=FLAGS.preset)
    check_options(experiment, options)
  runner.quiet_backend_probe()
  t0 = time.time()
  with runner.exits_on_bad_input():  # resolves every run before anything runs
    if FLAGS.draw_only:
      print(open(draw_partial(experiment, options, FLAGS.output_dir)).read(), flush=True)
      return
    with runner.invocation_compilation_cache():
      run_experiment(experiment, options, FLAGS.output_dir, overwrite=FLAGS.overwrite,
                     log=lambda s: print(s, flush=True))
  out = os.path.join(FLAGS.output_dir, base.output_name(experiment, options))
  print(f'done in {time.time() - t0:.1f}s; {out}/ (table.md, results.jsonl, config.json, '
        '*.png, runs/)', flush=True)
  print(open(os.path.join(out, 'table.md')).read(), flush=True)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
