"""Summaries (mean ± 95% CI over seeds) and plots from the rows of results.jsonl.

As a program it merges runs into one report:

  python -m benchmarks.report --input_dir=A [--input_dir=B ...] --output_dir=C

Each input is an --output_dir of benchmarks.run or an experiment's DIR/NAME/runs/<run>/ (or
an earlier merge), finished or partial. C gets summary.md, plots/metrics.png, results.jsonl
(the merged rows, so C is itself an input) and config.json, all rebuilt from the inputs'
results.jsonl; their config.json is read only to check that the oracles are the same. Bad
input: one line 'error: --flag: ...' on stderr, exit code 2, nothing written.
"""

import collections
import json
import math
import os
import sys

from absl import app
from absl import flags
import numpy as np
import scipy.stats

from benchmarks import results

TABLE_METRICS = ('nll_oracle', 'nll_test', 'entropy_q', 'kl_pq', 'kl_qp', 'exposure_model',
                 'exposure_oracle', 'exacc_err')
MAX_COLUMNS = 8  # metric columns per summary table (an enumerable π sweep has 24)
PLOT_METRICS = ('nll_test', 'kl_pq', 'nll_oracle', 'entropy_q', 'kl_qp', 'js_pi')


def mean_ci(values, confidence: float = 0.95):
  """(mean, half-width of the t confidence interval, n) of the finite values."""
  v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
  if v.size == 0:
    return math.nan, math.nan, 0
  if v.size == 1:
    return float(v[0]), math.nan, 1
  half = scipy.stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
  return float(v.mean()), float(half), int(v.size)


def fmt(mean, half) -> str:
  """mean ± CI half-width in 4 significant digits (n/a when not finite)."""
  if not math.isfinite(mean):
    return 'n/a'
  # Significant digits, not decimals: per-token JS_π is small (at most H(π)/T).
  return f'{mean:.4g}' if not math.isfinite(half) else f'{mean:.4g} ± {half:.2g}'


def fmt_ci(values) -> str:
  """'mean ± CI' of a list of per-seed values (None and non-finite skipped)."""
  return fmt(*mean_ci(values)[:2])


def paired(a_rows, b_rows, value):
  """Per-seed differences value(a) − value(b) over the seeds present in both (a's order).

  Rows of two schemes (or settings) that share a seed share its keys, and warm-started ones
  its MLE start, so these differences are sharper than the two marginal CIs. `value` maps a
  row to a float or None; pairs with a None or non-finite side are skipped, so diverged seeds
  drop out.
  """
  by_seed = {r['seed']: r for r in b_rows}
  out = []
  for r in a_rows:
    if r['seed'] in by_seed:
      x, y = value(r), value(by_seed[r['seed']])
      if x is not None and y is not None and math.isfinite(x - y):
        out.append(x - y)
  return out


def metric_value(row, name):
  """The value of metric `name` in a row; 'js_pi@0.5' reads row['js_pi']['0.5']."""
  if '@' in name:
    base, pi = name.split('@')
    return (row.get(base) or {}).get(pi)
  return row.get(name)


def groups(rows, by=('scheme', 'pi')):
  """{(row[f] for f in by): {step: [rows]}}, in first-seen order (default key (scheme, pi))."""
  out = collections.OrderedDict()
  for r in rows:
    key = tuple(r.get(f) for f in by)
    out.setdefault(key, collections.defaultdict(list))[r['step']].append(r)
  return out


def first_row(rows):
  return rows[0] if rows else {}


def metric_families(rows):
  """[(caption, metric names)]: the MC metrics present, JS_π per π, exact_* metrics, exact
  JS_π per π (the empty ones left out)."""
  def present(name):
    return any(metric_value(r, name) is not None for r in rows)
  # Over all rows, in first-seen order: merged runs may have different π grids.
  pis = list(dict.fromkeys(p for r in rows for p in (r.get('js_pi') or {})))
  exact_pis = list(dict.fromkeys(p for r in rows for p in (r.get('exact_js_pi') or {})))
  families = [('Monte-Carlo', [m for m in TABLE_METRICS if present(m)]),
              ('JS_π per π, Monte-Carlo', [f'js_pi@{p}' for p in pis]),
              ('exact, by enumeration', [f'exact_{m}' for m in TABLE_METRICS
                                         if present(f'exact_{m}')]),
              ('exact JS_π per π, by enumeration', [f'exact_js_pi@{p}' for p in exact_pis])]
  return [(caption, names) for caption, names in families if names]


def tables_of(families, max_columns: int = MAX_COLUMNS):
  """Packs metric families, in order, into tables of at most max_columns metrics (a family
  wider than that gets a table of its own, unsplit): [(captions, names)]."""
  tables = []
  for caption, names in families:
    if tables and len(tables[-1][1]) + len(names) <= max_columns:
      tables[-1][0].append(caption)
      tables[-1][1].extend(names)
    else:
      tables.append(([caption], list(names)))
  return tables


def training_seconds(rows) -> dict:
  """{scheme: train_seconds at its last step} of the schemes whose last row has them, in
  first-seen order ({} for rows of older code)."""
  out = {}
  for (scheme, _), steps in groups([r for r in rows if r.get('phase') != 'alpha'],
                                   by=('scheme', 'phase')).items():
    last = [r.get('train_seconds') for r in steps[max(steps)]]
    if last and all(t is not None for t in last):
      out[scheme] = max(last)
  return out


def summary_markdown(rows, *, title: str = 'divbench results') -> str:
  """Markdown tables: one line per (scheme, π) at its final step, plus the initial model;
  the metrics in tables of at most MAX_COLUMNS columns (`tables_of`)."""
  if not rows:
    return f'# {title}\n\nNo results yet.\n'
  lines = [f'# {title}', '',
           'Per-token values; mean ± 95% CI (t) over seeds that did not diverge. '
           'MC = Monte-Carlo estimates; exact_* by enumeration.']
  g = groups(rows)
  (scheme0, pi0), steps0 = next(iter(g.items()))
  entries = [(f'initial generator ({scheme0})', pi0, 0, steps0[0])] if 0 in steps0 else []
  for (scheme, pi), steps in g.items():
    last = max(steps)
    label = f'warm start (MLE, {last} steps)' if scheme == 'warm_start' else scheme
    entries.append((label, pi, last, steps[last]))
  tables = tables_of(metric_families(rows))
  for captions, names in tables:
    header = ['scheme', 'π', 'step', 'seeds ok'] + names
    lines += [''] + ([f'**{"; ".join(captions)}**', ''] if len(tables) > 1 else [])
    lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for label, pi, step, rs in entries:
      ok = [r for r in rs if not r.get('diverged')]
      cells = [label, '–' if pi is None else f'{pi:g}', str(step), f'{len(ok)}/{len(rs)}']
      cells += [fmt_ci([metric_value(r, n) for r in ok]) for n in names]
      lines.append('| ' + ' | '.join(cells) + ' |')
  times = training_seconds(rows)
  if times:
    lines += ['', 'Training time over all invocations (all runs of a scheme together, '
              'evaluations and compilation included): '
              + ', '.join(f'{k} {v:.0f} s' for k, v in times.items()) + '.']
  h_p = mean_ci([r.get('entropy_p') for r in rows if r['step'] == 0])
  if h_p[2]:
    lines += ['', f'Oracle entropy H(P) per token (MC on the test set): {h_p[0]:.4g}.']
  if 'js_pi' in first_row(rows):
    lines += ['JS_π is bounded by H(π) per sequence, i.e. H(π)/T per token '
              '(0.6931/T at π = 0.5): values at that bound mean P and Q are nearly disjoint.']
  return '\n'.join(lines) + '\n'


def plot(rows, path: str) -> None:
  """Metrics against training step: one panel per metric, one line per (scheme, π)."""
  from benchmarks import figures  # pylint: disable=import-outside-toplevel  (figures uses report)

  names = [n for n in PLOT_METRICS if n != 'js_pi']
  pis = list((rows[0].get('js_pi') or {}).keys())
  if pis:
    names.append(f'js_pi@{pis[len(pis) // 2]}')
  cols = 3
  nrows = math.ceil(len(names) / cols)
  fig, axes = figures.subplots(nrows, cols, width=4.2, height=3.2)
  for ax, name in zip(axes.flat, names):
    for (scheme, pi), steps in groups(rows).items():
      xs = sorted(steps)
      stats = [mean_ci([metric_value(r, name) for r in steps[s] if not r.get('diverged')])
               for s in xs]
      m = np.array([s[0] for s in stats])
      h = np.nan_to_num(np.array([s[1] for s in stats]))
      label = scheme if pi is None else f'{scheme} π={pi:g}'
      ax.plot(xs, m, label=label)
      ax.fill_between(xs, m - h, m + h, alpha=0.2)
    if name == 'entropy_q':  # the data's entropy: where an exact fit would end
      h_p = mean_ci([r.get('entropy_p') for r in rows if r['step'] == 0])[0]
      if math.isfinite(h_p):
        ax.axhline(h_p, color='k', ls='--', lw=0.8, label='H(P)')
        ax.legend(fontsize=7)
    ax.set_title(name + ' (per token)')
    ax.set_xlabel('step')
  for ax in axes.flat[len(names):]:
    ax.axis('off')
  axes.flat[0].legend(fontsize=7)
  figures.save(fig, path)


ALPHA_METRICS = ('nll_oracle', 'nll_test', 'entropy_q', 'kl_pq', 'kl_qp')


def alpha_markdown(rows) -> str:
  """The α sweep (rows of phase 'alpha'): one line per (scheme, π, α), mean ± 95% CI."""
  header = ['scheme', 'π', 'α', 'seeds ok'] + list(ALPHA_METRICS)
  lines = ['## α sweep (logits × α)', '',
           'Each run\'s selected generator (config.eval.select) at inverse temperature α.', '',
           '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for (scheme, pi, alpha), steps in groups(rows, by=('scheme', 'pi', 'alpha')).items():
    rs = [r for step_rows in steps.values() for r in step_rows]
    ok = [r for r in rs if not r.get('diverged')]
    cells = [scheme, '–' if pi is None else f'{pi:g}', f'{alpha:g}', f'{len(ok)}/{len(rs)}']
    cells += [fmt_ci([r.get(m) for r in ok]) for m in ALPHA_METRICS]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def write_report(output_dir: str, rows, *, title: str) -> None:
  """Writes summary.md and plots/metrics.png for the rows (atomically)."""
  alpha = [r for r in rows if r.get('phase') == 'alpha']
  rows = [r for r in rows if r.get('phase') != 'alpha']
  text = summary_markdown(rows, title=title)
  if alpha:
    text += '\n' + alpha_markdown(alpha)
  results.atomic_write(os.path.join(output_dir, 'summary.md'), text)
  if rows:
    plot(rows, os.path.join(output_dir, 'plots', 'metrics.png'))


# Merging runs (python -m benchmarks.report).

# The fields of config.problem that define the oracle. num_train / num_test only change how
# many oracle samples are drawn as data: runs that differ in them share the oracle and merge.
ORACLE_FIELDS = ('source', 'vocab_size', 'seq_len', 'embed_dim', 'hidden_dim', 'init_scale',
                 'seed')


class RunDir(collections.namedtuple('RunDir', 'path saved rows')):
  """One input: its path as given, its config.json ({hash, config[, ...]}) and its rows."""

  @property
  def name(self) -> str:
    return os.path.basename(os.path.normpath(self.path))


def _read_json(path: str, what: str):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f'--input_dir: cannot read {what} {path!r} ({e})') from None


def read_run(path: str) -> RunDir:
  """The config.json and results.jsonl rows of an input directory.

  Raises:
    ValueError: naming --input_dir when the directory, either file, or a line of
      results.jsonl (file and line number) is missing or unreadable.
  """
  if not os.path.isdir(path):
    raise ValueError(f'--input_dir: {path!r} is not a directory')
  files = {n: os.path.join(path, n) for n in ('config.json', 'results.jsonl')}
  for name, file in files.items():
    if not os.path.isfile(file):
      raise ValueError(f'--input_dir: {path!r} has no {name} (not an --output_dir of '
                       'benchmarks.run)')
  saved = _read_json(files['config.json'], 'config')
  if not isinstance((saved.get('config') if isinstance(saved, dict) else None), dict):
    raise ValueError(f'--input_dir: {files["config.json"]!r} has no config')
  try:
    rows = results.read_rows(files['results.jsonl'])
  except OSError as e:
    raise ValueError(f'--input_dir: cannot read {files["results.jsonl"]!r} ({e})') from None
  except results.Unreadable as e:
    raise ValueError(f'--input_dir: {files["results.jsonl"]!r} {e} ({e.detail})') from None
  return RunDir(path, saved, rows)


def oracle_of(run: RunDir) -> dict:
  """The oracle's fields of a run's config.problem (fields absent from an older config.json
  take base.py's defaults, as when that run was made)."""
  from benchmarks.configs import base
  problem = dict(base.get_config().problem.to_dict(), **run.saved['config'].get('problem', {}))
  return {k: problem[k] for k in ORACLE_FIELDS}


def check_oracles(runs) -> None:
  """ValueError naming --input_dir and the differing problem.* fields unless all runs share
  the first run's oracle."""
  first = oracle_of(runs[0])
  for run in runs[1:]:
    other = oracle_of(run)
    diff = [f'problem.{k} ({runs[0].path}: {first[k]}, {run.path}: {other[k]})'
            for k in ORACLE_FIELDS if first[k] != other[k]]
    if diff:
      raise ValueError(f'--input_dir: the oracles differ in {", ".join(diff)}')


def merged_rows(runs):
  """The rows of all runs; a scheme label found in several runs becomes '<run>/<label>'.

  <run> is the input directory's basename (its path as given when two basenames are equal).
  """
  names = [r.name for r in runs]
  prefixes = names if len(set(names)) == len(names) else [os.path.normpath(r.path) for r in runs]
  seen = collections.Counter(s for r in runs for s in {row['scheme'] for row in r.rows})
  return [dict(row, scheme=f'{prefix}/{row["scheme"]}') if seen[row['scheme']] > 1 else row
          for prefix, run in zip(prefixes, runs) for row in run.rows]


def merge_title(runs) -> str:
  """The summary's title: each input's path, preset, date (when its rows have one) and hash."""
  def describe(run):
    dates = sorted({str(r['date']) for r in run.rows if r.get('date')})
    date = f', {dates[0]}' + (f' to {dates[-1]}' if len(dates) > 1 else '') if dates else ''
    return (f'{run.path} (preset {run.saved["config"].get("preset", "?")}{date}, '
            f'config {run.saved.get("hash", "?")})')
  return 'divbench: merge of ' + '; '.join(describe(r) for r in runs)


def check_merge(input_dirs, output_dir):
  """Every input read and checked (nothing written): the RunDirs. ValueError names the flag."""
  if not input_dirs:
    raise ValueError('--input_dir: give at least one (repeat the flag for several runs)')
  if not output_dir:
    raise ValueError('--output_dir: required')
  real = [os.path.realpath(p) for p in input_dirs]
  for i, p in enumerate(real):
    if p in real[:i]:
      raise ValueError(f'--input_dir: {input_dirs[i]!r} is given twice')
  if os.path.realpath(output_dir) in real:
    raise ValueError(f'--output_dir: {output_dir!r} is one of the --input_dir; choose another '
                     'directory')
  old = os.path.join(output_dir, 'config.json')
  if os.path.isfile(old):
    try:
      with open(old) as f:
        is_merge = 'inputs' in json.load(f)
    except (OSError, ValueError):
      is_merge = False
    if not is_merge:
      raise ValueError(f'--output_dir: {output_dir!r} holds a run, not a merge; choose '
                       'another directory')
  runs = [read_run(p) for p in input_dirs]
  check_oracles(runs)
  return runs


def merge(input_dirs, output_dir):
  """Merges the runs into output_dir (summary.md, plots/, results.jsonl, config.json).

  Args:
    input_dirs: output directories of benchmarks.run (or experiment runs, or merges).
    output_dir: where the merge goes; not one of the inputs. A previous merge is replaced.

  Returns:
    The merged rows.

  Raises:
    ValueError: naming the flag, before anything is written.
  """
  runs = check_merge(input_dirs, output_dir)
  rows = merged_rows(runs)
  inputs = [{'path': r.path, 'hash': r.saved.get('hash'),
             'preset': r.saved['config'].get('preset')} for r in runs]
  # The first input's problem: all share the oracle (num_train / num_test may differ).
  config = {'preset': 'merge', 'problem': runs[0].saved['config'].get('problem', {})}
  saved = {'config': config, 'inputs': inputs}
  results.atomic_write(os.path.join(output_dir, 'results.jsonl'),
                       ''.join(json.dumps(r) + '\n' for r in rows))
  results.atomic_write(os.path.join(output_dir, 'config.json'),
                       json.dumps(dict(saved, hash=results.config_hash(saved)), indent=2,
                                  sort_keys=True, default=str))
  write_report(output_dir, rows, title=merge_title(runs))
  return rows


def cli(input_dirs, output_dir, err=None) -> int:
  """The command: merge(...); bad input -> one line 'error: --flag: ...' on err, 2."""
  err = err or sys.stderr
  try:
    rows = merge(input_dirs, output_dir)
  except ValueError as e:
    print(f'error: {e}', file=err, flush=True)
    return 2
  print(f'{len(rows)} rows of {len(input_dirs)} runs; {output_dir}/ (summary.md, '
        'plots/metrics.png, results.jsonl, config.json)', flush=True)
  return 0


def _define_flags():
  """The command-line flags, defined only when run as a program (benchmarks.run and others,
  imported alongside in one test process, own --output_dir too)."""
  flags.DEFINE_multi_string('input_dir', [], 'A run to merge: an --output_dir of '
                            "benchmarks.run, an experiment's DIR/NAME/runs/<run>/ or a merge. "
                            'Repeat the flag for each run.')
  flags.DEFINE_string('output_dir', None, 'Where summary.md, plots/, results.jsonl and '
                      'config.json of the merge go (not one of the inputs).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  sys.exit(cli(flags.FLAGS.input_dir, flags.FLAGS.output_dir))


if __name__ == '__main__':
  _define_flags()
  app.run(main)
