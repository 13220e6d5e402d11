"""Samples from a trained checkpoint: `python -m benchmarks.sample --run_dir=DIR --scheme=NAME`.

Prints sequences drawn from one run's generator Q at temperature τ (logits / τ), with log Q(x)
at that temperature and the oracle's log P(x) for each:

  python -m benchmarks.sample --run_dir=results/smoke --scheme=mle --seed=0 \\
      --num_samples=5 --temperature=1.0 [--format=jsonl|text] [--pi=0.5] [--sample_seed=0] \\
      [--output=FILE]

DIR is a directory written by `python -m benchmarks.run --output_dir=DIR`, or one run of an
experiment (`DIR/NAME/runs/<label>/`). `--scheme` is a checkpoint's label: a scheme's name, a
variant's label, or `warm_start`. A run is (seed, π); `--pi` picks π (one of the run's grid)
for schemes that sweep it.

Output, one line per sequence (stdout, or --output=FILE written atomically):
  jsonl: {"tokens": [T ints], "log_q": log Q_τ(x), "log_p": log P(x),
          "log_q_per_token": log_q / T, "log_p_per_token": log_p / T}
         (natural logs, sequence-level; a non-finite value is written as null)
  text:  the tokens separated by spaces, a tab, then `log_q=… log_p=…` (4 decimals).
A header (run, step of the checkpoint, temperature, sampler, key) and a footer (means per
token) go to stderr.

The sampler is jitted once; sequences are drawn config.eval.batch_size at a time (chunk i
with fold_in(PRNGKey(--sample_seed), i), with config.eval.sampler) and written chunk by
chunk, so memory does not grow with --num_samples, and the first n sequences of a larger
--num_samples are the same. Defaults: --seed=0, --num_samples=10, --temperature=1 (the model
itself, whatever the run's config.eval.temperature), --format=jsonl, --sample_seed=0. Bad
input fails before any compute with exit code 2 and one line naming the flag.
"""

import functools
import json
import math
import os
import sys
from typing import NamedTuple, Optional

from absl import app
from absl import flags
import jax

from benchmarks.engine import cli as engine_cli
from benchmarks.engine import configuration
from benchmarks.engine import files
from benchmarks.engine import rundir
from benchmarks.engine import train
from models import oracle
import objectives

FORMATS = ('jsonl', 'text')


class Options(NamedTuple):
  """The command line, flag for flag (see the module docstring)."""
  run_dir: Optional[str]
  scheme: Optional[str]
  seed: int = 0
  num_samples: int = 10
  temperature: float = 1.0
  format: str = 'jsonl'
  pi: Optional[float] = None
  sample_seed: int = 0
  output: Optional[str] = None


class Target(NamedTuple):
  """One run of one checkpoint, resolved from the run directory without compute.

  Attributes:
    config: the scheme's config (a variant's, with its overrides).
    label: the checkpoint's label (`checkpoints/<label>.msgpack`).
    base_scheme: the registered scheme the label trains ('mle' for the warm start).
    seed: the seed index.
    pi: the run's π, or None for schemes that take none.
    run_index: the run's row in the checkpoint's stacked states (train.run_grid order).
    step: the training step of the checkpoint.
    state: the run's state as stored: nested dicts of arrays (its row of the stacked states),
      given its structure by `load_generator`.
  """
  config: object
  label: str
  base_scheme: str
  seed: int
  pi: Optional[float]
  run_index: int
  step: int
  state: dict


# --- checks and the run directory (no compute) ------------------------------------------------

def check_options(options: Options) -> None:
  """ValueError('--flag: ...') for a flag that is wrong whatever the run directory holds."""
  if not options.run_dir:
    raise ValueError('--run_dir: required (a directory written by benchmarks.run)')
  if not options.scheme:
    raise ValueError('--scheme: required (a scheme or variant label with a checkpoint)')
  n = options.num_samples
  if not isinstance(n, int) or isinstance(n, bool) or n < 1:
    raise ValueError(f'--num_samples: must be a positive integer, got {n!r}')
  t = options.temperature
  if not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
    raise ValueError(f'--temperature: must be a positive number, got {t!r}')
  if options.format not in FORMATS:
    raise ValueError(f'--format: {options.format!r} is not one of {", ".join(FORMATS)}')
  if options.pi is not None and not 0.0 <= options.pi <= 1.0:  # also rejects NaN
    raise ValueError(f'--pi: π = {options.pi} is outside [0, 1]')
  k = options.sample_seed
  if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < 2 ** 32:
    # PRNGKey keeps 32 bits without x64: larger or negative seeds would alias others.
    raise ValueError(f'--sample_seed: must be an integer in [0, 2^32), got {k!r}')
  if options.output:
    parent = os.path.dirname(os.path.abspath(options.output))
    if not os.path.isdir(parent):
      raise ValueError(f'--output: directory {parent!r} does not exist')


def read_config(run_dir: str):
  """(config, variants or None) of a run directory, as benchmarks.run / experiment wrote it."""
  path = os.path.join(run_dir, 'config.json')
  if not os.path.isdir(run_dir):
    raise ValueError(f'--run_dir: {run_dir!r} is not a directory')
  if not os.path.exists(path):
    raise ValueError(f'--run_dir: {run_dir!r} has no config.json (not written by '
                     'benchmarks.run)')
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f'--run_dir: cannot read {path!r} ({e})') from None
  if 'runs' in saved and 'config' not in saved:
    runs = ', '.join(os.path.join(run_dir, 'runs', r) for r in saved['runs'])
    raise ValueError(f'--run_dir: {run_dir!r} is an experiment; pass one of its runs: {runs}')
  if not isinstance(saved.get('config'), dict):
    raise ValueError(f'--run_dir: {path!r} holds no config')
  variants = saved.get('variants')
  if variants is not None:
    variants = {label: (name, {k: tuple(v) if isinstance(v, list) else v
                               for k, v in overrides.items()})
                for label, (name, overrides) in variants.items()}
  names = configuration.split_names(saved['config'].get('schemes', ''))
  names += [name for name, _ in (variants or {}).values()]
  try:
    config = rundir.config_from_saved(saved['config'], names)
  except ValueError as e:
    raise ValueError(f'--run_dir: {e}') from None
  return config, variants


def _labels(config, variants):
  """{checkpoint label: (base scheme, config)} of a run (the warm start included)."""
  try:
    # Sampling trains nothing: no training-memory check (a GPU run samples on a laptop).
    resolved = configuration.resolve_variants(config, variants)
  except ValueError as e:
    raise ValueError(f'--run_dir: its config.json is not valid now ({e})') from None
  out = {label: (name, cfg) for label, (name, cfg) in resolved.items()}
  if config.train.warm_start_steps:
    out[train.WARM_START] = ('mle', config)
  return out


def _run_pis(run_dir: str, label: str):
  """The set of π values of the label's rows in results.jsonl ({None}: a scheme without π)."""
  path = os.path.join(run_dir, 'results.jsonl')
  if not os.path.exists(path):
    raise ValueError(f'--run_dir: {run_dir!r} has no results.jsonl')
  try:
    rows = rundir.read_rows(path)
  except rundir.Unreadable as e:
    raise ValueError(f'--run_dir: {path!r} {e} ({e.detail})') from None
  pis = {row.get('pi') for row in rows if row.get('scheme') == label}
  if not pis:
    raise ValueError(f'--scheme: {label!r} has no rows in {path!r}')
  return pis


def resolve(options: Options) -> Target:
  """The run `options` name, checked against the run directory; ValueError naming the flag.

  Reads config.json, results.jsonl and the run's checkpoint only (no problem, no model): every
  bad input is refused before any compute.
  """
  check_options(options)
  config, variants = read_config(options.run_dir)
  labels = _labels(config, variants)
  with_checkpoint = [label for label in labels
                     if os.path.exists(rundir.checkpoint_path(options.run_dir, label))]
  label = options.scheme
  if label not in labels:
    raise ValueError(f'--scheme: {label!r} is not a scheme of this run; schemes with '
                     f'checkpoints: {", ".join(with_checkpoint) or "(none)"}')
  if label not in with_checkpoint:
    raise ValueError(f'--scheme: {label!r} has no checkpoint yet '
                     f'({rundir.checkpoint_path(options.run_dir, label)}); schemes with '
                     f'checkpoints: {", ".join(with_checkpoint) or "(none)"}')
  name, cfg = labels[label]
  if not (isinstance(options.seed, int) and 0 <= options.seed < config.num_seeds):
    raise ValueError(f'--seed: {options.seed!r} is outside the run\'s seeds '
                     f'[0, {config.num_seeds - 1}]')
  grid = tuple(config.pis)
  uses_pi = _run_pis(options.run_dir, label) != {None}
  choices = ', '.join(f'{p:g}' for p in grid)
  if not uses_pi and options.pi is not None:
    raise ValueError(f'--pi: {label!r} does not depend on π (its runs are seeds only)')
  if uses_pi and options.pi is None:
    raise ValueError(f'--pi: {label!r} depends on π; pick one of {choices}')
  if uses_pi:
    matches = [i for i, p in enumerate(grid) if math.isclose(p, options.pi, abs_tol=1e-9)]
    if not matches:
      raise ValueError(f'--pi: {options.pi:g} is not in the run\'s π grid; pick one of '
                       f'{choices}')
    pi, num_runs = grid[matches[0]], len(grid) * config.num_seeds
    run_index = matches[0] * config.num_seeds + options.seed  # train.run_grid: π-major
  else:
    pi, num_runs, run_index = None, config.num_seeds, options.seed
  step, state = _read_run(options.run_dir, label, run_index, num_runs)
  if state is None:
    raise ValueError(f'--seed: run seed={options.seed}'
                     + (f', π={pi:g}' if pi is not None else '')
                     + f' of {label!r} diverged (non-finite parameters); pick another')
  return Target(cfg, label, name, options.seed, pi, run_index, step, state)


def _read_run(run_dir: str, label: str, run_index: int, num_runs: int):
  """(step, the run's stored state as nested dicts, or None if it diverged) of a checkpoint.

  Reads the msgpack of rundir.save_checkpoint without a template (no model is built); the
  stacked states hold num_runs runs, possibly followed by padding runs (distributed.padded_runs:
  a multiple of the device count at training time).
  """
  import numpy as np
  path = rundir.checkpoint_path(run_dir, label)
  try:
    saved = rundir.read_checkpoint(path)
  except rundir.Unreadable as e:  # a truncated or foreign file: say which
    raise ValueError(f'--scheme: cannot read checkpoint {path!r} ({e.detail})') from None
  step, states, diverged = int(saved['step']), saved['states'], np.asarray(saved['diverged'])
  sizes = {np.shape(x)[0] if np.ndim(x) else 0 for x in jax.tree_util.tree_leaves(states)}
  if len(sizes) != 1 or min(sizes) < num_runs or len(diverged) < num_runs:
    raise ValueError(f'--run_dir: checkpoint {path!r} does not hold the {num_runs} runs '
                     'its config.json describes')
  if diverged[run_index]:
    return step, None
  return step, jax.tree_util.tree_map(lambda x: np.asarray(x)[run_index], states)


# --- the model and the sampler ----------------------------------------------------------------

def load_generator(target: Target):
  """(problem, generator module, the run's generator variables).

  Rebuilds the problem and the scheme from the config and gives the stored state the
  structure of scheme.init (traced with jax.eval_shape: no init is run).
  """
  import flax.serialization
  problem = oracle.make_problem(target.config.problem)  # built once per configuration
  scheme = objectives.make(target.base_scheme, target.config, problem)
  if (target.pi is not None) != scheme.uses_pi:
    raise ValueError(f'--run_dir: the rows of {target.label!r} in results.jsonl '
                     f'{"have" if target.pi is not None else "lack"} a π, but '
                     f'{target.base_scheme} with this config.json '
                     f'{"takes none" if target.pi is not None else "sweeps π"}')
  template = jax.eval_shape(scheme.init, jax.random.PRNGKey(0))
  state = flax.serialization.from_state_dict(template, target.state)
  return problem, scheme.generator, scheme.generator_params(state)


@functools.partial(jax.jit, static_argnames=('generator', 'oracle', 'chunk_size', 'method'))
def draw(gen_params, oracle_params, key, temperature, *, generator, oracle, chunk_size: int,
         method: str):
  """chunk_size sequences of the generator at `temperature`, and their log-probs.

  Jitted once per (modules, chunk size, sampler): the temperature is traced, and flax
  modules are hashable, so every run of a problem's sizes shares one compile.

  Args:
    gen_params: the generator's variables.
    oracle_params: the oracle's variables.
    key: PRNG key.
    temperature: scalar τ > 0; Q_τ ∝ softmax(logits / τ) at each step.
    generator: the generator LSTMLM (static).
    oracle: the oracle LSTMLM (static).
    chunk_size: C, the number of sequences (static).
    method: the categorical sampler, see models.sampling (static).

  Returns:
    (tokens int32 [C, T]; log_q [C], log Q_τ(x) by the generator's `log_prob` at τ;
    log_p [C], the oracle's log P(x)).
  """
  x = generator.apply(gen_params, key, chunk_size, temperature, method, method='sample')
  log_q = generator.apply(gen_params, x, temperature, method='log_prob')
  log_p = oracle.apply(oracle_params, x, method='log_prob')
  return x, log_q, log_p


def draw_chunks(problem, generator, gen_params, *, num: int, chunk_size: int,
                temperature: float, sample_seed: int, method: str):
  """Yields (tokens [c, T], log_q [c], log_p [c]) numpy chunks, num sequences in all.

  Chunk i is `draw` with fold_in(PRNGKey(sample_seed), i); the last is cut to size, so the
  first n sequences do not depend on num.
  """
  import numpy as np
  key = jax.random.PRNGKey(sample_seed)
  for i in range(math.ceil(num / chunk_size)):
    x, log_q, log_p = jax.device_get(draw(
        gen_params, problem.params, jax.random.fold_in(key, i), np.float32(temperature),
        generator=generator, oracle=problem.model, chunk_size=chunk_size, method=method))
    keep = min(chunk_size, num - i * chunk_size)
    yield x[:keep], log_q[:keep], log_p[:keep]


def _finite(value: float):
  return value if math.isfinite(value) else None


def format_lines(tokens, log_q, log_p, fmt: str):
  """One output line per sequence (no newline): see the module docstring for the formats.

  Args:
    tokens: int [N, T].
    log_q: [N] log Q_τ(x), natural log, per sequence.
    log_p: [N] log P(x).
    fmt: 'jsonl' or 'text'.
  """
  seq_len = tokens.shape[1]
  lines = []
  for x, lq, lp in zip(tokens.tolist(), log_q.tolist(), log_p.tolist()):
    if fmt == 'jsonl':
      lines.append(json.dumps({'tokens': x, 'log_q': _finite(lq), 'log_p': _finite(lp),
                               'log_q_per_token': _finite(lq / seq_len),
                               'log_p_per_token': _finite(lp / seq_len)}))
    else:
      lines.append(f'{" ".join(map(str, x))}\tlog_q={lq:.4f} log_p={lp:.4f}')
  return lines


def run(options: Options, out=None, log=None) -> int:
  """Resolves, loads and samples as the flags say; writes lines to `out`; returns the count.

  Args:
    options: the flags.
    out: a text stream for the lines when options.output is None (default sys.stdout).
    log: a function for the header and footer lines (default: print to stderr).

  Raises:
    ValueError('--flag: ...') on bad input, before any compute.
  """
  target = resolve(options)
  log = log or (lambda s: print(s, file=sys.stderr, flush=True))
  engine_cli.quiet_backend_probe()
  problem, generator, params = load_generator(target)
  cfg = target.config
  step = target.step
  chunk_size = cfg.eval.batch_size
  log(f'# {options.run_dir}: {target.label} ({target.base_scheme}), seed {target.seed}'
      + (f', π {target.pi:g}' if target.pi is not None else '')
      + f', checkpoint step {step}/{_planned_steps(target)}; {options.num_samples} samples at '
      f'temperature {options.temperature:g} ({cfg.eval.sampler} sampler, --sample_seed='
      f'{options.sample_seed}); V={cfg.problem.vocab_size}, T={cfg.problem.seq_len}')
  chunks = draw_chunks(problem, generator, params, num=options.num_samples,
                       chunk_size=chunk_size, temperature=options.temperature,
                       sample_seed=options.sample_seed, method=cfg.eval.sampler)
  sums, count = [0.0, 0.0], 0

  def write_all(stream):
    nonlocal count
    for x, log_q, log_p in chunks:
      for line in format_lines(x, log_q, log_p, options.format):
        stream.write(line + '\n')
      sums[0] += float(log_q.sum())
      sums[1] += float(log_p.sum())
      count += len(x)

  if options.output:  # the whole file at once, atomically
    import io
    buffer = io.StringIO()
    write_all(buffer)
    files.atomic_write(options.output, buffer.getvalue())
  else:
    write_all(out or sys.stdout)
    (out or sys.stdout).flush()
  per_token = count * cfg.problem.seq_len
  log(f'# {count} sequences; mean per token: log_q {sums[0] / per_token:.4f}, '
      f'log_p {sums[1] / per_token:.4f}' + (f'; written to {options.output}'
                                            if options.output else ''))
  return count


def _planned_steps(target: Target) -> int:
  """The steps the label trains in all (the warm start's own count for it)."""
  tc = target.config.train
  return tc.warm_start_steps if target.label == train.WARM_START else tc.num_steps


def cli(options: Options, out=None, err=None) -> int:
  """The command: run(options); bad input -> one line 'error: --flag: ...' on err, 2."""
  err = err or sys.stderr
  try:
    run(options, out=out, log=lambda s: print(s, file=err, flush=True))
  except ValueError as e:
    print(f'error: {e}', file=err, flush=True)
    return 2
  return 0


def _define_flags():
  """The command-line flags, defined only when run as a program (other modules imported in
  one test process own --seed and --output_dir-like names too)."""
  d = Options(None, None)
  flags.DEFINE_string('run_dir', None, 'A directory written by benchmarks.run --output_dir '
                      "(or an experiment's DIR/NAME/runs/<label>/).")
  flags.DEFINE_string('scheme', None, 'The checkpoint to sample: a scheme name, a variant '
                      'label or warm_start.')
  flags.DEFINE_integer('seed', d.seed, 'Seed index of the run, in [0, num_seeds).')
  flags.DEFINE_integer('num_samples', d.num_samples, 'Sequences to draw.')
  flags.DEFINE_float('temperature', d.temperature, 'Sample and score Q at logits / '
                     'temperature (1 = the model itself).')
  flags.DEFINE_string('format', d.format, 'jsonl (one JSON object per sequence) or text.')
  flags.DEFINE_float('pi', None, "π of the run, one of the run's grid (schemes that sweep π "
                     'only).')
  flags.DEFINE_integer('sample_seed', d.sample_seed, 'Seed of the sampling key.')
  flags.DEFINE_string('output', None, 'Write the lines to this file (atomically) instead of '
                      'stdout.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  f = flags.FLAGS
  sys.exit(cli(Options(run_dir=f.run_dir, scheme=f.scheme, seed=f.seed,
                       num_samples=f.num_samples, temperature=f.temperature, format=f.format,
                       pi=f.pi, sample_seed=f.sample_seed, output=f.output)))


if __name__ == '__main__':
  _define_flags()
  app.run(main)
