"""What an experiment is: data (the runs it needs) plus a drawing (rows -> figures + table).

An experiment module under benchmarks/experiments/ defines `EXPERIMENT = Experiment(...)` and
is listed in benchmarks/experiments/__init__.py. `python -m benchmarks.experiment NAME` then
  1. trains every Run of `runs(options)` through the runner (benchmarks.runner.execute: same keys,
     resume, atomic files) into DIR/NAME/runs/<run label>/,
  2. adds the rows of `compute(options)` (computations that train no generator, e.g. the 1-D
     Gaussian fits: cheap, recomputed each time),
  3. writes all rows to DIR/NAME/results.jsonl (each row has 'run': its run label), the
     configs to DIR/NAME/config.json, and calls `draw(rows, DIR/NAME, options)`, which writes
     its PNGs into that directory and returns the markdown of DIR/NAME/table.md.
"""

from typing import Callable, Dict, List, NamedTuple, Optional, Tuple


class Options(NamedTuple):
  """Command-line options every experiment receives.

  quick: shrink every size so the experiment finishes in well under a minute (CI).
  num_seeds: seeds per run; None = the experiment's default.
  preset: the problem's preset, one of the experiment's `presets`; None = its first.
  """
  quick: bool = False
  num_seeds: Optional[int] = None
  preset: Optional[str] = None


class Run(NamedTuple):
  """One call of the runner.

  preset: a preset name (benchmarks/configs).
  overrides: flattened config fields -> values applied to the preset, e.g.
    {'train.num_steps': 400, 'pis': (0.1, 0.5)}; 'num_seeds' included.
  variants: label -> (scheme name, {flattened overrides of that scheme's config}): the
    schemes the run trains, each under its own label (rows' 'scheme' is the label, 'base_scheme'
    the scheme name). All variants of a run share the problem, the seeds and the warm start
    (config.train.warm_start_steps), so they are paired comparisons.
  """
  preset: str
  overrides: Dict[str, object]
  variants: Dict[str, Tuple[str, Dict[str, object]]]


class Experiment(NamedTuple):
  """An experiment: its name, the claim it tests, its runs, computations and drawing.

  runs: Options -> {run label: Run} (may be empty).
  compute: Options -> list of JSON-able row dicts, each with a 'run' label, or None.
  presets: the presets `--preset` may choose (the first is the default; its output goes to
    DIR/NAME, another's to DIR/NAME_<preset>); () = the experiment fixes its problem.
  partial_compute: whether `--draw_only` of an unfinished experiment computes `compute`'s
    rows; False for a computation that must not run beside the training (seqgan_table's
    profile: minutes of CPU, and timings taken on a busy machine would be wrong).
  draw: (rows, output directory, Options) -> markdown of the table (it writes its PNGs into
    the directory). Rows are those of results.jsonl: training rows (one per variant x seed x
    π x evaluation step, with 'run', 'scheme', 'base_scheme', 'seed', 'pi', 'step', 'phase',
    metrics and '<metric>_se', 'exact_<metric>' when enumerated) plus compute rows.
  """
  name: str
  claim: str
  runs: Callable[[Options], Dict[str, Run]]
  draw: Callable[[List[dict], str, Options], str]
  compute: Optional[Callable[[Options], List[dict]]] = None
  presets: Tuple[str, ...] = ()
  partial_compute: bool = True


def preset(experiment: Experiment, options: Options) -> str:
  """The preset of this invocation: options.preset or the experiment's default."""
  return options.preset or experiment.presets[0]


def output_name(experiment: Experiment, options: Options) -> str:
  """NAME for the default preset, NAME_<preset> for another (their runs differ)."""
  if not options.preset or options.preset == experiment.presets[0]:
    return experiment.name
  return f'{experiment.name}_{options.preset}'


def linear_ss_schedule(num_steps: int, final_eps: float) -> Dict[str, object]:
  """Overrides (flattened fields) taking scheduled sampling's ε linearly from 1 to final_eps
  over num_steps (the config's defaults are sized for `small`'s 2,000 steps)."""
  return {'scheduled_sampling.schedule': 'linear',
          'scheduled_sampling.linear_slope': (1.0 - final_eps) / num_steps,
          'scheduled_sampling.linear_min': final_eps}


def tiny_sizes(**changes) -> Dict[str, object]:
  """The `--quick` problem most experiments shrink to (V=16, T=8, 8-unit networks, 2 seeds,
  10 steps), with `changes` (flattened fields) on top."""
  sizes = {'problem.vocab_size': 16, 'problem.seq_len': 8, 'problem.embed_dim': 8,
           'problem.hidden_dim': 8, 'problem.num_train': 256, 'problem.num_test': 128,
           'generator.embed_dim': 8, 'generator.hidden_dim': 8, 'train.batch_size': 16,
           'train.num_steps': 10, 'train.eval_every': 10, 'eval.num_samples': 64,
           'eval.batch_size': 64, 'discriminator.embed_dim': 4,
           'discriminator.filter_widths': (1, 2), 'discriminator.num_filters': (4, 4),
           'discriminator.hidden_dim': 4, 'num_seeds': 2}
  sizes.update(changes)
  return sizes
