"""The run axis sharded over devices gives the same numbers as one device.

Runs in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=4 (the flag must be
set before JAX starts).
"""

import json
import os
import subprocess
import sys
import textwrap

from absl.testing import absltest

import _smoke

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent('''
    import json, tempfile
    import jax
    import numpy as np
    import objectives
    from benchmarks import configs
    from benchmarks.engine import rundir, train
    from models import oracle

    assert jax.device_count() == 4, jax.devices()
    out = {}
    for shard in (True, False):
      c = configs.get_preset('smoke')
      c.num_seeds = 3                      # padded to 4 runs when sharded
      c.train.update(num_steps=10, eval_every=5, shard=shard)
      c.eval.update(num_samples=64, batch_size=32)
      problem = oracle.make_problem(c.problem)
      scheme = objectives.make('mle', c, problem)
      store = rundir.Store(tempfile.mkdtemp())
      train.train_scheme('mle', scheme, problem, c, store,
                         config_hash='x', log=lambda s: None)
      out[str(shard)] = [(r['seed'], r['step'], r['kl_pq'], r['nll_oracle'], r['js_pi']['0.5'])
                         for r in store.rows]
      if shard:
        runner = train.make_runner(scheme, problem, c)
        states = runner.init(train.run_keys(0, [0, 1, 2, 3]))
        leaf = jax.tree_util.tree_leaves(states)[0]
        out['devices_used'] = len(leaf.sharding.device_set)
    print(json.dumps(out))
''')


class ShardingTest(absltest.TestCase):

  def test_sharded_equals_unsharded(self):
    env = _smoke.with_xla_flag(dict(os.environ, JAX_PLATFORMS='cpu'),
                               '--xla_force_host_platform_device_count=4')
    proc = subprocess.run([sys.executable, '-c', SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    self.assertEqual(out['devices_used'], 4)
    sharded, single = out['True'], out['False']
    self.assertLen(sharded, 3 * 3)  # 3 seeds (the padding run writes no rows) x 3 evals
    self.assertEqual([r[:2] for r in sharded], [r[:2] for r in single])
    for a, b in zip(sharded, single):
      for x, y in zip(a[2:], b[2:]):
        self.assertAlmostEqual(x, y, delta=1e-5 * max(1.0, abs(y)))


if __name__ == '__main__':
  absltest.main()
