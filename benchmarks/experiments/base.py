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
  """
  quick: bool = False
  num_seeds: Optional[int] = None


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
