"""Compares runs by merging them into one report:

  python -m benchmarks.compare --input_dir=A [--input_dir=B ...] --output_dir=C

Each input is an --output_dir of benchmarks.run or an experiment's DIR/NAME/runs/<run>/ (or
an earlier merge), finished or partial. C gets summary.md, plots/metrics.png, results.jsonl
(the merged rows, so C is itself an input) and config.json, all rebuilt from the inputs'
results.jsonl; their config.json is read only to check that the oracles are the same. Bad
input: one line 'error: --flag: ...' on stderr, exit code 2, nothing written.
"""

import collections
import json
import os
import sys

from absl import app
from absl import flags

from benchmarks.analysis import report
from benchmarks.engine import files
from benchmarks.engine import rundir


# The fields of config.problem that define the oracle. num_train / num_test only change how
# many oracle samples are drawn as data: runs that differ in them share the oracle and merge.
ORACLE_FIELDS = ('source', 'vocab_size', 'seq_len', 'embed_dim', 'hidden_dim', 'init_scale',
                 'seed')



def oracle_of(run: rundir.RunDir) -> dict:
  """The oracle's fields of a run's config.problem (fields absent from an older config.json
  take base.py's defaults, as when that run was made)."""
  problem = rundir.config_from_saved({'problem': run.saved['config'].get('problem', {})}).problem
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
  runs = [rundir.read_run(p) for p in input_dirs]
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
  files.atomic_write(os.path.join(output_dir, 'results.jsonl'),
                       ''.join(json.dumps(r) + '\n' for r in rows))
  files.atomic_write(os.path.join(output_dir, 'config.json'),
                       json.dumps(dict(saved, hash=rundir.config_hash(saved)), indent=2,
                                  sort_keys=True, default=str))
  report.write_report(output_dir, rows, title=merge_title(runs))
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
