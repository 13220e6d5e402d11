"""Tests of the throughput benchmark's bookkeeping (not of speed: that is measured, not tested)."""

import json
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest

from benchmarks import configs
from benchmarks.measure import throughput
from models import oracle


class ThroughputTest(absltest.TestCase):

  def test_step_flops_seqgan(self):
    # B=64, T=20, E=H=32, V=5000: 3 * 2 * 1280 * (4*32*64 + 32*5000) FLOPs.
    self.assertEqual(throughput.step_flops(configs.get_preset('seqgan')),
                     3 * 2 * 64 * 20 * (8192 + 160_000))

  def test_step_flops_transformer(self):
    # B=64, T=20, E=32 wide, MLP H=32, L=2, V=5000:
    # 3 * 2 * B*T * (L*(4*E*E + 2*T*E + 2*E*H) + E*V).
    config = configs.get_preset('seqgan')
    config.generator.kind = 'transformer'
    per_layer = 4 * 32 * 32 + 2 * 20 * 32 + 2 * 32 * 32
    self.assertEqual(throughput.step_flops(config),
                     3 * 2 * 64 * 20 * (2 * per_layer + 32 * 5000))

  def test_the_transformer_is_measured_in_process(self):
    config, seeds = throughput.check_flags(preset='smoke', num_seeds=['1'], parts=['mle'],
                                           adversarial='', counts={}, generator='transformer')
    self.assertEqual(config.generator.kind, 'transformer')
    problem = oracle.make_problem(config.problem)
    rows, torch_result = throughput.measure_training(config, problem, seeds, 'map', 2, 1)
    self.assertIsNone(torch_result)
    self.assertGreater(rows[0]['seed_steps_per_s'], 0)
    rates = throughput.measure_sampling(problem, 8, 1, False, config)
    self.assertEqual(set(rates), {'jax_icdf', 'jax_gumbel'})
    md = throughput.markdown(dict(preset='smoke', generator='transformer', device='cpu',
                                  matmul_flops=1e10, samples=8, sampling=rates))
    self.assertIn('transformer generator', md)
    self.assertIn('from the transformer generator (key-value cache)', md)

  def test_markdown_ratios(self):
    result = dict(preset='smoke', device='cpu', strategy='map', step_flops=1e9, steps=3,
                  matmul_flops=1e10, samples=10, eval_samples=10,
                  jax=[dict(S=1, seed_steps_per_s=2.0, compile_s=1.0, per_seed_time_ratio=1.0,
                            speedup_vs_torch=2.0),
                       dict(S=4, seed_steps_per_s=6.0, compile_s=1.0, per_seed_time_ratio=0.34,
                            speedup_vs_torch=5.5)],
                  torch=dict(seed_steps_per_s=1.0, version='x', device='cpu'),
                  sampling=dict(jax_icdf=30.0, torch_multinomial=10.0, icdf_vs_torch=2.9))
    md = throughput.markdown(result)
    self.assertIn('| 4 | 6.00 | 3.00 | 0.34 | 5.50x | 6.0 | 60.0% | 1.0 |', md)
    self.assertIn('icdf vs torch.multinomial: 2.90x', md)

  def test_markdown_adversarial_only(self):
    rows = [dict(S=1, seed_steps_per_s=0.5, compile_s=2.0, per_seed_time_ratio=1.0),
            dict(S=2, seed_steps_per_s=1.5, compile_s=2.0, per_seed_time_ratio=0.67)]
    md = throughput.markdown(dict(preset='smoke', device='cpu', matmul_flops=1e10,
                                  adversarial=dict(scheme='gan_pi', steps=5, rows=rows)))
    self.assertIn('## gan_pi (5 steps per call)', md)
    self.assertIn('| 2 | 1.50 | 3.00 | 0.67 | - | 2.0 |', md)
    self.assertNotIn('MLE', md)

  def test_paired_ratio_is_median_of_per_repeat_ratios(self):
    # Repeat 2 ran on a machine twice as slow for both: per-repeat ratios are 2, 2, 3.
    self.assertEqual(throughput.paired_ratio([2.0, 4.0, 3.0], [1.0, 2.0, 1.0]), 2.0)

  def test_interleaved_times_round_robin(self):
    calls = []
    times = throughput.interleaved_times(
        {'a': lambda: calls.append('a'), 'b': lambda: calls.append('b')}, 3)
    self.assertEqual(calls, ['a', 'b'] * 3)
    self.assertEqual({k: len(v) for k, v in times.items()}, {'a': 3, 'b': 3})


def _state(load, own=0.0, gflops=50.0, others=None):
  state = dict(load_avg=[load, load, load], own_load=own, matmul_flops=gflops * 1e9)
  if others is not None:
    state['others_cores'] = others
  return state


class MachineWasBusyTest(absltest.TestCase):

  def test_idle_machine_gives_no_reason(self):
    # 2 cores: the limit is 1.0 of load beyond this process; 19% slower matmul is tolerated.
    self.assertEqual(throughput.machine_was_busy(
        _state(0.9), _state(2.9, own=1.95, gflops=40.5, others=0.99), 2), [])

  def test_each_reason(self):
    (reason,) = throughput.machine_was_busy(_state(1.2), _state(1.1, own=0.2, others=0.3), 2)
    self.assertIn('load average before the measurements 1.20 (1.20 beyond this process) > '
                  '0.5 x 2 cores', reason)
    (reason,) = throughput.machine_was_busy(_state(0.2), _state(1.5, own=0.2, others=0.3), 2)
    self.assertIn('load average after the measurements 1.50 (1.30 beyond this process)', reason)
    (reason,) = throughput.machine_was_busy(_state(0.2), _state(0.2, others=1.5), 2)
    self.assertIn('other processes kept 1.50 cores busy', reason)
    (reason,) = throughput.machine_was_busy(_state(0.2), _state(0.2, gflops=30.0), 2)
    self.assertIn('matmul rate -40%', reason)
    (reason,) = throughput.machine_was_busy(_state(0.2), _state(0.2, gflops=61.0), 2)
    self.assertIn('matmul rate +22%', reason)
    self.assertLen(throughput.machine_was_busy(_state(3.0), _state(3.0, gflops=10.0), 4), 3)

  def test_markdown_warns_when_busy(self):
    machine = dict(cores=2, busy=['matmul rate -40% after the measurements'],
                   before=_state(0.2), after=_state(0.3, own=0.1, gflops=30.0, others=0.2))
    md = throughput.markdown(dict(preset='smoke', device='cpu', matmul_flops=5e10,
                                  machine=machine))
    self.assertTrue(md.splitlines()[2].startswith('**Warning: the machine was busy'))
    self.assertIn('matmul rate -40% after the measurements. Rerun on an idle machine.', md)
    self.assertIn('1-min load average 0.20 before (this process ~0.00), 0.30 after (this '
                  'process ~0.10); other processes used 0.20 cores on average in between; '
                  'matmul rate 50.0 GFLOP/s before, 30.0 after.', md)
    machine['busy'] = []
    self.assertNotIn('Warning', throughput.markdown(
        dict(preset='smoke', device='cpu', matmul_flops=5e10, machine=machine)))

  def test_machine_state_window(self):
    before = throughput.machine_state(matmul_flops=1.0)
    after = throughput.machine_state(before, matmul_flops=2.0)
    self.assertLen(after['load_avg'], 3)
    self.assertGreaterEqual(after['own_load'], 0.0)
    self.assertEqual((before['matmul_flops'], after['matmul_flops']), (1.0, 2.0))
    if after['busy_cpu_s'] is not None:  # Linux
      self.assertGreaterEqual(after['others_cores'], 0.0)


class ThroughputEndToEndTest(absltest.TestCase):

  def test_runs_and_writes_its_outputs(self):
    out = tempfile.mkdtemp()
    proc = subprocess.run(
        [sys.executable, '-m', 'benchmarks.measure.throughput', '--preset=smoke', '--num_seeds=1,2',
         '--steps=3', '--adversarial_steps=2', '--repeats=1', '--samples=10', '--torch=false',
         f'--output_dir={out}'],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        capture_output=True, text=True, timeout=600)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertNotIn('Unable to initialize backend', proc.stdout + proc.stderr)
    with open(os.path.join(out, 'throughput.json')) as f:
      result = json.load(f)
    self.assertEqual([r['S'] for r in result['jax']], [1, 2])
    self.assertEqual([r['S'] for r in result['adversarial']['rows']], [1, 2])
    self.assertEqual(result['adversarial']['scheme'], 'gan_pi')
    self.assertTrue(all(r['seed_steps_per_s'] > 0 for r in result['jax']))
    self.assertEqual(set(result['sampling']), {'jax_icdf', 'jax_gumbel'})
    self.assertGreater(result['eval_memory']['temp_bytes'], 0)
    machine = result['machine']
    self.assertEqual(set(machine), {'cores', 'busy', 'before', 'after'})
    self.assertEqual(machine['before']['matmul_flops'], result['matmul_flops'])
    self.assertGreater(machine['after']['matmul_flops'], 0)
    self.assertEqual(bool(machine['busy']), 'WARNING: the machine was busy' in proc.stderr)
    for name in ('throughput.md', 'throughput.png'):
      self.assertTrue(os.path.exists(os.path.join(out, name)), name)

  def test_bad_flags_named(self):
    # In this process, through the function the command calls before any compute.
    good = dict(preset='smoke', num_seeds=['1', '2'], parts=['mle'], adversarial='gan_pi',
                counts={'--steps': 1})
    config, seeds = throughput.check_flags(**good)
    self.assertEqual((config.problem.vocab_size, seeds), (16, [1, 2]))
    for change, flag in (({'num_seeds': ['0', '2']}, '--num_seeds'),
                         ({'num_seeds': ['2', '2']}, '--num_seeds'),
                         ({'num_seeds': ['x']}, '--num_seeds'),
                         ({'parts': ['mle', 'speed']}, '--parts'),
                         ({'parts': ['mle', 'mle']}, '--parts'),
                         ({'adversarial': 'gan'}, '--adversarial'),
                         ({'generator': 'gru'}, '--generator'),
                         ({'counts': {'--repeats': 0}}, '--repeats')):
      with self.assertRaises(ValueError) as raised:
        throughput.check_flags(**dict(good, **change))
      self.assertTrue(str(raised.exception).startswith(flag), str(raised.exception))

  def test_the_command_refuses_a_bad_flag(self):
    # The command's contract: absl's usage error naming the flag, exit 1, nothing measured.
    proc = subprocess.run([sys.executable, '-m', 'benchmarks.measure.throughput',
                           '--parts=mle,speed'],
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          capture_output=True, text=True, timeout=120)
    self.assertEqual(proc.returncode, 1, proc.stderr[-3000:])
    self.assertIn('--parts: unknown speed', proc.stderr)
    self.assertNotIn('seed-steps/s', proc.stdout)


if __name__ == '__main__':
  absltest.main()
