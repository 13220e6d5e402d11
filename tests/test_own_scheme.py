"""A user's own scheme from outside the repository (docs/own_scheme.md): the documented file,
copied into a temporary directory, runs through `benchmarks.run`, resumes, samples, joins an
experiment's variants and the memory estimate; a module that does not import or lacks part
of the interface is one line naming --schemes, before anything is written."""

import json
import os
import re
import subprocess
import sys
import tempfile
from unittest import mock

from absl.testing import absltest

import _smoke
from benchmarks import configs
from benchmarks.engine import configuration
from benchmarks.engine import memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, 'docs', 'own_scheme.md')
NAME = 'my_lab.my_objective'


def documented_module() -> str:
  """The one Python block of docs/own_scheme.md."""
  with open(DOC) as f:
    blocks = re.findall(r'```python\n(.*?)```', f.read(), flags=re.S)
  assert len(blocks) == 1, 'docs/own_scheme.md should show exactly one Python file'
  return blocks[0]


def user_package(source: str, name: str = 'my_objective') -> str:
  """A directory outside the repository holding my_lab/<name>.py; returns it."""
  top = tempfile.mkdtemp(prefix='divbench-user-')
  os.makedirs(os.path.join(top, 'my_lab'))
  open(os.path.join(top, 'my_lab', '__init__.py'), 'w').close()
  with open(os.path.join(top, 'my_lab', f'{name}.py'), 'w') as f:
    f.write(source)
  return top


def _python(top, *args):
  env = dict(os.environ, PYTHONPATH=top)
  return subprocess.run([sys.executable, '-m', *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=600, env=env)


class OwnSchemeCliTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.top = user_package(documented_module())
    assert not os.path.abspath(cls.top).startswith(ROOT)
    cls.out = os.path.join(tempfile.mkdtemp(), 'run')
    cls.args = ('benchmarks.run', '--preset=smoke', f'--schemes={NAME}', '--num_seeds=2',
                '--config.my_objective.epsilon=0.2', '--config.train.num_steps=10',
                '--config.train.eval_every=5', f'--output_dir={cls.out}')
    cls.proc = _python(cls.top, *cls.args)

  def test_runs_resumes_and_samples(self):
    self.assertEqual(self.proc.returncode, 0, self.proc.stderr[-3000:])
    with open(os.path.join(self.out, 'results.jsonl')) as f:
      rows = [json.loads(line) for line in f]
    mine = [r for r in rows if r['scheme'] == NAME]
    self.assertEqual(sorted({(r['seed'], r['step']) for r in mine}),
                     [(s, t) for s in (0, 1) for t in (0, 5, 10)])
    self.assertTrue(all(r['base_scheme'] == NAME and not r['diverged'] for r in mine))
    # Training moved the generator: its nll_test fell (label smoothing still fits the data).
    first = {r['seed']: r['nll_test'] for r in mine if r['step'] == 0}
    last = {r['seed']: r['nll_test'] for r in mine if r['step'] == 10}
    self.assertTrue(all(last[s] < first[s] for s in first), (first, last))
    with open(os.path.join(self.out, 'config.json')) as f:
      self.assertEqual(json.load(f)['config']['my_objective'], {'epsilon': 0.2})
    # The same command resumes: nothing to train, same rows.
    again = _python(self.top, *self.args)
    self.assertEqual(again.returncode, 0, again.stderr[-3000:])
    with open(os.path.join(self.out, 'results.jsonl')) as f:
      self.assertEqual([json.loads(line) for line in f], rows)
    # Another value of its own field is another run: refused in the same directory.
    other = _python(self.top, *self.args[:-2], '--config.my_objective.epsilon=0.3',
                    self.args[-1])
    self.assertEqual(other.returncode, 2)
    self.assertIn('holds results of a different config', other.stderr)
    sampled = _python(self.top, 'benchmarks.sample', f'--run_dir={self.out}',
                      f'--scheme={NAME}', '--seed=1', '--num_samples=3')
    self.assertEqual(sampled.returncode, 0, sampled.stderr[-3000:])
    self.assertLen(sampled.stdout.strip().splitlines(), 3)


class BadModuleTest(absltest.TestCase):

  def _refused(self, source, pattern, scheme='my_lab.broken'):
    top = user_package(source, 'broken')
    out = os.path.join(tempfile.mkdtemp(), 'run')
    proc = _python(top, 'benchmarks.run', '--preset=smoke', f'--schemes={scheme}',
                   f'--output_dir={out}')
    self.assertEqual(proc.returncode, 2, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    self.assertLen(lines, 1, proc.stderr)
    self.assertRegex(lines[0], '^error: --schemes: ' + pattern)
    self.assertFalse(os.path.exists(out))

  def test_a_module_that_does_not_import(self):
    self._refused('import not_a_module_anywhere\n',
                  r"'my_lab.broken' could not be imported \(ModuleNotFoundError")

  def _refused_in_process(self, source, pattern, scheme='my_lab.broken'):
    # Through the function the command calls first (the command prints its ValueError as the
    # one line above and exits 2).
    top = user_package(source, 'broken')
    with mock.patch.object(sys, 'path', [top] + sys.path):
      for name in ('my_lab', 'my_lab.broken'):
        self.addCleanup(sys.modules.pop, name, None)
      with self.assertRaisesRegex(ValueError, '^--schemes: ' + pattern):
        configuration.build_config('smoke', {}, schemes=scheme)

  def test_a_module_without_make(self):
    self._refused_in_process('def check_config(config):\n  del config\n',
                             r"'my_lab.broken' is not a scheme module: it lacks callable make")

  def test_a_missing_module(self):
    self._refused_in_process(documented_module(), r"'my_lab.nowhere' could not be imported",
                             scheme='my_lab.nowhere')


class InProcessTest(absltest.TestCase):
  """Validation, variants and the memory estimate take the module like a built-in scheme."""

  def setUp(self):
    super().setUp()
    top = user_package(documented_module())
    self.enterContext(mock.patch.object(sys, 'path', [top] + sys.path))
    for name in ('my_lab', NAME):
      sys.modules.pop(name, None)

  def test_section_overrides_and_bad_values(self):
    config = configuration.build_config('smoke', {'my_objective.epsilon': 0.5}, schemes=NAME)
    self.assertEqual(config.my_objective.epsilon, 0.5)
    configuration.validate(config)
    config.my_objective.epsilon = -1.0
    with self.assertRaisesRegex(ValueError, '^--config.my_objective.epsilon: must be'):
      configuration.validate(config)

  def test_variants_and_memory(self):
    config = _smoke.smoke_config()
    resolved = configuration.resolve_variants(config, {
        'smooth': (NAME, {'my_objective.epsilon': 0.3}), 'plain': ('mle', {})})
    self.assertEqual(resolved['smooth'][1].my_objective.epsilon, 0.3)
    self.assertNotIn('my_objective', resolved['plain'][1])
    # No working_set_bytes: estimated as ten [B, T, V] arrays besides MLE's passes.
    smooth = resolved['smooth'][1]
    self.assertGreater(memory.step_bytes(smooth, NAME), memory.step_bytes(smooth, 'mle'))
    self.assertEqual(memory.state_bytes(smooth, NAME), memory.state_bytes(smooth, 'mle'))
    memory.check_run(config, resolved)

  def test_a_section_may_not_replace_a_suite_field(self):
    top = user_package(documented_module(), 'train')
    with mock.patch.object(sys, 'path', [top] + sys.path):
      with self.assertRaisesRegex(ValueError, "^--schemes: my_lab.train: its config section "
                                  "would be config.train"):
        configs.add_scheme_sections(configs.get_preset('smoke'), ['my_lab.train'])


if __name__ == '__main__':
  absltest.main()
