"""End-to-end tests of `python -m benchmarks.run`: outputs, resume, and bad input."""

import json
import os
import subprocess
import tempfile
import sys

from absl.testing import absltest
from absl.testing import parameterized

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROW_KEYS = ('scheme', 'seed', 'pi', 'step', 'nll_oracle', 'nll_test', 'entropy_q', 'kl_pq',
            'kl_qp', 'js_pi')


def _run(*args):
  return subprocess.run([sys.executable, '-m', 'benchmarks.run', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


class SmokeRunTest(absltest.TestCase):

  def test_smoke_preset_end_to_end_and_resume(self):
    out = os.path.join(tempfile.mkdtemp(), 'run')
    args = ['--preset=smoke', '--schemes=mle', '--num_seeds=2', '--pis=0,0.5,1',
            f'--output_dir={out}', '--config.train.num_steps=20']
    proc = _run(*args)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
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


class BadInputTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('preset', ['--preset=nope'], '--preset'),
      ('scheme', ['--schemes=mle,nope'], '--schemes'),
      ('num_seeds', ['--num_seeds=0'], '--num_seeds'),
      ('size', ['--config.problem.vocab_size=0'], '--config.problem.vocab_size'),
      ('negative_size', ['--config.train.batch_size=-3'], '--config.train.batch_size'),
      ('pi_high', ['--pis=0.5,1.5'], '--pis'),
      ('pi_negative', ['--pis=-0.1'], '--pis'),
      ('pi_text', ['--pis=half'], '--pis'),
      ('strategy', ['--config.train.seed_strategy=pmap'], '--config.train.seed_strategy'),
  )
  def test_rejected_before_compute(self, args, flag):
    out = os.path.join(tempfile.mkdtemp(), 'never')
    proc = _run('--preset=smoke', f'--output_dir={out}', *args)
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn(flag, proc.stderr)
    self.assertFalse(os.path.exists(out), 'no partial results for bad input')
    self.assertNotIn('Compiling', proc.stderr)
    self.assertEqual(proc.stdout, '')

  def test_unwritable_output_dir(self):
    blocker = os.path.join(tempfile.mkdtemp(), 'a_file')
    with open(blocker, 'w') as f:
      f.write('x')
    proc = _run('--preset=smoke', f'--output_dir={blocker}/sub')
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn('--output_dir', proc.stderr)
    self.assertEqual(proc.stdout, '')


if __name__ == '__main__':
  absltest.main()
