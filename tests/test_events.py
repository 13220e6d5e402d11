"""Watching a run: TensorBoard event files (benchmarks/analysis/events.py) and the run ETA of the
progress lines (benchmarks/engine/train.py `progress`, `run_eta`, `steps_to_go`)."""

import os
import tempfile
from unittest import mock

from absl.testing import absltest
import numpy as np

import _smoke
from benchmarks.analysis import events
from benchmarks.engine import progress
from benchmarks.engine import rundir
from benchmarks.engine import runner
from benchmarks.engine import train
from models import oracle as oracle_lib
import objectives


def _curves(rows):
  """{run: {tag: [(step, float32 value)]}} that the event files must hold, from rows."""
  out = {}
  for r in rows:
    if r['phase'] in events.CURVE_PHASES:
      for tag, v in events.scalars(r).items():
        out.setdefault(events.run_name(r), {}).setdefault(tag, []).append(
            (r['step'], float(np.float32(v))))
  return {run: {t: sorted(p) for t, p in tags.items()} for run, tags in out.items()}


def _read(logdir):
  return {run: {t: sorted(p) for t, p in tags.items()}
          for run, tags in events.read_scalars(logdir).items()}


class ScalarsTest(absltest.TestCase):

  def test_run_names(self):
    self.assertEqual(events.run_name(dict(scheme='mle', seed=3, pi=None)), 'mle/seed3')
    self.assertEqual(events.run_name(dict(scheme='gan_pi', seed=0, pi=0.5)), 'gan_pi/seed0_pi0.5')

  def test_only_finite_metrics_become_tags(self):
    row = dict(scheme='gan_pi', base_scheme='gan_pi', phase='train', seed=1, pi=0.1, step=20,
               diverged=False, wall_time=3.0, config_hash='x', device='cpu', kl_pq=0.5,
               kl_pq_se=0.01, nll_test=np.float32(2.25), kl_qp=None, train_loss=float('nan'),
               js_pi={'0.1': 0.03, '0.9': None}, exact_kl_pq=float('inf'))
    self.assertEqual(events.scalars(row), {'kl_pq': 0.5, 'nll_test': 2.25, 'js_pi/0.1': 0.03})

  def test_diverged_rows_and_alpha_rows_write_nothing(self):
    out = tempfile.mkdtemp()
    writer = events.Writer(out)
    writer.write([dict(scheme='mle', seed=0, pi=None, step=5, phase='train', diverged=True,
                       kl_pq=None, js_pi={'0.5': None}),
                  dict(scheme='mle', seed=0, pi=None, step=5, phase='alpha', alpha=0.5,
                       kl_pq=0.25)])
    writer.close()
    self.assertEqual(os.listdir(out), [])

  def test_clear_removes_only_that_scheme(self):
    out = tempfile.mkdtemp()
    writer = events.Writer(out)
    writer.write([dict(scheme=s, seed=0, pi=None, step=0, phase='train', kl_pq=1.0)
                  for s in ('mle', 'mle_fast')])
    writer.clear('mle')
    writer.close()
    self.assertEqual(sorted(events.read_scalars(out)), ['mle_fast/seed0'])

  def test_truncated_last_record_is_ignored(self):
    out = tempfile.mkdtemp()
    writer = events.Writer(out)
    writer.write([dict(scheme='mle', seed=0, pi=None, step=s, phase='train', kl_pq=s / 4)
                  for s in (0, 5)])
    writer.close()
    (name,) = os.listdir(os.path.join(out, 'mle', 'seed0'))
    path = os.path.join(out, 'mle', 'seed0', name)
    with open(path, 'rb') as f:
      blob = f.read()
    with open(path, 'wb') as f:  # a kill in the middle of the last record
      f.write(blob[:-5])
    self.assertEqual(events.read_scalars(out), {'mle/seed0': {'kl_pq': [(0, 0.0)]}})


class RunEtaTest(absltest.TestCase):

  def test_run_eta_uses_measured_rates_where_known(self):
    # 30 run-steps at 5/s, then gan_pi's 40 at its measured 2/s and mle's 50 at the current 5/s.
    self.assertEqual(progress.run_eta(30, 5.0, [('gan_pi', 40), ('mle', 50)], {'gan_pi': 2.0}),
                     6 + 20 + 10)
    self.assertTrue(np.isnan(progress.run_eta(30, float('nan'), [('mle', 5)])))

  def test_progress_line(self):
    self.assertEqual(progress.progress(10, 30, 2.0), '2.0s, 5 steps/s, ETA 6s')
    self.assertEqual(progress.progress(10, 30, 2.0, [('gan_pi', 750)], {'gan_pi': 1.0}),
                     '2.0s, 5 steps/s, ETA 6s, run ETA 12m36s')
    self.assertEqual(progress.progress(0, 30, 0.0, []), '0.0s, nan steps/s, ETA ?, run ETA ?')
    # A scheme still to train without a measured rate is priced at this one's: a guess, '~'.
    self.assertEqual(progress.progress(10, 30, 2.0, [('gan_pi', 750), ('mle', 5)], {'gan_pi': 1.0}),
                     '2.0s, 5 steps/s, ETA 6s, run ETA ~12m37s')
    self.assertEqual(progress.progress(10, 30, 2.0, [('gan_pi', 750), ('mle', 0)], {'gan_pi': 1.0}),
                     '2.0s, 5 steps/s, ETA 6s, run ETA 12m36s')  # mle has nothing left

  def test_run_eta_counts_runs_not_steps(self):
    # A 15-run scheme at 5 steps/s = 75 run-steps/s; 10 steps of a 5-run scheme after it
    # (50 run-steps) take 50/75 s at that rate, not 10/5 s.
    self.assertEqual(progress.progress(10, 0, 2.0, [('distill', 50)], {}, runs=15),
                     '2.0s, 5 steps/s, ETA 0s, run ETA ~1s')
    self.assertAlmostEqual(progress.run_eta(0, 75.0, [('distill', 50)]), 50 / 75)

  def test_clock_records_rates_and_prices_the_phases_after_this_one(self):
    clock = progress.Clock([('warm_start', 'mle', 0), ('a', 'gan_pi', 750), ('b', 'mle', 5)])
    self.assertEqual(clock.line('gan_pi', 'a', 10, 30, 2.0),
                     progress.progress(10, 30, 2.0, [('mle', 5)], {'gan_pi': 5.0}))
    self.assertEqual(clock.rates, {'gan_pi': 5.0})
    self.assertIn(', run ETA ~', clock.line('gan_pi', 'a', 10, 30, 2.0))  # mle: not measured
    self.assertEqual(progress.Clock([]).line('mle', 'x', 10, 30, 2.0), '2.0s, 5 steps/s, ETA 6s')

  def test_steps_to_go_counts_finished_and_resumed_schemes_and_runs(self):
    rows = [dict(scheme='warm_start', phase='warm_start', step=s) for s in (0, 10)]
    rows += [dict(scheme='a', phase='train', step=s) for s in (0, 5)]
    rows += [dict(scheme='a', phase='alpha', step=20)]  # the α sweep's step: not progress
    self.assertEqual(
        progress.steps_to_go(rows, [('warm_start', 'mle', 10, 2), ('a', 'gan_pi', 20, 6),
                                 ('b', 'mle', 20, 2)]),
        [('warm_start', 'mle', 0), ('a', 'gan_pi', 90), ('b', 'mle', 40)])


class EndToEndTest(absltest.TestCase):

  def test_run_writes_one_curve_per_scheme_seed_pi_equal_to_the_rows(self):
    # runner.execute with a warm start and a π-swept scheme: event files hold exactly the
    # curve rows of results.jsonl (float32), one TensorBoard run per scheme × seed × π, and
    # every progress line carries a run ETA.
    config = _smoke.smoke_config()
    config.update_from_flattened_dict({'train.warm_start_steps': 5, 'train.num_steps': 10,
                                       'pis': (0.1, 0.9), 'num_seeds': 2})
    config.discriminator.update(embed_dim=4, filter_widths=(1, 2), num_filters=(2, 2))
    out, lines = tempfile.mkdtemp(), []
    runner.execute(config, out, variants={'gan_pi': ('gan_pi', {})}, log=lines.append)
    rows = rundir.read_rows(os.path.join(out, 'results.jsonl'))
    got = _read(os.path.join(out, events.DIRECTORY))
    self.assertEqual(sorted(got), ['gan_pi/seed0_pi0.1', 'gan_pi/seed0_pi0.9',
                                   'gan_pi/seed1_pi0.1', 'gan_pi/seed1_pi0.9',
                                   'warm_start/seed0', 'warm_start/seed1'])
    self.assertEqual(got, _curves(rows))
    self.assertEqual(sorted({s for s, _ in got['gan_pi/seed1_pi0.9']['kl_pq']}), [0, 5, 10])
    self.assertIn('js_pi/0.9', got['gan_pi/seed0_pi0.1'])
    progress = [s for s in lines if 'steps/s' in s]
    self.assertLen(progress, 3)  # one warm-start chunk, two gan_pi chunks
    for line in progress:
      self.assertRegex(line, r'ETA \S+, run ETA (~?\d+[hms]|~?\d+m\d\ds|\?)[, ]')

  def test_resume_writes_only_new_rows_and_the_switch_writes_nothing(self):
    # mle on smoke: 5 steps with events off (nothing written), resumed to 10 with events on
    # (only step 10: the steps before the checkpoint are not rewritten), then to 15 (a second
    # file per run directory; still one point per step).
    config = _smoke.smoke_config()
    problem = oracle_lib.make_problem(config.problem)
    scheme = objectives.make('mle', config, problem)
    out = tempfile.mkdtemp()
    store = rundir.Store(out)
    logdir = os.path.join(out, events.DIRECTORY)
    runners = [train.make_runner(scheme, problem, config)]  # compiled once for all three
    for steps, on in ((5, False), (10, True), (15, True)):
      config.train.update(num_steps=steps, tensorboard=on)
      with mock.patch.object(train, 'make_runner', lambda *a, **k: runners[0]):
        train.train_scheme('mle', scheme, problem, config, store,
                            config_hash='x', log=lambda s: None)
      if not on:
        self.assertFalse(os.path.exists(logdir))
    got = _read(logdir)
    self.assertEqual(sorted(got), ['mle/seed0', 'mle/seed1'])
    self.assertLen(os.listdir(os.path.join(logdir, 'mle', 'seed0')), 2)
    self.assertEqual(got, _curves([r for r in store.rows if r['step'] > 5]))
    self.assertEqual([s for s, _ in got['mle/seed0']['nll_test']], [10, 15])


if __name__ == '__main__':
  absltest.main()
