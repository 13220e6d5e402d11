"""Every committed experiment's findings page regenerates from its committed rows, byte for byte.

docs/runs/<name>/ holds a finished experiment's rows as it wrote them, archived (results.jsonl,
gzip-compressed, config.json, provenance.json, runs/<label>/config.json; not the runs' own
copies of the rows, no checkpoints).
`python -m benchmarks.experiment NAME --draw_only --output_dir=docs/runs
--findings_dir=docs/findings` rewrites docs/findings/<name>.md and the figures from them; this
test does the same into a copy and compares the page with the committed one.
"""

import json
import os
import shutil
import tempfile

from absl.testing import absltest
from absl.testing import parameterized

from benchmarks import configs
from benchmarks import experiments
from benchmarks.engine import experiment as experiment_lib
from benchmarks.experiments import base
from benchmarks.experiments import gan_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = os.path.join(ROOT, 'docs', 'runs')
FINDINGS = os.path.join(ROOT, 'docs', 'findings')


def committed():
  """Names of the directories under docs/runs/ of finished experiments (provenance.json)."""
  return sorted(d for d in os.listdir(RUNS)
                if os.path.exists(os.path.join(RUNS, d, experiment_lib.PROVENANCE)))


class FindingsTest(parameterized.TestCase):

  def test_some_experiment_is_committed(self):
    self.assertNotEmpty(committed())

  def test_readme_answers_are_the_committed_verdicts(self):
    # README's "answer so far" block is generated (`python -m benchmarks.experiment --answers`)
    # from the same rows and claims: one bullet per committed experiment, one line per claim.
    block = experiment_lib.answers(experiments.REGISTRY, RUNS, 'docs/findings')
    with open(os.path.join(ROOT, 'README.md')) as f:
      readme = f.read()
    self.assertIn(block, readme)
    self.assertEqual(experiment_lib.replace_answers(readme, block), readme)
    for name in committed():
      self.assertIn(f'- [{name}](docs/findings/{name}.md#verdicts)', block)
    with self.assertRaisesRegex(ValueError, '--answers: README.md has no answers block'):
      experiment_lib.replace_answers('no markers', block)

  @parameterized.named_parameters((name, name) for name in committed())
  def test_page_regenerates_from_the_committed_rows(self, name):
    with open(os.path.join(RUNS, name, 'config.json')) as f:
      saved = json.load(f)
    experiment = experiments.REGISTRY[saved['experiment']]
    options = experiment_lib.Options(**saved['options'])
    self.assertEqual(experiment_lib.output_name(experiment, options), name)
    docs = os.path.join(tempfile.mkdtemp(), 'docs')
    shutil.copytree(os.path.join(RUNS, name), os.path.join(docs, 'runs', name),
                    ignore=shutil.ignore_patterns('*.png', 'table.md'))
    experiment_lib.draw_partial(experiment, options, os.path.join(docs, 'runs'),
                                log=lambda s: None,
                                findings_dir=os.path.join(docs, 'findings'))
    with open(os.path.join(docs, 'findings', name + '.md')) as f:
      regenerated = f.read()
    with open(os.path.join(FINDINGS, name + '.md')) as f:
      self.assertEqual(regenerated, f.read())
    for link in [l for l in regenerated.splitlines() if l.startswith('![')]:
      target = link[link.index('](') + 2:-1]
      self.assertTrue(os.path.exists(os.path.join(FINDINGS, target)), target)


class TunedDefaultsTest(absltest.TestCase):
  """The GANs' config defaults and the learning rates the temperature experiment gives MLE
  and CoT (experiments/base.TUNED) are gan_sweep's picks: its rule over its committed rows."""

  def test_defaults_and_tuned_are_the_rules_picks(self):
    rows = experiment_lib.read_experiment_rows(os.path.join(RUNS, 'gan_sweep'))
    summary, _, _ = gan_sweep.summarise(rows)
    grid = gan_sweep.grid(quick=False)
    for scheme in gan_sweep.SCHEMES:
      pick = gan_sweep.choose(summary, scheme)
      self.assertIsNotNone(pick, scheme)
      expected = configs.get_preset('small')
      for field, value in base.TUNED.get(scheme, {}).items():
        section, name = field.split('.')
        expected[section][name] = value
      for field, value in grid[pick][1].items():
        section, name = field.split('.')
        self.assertEqual(expected[section][name], value, f'{scheme}: {pick} sets {field}')


if __name__ == '__main__':
  absltest.main()
