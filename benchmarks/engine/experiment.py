"""What an experiment is, and how one runs: data (the runs it needs) plus a drawing.

An experiment module under benchmarks/experiments/ defines `EXPERIMENT = Experiment(...)` and
is listed in benchmarks/experiments/__init__.py. `python -m benchmarks.experiment NAME` then
calls `run_experiment`, which
  1. trains every Run of `runs(options)` through the runner (`engine.runner.execute`: same
     keys, resume, atomic files) into DIR/NAME/runs/<run label>/,
  2. adds the rows of `compute(options)` (computations that train no generator, e.g. the 1-D
     Gaussian fits: cheap, recomputed each time),
  3. writes all rows to DIR/NAME/results.jsonl (each row has 'run': its run label), the
     configs to DIR/NAME/config.json, and calls `draw(rows, DIR/NAME, options)`, which writes
     its PNGs into that directory and returns the markdown of DIR/NAME/table.md.
`draw_partial` (--draw_only) draws from whatever rows the runs have written so far.
"""

import datetime
import json
import os
import platform
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import jax

from benchmarks.engine import configuration
from benchmarks.engine import files
from benchmarks.engine import memory
from benchmarks.engine import rundir
from benchmarks.engine import runner


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
  out = {}
  for label, r in experiment.runs(options).items():
    overrides = dict(r.overrides)
    num_seeds = options.num_seeds or overrides.pop('num_seeds', None)
    overrides.pop('num_seeds', None)
    try:
      config = configuration.build_config(r.preset, overrides, num_seeds=num_seeds)
      configuration.validate(config)
      memory.check_run(config, configuration.resolve_variants(config, r.variants))
    except (ValueError, KeyError, AttributeError) as e:
      raise ValueError(f'run {label!r} of {experiment.name}: {e}') from None
    out[label] = (config, r.variants)
  return out



def header(experiment, options, wall_time: float, partial: str = '') -> str:
  """The table's preamble: claim, command, date, device, wall time (or, for a partial
  drawing, `partial`: what it was drawn from)."""
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
  log(f'== {experiment.name}: computing')
  return [rundir._clean(r) for r in experiment.compute(options)]  # pylint: disable=protected-access



def run_experiment(experiment, options, output_dir: str, *, overwrite: bool = False,
                   log=print):
  """Runs, computes and draws one experiment into output_dir/<name>/; returns its rows.

  Holds output_dir/<name>/.lock meanwhile: a second invocation into it is refused (ValueError
  naming --output_dir) before anything is written.
  """
  check_options(experiment, options)
  resolved = resolve(experiment, options)  # every run checked before anything runs
  out = os.path.join(output_dir, output_name(experiment, options))
  os.makedirs(out, exist_ok=True)
  rundir.acquire_lock(out, log=log)  # each run's directory has its own (execute)
  try:
    files.atomic_write(os.path.join(out, 'config.json'), json.dumps({
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
      run_rows = runner.execute(config, os.path.join(out, 'runs', label), variants=variants,
                                 overwrite=overwrite, log=log,
                                 title=f'{experiment.name}: run {label}')
      rows += [dict(r, run=label) for r in run_rows]
    rows += computed_rows(experiment, options, log)
    files.atomic_write(os.path.join(out, 'results.jsonl'),
                         ''.join(json.dumps(r) + '\n' for r in rows))
    table = experiment.draw(rows, out, options)
    files.atomic_write(os.path.join(out, 'table.md'),
                         header(experiment, options, time.time() - t0) + '\n' + table)
    return rows
  finally:
    rundir.release_lock(out)



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
  check_options(experiment, options)
  out = os.path.join(output_dir, output_name(experiment, options))
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
            for r in rundir.read_rows(paths[label])]
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
  files.atomic_write(path, head + '\n' + table)
  log(f'drew {out}/ (table.md, *.png) from {len(rows)} rows of {", ".join(present)}')
  return path


class Options(NamedTuple):
  """Command-line options every experiment receives.

  quick: shrink every size so the experiment finishes in well under a minute (CI).
  num_seeds: seeds per run; None = the experiment's default.
  preset: the problem's preset, one of the experiment's `presets`; None = its first.
  """
  quick: bool = False
  num_seeds: Optional[int] = None
  preset: Optional[str] = None



class Run(NamedTuple):
  """One call of the runner.

  preset: a preset name (benchmarks/configs).
  overrides: flattened config fields -> values applied to the preset, e.g.
    {'train.num_steps': 400, 'pis': (0.1, 0.5)}; 'num_seeds' included.
  variants: label -> (scheme name, {flattened overrides of that scheme's config}): the
    schemes the run trains, each under its own label (rows' 'scheme' is the label, 'base_scheme'
    the scheme name). All variants of a run share the problem, the seeds and the warm start
    (config.train.warm_start_steps), so they are paired comparisons.
  """
  preset: str
  overrides: Dict[str, object]
  variants: Dict[str, Tuple[str, Dict[str, object]]]



class Experiment(NamedTuple):
  """An experiment: its name, the claim it tests, its runs, computations and drawing.

  runs: Options -> {run label: Run} (may be empty).
  compute: Options -> list of JSON-able row dicts, each with a 'run' label, or None.
  presets: the presets `--preset` may choose (the first is the default; its output goes to
    DIR/NAME, another's to DIR/NAME_<preset>); () = the experiment fixes its problem.
  partial_compute: whether `--draw_only` of an unfinished experiment computes `compute`'s
    rows; False for a computation that must not run beside the training (seqgan_table's
    profile: minutes of CPU, and timings taken on a busy machine would be wrong).
  draw: (rows, output directory, Options) -> markdown of the table (it writes its PNGs into
    the directory). Rows are those of results.jsonl: training rows (one per variant x seed x
    π x evaluation step, with 'run', 'scheme', 'base_scheme', 'seed', 'pi', 'step', 'phase',
    metrics and '<metric>_se', 'exact_<metric>' when enumerated) plus compute rows.
  """
  name: str
  claim: str
  runs: Callable[[Options], Dict[str, Run]]
  draw: Callable[[List[dict], str, Options], str]
  compute: Optional[Callable[[Options], List[dict]]] = None
  presets: Tuple[str, ...] = ()
  partial_compute: bool = True



def preset(experiment: Experiment, options: Options) -> str:
  """The preset of this invocation: options.preset or the experiment's default."""
  return options.preset or experiment.presets[0]



def output_name(experiment: Experiment, options: Options) -> str:
  """NAME for the default preset, NAME_<preset> for another (their runs differ)."""
  if not options.preset or options.preset == experiment.presets[0]:
    return experiment.name
  return f'{experiment.name}_{options.preset}'

