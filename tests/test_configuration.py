"""benchmarks.engine.runner: labelled scheme variants (several configs of schemes in one run)."""

import json
import os
import tempfile

from absl.testing import absltest
from absl.testing import parameterized

from _smoke import smoke_config
from benchmarks.engine import configuration
from benchmarks.engine import rundir


class VariantsTest(parameterized.TestCase):

  def test_each_variant_gets_its_overrides_and_the_shared_config(self):
    config = smoke_config()
    resolved = configuration.resolve_variants(config, {
        'mm': ('gan_pi', {'gan_pi.generator_loss': 'minimax'}),
        'ns': ('gan_pi', {'gan_pi.generator_loss': 'non_saturating', 'gan_pi.d_steps': 3})})
    self.assertEqual(list(resolved), ['mm', 'ns'])
    self.assertEqual(resolved['ns'][0], 'gan_pi')
    self.assertEqual(resolved['ns'][1].gan_pi.d_steps, 3)
    self.assertEqual(resolved['mm'][1].gan_pi.d_steps, config.gan_pi.d_steps)
    self.assertEqual(resolved['ns'][1].problem.to_dict(), config.problem.to_dict())
    self.assertEqual(config.gan_pi.generator_loss, smoke_config().gan_pi.generator_loss)

  def test_without_variants_the_schemes_of_the_config(self):
    config = smoke_config()
    config.schemes = 'mle,cot'
    self.assertEqual({k: v[0] for k, v in configuration.resolve_variants(config).items()},
                     {'mle': 'mle', 'cot': 'cot'})

  @parameterized.named_parameters(
      ('shared_problem', {'a': ('mle', {'problem.vocab_size': 4})}, 'shared by all variants'),
      ('shared_warm_start', {'a': ('mle', {'train.warm_start_steps': 10})}, 'shared'),
      ('shared_eval', {'a': ('mle', {'eval.num_samples': 10})}, 'shared'),
      ('unknown_field', {'a': ('mle', {'gan_pi.nope': 1})}, 'unknown config field'),
      ('unknown_scheme', {'a': ('gan', {})}, 'unknown scheme'),
      ('reserved_label', {'warm_start': ('mle', {})}, 'reserved'),
      ('bad_value', {'a': ('gan_pi', {'gan_pi.generator_loss': 'x'})},
       "variant 'a': --config.gan_pi.generator_loss"),
  )
  def test_bad_variant_names_itself_and_the_field(self, variants, message):
    with self.assertRaisesRegex(ValueError, message):
      configuration.resolve_variants(smoke_config(), variants)

  def test_variants_are_part_of_the_saved_config_and_its_hash(self):
    config, out = smoke_config(), tempfile.mkdtemp()
    a = {'x': ('gan_pi', {'gan_pi.d_steps': 2})}
    h1 = rundir.prepare_output_dir(out, config, overwrite=False, variants=a)
    with open(os.path.join(out, 'config.json')) as f:
      self.assertEqual(json.load(f)['variants'], {'x': ['gan_pi', {'gan_pi.d_steps': 2}]})
    self.assertEqual(rundir.prepare_output_dir(out, config, overwrite=False, variants=a), h1)
    with self.assertRaisesRegex(ValueError, '--output_dir: .* different config'):
      rundir.prepare_output_dir(out, config, overwrite=False,
                                variants={'x': ('gan_pi', {'gan_pi.d_steps': 3})})

  def test_checkpoint_every_is_not_part_of_the_hash(self):
    # It changes how a run is chunked, not its numbers: a run resumes under another value.
    config, out = smoke_config(), tempfile.mkdtemp()
    a = {'x': ('gan_pi', {'gan_pi.d_steps': 2})}
    h1 = rundir.prepare_output_dir(out, config, overwrite=False, variants=a)
    config.train.checkpoint_every = 5
    b = {'x': ('gan_pi', {'gan_pi.d_steps': 2, 'train.checkpoint_every': 1})}
    self.assertEqual(rundir.prepare_output_dir(out, config, overwrite=False, variants=b), h1)
    with open(os.path.join(out, 'config.json')) as f:
      self.assertNotIn('checkpoint_every', json.load(f)['config']['train'])


class AddedFieldsTest(absltest.TestCase):
  """A config.json written before a field existed resumes when that field is at its default."""

  def test_pruning_keeps_changed_and_drops_default_added_fields(self):
    saved = {'a': 1, 'sec': {'x': 1}}
    default = {'a': 1, 'new': True, 'sec': {'x': 1, 'y': (1, 2)}}
    self.assertEqual(rundir.without_added_defaults(
        saved, {'a': 1, 'new': True, 'sec': {'x': 1, 'y': [1, 2]}}, default), saved)
    self.assertEqual(rundir.without_added_defaults(
        saved, {'a': 1, 'new': False, 'sec': {'x': 1}}, default),
        {'a': 1, 'new': False, 'sec': {'x': 1}})
    self.assertEqual(rundir.without_added_defaults(saved, {'a': 2, 'sec': {'x': 1}}, default),
                     {'a': 2, 'sec': {'x': 1}})

  def _written_before(self, field, value=None):
    """An output dir whose config.json lacks train.<field> (as if written before it existed)."""
    out = tempfile.mkdtemp()
    rundir.prepare_output_dir(out, smoke_config(), overwrite=False)
    path = os.path.join(out, 'config.json')
    with open(path) as f:
      saved = json.load(f)
    saved['config']['train'].pop(field)
    saved['hash'] = 'written-before'
    with open(path, 'w') as f:
      json.dump(saved, f)
    config = smoke_config()
    if value is not None:
      config.train[field] = value
    return out, config

  def test_a_field_added_at_its_default_resumes_and_rewrites_config_json(self):
    out, config = self._written_before('tensorboard')
    logged = []
    h = rundir.prepare_output_dir(out, config, overwrite=False, log=logged.append)
    self.assertTrue(any('train.tensorboard' in line and 'resuming' in line for line in logged))
    with open(os.path.join(out, 'config.json')) as f:
      self.assertEqual(json.load(f)['hash'], h)

  def test_a_field_added_at_another_value_is_a_different_config(self):
    out, config = self._written_before('tensorboard', value=False)
    with self.assertRaisesRegex(ValueError, '--output_dir: .* different config'):
      rundir.prepare_output_dir(out, config, overwrite=False)


if __name__ == '__main__':
  absltest.main()
