"""Warm starts (config.train.warm_start_steps): every scheme starts from its seed's MLE
generator bit for bit, and the MLE phase runs once per seed."""

import tempfile
from unittest import mock

from absl.testing import absltest
import jax
import numpy as np

from _smoke import smoke_config
from benchmarks.engine import configuration
from benchmarks.engine import runner
from benchmarks.engine import train
from models import oracle as oracle_lib
import objectives


def _leaves_equal(a, b):
  la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y))
                                    for x, y in zip(la, lb))


class WarmStartTest(absltest.TestCase):

  def test_every_scheme_starts_from_the_given_generator(self):
    # runner.init(keys, warm) for each registered scheme: the generator variables of run r
    # are exactly warm[r]; the rest of the state (optimiser, D, mediator) is freshly made.
    config = smoke_config()
    problem = oracle_lib.make_problem(config.problem)
    mle = objectives.make('mle', config, problem)
    keys = train.run_keys(0, [0, 1])
    donors = jax.vmap(lambda k: mle.generator_params(mle.init(k)))(
        train.run_keys(99, [0, 1]))  # generators unlike any the keys would draw
    # Not vacuous: without the donors, the keys draw other generators (checked once: a second
    # init program per scheme would double this test's compiles).
    fresh = jax.vmap(mle.generator_params)(train.make_runner(mle, problem, config).init(keys))
    self.assertFalse(_leaves_equal(fresh, donors))
    for name in objectives.REGISTRY:
      scheme = objectives.make(name, config, problem)
      states = train.make_runner(scheme, problem, config).init(keys, donors)
      got = jax.vmap(scheme.generator_params)(states)
      self.assertTrue(_leaves_equal(got, donors), name)

  def test_end_to_end_once_per_seed_and_every_run_starts_there(self):
    # execute() with two schemes (one π-swept): the warm-start phase is one train_scheme call
    # over num_seeds runs (K / eval_every chunks), and the initial generator of every run
    # (seed s, any π) equals seed s's warm-start result bit for bit.
    config = smoke_config()
    config.update_from_flattened_dict({'train.warm_start_steps': 10, 'train.num_steps': 5,
                                       'pis': (0.1, 0.9), 'num_seeds': 2})
    config.discriminator.update(embed_dim=4, filter_widths=(1, 2), num_filters=(2, 2))
    calls, inits, original_train, original_runner = [], {}, train.train_scheme, train.make_runner

    def train_scheme(name, scheme, *args, **kwargs):
      calls.append(name)
      chunks = []

      def make_runner(*a, **k):
        r = original_runner(*a, **k)

        def init(keys, warm=None):
          states = r.init(keys, warm)
          inits[name] = (np.asarray(keys).shape[0],
                         jax.device_get(jax.vmap(scheme.generator_params)(states)))
          return states

        def chunk(*c):
          chunks.append(int(c[3]))
          return r.chunk(*c)
        return r._replace(init=init, chunk=chunk)
      with mock.patch.object(train, 'make_runner', make_runner):
        out = original_train(name, scheme, *args, **kwargs)
      inits[name + ':chunks'] = chunks
      return out

    out = tempfile.mkdtemp()
    with mock.patch.object(train, 'train_scheme', train_scheme):
      rows = runner.execute(config, out, variants={'mle': ('mle', {}),
                                                   'gan_pi': ('gan_pi', {})}, log=lambda s: 0)
    self.assertEqual(calls, [train.WARM_START, 'mle', 'gan_pi'])
    self.assertEqual(inits[train.WARM_START][0], 2)           # once per seed
    self.assertEqual(inits[train.WARM_START + ':chunks'], [0, 5])  # K = 10 steps
    # The warm start's final generator, seed by seed, from its checkpoint.
    from benchmarks.engine import rundir
    problem = oracle_lib.make_problem(config.problem)
    warm_scheme = objectives.make('mle', config, problem)
    template = train.make_runner(warm_scheme, problem, config).init(train.run_keys(0, [0, 1]))
    step, states, _ = rundir.load_checkpoint(out, train.WARM_START, template, np.zeros(2, bool))
    self.assertEqual(step, 10)
    warm = jax.vmap(warm_scheme.generator_params)(states)
    num_runs, got = inits['gan_pi']
    self.assertEqual(num_runs, 4)  # 2 π x 2 seeds, π-major
    for r, seed in enumerate([0, 1, 0, 1]):
      self.assertTrue(_leaves_equal(jax.tree_util.tree_map(lambda x: x[r], got),
                                    jax.tree_util.tree_map(lambda x: x[seed], warm)))
    self.assertTrue(_leaves_equal(inits['mle'][1], warm))
    # Rows: the phase is marked and every scheme's step 0 is the warm start's last evaluation.
    phases = {(r['scheme'], r['phase']) for r in rows}
    self.assertEqual(phases, {(train.WARM_START, 'warm_start'), ('mle', 'train'),
                              ('gan_pi', 'train')})
    ws_last = {r['seed']: r['kl_pq'] for r in rows
               if r['scheme'] == train.WARM_START and r['step'] == 10}
    for r in rows:
      if r['scheme'] != train.WARM_START and r['step'] == 0:
        self.assertEqual(r['kl_pq'], ws_last[r['seed']])

  def test_warm_start_steps_must_be_a_multiple_of_eval_every(self):
    config = smoke_config()
    config.train.warm_start_steps = 7
    with self.assertRaisesRegex(ValueError, '--config.train.warm_start_steps'):
      configuration.validate(config)


if __name__ == '__main__':
  absltest.main()
