"""Faults end to end through `python -m benchmarks.run`: an injected NaN, damaged files."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import jax
import numpy as np

import _smoke
import objectives
from models import oracle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ('--preset=smoke', '--schemes=mle', '--num_seeds=3', '--config.train.num_steps=10',
        '--config.train.eval_every=5')
PER_INVOCATION = ('wall_time', 'config_hash')  # row fields that differ between two runs


def _run(*args):
  return subprocess.run([sys.executable, '-m', 'benchmarks.run', *ARGS, *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


def _rows(out):
  with open(os.path.join(out, 'results.jsonl')) as f:
    return [json.loads(line) for line in f]


def _files(out):
  """{relative path: bytes} of every file under out."""
  found = {}
  for directory, _, names in os.walk(out):
    for name in names:
      path = os.path.join(directory, name)
      with open(path, 'rb') as f:
        found[os.path.relpath(path, out)] = f.read()
  return found


class FaultsTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp()
    cls.clean = os.path.join(cls.tmp, 'clean')
    proc = _run(f'--output_dir={cls.clean}')
    assert proc.returncode == 0, proc.stderr[-3000:]

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tmp, ignore_errors=True)
    super().tearDownClass()

  def test_inject_nan_diverges_that_seed_only(self):
    out = os.path.join(self.tmp, 'inject')
    proc = _run(f'--output_dir={out}', '--config.train.inject_nan=1:3')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertIn('step 5/10', proc.stdout)
    self.assertIn('2/3 ok', proc.stdout)
    clean, injected = _rows(self.clean), _rows(out)
    self.assertEqual([(r['seed'], r['step']) for r in injected],
                     [(r['seed'], r['step']) for r in clean])
    for got, want in zip(injected, clean):
      if got['seed'] == 1 and got['step'] > 0:  # NaN after update 3: diverged from step 5 on
        self.assertTrue(got['diverged'])
        self.assertIsNone(got['nll_test'])
        self.assertIsNone(got['train_loss'])
      else:  # the other seeds (and seed 1 before it) are the clean run's, exactly
        for key in PER_INVOCATION:
          got.pop(key), want.pop(key)
        self.assertEqual(got, want)
    with open(os.path.join(out, 'summary.md')) as f:
      self.assertIn('| mle | – | 10 | 2/3 |', f.read())

  @parameterized.named_parameters(
      ('results', 'results.jsonl', 'line 5 is not valid JSON (truncated write?)'),
      ('config', 'config.json', 'not valid JSON (truncated write?); pass --overwrite'),
      ('checkpoint', 'checkpoints/mle.msgpack', 'not a readable checkpoint (truncated write?)'),
  )
  def test_damaged_file_refused_and_left_alone(self, name, message):
    out = os.path.join(self.tmp, f'damaged-{name.replace("/", "-")}')
    shutil.copytree(self.clean, out)
    path = os.path.join(out, name)
    with open(path, 'rb') as f:
      data = f.read()
    with open(path, 'wb') as f:  # a write cut short (mid-line), or garbage
      f.write(b'{"garbage' if name == 'config.json' else data[:len(data) // 2])
    before = _files(out)
    proc = _run(f'--output_dir={out}')
    self.assertEqual(proc.returncode, 2, proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    self.assertEqual(errors, [proc.stderr.strip().splitlines()[-1]])
    self.assertStartsWith(errors[0], f'error: {path}: {message}')
    self.assertIn(out, errors[0][len(f'error: {path}'):])  # what to do names the directory
    self.assertEqual(proc.stdout, '')  # nothing ran
    self.assertEqual(_files(out), before)


class BadInjectNanTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('format', 'x', "expected SEED:STEP (two integers, e.g. 1:5), got 'x'"),
      ('no_step', '1', "expected SEED:STEP (two integers, e.g. 1:5), got '1'"),
      ('seed', '3:5', 'seed 3 is not in range(--num_seeds) = 0..2'),
      ('step_zero', '1:0', 'step 0 is not in [1, --config.train.num_steps] = [1, 10]'),
      ('step_high', '1:11', 'step 11 is not in [1, --config.train.num_steps] = [1, 10]'),
  )
  def test_rejected_before_compute(self, value, message):
    out = os.path.join(tempfile.mkdtemp(), 'never')
    proc = _run(f'--output_dir={out}', f'--config.train.inject_nan={value}')
    self.assertEqual(proc.returncode, 2)
    self.assertIn(f'error: --config.train.inject_nan: {message}', proc.stderr)
    self.assertFalse(os.path.exists(out), 'no partial results for bad input')
    self.assertEqual(proc.stdout, '')


class InjectInsideChunkTest(absltest.TestCase):

  def test_compiles_once_and_poisons_only_that_run(self):
    config = _smoke.smoke_config()
    config.num_seeds = 2
    config.train.inject_nan = '0:7'  # inside the second chunk (steps 5..9)
    problem = oracle.make_problem(config.problem)
    scheme = objectives.make('mle', config, problem)
    calls, rows = _smoke.traced_once_run('mle', scheme, problem, config)
    self.assertLen(calls, 2)
    for (_, (states, _)), healthy in zip(calls, ([True, True], [False, True])):
      leaves = jax.tree_util.tree_leaves(jax.vmap(scheme.generator_params)(states))
      self.assertEqual([all(np.isfinite(np.asarray(x)[r]).all() for x in leaves)
                        for r in range(2)], healthy)
    self.assertEqual([r['diverged'] for r in rows if r['step'] == 10], [True, False])


if __name__ == '__main__':
  absltest.main()
