"""What an experiment is, and how one runs: data (the runs it needs) plus a drawing.

An experiment module under benchmarks/experiments/ defines `EXPERIMENT = Experiment(...)` and
is listed in benchmarks/experiments/__init__.py. `python -m benchmarks.experiment NAME` then
calls `run_experiment`, which
  1. trains every Run of `runs(options)` through the runner (`engine.runner.execute`: same
     keys, resume, atomic files) into DIR/NAME/runs/<run label>/,
  2. adds the rows of `compute(options)` (computations that train no generator, e.g. the 1-D
     Gaussian fits: cheap, recomputed each time),
  3. writes all rows to DIR/NAME/results.jsonl (each row has 'run': its run label), the
     configs to DIR/NAME/config.json, where and when it ran to DIR/NAME/provenance.json, and
     writes the page DIR/NAME/table.md: a header (claim, command, the recorded date, device
     and wall time), '## Verdicts' (the experiment's `claims` judged on the rows by
     benchmarks/analysis/verdicts.py), links to the PNGs and the markdown of
     `draw(rows, DIR/NAME, options)`, which writes those PNGs.
`draw_partial` (--draw_only) draws from whatever rows the runs have written so far; on a
finished experiment it rewrites the same page from the same rows (docs/runs/<name>/ ->
docs/findings/<name>.md with --findings_dir). `archive` (--archive) turns a finished
experiment's directory into what docs/runs/<name>/ commits, and draws it.
"""

import datetime
import gzip
import json
import os
import platform
import shutil
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import jax

from benchmarks.analysis import verdicts
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



PROVENANCE = 'provenance.json'  # DIR/NAME/: written when the experiment finishes


def provenance(wall_time: float) -> dict:
  """Where and when this invocation ran: the date, the device and its wall time (what a
  finished experiment's page states; recorded, so a redrawn page says the same)."""
  device = jax.devices()[0]
  return {'date': datetime.date.today().isoformat(),
          'device': (f'{device.platform} ({device.device_kind}, {jax.device_count()} device(s), '
                     f'{os.cpu_count()} CPU cores, {platform.machine()})'),
          'wall_time_s': round(float(wall_time))}


def read_provenance(out: str) -> Optional[dict]:
  """DIR/NAME/provenance.json, or None (an unfinished experiment, or one finished before
  provenance was recorded)."""
  path = os.path.join(out, PROVENANCE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def command(experiment, options) -> str:
  cmd = f'python -m benchmarks.experiment {experiment.name}'
  cmd += ' --quick' if options.quick else ''
  cmd += f' --num_seeds={options.num_seeds}' if options.num_seeds else ''
  cmd += f' --preset={options.preset}' if options.preset else ''
  return cmd


def header(experiment, options, prov: Optional[dict], partial: str = '') -> str:
  """The page's preamble: claim, command, and the recorded date, device and wall time (`prov`,
  see `provenance`), or for a partial drawing `partial`: what it was drawn from."""
  if partial:
    prov = provenance(0.0)
  when = partial or (f"wall time {prov['wall_time_s']} s (of the invocation that finished it; "
                     'a resumed invocation counts only what it ran).')
  return '\n'.join([
      f'# {experiment.name}', '', f'**Claim tested.** {experiment.claim}', '',
      f'Command: `{command(experiment, options)}`  ',
      f"Date: {prov['date']}; device: {prov['device']}; " + when, ''])


def with_derived(experiment, rows) -> List[dict]:
  """The rows and the experiment's derived rows (`Experiment.derive`) after them."""
  rows = list(rows)
  return rows + (experiment.derive(rows) if experiment.derive else [])


def verdict_section(experiment, options, rows) -> str:
  """'## Verdicts' from the experiment's declared claims judged on the rows ('' if none)."""
  if experiment.claims is None:
    return ''
  found = verdicts.judge(experiment.claims(options), rows)
  return ('## Verdicts\n\nBy the rule of `benchmarks/analysis/verdicts.py` (sampled runs '
          'judged over seeds, computed rows exactly; Holm–Bonferroni over these '
          f'{len(found)} claims at α = {verdicts.ALPHA}).'
          '\n\n' + verdicts.markdown(found) + '\n\n'
          + (experiment.explanation.strip() + '\n\n' if experiment.explanation else ''))


def page(head: str, verdict_md: str, table: str, figures, figure_dir: str = '.') -> str:
  """The whole page: header, verdicts, figure links (`figures`: PNG names in `figure_dir`,
  a path relative to the page), then the drawing's markdown `table`."""
  links = ''.join(f'![{os.path.splitext(f)[0]}]({f if figure_dir == "." else figure_dir + "/" + f})\n'
                  for f in figures)
  return (head + '\n' + verdict_md
          + ('## What was measured\n\n' + links + '\n' if links else '') + table)


def draw_pages(experiment, options, rows, out: str, prov: Optional[dict], *, partial: str = '',
               findings_dir: Optional[str] = None) -> str:
  """Draws the figures into `out` and writes out/table.md (and, with findings_dir, the same
  page as findings_dir/<name>.md, its figure links relative to it); returns table.md's path.
  The claims are judged once for both, on the rows and the derived rows."""
  rows = with_derived(experiment, rows)
  table = experiment.draw(rows, out, options)
  figures = sorted(f for f in os.listdir(out) if f.endswith('.png'))
  head = header(experiment, options, prov, partial)
  verdict_md = verdict_section(experiment, options, rows)
  path = os.path.join(out, 'table.md')
  files.atomic_write(path, page(head, verdict_md, table, figures))
  if findings_dir:
    os.makedirs(findings_dir, exist_ok=True)
    files.atomic_write(
        os.path.join(findings_dir, os.path.basename(out) + '.md'),
        page(head, verdict_md, table, figures,
             os.path.relpath(out, findings_dir).replace(os.sep, '/')))
  return path


def read_experiment_rows(out: str) -> List[dict]:
  """The rows of DIR/NAME/results.jsonl, or of its compressed copy results.jsonl.gz
  (`rundir.rows_file`; training and computed rows: computed ones have no scheme or step, so
  not `rundir.read_rows`'s)."""
  path = rundir.rows_file(os.path.join(out, 'results.jsonl'))
  if path is None:
    raise FileNotFoundError(os.path.join(out, 'results.jsonl'))
  with rundir.open_rows(path, 'rt') as f:
    return [json.loads(line) for line in f if line.strip()]


def computed_rows(experiment, options, out: str, log) -> list:
  """The experiment's computed (not trained) rows; [] when it has no `compute`. `out` is the
  experiment's directory: `compute` gets its runs' directory, out/runs (their checkpoints)."""
  if experiment.compute is None:
    return []
  log(f'== {experiment.name}: computing')
  return [rundir._clean(r)  # pylint: disable=protected-access
          for r in experiment.compute(options, os.path.join(out, 'runs'))]



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
    rows += computed_rows(experiment, options, out, log)
    files.atomic_write(os.path.join(out, 'results.jsonl'),
                         ''.join(json.dumps(r) + '\n' for r in rows))
    prov = provenance(time.time() - t0)
    files.atomic_write(os.path.join(out, PROVENANCE), json.dumps(prov, indent=2) + '\n')
    draw_pages(experiment, options, rows, out, prov)
    return rows
  finally:
    rundir.release_lock(out)



ANSWERS_BEGIN = '<!-- answers: generated by `python -m benchmarks.experiment --answers` from docs/runs/; do not edit -->'
ANSWERS_END = '<!-- answers: end -->'


def answers(registry, runs_dir: str, findings_link: str) -> str:
  """The verdicts of every committed finished experiment (runs_dir/<name>/ with
  provenance.json), one bullet per experiment and one line per claim, linking its page
  (`findings_link`/<name>.md): README's "answer so far" is this list."""
  lines = []
  for name in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []:
    out = os.path.join(runs_dir, name)
    prov = read_provenance(out)
    if prov is None:
      continue
    with open(os.path.join(out, 'config.json')) as f:
      saved = json.load(f)
    experiment = registry[saved['experiment']]
    if experiment.claims is None:
      continue
    options = Options(**saved['options'])
    found = verdicts.judge(experiment.claims(options),
                           with_derived(experiment, read_experiment_rows(out)))
    lines.append(f'- [{name}]({findings_link}/{name}.md#verdicts) ({prov["date"]}, '
                 f'{len(found)} claims):')
    lines += [f'  - **{v.word}** — {v.claim.text}' for v in found]
  return '\n'.join([ANSWERS_BEGIN] + lines + [ANSWERS_END])


def replace_answers(text: str, block: str) -> str:
  """`text` with its answers block (ANSWERS_BEGIN ... ANSWERS_END) replaced by `block`."""
  start, end = text.find(ANSWERS_BEGIN), text.find(ANSWERS_END)
  if start < 0 or end < start:
    raise ValueError('--answers: README.md has no answers block (the two marker lines '
                     f'{ANSWERS_BEGIN!r} and {ANSWERS_END!r})')
  return text[:start] + block + text[end + len(ANSWERS_END):]


def _run_rows_paths(experiment, options, out: str) -> Dict[str, Optional[str]]:
  """{run label: the path of out/runs/<label>/results.jsonl (or its .gz), None when absent}."""
  return {label: rundir.rows_file(os.path.join(out, 'runs', label, 'results.jsonl'))
          for label in resolve(experiment, options)}


def _run_lacking_rows(rows, paths) -> Optional[str]:
  """The first run label whose own results.jsonl (`paths`: {label: its path or None}) holds
  more or fewer rows than the experiment's `rows` of that run; None when all agree."""
  return next((label for label, path in paths.items() if path is not None
               and sum(r.get('run') == label for r in rows) != len(rundir.read_rows(path))),
              None)


def draw_partial(experiment, options, output_dir: str, *, log=print,
                 findings_dir: Optional[str] = None) -> str:
  """Draws output_dir/<name>/ from the rows its runs have written so far, training nothing;
  returns the table's path.

  For an unfinished (running, stopped or interrupted) experiment: the figures and table.md
  are drawn as by a finished one, from every run directory's results.jsonl that exists, with
  a header saying the result is partial (an experiment's `compute` rows are computed as in a
  full run, unless its `partial_compute` is False). A finished experiment (its own
  results.jsonl holds as many rows of each run as the run's own; or an archive, docs/runs/:
  its results.jsonl and provenance.json without the runs' copies of the rows; either file
  may be gzip-compressed, `rundir.rows_file`) is redrawn from its rows as they are, `compute`
  rows included: with its recorded provenance.json, the page is the one the experiment
  wrote, byte for byte (the figures redrawn from the same rows); without one, it says it was
  redrawn. With `findings_dir`, the page is also written as findings_dir/<name>.md
  (docs/findings/). Takes no lock (every file it reads or writes is replaced whole, so it
  can run beside the experiment). Raises ValueError naming --draw_only when there is nothing
  to draw.
  """
  check_options(experiment, options)
  out = os.path.join(output_dir, output_name(experiment, options))
  paths = _run_rows_paths(experiment, options, out)
  present = [label for label, path in paths.items() if path is not None]
  finished = None
  has_rows = rundir.rows_file(os.path.join(out, 'results.jsonl')) is not None
  if has_rows and len(present) == len(paths):
    finished = read_experiment_rows(out)
    # Finished = its results.jsonl holds every row its runs hold (by content, not file
    # times: a fresh clone of committed rows has arbitrary ones); an experiment with no runs
    # (computed rows only) once its results.jsonl exists.
    if _run_lacking_rows(finished, paths) is not None:
      finished = None
  elif has_rows and not present and read_provenance(out) is not None:
    # An archive (docs/runs/): the finished experiment's rows and provenance, without the
    # runs' own copies of the same rows.
    finished = read_experiment_rows(out)
  if finished is not None:
    rows = finished
    prov = read_provenance(out)
    note = '' if prov else (
        f'redrawn with --draw_only from the finished experiment\'s results.jsonl '
        f'({len(rows)} rows; its wall time is in the log of the run that finished it).')
  else:
    rows = [dict(r, run=label) for label in present
            for r in rundir.read_rows(paths[label])]
    prov = None
    if not rows:
      raise ValueError(f'--draw_only: no rows in {out}/runs/ yet; start the experiment '
                       'first (without --draw_only)')
    later = experiment.compute is not None and not experiment.partial_compute
    if not later:
      rows += computed_rows(experiment, options, out, log)
    note = (f'**partial**: drawn with --draw_only from the rows written so far (runs with '
            f'rows: {", ".join(present)}; {len(rows)} rows)'
            + ('; its computed rows come when the experiment finishes.' if later else '.'))
  path = draw_pages(experiment, options, rows, out, prov, partial=note,
                    findings_dir=findings_dir)
  log(f'drew {out}/ (table.md, *.png) from {len(rows)} rows of '
      f'{", ".join(present) if present else "its archive"}')
  return path


def archive(experiment, options, output_dir: str, *, log=print,
            findings_dir: Optional[str] = None) -> str:
  """Turns the finished output_dir/<name>/ into its committed archive, in place; then draws
  it as `draw_partial` does (the page, with `findings_dir` also findings_dir/<name>.md).

  The archive (docs/runs/<name>/, what tests/test_findings.py regenerates pages from) keeps
  config.json, provenance.json, the figures, results.jsonl compressed as results.jsonl.gz
  (level 9, no name or time in its header: the bytes depend on the rows alone) and each run's
  config.json; it drops the runs' own copies of the rows, their checkpoints, TensorBoard
  files, plots and summaries. An experiment run into docs/runs/ commits those as its runs
  finish (a later session resumes it by running the same command), and this makes the final
  commit. Raises ValueError naming --archive before anything is removed when the experiment
  has not finished (no provenance.json, or its results.jsonl lacks rows its runs hold).
  """
  check_options(experiment, options)
  out = os.path.join(output_dir, output_name(experiment, options))
  if read_provenance(out) is None:
    raise ValueError(f'--archive: {out} has no {PROVENANCE}: the experiment has not finished '
                     '(run it without --archive first)')
  rows_path = rundir.rows_file(os.path.join(out, 'results.jsonl'))
  if rows_path is None:
    raise ValueError(f'--archive: {out} has no results.jsonl')
  lacking = _run_lacking_rows(read_experiment_rows(out),
                              _run_rows_paths(experiment, options, out))
  if lacking is not None:
    raise ValueError(f'--archive: {out}/results.jsonl lacks rows of run {lacking!r}: the '
                     'experiment has not finished (run it without --archive first)')
  if not rows_path.endswith('.gz'):
    with open(rows_path, 'rb') as f:
      files.atomic_write(rows_path + '.gz', gzip.compress(f.read(), compresslevel=9, mtime=0))
    os.remove(rows_path)
  runs_dir = os.path.join(out, 'runs')
  for label in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []:
    for entry in os.listdir(os.path.join(runs_dir, label)):
      if entry != 'config.json':
        path = os.path.join(runs_dir, label, entry)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
  for entry in ('table.md', '.lock'):
    if os.path.exists(os.path.join(out, entry)):
      os.remove(os.path.join(out, entry))
  log(f'archived {out}/ (results.jsonl.gz, config.json, provenance.json, runs/*/config.json)')
  return draw_partial(experiment, options, output_dir, log=log, findings_dir=findings_dir)


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
  compute: (Options, the runs' directory DIR/NAME/runs: their checkpoints) -> list of
    JSON-able row dicts, each with a 'run' label, or None.
  presets: the presets `--preset` may choose (the first is the default; its output goes to
    DIR/NAME, another's to DIR/NAME_<preset>); () = the experiment fixes its problem.
  partial_compute: whether `--draw_only` of an unfinished experiment computes `compute`'s
    rows; False for a computation that must not run beside the training (seqgan_table's
    profile: minutes of CPU, and timings taken on a busy machine would be wrong).
  draw: (rows, output directory, Options) -> markdown of the tables (it writes its PNGs into
    the directory; the page links every PNG there). Rows are those of results.jsonl:
    training rows (one per variant x seed x π x evaluation step, with 'run', 'scheme',
    'base_scheme', 'seed', 'pi', 'step', 'phase', metrics and '<metric>_se',
    'exact_<metric>' when enumerated) plus compute rows.
  claims: Options -> the claims (benchmarks.analysis.verdicts) the page's '## Verdicts'
    judges on the rows; None = no verdicts section.
  explanation: markdown after the verdicts: how to read them (never a verdict of its own).
  derive: rows -> rows computed from them (e.g. the best initialisation of each exact
    objective), added to the rows the drawing and the claims see; recomputed on every draw,
    never written (`with_derived`). None = none.
  """
  name: str
  claim: str
  runs: Callable[[Options], Dict[str, Run]]
  draw: Callable[[List[dict], str, Options], str]
  compute: Optional[Callable[[Options, str], List[dict]]] = None
  presets: Tuple[str, ...] = ()
  partial_compute: bool = True
  claims: Optional[Callable[[Options], Sequence[verdicts.Claim]]] = None
  explanation: str = ''
  derive: Optional[Callable[[List[dict]], List[dict]]] = None



def preset(experiment: Experiment, options: Options) -> str:
  """The preset of this invocation: options.preset or the experiment's default."""
  return options.preset or experiment.presets[0]



def output_name(experiment: Experiment, options: Options) -> str:
  """NAME for the default preset, NAME_<preset> for another (their runs differ)."""
  if not options.preset or options.preset == experiment.presets[0]:
    return experiment.name
  return f'{experiment.name}_{options.preset}'

