"""`--distributed`: two processes (two 'hosts' of 2 CPU devices each) give the one-process numbers.

Both processes run the same `python -m benchmarks.run` command with --distributed and their
--process_id; JAX's coordinator listens on a free local port. The runs are sharded over the 4
global devices, results gathered to every process, and process 0 writes the output directory.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile

from absl.testing import absltest

import _smoke
from benchmarks.engine import rundir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ('nll_oracle', 'nll_test', 'entropy_q', 'kl_pq', 'kl_qp')


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _rows(output_dir):
  with open(os.path.join(output_dir, 'results.jsonl')) as f:
    return [json.loads(line) for line in f]


class MultiHostTest(absltest.TestCase):

  def test_two_processes_match_one(self):
    common = ['--preset=smoke', '--schemes=mle', '--num_seeds=3',
              '--config.train.num_steps=10', '--config.train.eval_every=5']
    env = dict(os.environ, JAX_PLATFORMS='cpu')
    single_dir = os.path.join(tempfile.mkdtemp(), 'single')
    single = subprocess.run([sys.executable, '-m', 'benchmarks.run', *common,
                             f'--output_dir={single_dir}'], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    self.assertEqual(single.returncode, 0, single.stderr[-3000:])

    multi_dir = os.path.join(tempfile.mkdtemp(), 'multi')
    env2 = _smoke.with_xla_flag(env, '--xla_force_host_platform_device_count=2')

    def run_two(expect=0):
      port = _free_port()
      procs = [subprocess.Popen(
          [sys.executable, '-m', 'benchmarks.run', *common, f'--output_dir={multi_dir}',
           '--distributed', f'--coordinator_address=localhost:{port}', '--num_processes=2',
           f'--process_id={i}'], cwd=ROOT, env=env2, stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, text=True) for i in range(2)]
      outs = [p.communicate(timeout=600 if expect == 0 else 180) for p in procs]
      for p, (_, err) in zip(procs, outs):
        self.assertEqual(p.returncode, expect, err[-3000:])
      return outs

    outs = run_two()
    self.assertIn('devices (4)', outs[0][0])  # process 0 saw all 4 global devices
    self.assertNotIn('divbench', outs[1][0])  # only process 0 reports (gloo may print)
    self.assertNotIn('[mle]', outs[1][0])

    one, two = _rows(single_dir), _rows(multi_dir)
    self.assertLen(two, 3 * 3)  # 3 seeds (the padding run writes no rows) x 3 evaluations
    self.assertEqual([(r['seed'], r['step']) for r in two], [(r['seed'], r['step']) for r in one])
    for a, b in zip(two, one):
      for m in METRICS:
        self.assertAlmostEqual(a[m], b[m], delta=1e-5 * max(1.0, abs(b[m])), msg=m)

    # The same two-process command again restores the checkpoint onto both hosts' devices.
    again = run_two()
    self.assertIn('resuming at step 10/10', again[0][0])
    self.assertEqual(_rows(multi_dir), two)

    # A directory held by another (live) run: process 0 refuses it, and process 1 must not
    # wait for it at a collective; both stop with one line and the files are untouched.
    rundir.acquire_lock(multi_dir)  # held by this test's own, live, process
    try:
      with open(os.path.join(multi_dir, 'results.jsonl')) as f:
        before = f.read()
      refused = run_two(expect=2)
    finally:
      rundir.release_lock(multi_dir)
    self.assertIn('is in use by another run', refused[0][1])
    self.assertIn('--output_dir: refused by process 0', refused[1][1])
    with open(os.path.join(multi_dir, 'results.jsonl')) as f:
      self.assertEqual(f.read(), before)


if __name__ == '__main__':
  absltest.main()
