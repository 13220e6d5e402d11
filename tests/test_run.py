"""End-to-end tests of `python -m benchmarks.run`: outputs, resume, and bad input."""

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized

import _smoke

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROW_KEYS = ('scheme', 'seed', 'pi', 'step', 'nll_oracle', 'nll_test', 'entropy_q', 'kl_pq',
            'kl_qp', 'js_pi')


def _run(*args, env=None):
  return subprocess.run([sys.executable, '-m', 'benchmarks.run', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600, env=env)


class SmokeRunTest(absltest.TestCase):

  def test_smoke_preset_end_to_end_and_resume(self):
    out = os.path.join(tempfile.mkdtemp(), 'run')
    args = ['--preset=smoke', '--schemes=mle', '--num_seeds=2', '--pis=0,0.5,1',
            f'--output_dir={out}', '--config.train.num_steps=20']
    proc = _run(*args)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertNotIn('Unable to initialize backend', proc.stdout + proc.stderr)
    self.assertRegex(proc.stdout, r'step 20/20 \(.*steps/s, ETA 0s, run ETA 0s, 2/2 ok\)')
    for name in ('config.json', 'results.jsonl', 'summary.md', 'plots/metrics.png',
                 'checkpoints/mle.msgpack'):
      self.assertTrue(os.path.exists(os.path.join(out, name)), name)
    with open(os.path.join(out, 'config.json')) as f:
      saved = json.load(f)
    self.assertEqual(saved['config']['num_seeds'], 2)
    self.assertEqual(saved['config']['pis'], [0.0, 0.5, 1.0])
    with open(os.path.join(out, 'results.jsonl')) as f:
      rows = [json.loads(line) for line in f]
    self.assertLen(rows, 2 * 3)  # 2 seeds x steps 0, 10, 20
    for row in rows:
      for key in ROW_KEYS:
        self.assertIn(key, row)
      for key in ROW_KEYS[4:]:
        self.assertIn(key + '_se', row)
      self.assertEqual(set(row['js_pi']), {'0', '0.5', '1'})
      self.assertEqual(row['js_pi']['0'], 0.0)  # JS_0 = JS_1 = 0 exactly
      self.assertEqual(row['js_pi']['1'], 0.0)
    first = {r['seed']: r for r in rows if r['step'] == 0}
    last = {r['seed']: r for r in rows if r['step'] == 20}
    for seed in (0, 1):  # MLE lowers KL(P || Q), even in 20 steps
      self.assertLess(last[seed]['kl_pq'], first[seed]['kl_pq'])
    with open(os.path.join(out, 'summary.md')) as f:
      summary = f.read()
    self.assertIn('| mle |', summary)
    self.assertIn('kl_pq', summary)

    # The same command again resumes from the finished checkpoint: nothing recomputed.
    again = _run(*args)
    self.assertEqual(again.returncode, 0, again.stderr[-3000:])
    self.assertIn('resuming at step 20/20', again.stdout)
    with open(os.path.join(out, 'results.jsonl')) as f:
      self.assertEqual([json.loads(line) for line in f], rows)

    # A different config into the same directory is refused, naming the flag.
    other = _run(*args[:-1], '--config.train.num_steps=10')
    self.assertNotEqual(other.returncode, 0)
    self.assertIn('--output_dir', other.stderr)


class CompilationCacheTest(absltest.TestCase):

  def test_one_invocation_compiles_identical_functions_once_and_leaves_nothing(self):
    # MLE and scheduled sampling have the same state, so the second scheme's init and
    # finiteness check are the first's HLO: loaded from the invocation's own cache. Its
    # evaluation is the first's program itself (train.evaluation_programs): traced and
    # compiled once. The cache's temporary directory is gone afterwards. (The suite's own
    # cache is not passed down.)
    tmp = tempfile.mkdtemp()
    env = {k: v for k, v in os.environ.items() if k != 'JAX_COMPILATION_CACHE_DIR'}
    env.update(TMPDIR=tmp, JAX_LOG_COMPILES='1')
    out = os.path.join(tempfile.mkdtemp(), 'run')
    proc = _run('--preset=smoke', '--schemes=mle,scheduled_sampling', '--num_seeds=1',
                '--config.train.num_steps=5', '--config.train.eval_every=5',
                f'--output_dir={out}', env=env)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    hits = re.findall(r"compilation cache hit for '(\w+)'", proc.stderr)
    self.assertContainsSubset({'jit_init', 'jit_finite'}, set(hits))
    self.assertLen(re.findall(r'Compiling jit\(evaluate_generators\)', proc.stderr), 1)
    self.assertEqual(os.listdir(tmp), [])


class HelpTest(absltest.TestCase):

  def test_help_lists_presets_and_schemes_one_line_each(self):
    from benchmarks import configs
    import objectives
    proc = _run('--help')  # absl's --help exits with 1 by its own convention
    self.assertIn('--preset', proc.stdout, proc.stderr[-2000:])
    for name in configs.PRESETS:
      self.assertRegex(proc.stdout, rf'\n\s+{name}( \(default\))?: \S')
    for name in objectives.REGISTRY:
      self.assertRegex(proc.stdout, rf'\n\s+{name}: \S')


def _damage(out, name):
  """Damages out/name as a crash mid-write would: config.json garbage, results.jsonl a last
  row cut short (line 5), a checkpoint its first half."""
  path = os.path.join(out, name)
  with open(path, 'rb') as f:
    data = f.read()
  damaged = {'config.json': b'{"garbage', 'results.jsonl': data + b'{"scheme": "mle", "se'}
  with open(path, 'wb') as f:
    f.write(damaged.get(name, data[:len(data) // 2]))


# Issue 13 item 4: every bad input fails with exit 2 and one line naming the flag or file,
# before any compilation (JAX_LOG_COMPILES=1 would add a line per compile to stderr), leaving
# the previous run's files in --output_dir byte-identical. Damaged files of a real finished
# run: tests/test_faults.py; a held lock and failing writes: tests/test_faults.py too.
# Columns: name, arguments after `--preset=smoke --schemes=mle --output_dir=OUT` ('{out}' is
# OUT, 'BLOCKER' a regular file), extra environment, file of OUT to damage first, the start of
# the one line (after 'error: '; '{out}' is OUT).
BAD_INPUTS = (
    ('preset', ['--preset=nope'], {}, None, '--preset: unknown preset'),
    ('scheme', ['--schemes=mle,nope'], {}, None, '--schemes: unknown scheme(s) nope'),
    ('scheme_twice', ['--schemes=mle,cot,mle'], {}, None, '--schemes: mle named more than once'),
    ('num_seeds', ['--num_seeds=0'], {}, None, '--num_seeds: must be a positive integer'),
    ('size', ['--config.problem.vocab_size=0'], {}, None, '--config.problem.vocab_size: must'),
    ('one_eval_sample', ['--config.eval.num_samples=1'], {}, None,
     '--config.eval.num_samples: a standard error needs at least 2 samples'),
    ('one_test_sample', ['--config.problem.num_test=1'], {}, None,
     '--config.problem.num_test: a standard error needs at least 2 samples'),
    ('one_exposure_sample', ['--config.eval.exposure_samples=1'], {}, None,
     '--config.eval.exposure_samples: must be 0 (all samples) or at least 2'),
    ('checkpoint_every', ['--config.train.checkpoint_every=3'], {}, None,
     '--config.train.checkpoint_every: must be 0 or a divisor of --config.train.eval_every'),
    ('batch_over_data', ['--config.problem.num_train=8'], {}, None,
     '--config.problem.num_train: 8 is smaller than --config.train.batch_size (16)'),
    ('unknown_config_field', ['--config.nope=1'], {}, None, '--config.nope: no such config field'),
    ('unknown_nested_field', ['--config.train.nope=1'], {}, None,
     '--config.train.nope: no such config field'),
    ('scheme_field', ['--schemes=direct', '--config.direct.divergence=kl_pp'], {}, None,
     '--config.direct.divergence'),
    ('pi_high', ['--pis=0.5,1.5'], {}, None, '--pis: π = 1.5 is outside [0, 1]'),
    ('pi_text', ['--pis=half'], {}, None, '--pis: expected comma-separated numbers'),
    ('strategy', ['--config.train.seed_strategy=pmap'], {}, None,
     "--config.train.seed_strategy: 'pmap' is not one of"),
    ('bad_alphas', ['--config.eval.alphas=(1.0,0.0)'], {}, None,
     '--config.eval.alphas: must be positive inverse temperatures'),
    ('bad_select', ['--config.eval.select=best'], {}, None,
     "--config.eval.select: 'best' is not one of"),
    ('memory', ['--num_seeds=100000'], {'DIVBENCH_MEMORY_LIMIT_BYTES': str(4 * 2 ** 30)}, None,
     '--num_seeds: 100000 seeds of mle need an estimated'),
    ('process_id_alone', ['--process_id=1'], {}, None,
     '--process_id: only meaningful with --distributed'),
    ('num_processes', ['--distributed', '--num_processes=0'], {}, None,
     '--num_processes: must be a positive integer'),
    ('distributed_without_cluster', ['--distributed'], {}, None, '--distributed: '),
    ('unwritable_output_dir', ['--output_dir=BLOCKER/sub'], {}, None,
     '--output_dir: cannot write to'),
    ('damaged_results', [], {}, 'results.jsonl',
     '{out}/results.jsonl: line 5 is not valid JSON (truncated write?)'),
    ('damaged_config', [], {}, 'config.json',
     '{out}/config.json: not valid JSON (truncated write?); pass --overwrite'),
    ('damaged_checkpoint', [], {}, 'checkpoints/mle.msgpack',
     '{out}/checkpoints/mle.msgpack: not a readable checkpoint (truncated write?)'),
)


def _previous_run(out):
  """Writes the files of a finished `--preset=smoke --schemes=mle` run into out, without
  training: its config.json, two rows per seed, a summary and a checkpoint."""
  import numpy as np
  from benchmarks.engine import rundir
  from benchmarks.engine import configuration
  config = configuration.with_concrete_strategy(  # as runner.execute hashes it
      configuration.build_config('smoke', {}, schemes='mle'))
  rundir.prepare_output_dir(out, config, overwrite=False, log=lambda s: None)
  rundir.release_lock(out)
  with open(os.path.join(out, 'results.jsonl'), 'w') as f:
    for step in (0, 10):
      for seed in (0, 1):
        f.write(json.dumps({'scheme': 'mle', 'seed': seed, 'step': step, 'kl_pq': 1.0}) + '\n')
  with open(os.path.join(out, 'summary.md'), 'w') as f:
    f.write('| scheme |\n|---|\n| mle |\n')
  os.makedirs(os.path.join(out, 'checkpoints'))
  rundir.save_checkpoint(out, 'mle', 10, {'w': np.zeros((2, 3), np.float32)},
                          np.zeros(2, bool))


def _run_cpu(*args, env):
  """_run and the CPU time (user + system, seconds) the command took."""
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  proc = _run(*args, env=env)
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  return proc, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


# The rows the CLI runs as subprocesses (the exit code, the one line, nothing compiled or
# written, the CPU time): one per kind of refusal (a flag's value, argv before parsing, the
# memory estimate, jax.distributed, a damaged file of the output directory). Every row runs
# in-process through the functions the command calls (InProcessBadInputTest).
CLI_ROWS = ('preset', 'unknown_config_field', 'memory', 'distributed_without_cluster',
            'damaged_checkpoint')


def _bad_input_case(tmp, template, args, damage):
  """(output directory, its files before, the args) of one row, from a copy of template."""
  out = os.path.join(tempfile.mkdtemp(dir=tmp), 'run')
  shutil.copytree(template, out)
  if damage:
    _damage(out, damage)
  blocker = os.path.join(out, 'summary.md')  # a regular file: no directory inside it
  args = [a.replace('BLOCKER', blocker) for a in args]
  if not any(a.startswith('--output_dir=') for a in args):
    args.append(f'--output_dir={out}')
  return out, _smoke.files_under(out), args


class _PreviousRunTest(parameterized.TestCase):
  """Each test copies `template`, a finished run's files, and checks they stay untouched."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp()
    cls.template = os.path.join(cls.tmp, 'template')
    _previous_run(cls.template)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tmp, ignore_errors=True)
    super().tearDownClass()


class InProcessBadInputTest(_PreviousRunTest):
  """Every row of the bad-input table through the command's own functions, in this process:
  run.define_flags and parsing, run.config_from_flags, then runner.execute. Each raises one
  ValueError, whose text the command prints after 'error: ', before anything compiles, and
  leaves the previous run's files byte-identical."""

  @parameterized.named_parameters(*[r for r in BAD_INPUTS
                                    if r[0] != 'distributed_without_cluster'])
  def test_refused_before_compile_leaving_files_alone(self, args, env, damage, message):
    out, before, args = _bad_input_case(self.tmp, self.template, args, damage)
    argv = ['benchmarks.run', '--preset=smoke', '--schemes=mle', *args]
    with mock.patch.dict(os.environ, env), _smoke.counting_compiles() as compiles:
      with self.assertRaises(ValueError) as raised:
        _smoke.run_command_in_process(argv)
    self.assertStartsWith(str(raised.exception), message.replace('{out}', out))
    self.assertNotIn('\n', str(raised.exception))
    self.assertEqual(compiles.count, 0)
    self.assertEqual(_smoke.files_under(out), before)


class BadInputTest(_PreviousRunTest):
  """The command's contract for bad input, through the CLI: exit 2, one line on stderr,
  nothing compiled (JAX_LOG_COMPILES=1 would add a line), little CPU, files left alone."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # The most CPU time a failure may take: twice that of a failure in validation (python,
    # jax, flax and the schemes imported, nothing compiled: ~1 s), plus 1 s. A smoke run
    # that compiles takes over 7 s of CPU even when it only resumes. CPU time, not wall
    # time: on the shared 2-core CI machine wall time measures the load.
    proc, cls.baseline_cpu = _run_cpu('--preset=smoke', '--num_seeds=0',
                                      env=_smoke.refusal_env())
    assert proc.returncode == 2, proc.stderr[-2000:]

  @parameterized.named_parameters(*[r for r in BAD_INPUTS if r[0] in CLI_ROWS])
  def test_rejected_before_compile_leaving_files_alone(self, args, env, damage, message):
    out, before, args = _bad_input_case(self.tmp, self.template, args, damage)
    proc, cpu = _run_cpu('--preset=smoke', '--schemes=mle', *args, env=_smoke.refusal_env(env))
    self.assertEqual(proc.returncode, 2, proc.stderr[-3000:])
    self.assertEqual(proc.stdout, '')
    lines = proc.stderr.splitlines()
    self.assertLen(lines, 1, proc.stderr[-3000:])  # also: no 'Compiling' line of JAX
    self.assertStartsWith(lines[0], 'error: ' + message.replace('{out}', out))
    self.assertLess(cpu, 2 * self.baseline_cpu + 1)
    self.assertEqual(_smoke.files_under(out), before)


class SchemeConfigTest(parameterized.TestCase):
  """objectives.check_config, which run.validate calls for every selected scheme (in-process;
  benchmarks.run itself is not imported here: its absl flags would clash with other modules')."""

  @parameterized.parameters(
      ('cot', 'cot.mediator_learning_rate', 0.0),
      ('cot', 'cot.generator_b2', 1.0),
      ('direct', 'direct.estimator', 'exact'),
      ('direct', 'direct.baseline', 'mean'),
      ('gan_pi', 'gan_pi.generator_loss', 'wasserstein'),
      ('gan_pi', 'gan_pi.d_steps', -1),
      ('gan_pi', 'gan_pi.gumbel_tau', 0.0),
      ('gan_pi', 'discriminator.dropout_rate', 1.0),
      ('gan_pi', 'discriminator.num_filters', (1, 2)),
      ('gumbel_gan', 'gumbel_gan.tau_schedule', 'cosine'),
      ('gumbel_gan', 'gumbel_gan.tau_min', -0.1),
      ('professor_forcing', 'professor_forcing.weight', -1.0),
      ('scheduled_sampling', 'scheduled_sampling.linear_min', 1.5),
      ('seqgan', 'seqgan.num_rollouts', 0),
      ('seqgan', 'seqgan.rollout_update_rate', 2.0),
      ('seqgan', 'discriminator.learning_rate', 0.0),
  )
  def test_bad_field_names_its_flag(self, scheme, field, value):
    from benchmarks import configs
    import objectives
    config = configs.get_preset('smoke')
    config.update_from_flattened_dict({field: value})
    with self.assertRaisesRegex(ValueError, f'--config.{field}:'):
      objectives.check_config(scheme, config)

  def test_every_preset_and_scheme_passes(self):
    from benchmarks import configs
    import objectives
    for preset in configs.PRESETS:
      for name in objectives.REGISTRY:
        objectives.check_config(name, configs.get_preset(preset))


if __name__ == '__main__':
  absltest.main()
