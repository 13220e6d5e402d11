"""Tests of `python -m benchmarks.sample`: sequences from a trained checkpoint with log Q, log P.

One smoke run (mle, gan_pi over two π, and a warm start) is trained once through
`python -m benchmarks.run` and shared by every test; log-probs are recomputed independently
from the checkpoint with the runner's own init as the template.
"""

import functools
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import jax
import numpy as np

from _smoke import smoke_config
from benchmarks import sample
from benchmarks.engine import configuration
from benchmarks.engine import files
from benchmarks.engine import memory
from benchmarks.engine import rundir
from benchmarks.engine import runner
from benchmarks.engine import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_SEEDS, PIS = 2, '0.25,0.75'
OVERRIDES = {'train.num_steps': 10, 'train.eval_every': 5, 'train.warm_start_steps': 5}
V, T = 16, 8  # the smoke preset's vocabulary and length


def _python(module, *args):
  return subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=600)


@functools.lru_cache(maxsize=None)
def trained_run() -> str:
  """One smoke run (shared by all tests), trained in this process through the runner the
  command calls: its output directory."""
  from benchmarks.engine import runner
  out = os.path.join(tempfile.mkdtemp(), 'run')
  runner.execute(problem_and_config()[1], out, log=lambda s: None)
  return out


@functools.lru_cache(maxsize=None)
def problem_and_config():
  """The run's config built as benchmarks.run builds it (not from config.json), its problem."""
  from models import oracle
  config = configuration.build_config('smoke', OVERRIDES, schemes='mle,gan_pi', num_seeds=NUM_SEEDS,
                               pis=PIS)
  return oracle.make_problem(config.problem), config


@functools.lru_cache(maxsize=None)
def reference_states(label):
  """(scheme, its runs, the stacked states of its checkpoint), read with the runner's own
  init as the template (not benchmarks.sample's)."""
  import objectives
  problem, config = problem_and_config()
  scheme = objectives.make('mle' if label == train.WARM_START else label, config, problem)
  runs = train.run_grid(scheme, range(config.num_seeds), config.pis)
  template = train.make_runner(scheme, problem, config).init(
      train.run_keys(config.seed, [s for s, _ in runs]))
  _, states, _ = rundir.load_checkpoint(trained_run(), label, template,
                                         np.zeros(len(runs), bool))
  return scheme, runs, states


def reference_log_probs(label, seed, pi, tokens, temperature):
  """(log Q_τ, log P) of tokens, with the generator read from the checkpoint independently."""
  problem, _ = problem_and_config()
  scheme, runs, states = reference_states(label)
  state = jax.tree_util.tree_map(lambda x: x[runs.index((seed, pi))], states)
  params = scheme.generator_params(state)
  log_q = scheme.generator.apply(params, tokens, temperature, method='log_prob')
  log_p = problem.model.apply(problem.params, tokens, method='log_prob')
  return np.asarray(log_q), np.asarray(log_p)


def options(**kwargs) -> sample.Options:
  kwargs.setdefault('run_dir', trained_run())
  kwargs.setdefault('scheme', 'mle')
  return sample.Options(**kwargs)


def sample_lines(opts):
  """The lines benchmarks.sample writes for opts (in-process), and its stderr."""
  out, err = io.StringIO(), io.StringIO()
  code = sample.cli(opts, out=out, err=err)
  assert code == 0, err.getvalue()
  return out.getvalue().splitlines(), err.getvalue()


class EndToEndTest(absltest.TestCase):

  def test_cli_prints_sequences_and_is_deterministic(self):
    args = [f'--run_dir={trained_run()}', '--scheme=mle', '--seed=1', '--num_samples=5',
            '--temperature=1.0', '--format=jsonl']
    proc = _python('benchmarks.sample', *args)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertIn('checkpoint step 10/10', proc.stderr)
    lines = proc.stdout.splitlines()
    self.assertLen(lines, 5)
    for line in lines:
      row = json.loads(line)
      self.assertEqual(set(row), {'tokens', 'log_q', 'log_p', 'log_q_per_token',
                                  'log_p_per_token'})
      self.assertLen(row['tokens'], T)
      self.assertTrue(all(isinstance(t, int) and 0 <= t < V for t in row['tokens']))
      for key in ('log_q', 'log_p'):
        self.assertTrue(math.isfinite(row[key]) and row[key] < 0, row)
        self.assertAlmostEqual(row[f'{key}_per_token'], row[key] / T, places=5)
    # The same flags in another process (here, in-process) give the same bytes.
    again, _ = sample_lines(options(seed=1, num_samples=5))
    self.assertEqual(again, lines)

  def test_text_format_to_a_file(self):
    path = os.path.join(tempfile.mkdtemp(), 'samples.txt')
    lines, err = sample_lines(options(num_samples=4, format='text', output=path,
                                      temperature=0.5))
    self.assertEqual(lines, [])  # all went to the file
    self.assertIn('written to', err)
    with open(path) as f:
      text = f.read().splitlines()
    self.assertLen(text, 4)
    jsonl, _ = sample_lines(options(num_samples=4, temperature=0.5))
    for line, row in zip(text, map(json.loads, jsonl)):
      tokens, scores = line.split('\t')
      self.assertEqual([int(t) for t in tokens.split()], row['tokens'])
      self.assertEqual(scores, f'log_q={row["log_q"]:.4f} log_p={row["log_p"]:.4f}')


class LogProbTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('mle', 'mle', 1, None, 1.0),
      ('mle_cold', 'mle', 0, None, 0.7),
      ('mle_hot', 'mle', 1, None, 2.0),
      ('gan_pi', 'gan_pi', 1, 0.75, 1.0),
      ('gan_pi_cold', 'gan_pi', 0, 0.25, 0.5),
      ('warm_start', 'warm_start', 1, None, 1.0),
  )
  def test_log_q_and_log_p_match_the_checkpoint(self, label, seed, pi, temperature):
    # 300 sequences: three chunks of the smoke preset's eval.batch_size (128).
    lines, _ = sample_lines(options(scheme=label, seed=seed, pi=pi, num_samples=300,
                                    temperature=temperature))
    rows = [json.loads(line) for line in lines]
    self.assertLen(rows, 300)
    tokens = np.asarray([r['tokens'] for r in rows], np.int32)
    self.assertEqual(tokens.shape, (300, T))
    log_q, log_p = reference_log_probs(label, seed, pi, tokens, temperature)
    np.testing.assert_allclose([r['log_q'] for r in rows], log_q, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose([r['log_p'] for r in rows], log_p, rtol=1e-5, atol=1e-5)
    if temperature != 1.0:  # the temperature is applied, not just passed along
      untempered, _ = reference_log_probs(label, seed, pi, tokens, 1.0)
      self.assertGreater(np.abs(log_q - untempered).max(), 1e-2)
    self.assertGreater(len({tuple(t) for t in tokens.tolist()}), 1)

  def test_low_temperature_concentrates(self):
    def mean_log_q(temperature):
      lines, _ = sample_lines(options(num_samples=128, temperature=temperature))
      return np.mean([json.loads(line)['log_q'] for line in lines])
    self.assertGreater(mean_log_q(0.2), mean_log_q(1.0))

  def test_prefix_and_sample_seed(self):
    five, _ = sample_lines(options(num_samples=5))
    many, _ = sample_lines(options(num_samples=200))
    self.assertEqual(many[:5], five)  # chunked drawing: more samples extend, never reshuffle
    other, _ = sample_lines(options(num_samples=5, sample_seed=1))
    self.assertNotEqual(other, five)


class VariantRunTest(absltest.TestCase):

  def test_experiment_run_with_labelled_variants(self):
    config = smoke_config()
    config.train.num_steps = 5  # one chunk
    out = os.path.join(tempfile.mkdtemp(), 'runs', 'fast')
    runner.execute(config, out, variants={'fast': ('mle', {'train.learning_rate': 0.05})},
                   log=lambda s: None)
    lines, err = sample_lines(options(run_dir=out, scheme='fast', num_samples=3))
    self.assertLen(lines, 3)
    self.assertIn('fast (mle)', err)
    # Sampling trains nothing: the training-memory check (here a 1-byte limit that refuses
    # training) does not refuse it, e.g. a GPU run's many seeds sampled on a laptop.
    with mock.patch.dict(os.environ, {'DIVBENCH_MEMORY_LIMIT_BYTES': '1'}):
      with self.assertRaisesRegex(ValueError, '--num_seeds: .*estimated'):
        memory.check_run(config, configuration.resolve_variants(config, {'fast': ('mle', {})}))
      self.assertEqual(sample_lines(options(run_dir=out, scheme='fast', num_samples=3))[0],
                       lines)
    err = io.StringIO()
    code = sample.cli(options(run_dir=out, scheme='mle'), out=io.StringIO(), err=err)
    self.assertEqual(code, 2)
    self.assertIn('schemes with checkpoints: fast', err.getvalue())


def _copy_without(name: str) -> str:
  """A copy of the trained run directory without checkpoints/<name>.msgpack."""
  out = os.path.join(tempfile.mkdtemp(), 'copy')
  shutil.copytree(trained_run(), out)
  os.remove(rundir.checkpoint_path(out, name))
  return out


def _experiment_dir() -> str:
  out = tempfile.mkdtemp()
  with open(os.path.join(out, 'config.json'), 'w') as f:
    json.dump({'experiment': 'x', 'runs': {'a': {}}}, f)
  return out


def _diverged_copy() -> str:
  """A copy of the run whose checkpoint marks mle's seed 1 diverged."""
  out = _copy_without('mle')
  import flax.serialization
  with open(rundir.checkpoint_path(trained_run(), 'mle'), 'rb') as f:
    saved = flax.serialization.msgpack_restore(f.read())
  saved['diverged'] = np.array(saved['diverged'])
  saved['diverged'][1] = True
  files.atomic_write(rundir.checkpoint_path(out, 'mle'),
                       flax.serialization.msgpack_serialize(saved))
  return out


class BadInputTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('no_run_dir', dict(run_dir=''), '--run_dir: required'),
      ('missing_run_dir', dict(run_dir='/nonexistent/run'), '--run_dir: .*not a directory'),
      ('no_config_json', dict(run_dir=tempfile.mkdtemp), '--run_dir: .*no config.json'),
      ('experiment_dir', dict(run_dir=_experiment_dir), '--run_dir: .*experiment'),
      ('no_scheme', dict(scheme=''), '--scheme: required'),
      ('unknown_scheme', dict(scheme='nope'),
       '--scheme: .*schemes with checkpoints: mle, gan_pi, warm_start'),
      ('missing_checkpoint', dict(run_dir=lambda: _copy_without('gan_pi'), scheme='gan_pi',
                                  pi=0.25), '--scheme: .*no checkpoint'),
      ('seed_high', dict(seed=2), r'--seed: .*\[0, 1\]'),
      ('seed_negative', dict(seed=-1), r'--seed: .*\[0, 1\]'),
      ('diverged', dict(run_dir=_diverged_copy, seed=1), '--seed: .*diverged'),
      ('num_samples_zero', dict(num_samples=0), '--num_samples'),
      ('num_samples_negative', dict(num_samples=-3), '--num_samples'),
      ('temperature_zero', dict(temperature=0.0), '--temperature'),
      ('temperature_negative', dict(temperature=-1.0), '--temperature'),
      ('temperature_nan', dict(temperature=float('nan')), '--temperature'),
      ('temperature_inf', dict(temperature=float('inf')), '--temperature'),
      ('format', dict(format='csv'), '--format'),
      ('pi_missing', dict(scheme='gan_pi'), '--pi: .*0.25, 0.75'),
      ('pi_not_in_grid', dict(scheme='gan_pi', pi=0.5), '--pi: .*0.25, 0.75'),
      ('pi_out_of_range', dict(scheme='gan_pi', pi=1.5), '--pi'),
      ('pi_unused', dict(pi=0.25), '--pi'),
      ('sample_seed_negative', dict(sample_seed=-1), '--sample_seed'),
      ('output_dir_missing', dict(output='/nonexistent/dir/out.jsonl'), '--output'),
  )
  def test_one_line_exit_2_before_compute(self, kwargs, pattern):
    kwargs = {k: v() if callable(v) else v for k, v in kwargs.items()}
    out, err = io.StringIO(), io.StringIO()
    from models import oracle
    with mock.patch.object(oracle, 'make_problem', side_effect=AssertionError('computed')):
      code = sample.cli(options(**kwargs), out=out, err=err)
    self.assertEqual(code, 2)
    self.assertEqual(out.getvalue(), '')
    lines = err.getvalue().splitlines()
    self.assertLen(lines, 1, err.getvalue())
    self.assertRegex(lines[0], '^error: ' + pattern)

  def test_cli_exit_code(self):
    # The command's contract (exit 2, one line, nothing on stdout) once; every row of the
    # table above goes through the same function in this process.
    proc = _python('benchmarks.sample', f'--run_dir={trained_run()}', '--scheme=mle', '--seed=7')
    self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
    self.assertEqual(proc.stdout, '')
    self.assertLen(proc.stderr.strip().splitlines(), 1, proc.stderr)
    self.assertIn('error: --seed:', proc.stderr)


if __name__ == '__main__':
  absltest.main()
