"""Runs an experiment: `python -m benchmarks.experiment NAME [--quick] [--num_seeds=N]`.

An experiment (benchmarks/experiments/) turns a paper's claim into runs, a figure and a table.
Its runs go through the runner (`benchmarks.engine.runner.execute`: same keys, resume, atomic files,
bad-input checks before any compute), so an interrupted experiment resumes where it stopped.
`--list` prints every experiment with the claim it tests.

Output: DIR/NAME/{results.jsonl, config.json, provenance.json, table.md, *.png} and
DIR/NAME/runs/<run>/ (each run's own results, checkpoints and summary). DIR defaults to
results/experiments. `--draw_only --output_dir=docs/runs --findings_dir=docs/findings`
regenerates a committed experiment's findings page from its committed rows; `--archive`
(same flags) first turns a finished experiment run into docs/runs/ into that archive.
"""

import os
import time

from absl import app
from absl import flags

from benchmarks import experiments
from benchmarks.engine import cli
from benchmarks.engine import experiment as experiment_lib
from benchmarks.engine import files

FLAGS = flags.FLAGS


def define_flags(fv: flags.FlagValues = FLAGS):
  """The command-line flags, defined only when run as a program (benchmarks.measure.throughput and
  others, imported alongside in one test process, own --num_seeds and --output_dir too); a
  test passes its own FlagValues."""
  define = dict(flag_values=fv)
  flags.DEFINE_bool('list', False, 'List the experiments and the claims they test.', **define)
  flags.DEFINE_bool('answers', False, "Rewrite README.md's answers block from the verdicts of "
                    'the experiments committed under docs/runs/ (run from the repository root).',
                    **define)
  flags.DEFINE_bool('quick', False, 'Shrink every size: well under a minute (CI).', **define)
  flags.DEFINE_bool('draw_only', False, 'Train nothing: draw the figures and table.md from '
                    'the rows the runs have written so far (an unfinished experiment).',
                    **define)
  flags.DEFINE_integer('num_seeds', None, "Seeds per run (default: the experiment's).",
                       **define)
  flags.DEFINE_string('output_dir', os.path.join('results', 'experiments'),
                      'Where DIR/NAME/ goes. A rerun with the same options resumes.', **define)
  flags.DEFINE_string('preset', None, "The problem's preset, for experiments that offer a "
                      "choice (--list shows them); default: the experiment's first.", **define)
  flags.DEFINE_bool('archive', False, 'Train nothing: turn the finished DIR/NAME/ into the '
                    'archive docs/runs/NAME/ commits (results.jsonl.gz, configs, provenance, '
                    'figures; no checkpoints or per-run rows), then draw it as --draw_only.',
                    **define)
  flags.DEFINE_string('findings_dir', None, 'With --draw_only or --archive: also write the '
                      'page as '
                      'FINDINGS_DIR/NAME.md, its figure links relative to it (docs/findings).',
                      **define)
  flags.DEFINE_bool('overwrite', False, 'Discard runs of a different config found in '
                    'DIR/NAME/runs/ instead of refusing.', **define)


def listing() -> str:
  """One line per experiment: its name and the claim it tests."""
  width = max(len(n) for n in experiments.REGISTRY)
  def presets(exp):
    return f' [--preset: {", ".join(exp.presets)}]' if exp.presets else ''
  return '\n'.join(f'{name:<{width}}  {exp.claim}{presets(exp)}'
                   for name, exp in experiments.REGISTRY.items())


def chosen(names, fv):
  """(experiment, options) of the command line: its NAME arguments and its flags `fv`.

  Raises ValueError naming the argument or flag (the command prints it as one line)."""
  if len(names) != 1:
    raise ValueError(f'NAME: give one experiment (got {len(names)}); known: '
                     f'{", ".join(experiments.REGISTRY)} (--list describes them)')
  if names[0] not in experiments.REGISTRY:
    raise ValueError(f'NAME: unknown experiment {names[0]!r}; known: '
                     f'{", ".join(experiments.REGISTRY)}')
  experiment = experiments.REGISTRY[names[0]]
  options = experiment_lib.Options(quick=fv.quick, num_seeds=fv.num_seeds, preset=fv.preset)
  experiment_lib.check_options(experiment, options)
  if fv.findings_dir and not (fv.draw_only or fv.archive):
    raise ValueError('--findings_dir: only with --draw_only or --archive (a page is written '
                     'from rows an experiment has finished)')
  if fv.archive and fv.draw_only:
    raise ValueError('--archive: not with --draw_only (--archive draws too)')
  return experiment, options


def main(argv):
  if FLAGS.list:
    print(listing())
    return
  if FLAGS.answers:
    with cli.exits_on_bad_input():
      block = experiment_lib.answers(experiments.REGISTRY, os.path.join('docs', 'runs'),
                                     'docs/findings')
      with open('README.md') as f:
        text = experiment_lib.replace_answers(f.read(), block)
      files.atomic_write('README.md', text)
    print(block)
    return
  with cli.exits_on_bad_input():
    experiment, options = chosen(argv[1:], FLAGS)
  cli.quiet_backend_probe()
  t0 = time.time()
  with cli.exits_on_bad_input():  # resolves every run before anything runs
    if FLAGS.draw_only or FLAGS.archive:
      draw = experiment_lib.archive if FLAGS.archive else experiment_lib.draw_partial
      path = draw(experiment, options, FLAGS.output_dir, findings_dir=FLAGS.findings_dir)
      print(open(path).read(), flush=True)
      return
    with cli.invocation_compilation_cache():
      experiment_lib.run_experiment(experiment, options, FLAGS.output_dir, overwrite=FLAGS.overwrite,
                     log=lambda s: print(s, flush=True))
  out = os.path.join(FLAGS.output_dir, experiment_lib.output_name(experiment, options))
  print(f'done in {time.time() - t0:.1f}s; {out}/ (table.md, results.jsonl, config.json, '
        '*.png, runs/)', flush=True)
  print(open(os.path.join(out, 'table.md')).read(), flush=True)


if __name__ == '__main__':
  define_flags()
  app.run(main)
