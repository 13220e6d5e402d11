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
    self.assertRegex(proc.stdout, r'step 20/20 \(.*steps/s, ETA 0s, 2/2 ok\)')
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
      ('process_id_alone', ['--process_id=1'], '--process_id'),
      ('num_processes', ['--distributed', '--num_processes=0'], '--num_processes'),
      ('distributed_without_cluster', ['--distributed'], '--distributed'),
      ('unknown_config_field', ['--config.nope=1'], '--config.nope: no such config field'),
      ('unknown_nested_field', ['--config.train.nope=1'], '--config.train.nope'),
      ('scheme_twice', ['--schemes=mle,cot,mle'], '--schemes: mle named more than once'),
      ('one_eval_sample', ['--config.eval.num_samples=1'],
       '--config.eval.num_samples: a standard error needs at least 2 samples'),
      ('one_test_sample', ['--config.problem.num_test=1'], '--config.problem.num_test'),
      ('bad_alphas', ['--config.eval.alphas=(1.0,0.0)'], '--config.eval.alphas'),
      ('bad_select', ['--config.eval.select=best'], '--config.eval.select'),
  )
  def test_rejected_before_compute(self, args, flag):
    out = os.path.join(tempfile.mkdtemp(), 'never')
    env = {k: v for k, v in os.environ.items() if not k.startswith(('SLURM_', 'OMPI_', 'JAX_'))}
    proc = _run('--preset=smoke', f'--output_dir={out}', *args, env=env)
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn(flag, proc.stderr)
    self.assertFalse(os.path.exists(out), 'no partial results for bad input')
    self.assertNotIn('Compiling', proc.stderr)
    self.assertEqual(proc.stdout, '')

  def test_scheme_section_rejected_before_compute(self):
    # A scheme's own --config.<scheme>.* field fails in validation, like the sizes above.
    out = os.path.join(tempfile.mkdtemp(), 'never')
    proc = _run('--preset=smoke', f'--output_dir={out}', '--schemes=direct',
                '--config.direct.divergence=kl_pp')
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn('--config.direct.divergence', proc.stderr)
    self.assertFalse(os.path.exists(out))
    self.assertEqual(proc.stdout, '')

  def test_unwritable_output_dir(self):
    blocker = os.path.join(tempfile.mkdtemp(), 'a_file')
    with open(blocker, 'w') as f:
      f.write('x')
    proc = _run('--preset=smoke', f'--output_dir={blocker}/sub')
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn('--output_dir', proc.stderr)
    self.assertEqual(proc.stdout, '')


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
