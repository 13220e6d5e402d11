"""Faults end to end through `python -m benchmarks.run`: an injected NaN, damaged files, a
held output directory (its lock), a write that fails halfway (disk full).

SIGKILL at any moment: tests/test_kill.py.
"""

import errno
import json
import os
import resource
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import jax
import numpy as np

import _smoke
from benchmarks.engine import experiment as experiment_lib
from benchmarks.engine import files
from benchmarks.engine import rundir
from models import oracle
import objectives

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ('--preset=smoke', '--schemes=mle', '--num_seeds=3', '--config.train.num_steps=10',
        '--config.train.eval_every=5')
# Row fields that differ between two runs (their timings and, here, the config).
PER_INVOCATION = rundir.PER_INVOCATION + ('config_hash',)


def _run(*args, preexec_fn=None, env=None):
  return subprocess.run([sys.executable, '-m', 'benchmarks.run', *ARGS, *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600, preexec_fn=preexec_fn,
                        env=env)


def _rows(out):
  with open(os.path.join(out, 'results.jsonl')) as f:
    return [json.loads(line) for line in f]


class FaultsTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp()
    cls.clean = os.path.join(cls.tmp, 'clean')
    # Compiled as users' runs are: the injected run's other seeds must equal these bit for bit,
    # and under the session's loop emitters (tests/conftest.py) the two programs may differ
    # in the last bit.
    proc = _run(f'--output_dir={cls.clean}', env=_smoke.users_compiler())
    assert proc.returncode == 0, proc.stderr[-3000:]

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tmp, ignore_errors=True)
    super().tearDownClass()

  def test_inject_nan_diverges_that_seed_only(self):
    out = os.path.join(self.tmp, 'inject')
    proc = _run(f'--output_dir={out}', '--config.train.inject_nan=1:3',
                env=_smoke.users_compiler())
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
    # In this process, through the functions the command calls (the command prints the
    # ValueError as its one line and exits 2: tests/test_run.py runs a damaged checkpoint
    # through the CLI).
    out = os.path.join(self.tmp, f'damaged-{name.replace("/", "-")}')
    shutil.copytree(self.clean, out)
    path = os.path.join(out, name)
    with open(path, 'rb') as f:
      data = f.read()
    with open(path, 'wb') as f:  # a write cut short (mid-line), or garbage
      f.write(b'{"garbage' if name == 'config.json' else data[:len(data) // 2])
    before = _smoke.files_under(out)
    with _smoke.counting_compiles() as compiles:
      with self.assertRaises(ValueError) as raised:
        _smoke.run_command_in_process(['benchmarks.run', *ARGS, f'--output_dir={out}'])
    error = str(raised.exception)
    self.assertNotIn('\n', error)
    self.assertStartsWith(error, f'{path}: {message}')
    self.assertIn(out, error[len(path):])  # what to do names the directory
    self.assertEqual(compiles.count, 0)  # nothing ran
    self.assertEqual(_smoke.files_under(out), before)

  def _refused(self, out, *, preexec_fn=None):
    """The one error line of a run into out that must fail; checks out is left as it was and
    nothing was compiled (JAX_LOG_COMPILES would add a line to stderr per compile)."""
    before = _smoke.files_under(out)
    proc = _run(f'--output_dir={out}', preexec_fn=preexec_fn, env=_smoke.refusal_env())
    self.assertEqual(proc.returncode, 2, proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    self.assertEqual(proc.stdout, '')  # nothing ran
    self.assertEqual(_smoke.files_under(out), before)
    lines = proc.stderr.strip().splitlines()
    self.assertLen(lines, 1, proc.stderr[-3000:])  # the error, and no compile
    self.assertStartsWith(lines[0], 'error:')
    return lines[0]

  def test_held_output_dir_refused_and_left_alone(self):
    out = os.path.join(self.tmp, 'held')
    shutil.copytree(self.clean, out)
    with open(os.path.join(out, rundir.LOCK), 'w') as f:  # this test's process: alive
      json.dump({'pid': os.getpid(), 'host': socket.gethostname(), 'started': 'noon'}, f)
    self.assertEqual(self._refused(out), (
        f"error: --output_dir: {out!r} is in use by another run (pid {os.getpid()} on host "
        f"{socket.gethostname()!r} since noon); wait for it to end or choose another "
        f"--output_dir; if no run uses it, remove {out}/.lock"))

  def test_write_failing_halfway_leaves_previous_files_whole(self):
    # A resume rewrites config.json; a file size limit makes the kernel refuse that write
    # after its first 1000 bytes, as a full disk would (test_kill: the same in a checkpoint).
    out = os.path.join(self.tmp, 'full')
    shutil.copytree(self.clean, out)
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))  # noqa: E731
    self.assertEqual(self._refused(out, preexec_fn=limit), (
        f'error: {out}/config.json: could not be written (File too large); its previous '
        'version, if any, is intact; fix the cause and rerun the same command: it resumes '
        'from the files written so far'))
    self.assertLen(rundir.read_rows(os.path.join(out, 'results.jsonl')), 9)
    rundir.read_checkpoint(rundir.checkpoint_path(out, 'mle'))


def _tempdir(test):
  """A fresh directory, removed after the test."""
  path = tempfile.mkdtemp()
  test.addCleanup(shutil.rmtree, path, ignore_errors=True)
  return path


class _FullDisk:
  """os.fdopen whose files write half of what they are given, then fail: no space left."""

  def __init__(self):
    self.fdopen = os.fdopen

  def __call__(self, fd, mode):
    f = self.fdopen(fd, mode)
    write = f.write

    def half_then_full(data):
      write(data[:len(data) // 2])
      f.flush()
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    f.write = half_then_full
    return f


def _no_space(*args):
  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FailedWriteTest(parameterized.TestCase):
  """A write that fails (disk full) at each step of files.atomic_write."""

  @parameterized.named_parameters(
      ('halfway', 'fdopen', _FullDisk()),
      ('at_fsync', 'fsync', _no_space),  # delayed allocation: the error comes at fsync
      ('at_replace', 'replace', _no_space),
  )
  def test_rows_kept_whole_and_no_temporary_file_left(self, name, failing):
    out = _tempdir(self)
    store = rundir.Store(out)
    store.add([{'scheme': 'mle', 'step': 0, 'nll_test': 2.5}])
    store.save()
    with open(store.path, 'rb') as f:
      before = f.read()
    store.add([{'scheme': 'mle', 'step': 5, 'nll_test': 2.25}] * 100)
    with mock.patch.object(os, name, failing):
      with self.assertRaises(files.WriteError) as caught:
        store.save()
    self.assertEqual(str(caught.exception), f'{store.path}: could not be written (No space '
                     'left on device); its previous version, if any, is intact')
    self.assertEqual(caught.exception.errno, errno.ENOSPC)
    with open(store.path, 'rb') as f:
      self.assertEqual(f.read(), before)
    self.assertEqual(os.listdir(out), ['results.jsonl'])
    self.assertEqual(rundir.Store(out).rows, [{'scheme': 'mle', 'step': 0, 'nll_test': 2.5}])

  def test_written_files_get_the_mode_open_would_give(self):
    # Not mkstemp's 0600: a results directory is readable as the user's umask says.
    out = _tempdir(self)
    path = os.path.join(out, 'results.jsonl')
    files.atomic_write(path, 'x\n')
    with open(os.path.join(out, 'plain'), 'w') as f:
      f.write('x\n')
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    self.assertEqual(mode(path), mode(os.path.join(out, 'plain')))

  def test_previous_checkpoint_kept_whole(self):
    out = _tempdir(self)
    states = {'w': np.arange(6, dtype=np.float32).reshape(2, 3)}
    rundir.save_checkpoint(out, 'mle', 5, states, np.array([False, False]))
    with mock.patch.object(os, 'fdopen', _FullDisk()):
      with self.assertRaisesRegex(files.WriteError, 'checkpoints/mle.msgpack: could not be'):
        rundir.save_checkpoint(out, 'mle', 10, {'w': states['w'] + 1}, np.array([False, True]))
    self.assertEqual(os.listdir(os.path.join(out, 'checkpoints')), ['mle.msgpack'])
    step, restored, diverged = rundir.load_checkpoint(out, 'mle', states, np.zeros(2, bool))
    self.assertEqual(step, 5)
    np.testing.assert_array_equal(restored['w'], states['w'])
    np.testing.assert_array_equal(diverged, [False, False])


def _hold(directory, **holder):
  """Writes directory/.lock as another run would; returns its path."""
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, rundir.LOCK)
  with open(path, 'w') as f:
    json.dump(dict({'host': socket.gethostname(), 'started': 'noon'}, **holder), f)
  return path


def _dead_pid():
  child = subprocess.Popen(['true'])
  child.wait()
  return child.pid


class LockTest(absltest.TestCase):
  """rundir.acquire_lock / release_lock: who holds a directory, and when a lock is stale."""

  def setUp(self):
    super().setUp()
    self.out = _tempdir(self)
    self.notices = []

  def acquire(self):
    rundir.acquire_lock(self.out, log=self.notices.append)
    self.addCleanup(rundir.release_lock, self.out)

  def assertHeld(self, path, holder_text):
    with open(path) as f:
      before = f.read()
    with self.assertRaises(ValueError) as caught:
      self.acquire()
    self.assertEqual(str(caught.exception), (
        f'--output_dir: {self.out!r} is in use by another run ({holder_text}); wait for it '
        f'to end or choose another --output_dir; if no run uses it, remove {path}'))
    with open(path) as f:
      self.assertEqual(f.read(), before)
    self.assertEqual(self.notices, [])

  def assertTakenOver(self, path, holder_text, why):
    self.acquire()
    self.assertEqual(self.notices, [f'divbench: taking over {path}, the lock of '
                                    f'{holder_text} ({why})'])
    with open(path) as f:
      self.assertEqual(json.load(f)['pid'], os.getpid())

  def test_acquire_release_and_again(self):
    path = os.path.join(self.out, rundir.LOCK)
    self.acquire()
    with open(path) as f:
      holder = json.load(f)
    self.assertEqual((holder['pid'], holder['host']), (os.getpid(), socket.gethostname()))
    self.acquire()  # this process holds it already: nothing happens
    rundir.release_lock(self.out)
    self.assertEqual(os.listdir(self.out), [])
    self.acquire()
    self.assertEqual(self.notices, [])

  def test_live_process_on_this_host_holds(self):
    path = _hold(self.out, pid=os.getppid())
    self.assertHeld(path, f'pid {os.getppid()} on host {socket.gethostname()!r} since noon')

  def test_another_host_holds_whatever_its_pid(self):
    pid = _dead_pid()
    path = _hold(self.out, pid=pid, host='elsewhere')
    self.assertHeld(path, f"pid {pid} on host 'elsewhere' since noon")

  def test_killed_run_taken_over(self):
    pid = _dead_pid()
    path = _hold(self.out, pid=pid)
    self.assertTakenOver(path, f'pid {pid} on host {socket.gethostname()!r} since noon',
                         'that process no longer runs')

  def test_own_pid_reused_taken_over(self):  # e.g. a container restarted: the same pid
    path = _hold(self.out, pid=os.getpid())
    self.assertTakenOver(path, f'pid {os.getpid()} on host {socket.gethostname()!r} since '
                         'noon', 'that process no longer runs')

  def test_earlier_boot_taken_over(self):
    if not rundir._boot_id():
      self.skipTest('no boot id on this system')
    path = _hold(self.out, pid=os.getppid(), boot='an-earlier-boot')
    self.assertTakenOver(path, f'pid {os.getppid()} on host {socket.gethostname()!r} since '
                         'noon', 'this host has restarted since')

  def test_unreadable_lock_held_while_new_then_stale(self):
    path = os.path.join(self.out, rundir.LOCK)
    with open(path, 'w') as f:
      f.write('{"pid": 12')  # a run killed (or still) between creating and writing it
    unknown = 'a run not identified: the lock is empty or cut short'
    self.assertHeld(path, unknown)
    old = time.time() - rundir.STALE_UNREADABLE_S - 5
    os.utime(path, (old, old))
    self.assertTakenOver(path, unknown, f'unreadable, {rundir.STALE_UNREADABLE_S + 5} s old')

  def test_release_leaves_another_runs_lock(self):
    self.acquire()
    path = _hold(self.out, pid=os.getppid())  # removed by hand, then taken by another run
    rundir.release_lock(self.out)
    with open(path) as f:
      self.assertEqual(json.load(f)['pid'], os.getppid())


class ExperimentLockTest(absltest.TestCase):

  def test_experiment_and_run_directories_locked_apart(self):
    tiny = experiment_lib.Experiment(
        'tiny', 'a claim', draw=lambda rows, out, options: '',
        runs=lambda options: {'a': experiment_lib.Run('smoke', {}, {'mle': ('mle', {})})})
    root = _tempdir(self)
    out = os.path.join(root, 'tiny')
    own = _hold(out, pid=os.getppid())  # a second invocation of the experiment: refused
    with self.assertRaisesRegex(ValueError, f"--output_dir: '{out}' is in use by another run"):
      experiment_lib.run_experiment(tiny, experiment_lib.Options(), root, log=lambda s: None)
    self.assertEqual(os.listdir(out), [rundir.LOCK])  # nothing written
    os.remove(own)
    run_dir = os.path.join(out, 'runs', 'a')
    _hold(run_dir, pid=os.getppid())  # a run's own directory held (e.g. by benchmarks.run)
    with self.assertRaisesRegex(ValueError, f"--output_dir: '{run_dir}' is in use by another"):
      experiment_lib.run_experiment(tiny, experiment_lib.Options(), root, log=lambda s: None)
    self.assertFalse(os.path.exists(own))  # the experiment's lock is released on error
    self.assertEqual(sorted(os.listdir(run_dir)), [rundir.LOCK])


BAD_INJECT_NAN = (
    ('format', 'x', "expected SEED:STEP (two integers, e.g. 1:5), got 'x'"),
    ('no_step', '1', "expected SEED:STEP (two integers, e.g. 1:5), got '1'"),
    ('seed', '3:5', 'seed 3 is not in range(--num_seeds) = 0..2'),
    ('step_zero', '1:0', 'step 0 is not in [1, --config.train.num_steps] = [1, 10]'),
    ('step_high', '1:11', 'step 11 is not in [1, --config.train.num_steps] = [1, 10]'),
)


class BadInjectNanTest(parameterized.TestCase):

  @parameterized.named_parameters(*BAD_INJECT_NAN)
  def test_rejected_before_compute(self, value, message):
    # In this process, through the functions the command calls (run.define_flags, parsing,
    # run.config_from_flags, runner.execute): one ValueError before any file is written.
    out = os.path.join(tempfile.mkdtemp(), 'never')
    argv = ['benchmarks.run', *ARGS, f'--output_dir={out}', f'--config.train.inject_nan={value}']
    with self.assertRaises(ValueError) as raised:
      _smoke.run_command_in_process(argv)
    self.assertEqual(str(raised.exception), f'--config.train.inject_nan: {message}')
    self.assertFalse(os.path.exists(out), 'no partial results for bad input')

  def test_the_command_exits_2_with_one_line(self):
    value, message = BAD_INJECT_NAN[2][1:]
    out = os.path.join(tempfile.mkdtemp(), 'never')
    proc = _run(f'--output_dir={out}', f'--config.train.inject_nan={value}')
    self.assertEqual(proc.returncode, 2)
    self.assertEqual(proc.stderr.strip().splitlines(),
                     [f'error: --config.train.inject_nan: {message}'])
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
