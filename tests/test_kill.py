"""SIGKILL at any moment: `python -m benchmarks.run` killed and rerun ends with the rows of an
uninterrupted run.

The kill points are chosen deterministically, not by sleeping: the testing-only environment
variable DIVBENCH_KILL_AT=STAGE@FILE:N (benchmarks/engine/rundir.py) makes the process SIGKILL
itself the Nth time it reaches STAGE of writing FILE (counted from that process's start).
One directory goes through a chain of processes, each resuming from what the one before
left: killed while writing config.json, halfway through the first checkpoint, with the
step-10 rows complete in their temporary file, between results.jsonl and the checkpoint,
after evaluating the second chunk; then one whose checkpoint write fails halfway (a file
size limit: the kernel refuses the write as on a full disk); then one killed by a timer at
a seeded delay after it starts training; then a final one that completes. JAX's persistent
compilation cache, shared by the processes, keeps them to one compile; they compile with JAX's
default optimisations, as users' runs do.
"""

import glob
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from absl.testing import absltest

import _smoke
from benchmarks.engine import files
from benchmarks.engine import rundir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ('--preset=smoke', '--schemes=mle', '--num_seeds=2', '--config.train.num_steps=10',
        '--config.train.eval_every=5', '--config.eval.num_samples=64',
        '--config.eval.batch_size=32')
FILE_LIMIT = 12_000  # bytes: config.json and results.jsonl fit, a checkpoint (~20 kB) not

# (DIVBENCH_KILL_AT, then on disk: steps of the rows, step of the checkpoint, a temporary
# file). N counts from each process's start: a resumed one writes results.jsonl once a chunk.
KILLS = (
    ('mid_write@config.json:1', set(), None, True),  # before any compile: the lock is left
    ('mid_write@mle.msgpack:1', {0, 5}, None, True),  # the first checkpoint half written
    ('before_replace@results.jsonl:3', {0, 5}, 5, True),  # step 10's rows whole in the temp
    ('after_replace@results.jsonl:1', {0, 5, 10}, 5, False),  # resumed at 5: rows, no ckpt
    ('before_write@results.jsonl:1', {0, 5, 10}, 5, True),  # resumed at 5: chunk 2 evaluated
)


def _command(out):
  return [sys.executable, '-m', 'benchmarks.run', *ARGS, f'--output_dir={out}']


def _env(cache, kill_at=None):
  # Compiled as users' runs are (not as the session: tests/conftest.py), so the exact-resume
  # guarantee is checked on the programs users get.
  env = _smoke.users_compiler(dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache,
                                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
                                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='-1'))
  env.pop('DIVBENCH_KILL_AT', None)
  if kill_at:
    env['DIVBENCH_KILL_AT'] = kill_at
  return env


def _run(out, cache, kill_at=None, preexec_fn=None):
  return subprocess.run(_command(out), cwd=ROOT, capture_output=True, text=True,
                        timeout=600, env=_env(cache, kill_at), preexec_fn=preexec_fn)


def _limit_file_size():
  resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


def _on_disk(out):
  """(steps of results.jsonl's rows, step of the checkpoint or None): both must read."""
  path = os.path.join(out, 'results.jsonl')
  steps = {r['step'] for r in rundir.read_rows(path)} if os.path.exists(path) else set()
  path = rundir.checkpoint_path(out, 'mle')
  step = int(rundir.read_checkpoint(path)['step']) if os.path.exists(path) else None
  return steps, step


def _temps(out):
  return glob.glob(os.path.join(out, '**', files.TEMP_PREFIX + '*'), recursive=True)


def _rows(out):
  """results.jsonl's rows without the fields that differ between runs (their timings)."""
  return [{k: v for k, v in r.items() if k not in rundir.PER_INVOCATION}
          for r in rundir.read_rows(os.path.join(out, 'results.jsonl'))]


class KillTest(absltest.TestCase):

  def test_killed_at_every_stage_then_rerun_equals_uninterrupted(self):
    tmp = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
    cache = os.path.join(tmp, 'jax-cache')
    reference = os.path.join(tmp, 'reference')
    proc = _run(reference, cache)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    out = os.path.join(tmp, 'killed')
    lock = os.path.join(out, rundir.LOCK)
    for i, (kill_at, steps, checkpoint, temp) in enumerate(KILLS):
      proc = _run(out, cache, kill_at)
      self.assertEqual(proc.returncode, -signal.SIGKILL, f'{kill_at}: {proc.stderr[-3000:]}')
      self.assertEqual(_on_disk(out), (steps, checkpoint), kill_at)
      self.assertLen(_temps(out), int(temp), kill_at)  # the earlier ones' are removed
      self.assertTrue(os.path.exists(lock), kill_at)  # stale: the next process takes it over
      if i:
        self.assertIn(f'divbench: taking over {lock}, the lock of pid ', proc.stdout)
        self.assertIn('(that process no longer runs)', proc.stdout)
    self.assertIn('resuming at step 5/10', proc.stdout)

    # A checkpoint write that fails halfway: one line naming it, exit 2, earlier files whole.
    proc = _run(out, cache, preexec_fn=_limit_file_size)
    self.assertEqual(proc.returncode, 2, proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    path = rundir.checkpoint_path(out, 'mle')
    self.assertEqual(proc.stderr.strip().splitlines()[-1],
                     f'error: {path}: could not be written (File too large); its previous '
                     'version, if any, is intact; fix the cause and rerun the same command: '
                     'it resumes from the files written so far')
    self.assertEqual(_on_disk(out), ({0, 5, 10}, 5))
    self.assertEqual(_temps(out), [])  # the failed write's removed; the killed ones' too
    self.assertFalse(os.path.exists(lock))  # released on error

    # Killed by a timer at a seeded moment after it resumed (it may also finish first).
    delay = random.Random(0).uniform(0.0, 1.5)
    with subprocess.Popen(_command(out), cwd=ROOT, stdout=subprocess.PIPE, text=True,
                          stderr=subprocess.DEVNULL, env=_env(cache)) as timed:
      for line in timed.stdout:
        if 'resuming at step 5/10' in line:
          break
      time.sleep(delay)
      timed.kill()
      timed.communicate()
    self.assertIn(timed.returncode, (0, -signal.SIGKILL))

    proc = _run(out, cache)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertEqual(_rows(out), _rows(reference))
    self.assertEqual(_temps(out), [])
    self.assertFalse(os.path.exists(lock))
    with open(os.path.join(out, 'config.json')) as f, \
         open(os.path.join(reference, 'config.json')) as g:
      self.assertEqual(json.load(f), json.load(g))
    self.assertTrue(os.path.exists(os.path.join(out, 'summary.md')))


if __name__ == '__main__':
  absltest.main()
