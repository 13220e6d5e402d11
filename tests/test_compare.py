"""Tests of `python -m benchmarks.compare`: merging runs into one summary, and bad input.

Three smoke runs are trained once, in this process through the runner the command calls
(`runner.execute`, so A's and C's programs compile once), and shared by every test: A (mle),
B (mle and cot at π = 0.5: its mle collides with A's) and C (mle on another oracle:
problem.seed=99).
"""

import functools
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized

from benchmarks import compare
from benchmarks.engine import configuration
from benchmarks.engine import runner
from benchmarks.analysis import report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(module, *args):
  return subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=600)


@functools.lru_cache(maxsize=None)
def trained_runs() -> dict:
  """{name: output directory} of the three runs (trained once per test process)."""
  root = tempfile.mkdtemp()
  overrides = {'train.num_steps': 10, 'train.eval_every': 5}
  extra = {'A': ('mle', None, {}), 'B': ('mle,cot', '0.5', {}),
           'C': ('mle', None, {'problem.seed': 99})}
  dirs = {}
  for name, (schemes, pis, more) in extra.items():
    dirs[name] = os.path.join(root, name)
    config = configuration.build_config('smoke', dict(overrides, **more), schemes=schemes,
                                        num_seeds=2, pis=pis)
    runner.execute(config, dirs[name], log=lambda s: None)
  return dirs


def read_rows(path):
  with open(os.path.join(path, 'results.jsonl')) as f:
    return [json.loads(line) for line in f]


def copy_run(name) -> str:
  """A fresh copy of a trained run (to be altered by a test)."""
  path = os.path.join(tempfile.mkdtemp(), name)
  shutil.copytree(trained_runs()[name], path)
  return path


def merge_in_process(input_dirs, output_dir):
  """(exit code, stderr) of compare.cli."""
  err = io.StringIO()
  return compare.cli(input_dirs, output_dir, err=err), err.getvalue()


class MergeTest(absltest.TestCase):

  def test_cli_merges_summary_plot_and_rows(self):
    runs = trained_runs()
    out = os.path.join(tempfile.mkdtemp(), 'merged')
    proc = _python('benchmarks.compare', f'--input_dir={runs["A"]}', f'--input_dir={runs["B"]}',
                   f'--output_dir={out}')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(out, 'summary.md')) as f:
      summary = f.read()
    title = summary.splitlines()[0]
    for name in ('A', 'B'):
      with open(os.path.join(runs[name], 'config.json')) as f:
        config_hash = json.load(f)['hash']
      self.assertIn(f'{runs[name]} (preset smoke, config {config_hash})', title)
    for label in ('A/mle', 'B/mle', 'cot'):
      self.assertIn(f'| {label} | ', summary)
    self.assertNotIn('| mle | ', summary)
    self.assertIn('js_pi@0.1', summary)  # A's π grid, although B's rows have only 0.5
    with open(os.path.join(out, 'plots', 'metrics.png'), 'rb') as f:
      self.assertEqual(f.read(8), b'\x89PNG\r\n\x1a\n')
    expected = ([dict(r, scheme=f'A/{r["scheme"]}') for r in read_rows(runs['A'])]
                + [dict(r, scheme=f'B/{r["scheme"]}') if r['scheme'] == 'mle' else r
                   for r in read_rows(runs['B'])])
    self.assertEqual(read_rows(out), expected)

  def test_merge_is_an_input_and_train_sizes_may_differ(self):
    runs = trained_runs()
    first = os.path.join(tempfile.mkdtemp(), 'first')
    self.assertEqual(merge_in_process([runs['A'], runs['B']], first), (0, ''))
    other = copy_run('A')  # same oracle, another data sample: allowed
    with open(os.path.join(other, 'config.json')) as f:
      saved = json.load(f)
    saved['config']['problem']['num_train'] += 1
    saved['config']['problem']['num_test'] += 1
    with open(os.path.join(other, 'config.json'), 'w') as f:
      json.dump(saved, f)
    out = os.path.join(tempfile.mkdtemp(), 'second')
    self.assertEqual(merge_in_process([first, other], out), (0, ''))
    labels = {r['scheme'] for r in read_rows(out)}
    self.assertEqual(labels, {'A/mle', 'B/mle', 'cot', 'mle'})
    self.assertLen(read_rows(out), len(read_rows(runs['A'])) * 2 + len(read_rows(runs['B'])))
    # Merging again into the same directory replaces the previous merge.
    self.assertEqual(merge_in_process([runs['A'], runs['B']], out), (0, ''))
    self.assertEqual(read_rows(out), read_rows(first))

  def test_different_oracles_are_refused(self):
    runs = trained_runs()
    out = os.path.join(tempfile.mkdtemp(), 'merged')
    proc = _python('benchmarks.compare', f'--input_dir={runs["A"]}', f'--input_dir={runs["C"]}',
                   f'--output_dir={out}')
    self.assertEqual(proc.returncode, 2)
    self.assertEqual(proc.stderr.strip(),
                     f'error: --input_dir: the oracles differ in problem.seed '
                     f'({runs["A"]}: 1234, {runs["C"]}: 99)')
    self.assertFalse(os.path.exists(out))

  def test_help_and_flags_defined_only_as_a_program(self):
    proc = _python('benchmarks.compare', '--help')  # absl's --help exits with 1
    self.assertIn(proc.returncode, (0, 1), proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    self.assertIn('--input_dir', proc.stdout)
    # Importing the module defines no flags (benchmarks.run and others own --output_dir).
    from absl import flags
    self.assertNotIn('input_dir', flags.FLAGS)


class SummaryTablesTest(absltest.TestCase):

  def test_wide_metric_sets_split_into_tables_of_at_most_max_columns(self):
    pis = ('0.05', '0.1', '0.25', '0.5', '0.75', '0.9', '0.95')
    def row(step, value):
      mc = {m: value for m in ('nll_oracle', 'nll_test', 'entropy_q', 'kl_pq', 'kl_qp')}
      return dict(scheme='mle', pi=None, step=step, seed=0, **mc,
                  **{f'exact_{m}': v + 1 for m, v in mc.items()},
                  js_pi={p: value for p in pis}, exact_js_pi={p: value + 2 for p in pis})
    rows = [row(0, 1.0), row(10, 0.5)]
    families = report.metric_families(rows)
    self.assertEqual([len(names) for _, names in families], [5, 7, 5, 7])  # no exposure_*
    tables = report.tables_of(families)
    self.assertEqual([len(names) for _, names in tables], [5, 7, 5, 7])  # 5 + 7 > 8
    self.assertEqual(report.tables_of(families, max_columns=12)[0][1],
                     families[0][1] + families[1][1])
    self.assertEqual(report.tables_of([('a', ['x'] * 9), ('b', ['y'])]),
                     [(['a'], ['x'] * 9), (['b'], ['y'])])  # never split a family
    text = report.summary_markdown(rows, title='t')
    headers = [line for line in text.splitlines() if line.startswith('| scheme')]
    self.assertLen(headers, 4)
    self.assertTrue(all(line.count('|') - 5 <= report.MAX_COLUMNS for line in headers))
    self.assertIn('| mle | – | 10 | 1/1 | 1.5 | 1.5 | 1.5 | 1.5 | 1.5 |', text)  # exact_*
    self.assertIn('**exact JS_π per π, by enumeration**', text)
    # The usual case (MC metrics and one π) stays one table without captions.
    one = [dict(r, js_pi={'0.5': 0.1}) for r in rows]
    one = [{k: v for k, v in r.items() if not k.startswith('exact')} for r in one]
    self.assertEqual(len(report.tables_of(report.metric_families(one))), 1)
    self.assertNotIn('**', report.summary_markdown(one, title='t'))

  def test_training_time_line_from_train_seconds(self):
    rows = [dict(scheme=s, pi=None, step=step, seed=seed, nll_oracle=1.0,
                 train_seconds=t + seed)
            for s, t0 in (('warm_start', 10.0), ('mle', 100.0))
            for step, t in ((0, 0.0), (5, t0)) for seed in (0, 1)]
    self.assertEqual(report.training_seconds(rows), {'warm_start': 11.0, 'mle': 101.0})
    self.assertIn('warm_start 11 s, mle 101 s.', report.summary_markdown(rows, title='t'))
    older = [{k: v for k, v in r.items() if k != 'train_seconds'} for r in rows]
    self.assertEqual(report.training_seconds(older), {})
    self.assertNotIn('Training time', report.summary_markdown(older, title='t'))


class BadInputTest(parameterized.TestCase):

  def _corrupted(self):
    path = copy_run('A')
    with open(os.path.join(path, 'results.jsonl'), 'a') as f:
      f.write('{"scheme": "mle", "step": \n')
    return [path], f"{os.path.join(path, 'results.jsonl')!r} line 7 is not valid JSON"

  def _not_a_row(self):
    path = copy_run('A')
    with open(os.path.join(path, 'results.jsonl'), 'ab') as f:
      f.write(b'\xff\xfe\n[1, 2]\n')
    return [path], f"{os.path.join(path, 'results.jsonl')!r} line 7 is not valid JSON"

  def _without(self, name):
    path = copy_run('A')
    os.remove(os.path.join(path, name))
    return [path], f'has no {name}'

  @parameterized.named_parameters(
      ('no_input', lambda self: ([], '--input_dir: give at least one')),
      ('missing_dir', lambda self: (['/nonexistent/run'], "'/nonexistent/run' is not a dir")),
      ('no_results', lambda self: self._without('results.jsonl')),
      ('no_config', lambda self: self._without('config.json')),
      ('corrupted_line', lambda self: self._corrupted()),
      ('binary_line', lambda self: self._not_a_row()),
      ('same_run_twice', lambda self: ([trained_runs()['A'], trained_runs()['A'] + '/'],
                                       'is given twice')),
  )
  def test_refused_and_nothing_written(self, make):
    input_dirs, message = make(self)
    out = os.path.join(tempfile.mkdtemp(), 'merged')
    code, err = merge_in_process(input_dirs, out)
    self.assertEqual(code, 2)
    self.assertLen(err.splitlines(), 1)
    self.assertStartsWith(err, 'error: --input_dir: ')
    self.assertIn(message, err)
    self.assertFalse(os.path.exists(out))

  @parameterized.named_parameters(('same', ''), ('trailing_slash', '/'))
  def test_output_dir_an_input_is_refused(self, suffix):
    a = copy_run('A')
    before = {n: open(os.path.join(a, n)).read() for n in ('results.jsonl', 'summary.md')}
    code, err = merge_in_process([a, trained_runs()['B']], a + suffix)
    self.assertEqual(code, 2)
    self.assertStartsWith(err, 'error: --output_dir: ')
    self.assertIn('is one of the --input_dir', err)
    self.assertEqual({n: open(os.path.join(a, n)).read() for n in before}, before)

  def test_output_dir_holding_a_run_is_refused(self):
    b = copy_run('B')
    code, err = merge_in_process([trained_runs()['A']], b)
    self.assertEqual(code, 2)
    self.assertStartsWith(err, 'error: --output_dir: ')
    self.assertEqual(read_rows(b), read_rows(trained_runs()['B']))


if __name__ == '__main__':
  absltest.main()
