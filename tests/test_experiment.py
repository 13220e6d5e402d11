"""`python -m benchmarks.experiment`: every experiment with --quick through the CLI, --list,
bad input, and an interrupted experiment resuming to the same rows."""

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from unittest import mock

from absl import flags
from absl.testing import absltest
from absl.testing import parameterized

from benchmarks import experiment as experiment_cli
from benchmarks import experiments
from benchmarks.engine import cli
from benchmarks.engine import experiment as experiment_lib
from benchmarks.engine import rundir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'benchmarks.experiment', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=900)


def _read_rows(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def quick_run(name: str) -> str:
  """DIR of `experiment NAME --quick --output_dir=DIR`, run in this process through the
  functions the command calls (once per process: tests that only read its outputs share it)."""
  if name not in _QUICK:
    out = tempfile.mkdtemp()
    with cli.invocation_compilation_cache():
      experiment_lib.run_experiment(experiments.REGISTRY[name],
                                    experiment_lib.Options(quick=True), out, log=lambda s: None)
    _QUICK[name] = out
  return _QUICK[name]


_QUICK = {}


BAD_INPUTS = (
    ('unknown', ('nope',), 'NAME: unknown experiment'),
    ('none', (), 'NAME: give one experiment'),
    ('seeds', ('pi_sweep', '--num_seeds=1'), '--num_seeds'),
    ('no_presets', ('pi_sweep', '--preset=small'), '--preset: pi_sweep takes none'),
    ('bad_preset', ('temperature', '--preset=smoke'), '--preset: temperature takes one of'),
    ('findings_dir', ('fedus', '--findings_dir=x'), '--findings_dir: only with --draw_only'),
    ('archive_draw', ('fedus', '--archive', '--draw_only'), '--archive: not with --draw_only'))


class ExperimentCliTest(parameterized.TestCase):

  def _check_outputs(self, name, out):
    d = os.path.join(out, name)
    for f in ('table.md', 'results.jsonl', 'config.json'):
      self.assertGreater(os.path.getsize(os.path.join(d, f)), 0, f)
    pngs = [f for f in os.listdir(d) if f.endswith('.png')]
    self.assertNotEmpty(pngs)
    for f in pngs:
      with open(os.path.join(d, f), 'rb') as fh:
        self.assertEqual(fh.read(8), b'\x89PNG\r\n\x1a\n', f)
    table = open(os.path.join(d, 'table.md')).read()
    exp = experiments.REGISTRY[name]
    self.assertIn(exp.claim, table)
    self.assertIn('|', table)
    if exp.claims is not None:  # one verdict line per declared claim, each with a verdict word
      claims = exp.claims(experiment_lib.Options(quick=True))
      self.assertNotEmpty(claims)
      section = table.split('## Verdicts')[1].split('\n## ')[0]
      lines = [l for l in section.splitlines() if l.startswith('- **')]
      self.assertLen(lines, len(claims))
      for line, claim in zip(lines, claims):
        self.assertRegex(line, r'^- \*\*(supported|contradicted|unresolved)\*\* — ')
        self.assertIn(claim.text, line)
    rows = _read_rows(os.path.join(d, 'results.jsonl'))
    self.assertNotEmpty(rows)
    self.assertTrue(all('run' in r for r in rows))
    saved = json.load(open(os.path.join(d, 'config.json')))
    self.assertEqual(saved['experiment'], name)
    self.assertTrue(saved['options']['quick'])

  @parameterized.named_parameters((name, name) for name in experiments.REGISTRY)
  def test_quick_run_writes_table_figures_and_rows(self, name):
    self._check_outputs(name, quick_run(name))

  def test_the_command_runs_one_end_to_end(self):
    out = tempfile.mkdtemp()
    proc = _cli('huszar_1d', '--quick', f'--output_dir={out}')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self._check_outputs('huszar_1d', out)

  def test_every_experiment_declares_claims_for_its_verdicts(self):
    for name, exp in experiments.REGISTRY.items():
      self.assertIsNotNone(exp.claims, name)
      claims = exp.claims(experiment_lib.Options())
      self.assertNotEmpty(claims, name)
      self.assertLen({c.name for c in claims}, len(claims), name)

  def test_list_names_every_experiment_with_its_claim(self):
    proc = _cli('--list')
    self.assertEqual(proc.returncode, 0, proc.stderr)
    for name, exp in experiments.REGISTRY.items():
      self.assertIn(name, proc.stdout)
      self.assertIn(exp.claim[:40], proc.stdout)

  @parameterized.named_parameters(*BAD_INPUTS)
  def test_bad_input_refused_before_compute(self, args, message):
    # In this process, through the functions the command calls: flag parsing, then
    # experiment.chosen (the command prints its ValueError as one line and exits 2).
    fv = flags.FlagValues()
    experiment_cli.define_flags(fv)
    argv = fv(['benchmarks.experiment', *args])
    with self.assertRaises(ValueError) as raised:
      experiment_cli.chosen(argv[1:], fv)
    self.assertIn(message, str(raised.exception))
    self.assertNotIn('\n', str(raised.exception))

  def test_bad_input_fails_fast_with_one_line(self):
    args, message = BAD_INPUTS[2][1:]
    out = tempfile.mkdtemp()
    proc = _cli(*args, f'--output_dir={out}')
    self.assertEqual(proc.returncode, 2)
    lines = proc.stderr.strip().splitlines()
    self.assertLen(lines, 1, proc.stderr)
    self.assertIn(message, lines[0])
    self.assertEqual(os.listdir(out), [])

  def test_another_preset_writes_its_own_directory(self):
    exp = experiments.REGISTRY['temperature']
    self.assertEqual(experiment_lib.output_name(exp, experiment_lib.Options()), 'temperature')
    self.assertEqual(experiment_lib.output_name(exp, experiment_lib.Options(preset='small')),
                     'temperature')
    self.assertEqual(experiment_lib.output_name(exp, experiment_lib.Options(preset='seqgan')),
                     'temperature_seqgan')
    resolved = experiment_lib.resolve(exp, experiment_lib.Options(quick=True, preset='seqgan'))
    self.assertTrue(all(c.problem.source == 'seqgan' for c, _ in resolved.values()))

  def test_bad_run_is_caught_before_any_compute(self):
    bad = experiment_lib.Experiment('bad', 'c', runs=lambda o: {
        'r': experiment_lib.Run('smoke', {'num_seeds': 2}, {'a': ('mle', {'problem.seq_len': 3})})},
        draw=lambda rows, d, o: '')
    with self.assertRaisesRegex(ValueError, "run 'r' of bad: variant 'a'"):
      experiment_lib.resolve(bad, experiment_lib.Options(quick=True))

  def test_seqgan_table_scales_scheduled_sampling_to_its_run(self):
    # The config's default ε schedule reaches ~0.25 at small's 2,000 steps; over the table's
    # 18,840 it would sit near 0. The experiment's own schedule ends at its floor exactly.
    from benchmarks.engine import configuration
    from benchmarks.experiments import seqgan_table
    from objectives import scheduled_sampling
    config, variants = experiment_lib.resolve(
        experiments.REGISTRY['seqgan_table'], experiment_lib.Options())['scratch']
    _, ss = configuration.resolve_variants(config, variants)['scheduled_sampling']
    steps = ss.train.num_steps
    eps = [float(scheduled_sampling.epsilon(ss.scheduled_sampling, i))
           for i in (0, steps // 2, steps - 1, steps)]
    self.assertEqual(eps[0], 1.0)
    self.assertAlmostEqual(eps[1], (1 + seqgan_table.SS_FINAL_EPS) / 2, places=3)
    self.assertGreater(eps[2], seqgan_table.SS_FINAL_EPS)
    self.assertAlmostEqual(eps[3], seqgan_table.SS_FINAL_EPS, places=5)
    default = float(scheduled_sampling.epsilon(config.scheduled_sampling, steps // 6))
    self.assertLess(default, 0.02)  # what the override is for


  def test_seqgan_table_pairs_each_line_with_mle_by_seed(self):
    from benchmarks.analysis import stats
    from benchmarks.experiments import seqgan_table

    def row(seed, v, diverged=False):
      return dict(seed=seed, diverged=diverged, **{m: v + i for i, m in
                                                   enumerate(seqgan_table.METRICS)})
    mle = [row(0, 9.0), row(1, 9.5), row(2, 8.0)]
    # Seed 2 of SeqGAN diverged and seed 3 has no MLE row: only seeds 0 and 1 pair.
    table = {'mle': mle, 'seqgan': [row(1, 9.25), row(0, 8.5), row(2, 1.0, True), row(3, 0.0)]}
    lines = seqgan_table.paired_with_mle(table)
    got = [l for l in lines if l.startswith('| seqgan')]
    self.assertEqual(got, ['| seqgan (from it) | 2 | ' + ' | '.join(
        [stats.fmt_ci([-0.25, -0.5])] * len(seqgan_table.METRICS)) + ' |'])
    self.assertEqual(stats.paired(table['seqgan'], mle, lambda r: r['kl_pq']),
                     [-0.25, -0.5, -7.0])  # stats.paired alone keeps seed 2: values finite
    self.assertEqual(seqgan_table.paired_with_mle({'mle': mle}), [])


  def test_seqgan_table_curves_thin_to_every_20_epochs_and_mark_the_selection(self):
    from benchmarks.experiments import seqgan_table
    self.assertEqual(seqgan_table._thinned(list(range(0, 121, 5))), list(range(0, 121, 20)))
    self.assertEqual(seqgan_table._thinned([0, 20, 40]), [0, 20, 40])
    self.assertEqual(seqgan_table._thinned(list(range(11))), [0, 2, 4, 6, 8, 10])
    epoch = seqgan_table.STEPS_PER_EPOCH

    def row(seed, step, nll_test, **kw):
      return dict(seed=seed, step=step, nll_test=nll_test, diverged=False,
                  **{m: 1.0 for m in seqgan_table.METRICS if m != 'nll_test'}, **kw)
    # MLE (the warm start) over 25 evaluations, nll_test lowest at epoch 35 (not on the grid).
    rows = [row(k, e * epoch, 8.0 - (e == 35), phase='warm_start', scheme='warm_start')
            for e in range(0, 121, 5) for k in (0, 1)]
    # SeqGAN: 40 D pre-training steps, then adversarial steps; a diverged seed is left out.
    rows += [row(0, s, 9.0, phase='train', scheme='seqgan') for s in (0, 40, 60)]
    rows += [dict(row(1, 60, float('nan'), phase='train', scheme='seqgan'), diverged=True)]
    text = '\n'.join(seqgan_table.curve_lines(rows, experiment_lib.Options()))
    mle = text.split('### mle')[1].split('###')[0]
    self.assertEqual([l.split(' |')[0] for l in mle.splitlines()
                      if l.startswith('| ') and l[2].isdigit()],
                     ['| 0 (0)', '| 3140 (20)', '| 5495 (35) **best nll_test**', '| 6280 (40)',
                      '| 9420 (60)', '| 12560 (80)', '| 15700 (100)', '| 18840 (120)'])
    seqgan = text.split('### seqgan')[1]
    self.assertIn('| 0 | 1 | 9 | 1 | 1 | 1 |', seqgan)   # step 40 = adversarial step 0
    self.assertIn('| 20 | 1 | 9 | 1 | 1 | 1 |', seqgan)  # only the finite seed
    self.assertNotIn('best nll_test', seqgan)
    # With a validation set the selection is on it, not on the test set that scores the line.
    valid = [dict(r, nll_valid=7.0 - (r['step'] == 60 * epoch)) for r in rows
             if r['phase'] == 'warm_start']
    mle = '\n'.join(seqgan_table.curve_lines(valid, experiment_lib.Options())).split('### mle')[1]
    self.assertIn('| 9420 (60) **best nll_valid**', mle)
    self.assertNotIn('best nll_test', mle)

  def test_seqgan_table_draws_one_line_with_its_own_seed_count(self):
    # CoT alone over 2 seeds (a partial or a CoT-only run): no random line, so no H(P), and
    # the schedule line gives the seeds asked for, not the device's default.
    from benchmarks.experiments import seqgan_table
    rows = [dict(seed=k, step=s, scheme='cot', phase='train', diverged=False,
                 **{m: 2.0 + k for m in seqgan_table.METRICS})
            for s in (0, 785) for k in (0, 1)]
    text = seqgan_table.draw(rows, None, experiment_lib.Options(num_seeds=2))
    self.assertIn('; 2 seeds.', text)
    self.assertNotIn('nan', text)
    self.assertNotIn('H(P)', text)
    self.assertIn('| cot | 2/2 | 785 |', text)


class GanSweepRuleTest(absltest.TestCase):

  def test_the_rule_picks_the_lowest_kl_sum_among_variants_that_never_collapse(self):
    from benchmarks.experiments import gan_sweep

    def s(pq, qp, collapsed=0, diverged=0):
      return dict(kl_pq=[pq, pq], kl_qp=[qp, qp], entropy_q=[4.0, 4.0], n=2,
                  collapsed=collapsed, diverged=diverged)
    summary = {}
    for run in ('scratch', 'warm'):
      summary[(run, 'mle')] = s(1.0, 1.0)                      # lr 0.01: score 2
      summary[(run, 'mle_lr0.001')] = s(0.5, 1.0)              # score 1.5: picked
      summary[(run, 'gan_pi_lr0.01_d1')] = s(0.1, 0.1, collapsed=int(run == 'warm'))
      summary[(run, 'gan_pi_lr0.001_d5')] = s(2.0, 2.0)
      summary[(run, 'gumbel_gan_lr0.001_d1')] = s(3.0, 3.0, diverged=1)
    self.assertEqual(gan_sweep.choose(summary, 'mle'), 'mle_lr0.001')
    # The lowest score collapsed in one run: excluded, whatever its score.
    self.assertEqual(gan_sweep.choose(summary, 'gan_pi'), 'gan_pi_lr0.001_d5')
    self.assertIsNone(gan_sweep.choose(summary, 'gumbel_gan'))
    self.assertIsNone(gan_sweep.choose(summary, 'cot'))
    del summary[('scratch', 'mle_lr0.001')]  # a variant missing from one run is not a candidate
    self.assertEqual(gan_sweep.choose(summary, 'mle'), 'mle')


class DrawOnlyTest(absltest.TestCase):

  def test_partial_draw_computes_only_when_the_experiment_allows(self):
    calls = []

    def compute(options, runs_dir):
      calls.append(options)
      return [dict(run='profile', seconds=1.0)]

    def draw(rows, out, options):
      return f'{sum(r["run"] == "profile" for r in rows)} computed rows\n'
    out = tempfile.mkdtemp()
    run_dir = os.path.join(out, 't', 'runs', 'r')
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, 'results.jsonl'), 'w') as f:
      f.write(json.dumps(dict(scheme='mle', step=0, seed=0)) + '\n')
    for allowed, computed in ((True, 1), (False, 0)):
      exp = experiment_lib.Experiment(
          't', 'c', runs=lambda o: {'r': experiment_lib.Run('smoke', {}, {'mle': ('mle', {})})},
          draw=draw, compute=compute, partial_compute=allowed)
      table = open(experiment_lib.draw_partial(exp, experiment_lib.Options(quick=True), out,
                                               log=lambda s: None)).read()
      self.assertIn(f'{computed} computed rows', table)
      self.assertLen(calls, 1)  # only the allowed draw computed
      self.assertEqual('come when the experiment finishes' in table, not allowed)


  def test_derived_rows_are_drawn_and_judged_but_never_written(self):
    from benchmarks.analysis import verdicts
    out = tempfile.mkdtemp()
    run_dir = os.path.join(out, 't', 'runs', 'r')
    os.makedirs(run_dir)
    rows = [dict(scheme='mle', step=0, seed=k, v=float(k)) for k in range(3)]
    with open(os.path.join(run_dir, 'results.jsonl'), 'w') as f:
      f.writelines(json.dumps(r) + '\n' for r in rows)

    def derive(rows):  # the two extreme seeds, as computed rows
      return [dict(phase='best', x=float(i), v=r['v']) for i, r in
              enumerate(sorted(rows, key=lambda r: r['v'])[::2])]
    claim = verdicts.ComputedTrend('up', 'v rises with x', {'phase': 'best'}, 'x', 'v', +1)
    exp = experiment_lib.Experiment(
        't', 'c', runs=lambda o: {'r': experiment_lib.Run('smoke', {}, {'mle': ('mle', {})})},
        draw=lambda rows, out, o: f'{sum(r.get("phase") == "best" for r in rows)} derived\n',
        claims=lambda o: [claim], derive=derive)
    table = open(experiment_lib.draw_partial(exp, experiment_lib.Options(quick=True), out,
                                             log=lambda s: None)).read()
    self.assertIn('2 derived', table)
    self.assertIn('**supported** — v rises with x', table)
    with open(os.path.join(run_dir, 'results.jsonl')) as f:
      self.assertEqual([json.loads(l) for l in f], rows)  # nothing written back


  def test_an_archive_of_compressed_rows_draws_as_finished(self):
    # docs/runs/ layout: the experiment's rows gzip-compressed, its provenance, the runs'
    # configs without their copies of the rows.
    out = tempfile.mkdtemp()
    exp_dir = os.path.join(out, 't')
    os.makedirs(os.path.join(exp_dir, 'runs', 'r'))
    rows = [dict(run='r', scheme='mle', step=0, seed=k) for k in range(3)]
    with gzip.open(os.path.join(exp_dir, 'results.jsonl.gz'), 'wt') as f:
      f.writelines(json.dumps(r) + '\n' for r in rows)
    exp = experiment_lib.Experiment(
        't', 'c', runs=lambda o: {'r': experiment_lib.Run('smoke', {}, {'mle': ('mle', {})})},
        draw=lambda rows, out, o: f'{len(rows)} rows\n')
    with self.assertRaisesRegex(ValueError, '--draw_only: no rows'):  # no provenance yet
      experiment_lib.draw_partial(exp, experiment_lib.Options(quick=True), out,
                                  log=lambda s: None)
    with open(os.path.join(exp_dir, 'provenance.json'), 'w') as f:
      json.dump(dict(date='2026-01-01', device='cpu', wall_time_s=1), f)
    table = open(experiment_lib.draw_partial(exp, experiment_lib.Options(quick=True), out,
                                             log=lambda s: None)).read()
    self.assertIn('3 rows', table)
    self.assertIn('Date: 2026-01-01', table)
    self.assertNotIn('partial', table)


class ResumeTest(absltest.TestCase):

  def test_interrupted_experiment_resumes_to_the_same_rows(self):
    # scheduled_sampling --quick: two variants of two chunks each. The interruption comes
    # while the second checkpoint is saved (after the first chunk's rows and checkpoint).
    exp, options = experiments.REGISTRY['scheduled_sampling'], experiment_lib.Options(quick=True)
    whole, cut = quick_run(exp.name), tempfile.mkdtemp()  # the uninterrupted run
    original, calls = rundir.save_checkpoint, []

    def save_checkpoint(*args, **kwargs):
      calls.append(args[1])
      if len(calls) == 2:
        raise KeyboardInterrupt('killed')
      return original(*args, **kwargs)
    with mock.patch.object(rundir, 'save_checkpoint', save_checkpoint):
      with self.assertRaises(KeyboardInterrupt):
        experiment_lib.run_experiment(exp, options, cut, log=lambda s: None)
    # The interrupted experiment can be drawn as it stands (--draw_only), training nothing.
    name_dir = os.path.join(cut, exp.name)
    partial = experiment_lib.draw_partial(exp, options, cut, log=lambda s: None)
    self.assertIn('**partial**', open(partial).read())
    self.assertNotEmpty([f for f in os.listdir(name_dir) if f.endswith('.png')])
    self.assertFalse(os.path.exists(os.path.join(name_dir, 'results.jsonl')))
    with self.assertRaisesRegex(ValueError, '--draw_only: no rows'):
      experiment_lib.draw_partial(exp, options, tempfile.mkdtemp(), log=lambda s: None)
    with self.assertRaisesRegex(ValueError, '--archive: .* the experiment has not finished'):
      experiment_lib.archive(exp, options, cut, log=lambda s: None)  # removes nothing
    self.assertNotEmpty(os.listdir(os.path.join(name_dir, 'runs', 'small', 'checkpoints')))
    experiment_lib.run_experiment(exp, options, cut, log=lambda s: None)

    def strip(rows):
      return [{k: v for k, v in r.items() if k not in rundir.PER_INVOCATION} for r in rows]
    name_dir = os.path.join(cut, exp.name)
    page = open(os.path.join(name_dir, 'table.md')).read()
    # Finished with its provenance recorded: the same page, byte for byte, from the rows (also
    # as a findings page, its figure links relative to it), whatever the files' times.
    for f in os.listdir(name_dir):
      os.utime(os.path.join(name_dir, f), (0, 0))
    findings = os.path.join(cut, 'findings')
    redrawn = open(experiment_lib.draw_partial(exp, options, cut, log=lambda s: None,
                                               findings_dir=findings)).read()
    self.assertEqual(redrawn, page)
    self.assertIn('## Verdicts', page)
    self.assertEqual(open(os.path.join(findings, exp.name + '.md')).read(),
                     page.replace(f'![{exp.name}]({exp.name}.png)',
                                  f'![{exp.name}](../{exp.name}/{exp.name}.png)'))
    # Its archive (what docs/runs/<name>/ commits) draws the same page from the rows alone.
    archived = tempfile.mkdtemp()
    shutil.copytree(name_dir, os.path.join(archived, exp.name))
    self.assertEqual(open(experiment_lib.archive(exp, options, archived,
                                                 log=lambda s: None)).read(), page)
    kept = sorted(os.path.relpath(os.path.join(d, f), os.path.join(archived, exp.name))
                  for d, _, fs in os.walk(os.path.join(archived, exp.name)) for f in fs)
    self.assertEqual([f for f in kept if not f.endswith('.png')],
                     ['config.json', 'provenance.json', 'results.jsonl.gz',
                      'runs/small/config.json', 'table.md'])
    with gzip.open(os.path.join(archived, exp.name, 'results.jsonl.gz'), 'rb') as f:
      self.assertEqual(f.read(), open(os.path.join(name_dir, 'results.jsonl'), 'rb').read())
    os.remove(os.path.join(name_dir, experiment_lib.PROVENANCE))  # finished before it existed
    redrawn = open(experiment_lib.draw_partial(exp, options, cut, log=lambda s: None)).read()
    self.assertIn('redrawn with --draw_only from the finished', redrawn)
    self.assertNotIn('**partial**', redrawn)
    a = _read_rows(os.path.join(whole, exp.name, 'results.jsonl'))
    b = _read_rows(os.path.join(cut, exp.name, 'results.jsonl'))
    self.assertEqual(strip(a), strip(b))


class PiSweepPolishTest(absltest.TestCase):
  """pi_sweep's polish stage: each exact objective restarts from the best end point of the
  exact run on that objective (any objective's, any initialisation's) and descends from it."""

  def test_restarts_from_the_best_end_point_and_descends(self):
    out = os.path.join(quick_run('pi_sweep'), 'pi_sweep')
    rows = experiment_lib.read_experiment_rows(out)
    exact = [r for r in rows if r.get('run') == 'exact' and r.get('phase') == 'train']
    last = max(r['step'] for r in exact)
    ends = [r for r in exact if r['step'] == last]
    polish = [r for r in rows if r.get('run') == 'polish']
    self.assertEqual(sorted(r['pi'] for r in polish), sorted({r['pi'] for r in ends}))
    for r in polish:
      at = f'{r["pi"]:g}'
      lowest = min(e['exact_js_pi'][at] for e in ends)
      self.assertAlmostEqual(r['start_objective'], lowest, delta=1e-5 * lowest)
      self.assertLessEqual(r['exact_js_pi'][at], r['start_objective'] * (1 + 1e-6))
      self.assertEqual((r['phase'], r['step']), ('polish', last))
      self.assertBetween(r['train_converged'], 0.0, 1.0)
    from benchmarks.experiments import pi_sweep
    best = [r for r in pi_sweep.best_inits(rows) if r['scheme'] == 'exact_js']
    self.assertLen(best, len(polish))
    for b in best:  # the polish row, unless an initialisation ties it exactly
      at = f'{b["pi"]:g}'
      self.assertLessEqual(b['exact_js_pi'][at],
                           min(e['exact_js_pi'][at] for e in ends if e['pi'] == b['pi']))


if __name__ == '__main__':
  absltest.main()
