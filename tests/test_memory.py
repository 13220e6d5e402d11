"""benchmarks/engine/memory.py: the sizes it estimates from, the limit, and the refusal."""

import copy
import os
import re
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import jax

import _smoke
from benchmarks import configs
from benchmarks.engine import configuration
from benchmarks.engine import memory
import objectives

GIB = 2 ** 30


class StateAndStepTest(parameterized.TestCase):
  """The states are read from each scheme's own init (jax.eval_shape), the steps from the
  working set each scheme module declares."""

  def _lstm(self, config, factor=1):
    return memory.lstm_params(config.problem.vocab_size, factor * config.generator.embed_dim,
                              factor * config.generator.hidden_dim)

  @parameterized.named_parameters(('mle', 'mle'), ('scheduled_sampling', 'scheduled_sampling'),
                                  ('direct', 'direct'), ('distill', 'distill'))
  def test_generator_only_schemes_hold_its_parameters_and_two_moments(self, name):
    config = _smoke.smoke_config()
    self.assertEqual(memory.state_bytes(config, name), 4 * 3 * self._lstm(config))
    self.assertEqual(memory.generator_params(config, name), self._lstm(config))

  def test_cot_adds_a_mediator_of_its_width(self):
    config = _smoke.smoke_config()
    for factor in (2, 3):
      config.cot.mediator_width_factor = factor
      self.assertEqual(memory.state_bytes(config, 'cot'),
                       4 * 3 * (self._lstm(config) + self._lstm(config, factor)))

  def test_seqgan_keeps_a_second_adam_and_the_delayed_copy(self):
    config = _smoke.smoke_config()
    current = memory.state_bytes(config, 'seqgan')
    config.seqgan.rollout = 'delayed'
    self.assertEqual(memory.state_bytes(config, 'seqgan') - current, 4 * self._lstm(config))

  def test_generator_is_the_seqgan_oracle_size(self):
    # models/data/seqgan_oracle.npz: V = 5000, E = H = 32.
    self.assertEqual(memory.lstm_params(5000, 32, 32),
                     5000 * 32 + 4 * (32 * 32 + 32 * 32 + 32) + 32 * 5000 + 5000)

  def test_uses_pi_is_the_schemes(self):
    config = _smoke.smoke_config()
    config.update_from_flattened_dict({'direct.divergence': 'js_pi', 'distill.divergence': 'fkl'})
    self.assertTrue(memory.uses_pi(config, 'direct'))
    self.assertFalse(memory.uses_pi(config, 'distill'))
    self.assertTrue(memory.uses_pi(config, 'gan_pi'))
    self.assertFalse(memory.uses_pi(config, 'mle'))

  @parameterized.named_parameters(*[(n, n) for n in objectives.REGISTRY])
  def test_every_scheme_declares_a_working_set_that_grows_with_the_batch(self, name):
    config = configs.get_preset('small')
    small = objectives.REGISTRY[name].working_set_bytes(config)
    config.train.batch_size *= 2
    self.assertGreater(objectives.REGISTRY[name].working_set_bytes(config), small)
    self.assertEqual(memory.step_bytes(config, name),
                     objectives.REGISTRY[name].working_set_bytes(config))

  def test_the_engine_spells_no_scheme_name(self):
    engine = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          'benchmarks', 'engine')
    for file in sorted(f for f in os.listdir(engine) if f.endswith('.py')):
      with open(os.path.join(engine, file)) as f:
        text = f.read()
      for name in objectives.REGISTRY:
        if name == 'mle':  # the warm start is an MLE run, by definition
          continue
        self.assertIsNone(re.search(rf"['\"]{name}['\"]", text), f'{file} spells {name!r}')


class EstimateTest(absltest.TestCase):

  def test_grows_with_runs_and_runs_at_once(self):
    config = configs.get_preset('small')
    one = memory.estimate_memory_bytes(config, 'mle')
    config.num_seeds = 8
    mapped = memory.estimate_memory_bytes(config, 'mle')
    config.train.seed_strategy = 'vmap'
    vmapped = memory.estimate_memory_bytes(config, 'mle')
    self.assertLess(memory.RUNTIME_BYTES, one)
    self.assertLess(one, mapped)
    self.assertLess(mapped, vmapped)
    parts = memory.breakdown(config, 'mle')
    config.train.seed_strategy = 'map'
    self.assertEqual(parts['working'], 8 * memory.breakdown(config, 'mle')['working'])

  def test_pi_grid_multiplies_the_runs(self):
    config = configs.get_preset('small')
    config.pis = (0.5,)
    one = memory.breakdown(config, 'gan_pi')['states']
    config.pis = (0.1, 0.5, 0.9)
    self.assertEqual(memory.breakdown(config, 'gan_pi')['states'], 3 * one)
    self.assertEqual(memory.breakdown(config, 'mle')['states'],
                     2 * config.num_seeds * memory.state_bytes(config, "mle"))

  def test_presets_fit_a_small_machine(self):
    # What the presets run by default must pass on a laptop or a CI runner (< 4 GiB).
    for preset in configs.PRESETS:
      config = configs.get_preset(preset)
      for name in configuration.scheme_names(config):
        self.assertLess(memory.estimate_memory_bytes(config, name), 4 * GIB, (preset, name))

class LimitTest(absltest.TestCase):

  def test_meminfo_available(self):
    with tempfile.NamedTemporaryFile('w', suffix='meminfo', delete=False) as f:
      f.write('MemTotal:       24684084 kB\nMemFree:  100 kB\nMemAvailable:   1000 kB\n')
    self.assertEqual(memory.host_available_bytes(f.name),
                     (1000 * 1024, 'the available memory (MemAvailable)'))
    os.remove(f.name)
    free, what = memory.host_available_bytes(f.name)  # sysconf's free pages instead
    self.assertGreater(free, 0)
    self.assertEqual(what, 'the free memory (sysconf)')

  def test_override_and_its_errors(self):
    self.assertEqual(memory.limit_bytes({memory.ENV_LIMIT: '2e9'}),
                     (2_000_000_000, 'the limit DIVBENCH_MEMORY_LIMIT_BYTES'))
    with self.assertRaisesRegex(ValueError, '^DIVBENCH_MEMORY_LIMIT_BYTES: expected a number'):
      memory.limit_bytes({memory.ENV_LIMIT: 'lots'})
    limit, what = memory.limit_bytes({memory.ENV_LIMIT: '0'})  # 0 = the machine's
    self.assertGreater(limit, 0)
    self.assertNotIn(memory.ENV_LIMIT, what)

  def test_accelerators_limit_is_their_memory(self):
    from jax._src import xla_bridge

    class Device:
      def __init__(self, stats):
        self.stats = stats

      def memory_stats(self):
        return self.stats

    gpus = [Device({'bytes_limit': 80 * GIB}), Device({'bytes_limit': 80 * GIB})]
    with mock.patch.object(xla_bridge, 'backends_are_initialized', return_value=True), \
         mock.patch.object(jax, 'local_devices', return_value=gpus):
      self.assertEqual(memory.limit_bytes({}), (160 * GIB, 'the device memory'))
      gpus.append(Device(None))  # a device without the statistic: the host's memory
      self.assertEqual(memory.limit_bytes({})[1], memory.host_available_bytes()[1])
    with mock.patch.object(xla_bridge, 'backends_are_initialized', return_value=False), \
         mock.patch.object(jax, 'local_devices') as local_devices:
      memory.limit_bytes({})
      local_devices.assert_not_called()  # no backend is initialised for the limit

  def test_cpu_limit_is_the_host_memory(self):
    if jax.devices()[0].platform != 'cpu':
      self.skipTest('CPU only: the device limit of an accelerator is its bytes_limit')
    self.assertIsNone(memory.device_limit_bytes())  # CPU devices report no bytes_limit
    self.assertEqual(memory.limit_bytes({})[1], memory.host_available_bytes()[1])


class RefusalTest(absltest.TestCase):

  def test_validate_names_num_seeds_the_estimate_and_the_limit(self):
    config = configs.get_preset('small')
    config.num_seeds = 1000
    need = memory.estimate_memory_bytes(config, 'mle')
    limit = need - 1
    fit = memory.max_seeds(config, 'mle', limit)
    cfg = copy.deepcopy(config)
    cfg.num_seeds = fit
    self.assertLessEqual(memory.estimate_memory_bytes(cfg, 'mle'), limit)
    cfg.num_seeds = fit + 1
    self.assertGreater(memory.estimate_memory_bytes(cfg, 'mle'), limit)
    with mock.patch.dict(os.environ, {memory.ENV_LIMIT: str(limit)}):
      with self.assertRaises(ValueError) as raised:
        memory.check_run(config, configuration.resolve_variants(config))
    self.assertEqual(
        str(raised.exception),
        f'--num_seeds: 1000 seeds of mle need an estimated {memory.gib(need)}, more than the '
        f'limit DIVBENCH_MEMORY_LIMIT_BYTES, {memory.gib(limit)}; use at most {fit} seeds, or '
        'set DIVBENCH_MEMORY_LIMIT_BYTES to overrule the estimate (benchmarks/engine/memory.py)')
    with mock.patch.dict(os.environ, {memory.ENV_LIMIT: str(need)}):
      memory.check_run(config, configuration.resolve_variants(config))  # exactly fits

  def test_largest_scheme_and_warm_start_are_checked(self):
    config = configs.get_preset('small')
    config.schemes = 'mle,professor_forcing'
    need = memory.estimate_memory_bytes(config, 'professor_forcing')
    self.assertGreater(need, memory.estimate_memory_bytes(config, 'mle'))
    with mock.patch.dict(os.environ, {memory.ENV_LIMIT: str(need - 1)}):
      with self.assertRaisesRegex(ValueError, '^--num_seeds: 4 seeds of professor_forcing'):
        memory.check_run(config, configuration.resolve_variants(config))

  def test_advice_one_at_a_time_or_smaller_sizes(self):
    config = configs.get_preset('small')
    config.num_seeds = 64
    config.train.seed_strategy = 'vmap'
    mapped = copy.deepcopy(config)
    mapped.train.seed_strategy = 'map'
    limit = memory.estimate_memory_bytes(mapped, 'mle')  # fits, one run at a time
    self.assertLess(limit, memory.estimate_memory_bytes(config, 'mle'))
    with self.assertRaisesRegex(ValueError, r'; use at most \d+ seeds or --config.train.'
                                r'seed_strategy=map \(one run at a time\), or set'):
      memory.check(config, ['mle'], {memory.ENV_LIMIT: str(limit)})
    with self.assertRaisesRegex(ValueError, '; even 1 seed does not fit: shrink the sizes, or'):
      memory.check(config, ['mle'], {memory.ENV_LIMIT: '1000'})

  def test_warm_start_generators_are_kept(self):
    config = configs.get_preset('small')
    cold = memory.breakdown(config, 'gan_pi')['states']
    config.train.warm_start_steps = 200
    self.assertEqual(memory.breakdown(config, 'gan_pi')['states'] - cold,
                     config.num_seeds * 4 * memory.generator_params(config, 'gan_pi'))

if __name__ == '__main__':
  absltest.main()
