"""The runner as a library: config building, validation, the output directory, execute().

`benchmarks.run` (the command line) and `benchmarks.experiment` call it; it defines no flags.
"""

import contextlib
import json
import logging
import math
import os
import shutil
import sys

from benchmarks import configs


@contextlib.contextmanager
def exits_on_bad_input():
  """The command lines' one way out of bad input: a ValueError (a bad flag, a foreign output
  directory) or an OSError (a failed write: disk full, ...) prints one line `error: ...` to
  stderr and exits 2. The files written before a failed write are whole: rerunning the same
  command resumes from them."""
  try:
    yield
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except OSError as e:
    print(f'error: {e}; fix the cause and rerun the same command: it resumes from the '
          'files written so far', file=sys.stderr)
    sys.exit(2)


@contextlib.contextmanager
def invocation_compilation_cache():
  """A JAX persistent compilation cache in a fresh temporary directory for one invocation.

  The runner builds each scheme's (and each variant's) jitted init, evaluation and step anew,
  and XLA compiles them again even when their HLO is identical: variants of one scheme that
  differ only in traced values, schemes with the same state (MLE and scheduled sampling). A
  cache hit loads the executable compiled from the same HLO and options, so results are
  unchanged. The directory is removed on the way out; nothing outlives the invocation, so a
  run never depends on the machine's history. A user's own cache (JAX_COMPILATION_CACHE_DIR,
  or jax_compilation_cache_dir already set) is left alone and used instead. Enter it before
  the first compilation. Yields the directory, or None when the user's cache is used.
  """
  import tempfile
  import jax
  if os.environ.get('JAX_COMPILATION_CACHE_DIR') or jax.config.jax_compilation_cache_dir:
    yield None
    return
  min_time = jax.config.jax_persistent_cache_min_compile_time_secs
  path = tempfile.mkdtemp(prefix='divbench-jax-cache-')
  jax.config.update('jax_compilation_cache_dir', path)
  # Every compile, not only those over the default 1 s: the evaluations on `small` are shorter.
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  try:
    yield path
  finally:
    jax.config.update('jax_compilation_cache_dir', None)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', min_time)
    shutil.rmtree(path, ignore_errors=True)


def quiet_backend_probe() -> None:
  """Hides JAX's INFO line about backends it could not load ('Unable to initialize backend
  tpu'): on a CPU or GPU machine it is noise. Warnings and errors still show."""
  logging.getLogger('jax._src.xla_bridge').setLevel(logging.WARNING)


_POSITIVE_INTS = ('num_seeds', 'problem.vocab_size', 'problem.seq_len', 'problem.embed_dim',
                  'problem.hidden_dim', 'problem.num_train', 'problem.num_test',
                  'generator.embed_dim', 'generator.hidden_dim',
                  'generator.logits_chunk_bytes', 'train.batch_size',
                  'train.num_steps', 'train.eval_every', 'train.map_batch_size',
                  'eval.num_samples', 'eval.batch_size', 'eval.max_enumerate',
                  'eval.enumerate_chunk', 'eval.bleu_n')
_POSITIVE_FLOATS = ('problem.init_scale', 'generator.init_scale', 'train.learning_rate',
                    'train.grad_clip', 'eval.temperature')
# Fields that change how a run is chunked, not its numbers: kept out of config.json and the
# config's hash (a run resumes under other values).
OPERATIONAL = ('train.checkpoint_every',)
_FLAG_OF = {'num_seeds': '--num_seeds', 'schemes': '--schemes', 'pis': '--pis'}


def _flag(field: str) -> str:
  """The command-line name of a config field."""
  return _FLAG_OF.get(field, f'--config.{field}')


def _get(config, field: str):
  for part in field.split('.'):
    config = config[part]
  return config


def _has_field(config, field: str) -> bool:
  """Whether config has the (dotted) field."""
  try:
    _get(config, field)
  except (KeyError, AttributeError):
    return False
  return True


def parse_pis(text: str):
  """'0.1,0.5' -> (0.1, 0.5); ValueError naming --pis on bad values."""
  try:
    pis = tuple(float(p) for p in text.split(',') if p.strip())
  except ValueError:
    raise ValueError(f'--pis: expected comma-separated numbers in [0, 1], got {text!r}') from None
  if not pis:
    raise ValueError('--pis: empty π grid')
  for p in pis:
    if not 0.0 <= p <= 1.0:  # also rejects NaN
      raise ValueError(f'--pis: π = {p} is outside [0, 1]')
  return pis


def build_config(preset: str, overrides: dict, *, schemes=None, num_seeds=None, pis=None):
  """The preset, then --config.* overrides, then the top-level flags."""
  config = configs.get_preset(preset)
  config.update_from_flattened_dict(overrides)
  if schemes is not None:
    config.schemes = schemes
  if num_seeds is not None:
    config.num_seeds = num_seeds
  if pis is not None:
    config.pis = parse_pis(pis)
  return config


def check_override_fields(argv, config) -> None:
  """ValueError naming the first --config.<field> of argv that config does not have.

  Run before the config flag is defined: ml_collections resolves the overrides then, and an
  unknown field would otherwise end in a raw AttributeError.
  """
  for arg in argv[1:]:
    if arg == '--':
      break
    if arg.startswith('--config.'):
      field = arg[len('--config.'):].split('=', 1)[0]
      if not _has_field(config, field):
        raise ValueError(f'--config.{field}: no such config field (all fields: '
                         'benchmarks/configs/base.py)')


def scheme_names(config):
  """The list of scheme names of config.schemes ('all' expands to every registered one)."""
  import objectives
  names = [s.strip() for s in config.schemes.split(',') if s.strip()]
  if names == ['all']:
    return list(objectives.REGISTRY)
  twice = sorted({s for s in names if names.count(s) > 1})
  if twice:
    raise ValueError(f'--schemes: {", ".join(twice)} named more than once')
  unknown = [s for s in names if s not in objectives.REGISTRY]
  if unknown or not names:
    raise ValueError(f'--schemes: unknown scheme(s) {", ".join(unknown) or "(none given)"}; '
                     f'known: {", ".join(objectives.REGISTRY)} or all')
  return names


def validate(config, check_memory: bool = True) -> None:
  """Raises ValueError naming the offending flag; runs before any compilation.

  The last check (unless check_memory is False: a command that trains nothing, e.g.
  benchmarks.sample) refuses a --num_seeds whose estimated training memory exceeds the
  machine's (benchmarks/memory.py: pure arithmetic on the config; DIVBENCH_MEMORY_LIMIT_BYTES
  overrides the limit).
  """
  from benchmarks import train
  from models import oracle, sampling
  for field in _POSITIVE_INTS:
    value = _get(config, field)
    if not isinstance(value, int) or value < 1:
      raise ValueError(f'{_flag(field)}: must be a positive integer, got {value!r}')
  for field in _POSITIVE_FLOATS:
    value = _get(config, field)
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
      raise ValueError(f'{_flag(field)}: must be a positive number, got {value!r}')
  parse_pis(','.join(str(p) for p in config.pis))
  import objectives
  for name in scheme_names(config):
    objectives.check_config(name, config)  # each scheme's --config.<scheme>.* section
  tc, pc = config.train, config.problem
  for field in ('eval.num_samples', 'problem.num_test'):
    if _get(config, field) < 2:
      raise ValueError(f'{_flag(field)}: a standard error needs at least 2 samples, got '
                       f'{_get(config, field)}')
  k = config.eval.exposure_samples
  if config.eval.exposure_bias and not (isinstance(k, int) and (k == 0 or k >= 2)):
    raise ValueError('--config.eval.exposure_samples: must be 0 (all samples) or at least 2 '
                     f'(for a standard error), got {k!r}')
  if tc.num_steps % tc.eval_every:
    raise ValueError(f'--config.train.num_steps: {tc.num_steps} is not a multiple of '
                     f'--config.train.eval_every ({tc.eval_every})')
  ce = tc.checkpoint_every
  if not isinstance(ce, int) or isinstance(ce, bool) or ce < 0 or (ce and tc.eval_every % ce):
    raise ValueError(f'--config.train.checkpoint_every: must be 0 or a divisor of '
                     f'--config.train.eval_every ({tc.eval_every}), got {ce!r}')
  if tc.seed_strategy not in train.STRATEGIES:
    raise ValueError(f'--config.train.seed_strategy: {tc.seed_strategy!r} is not one of '
                     f'{", ".join(train.STRATEGIES)}')
  if pc.num_train < tc.batch_size:
    raise ValueError(f'--config.problem.num_train: {pc.num_train} is smaller than '
                     f'--config.train.batch_size ({tc.batch_size})')
  if config.eval.sampler not in sampling.METHODS:
    raise ValueError(f'--config.eval.sampler: {config.eval.sampler!r} is not one of '
                     f'{", ".join(sampling.METHODS)}')
  if pc.source == 'seqgan':
    for field, value in oracle.SEQGAN_SIZES.items():
      if pc[field] != value:
        raise ValueError(f'--config.problem.{field}: the SeqGAN oracle has {field}={value}, '
                         f'got {pc[field]}')
  elif pc.source != 'random':
    raise ValueError(f"--config.problem.source: {pc.source!r} is not 'random' or 'seqgan'")
  ws = tc.warm_start_steps
  if not isinstance(ws, int) or isinstance(ws, bool) or ws < 0 or ws % tc.eval_every:
    raise ValueError(f'--config.train.warm_start_steps: must be a non-negative multiple of '
                     f'--config.train.eval_every ({tc.eval_every}), got {ws!r}')
  inject = train.parse_inject_nan(tc.inject_nan)
  if inject is not None:
    seed, step = inject
    if not 0 <= seed < config.num_seeds:
      raise ValueError(f'--config.train.inject_nan: seed {seed} is not in range(--num_seeds) '
                       f'= 0..{config.num_seeds - 1}')
    if not 1 <= step <= tc.num_steps:
      raise ValueError(f'--config.train.inject_nan: step {step} is not in [1, '
                       f'--config.train.num_steps] = [1, {tc.num_steps}]')
  alphas = config.eval.alphas
  if isinstance(alphas, (int, float)):
    alphas = (alphas,)
  if not (isinstance(alphas, (tuple, list)) and all(
      isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) and a > 0
      for a in alphas)):
    raise ValueError(f'--config.eval.alphas: must be positive inverse temperatures, e.g. '
                     f'"(0.5, 1.0, 2.0)", got {config.eval.alphas!r}')
  if config.eval.select not in SELECTIONS:
    raise ValueError(f'--config.eval.select: {config.eval.select!r} is not one of '
                     f'{", ".join(SELECTIONS)}')
  if config.eval.exact and pc.vocab_size ** pc.seq_len > config.eval.max_enumerate:
    raise ValueError(f'--config.eval.exact: V^T = {pc.vocab_size}^{pc.seq_len} exceeds '
                     f'--config.eval.max_enumerate ({config.eval.max_enumerate})')
  # Last: the estimate assumes sizes checked above. Schemes run one at a time; the warm
  # start is an MLE run of every seed.
  if not check_memory:
    return
  from benchmarks import memory
  memory.check(config, scheme_names(config) + (['mle'] if ws else []))


# Which generator of each run the α sweep (config.eval.alphas) evaluates.
SELECTIONS = ('last', 'nll_test')

# Fields all variants of a run share: the problem, the seeds, the evaluation and the warm start.
SHARED_FIELDS = ('preset', 'seed', 'num_seeds', 'schemes', 'pis', 'problem', 'generator', 'eval',
                 'train.warm_start_steps')


def resolve_variants(config, variants=None, check_memory: bool = True):
  """{label: (scheme name, config of that variant)}, each validated; no compute.

  Args:
    config: the run's validated config.
    variants: None (the schemes of config.schemes, each under its own name), or
      {label: (scheme name, {flattened field: value})}: several configurations of schemes in
      one run (e.g. gan_pi with minimax and with non-saturating losses), sharing the problem,
      seeds and warm start (SHARED_FIELDS may not be overridden).
    check_memory: passed to `validate` (False: the caller trains nothing).

  Raises:
    ValueError naming the variant and the field.
  """
  import copy
  import objectives
  from benchmarks import train
  if variants is None:
    return {name: (name, config) for name in scheme_names(config)}
  if not variants:
    raise ValueError('variants: none given')
  out = {}
  for label, (name, overrides) in variants.items():
    if label == train.WARM_START:
      raise ValueError(f'variant {label!r}: the label is reserved for the warm-start phase')
    if name not in objectives.REGISTRY:
      raise ValueError(f'variant {label!r}: unknown scheme {name!r}; known: '
                       f'{", ".join(objectives.REGISTRY)}')
    cfg = copy.deepcopy(config)
    for field, value in overrides.items():
      if any(field == f or field.startswith(f + '.') for f in SHARED_FIELDS):
        raise ValueError(f'variant {label!r}: --config.{field} is shared by all variants of '
                         'a run and cannot be overridden per variant')
      if not _has_field(cfg, field):
        raise ValueError(f'variant {label!r}: unknown config field {field!r}')
    cfg.update_from_flattened_dict(dict(overrides))
    cfg.schemes = name
    try:
      validate(cfg, check_memory)
    except ValueError as e:
      raise ValueError(f'variant {label!r}: {e}') from None
    out[label] = (name, cfg)
  return out


def execute(config, output_dir: str, *, variants=None, overwrite: bool = False, log=print,
            title=None):
  """Trains and evaluates every scheme (or variant) of config into output_dir; the rows.

  The runner's whole job after flag parsing (`main` and `benchmarks.experiment` call it):
  validate, prepare the directory (resume or refuse), build the problem, the warm start when
  config.train.warm_start_steps > 0, then each scheme, writing results, checkpoints and the
  report after each. Raises ValueError (naming the flag) before any compute on bad input.
  Process 0 holds output_dir/.lock (prepare_output_dir) until it returns or raises.
  """
  from benchmarks import results
  try:
    return _execute(config, output_dir, variants=variants, overwrite=overwrite, log=log,
                    title=title)
  finally:
    results.release_lock(output_dir)  # taken by prepare_output_dir; no-op if not held


def _execute(config, output_dir: str, *, variants, overwrite: bool, log, title):
  """execute(), output_dir's lock released by the caller."""
  validate(config)
  resolved = resolve_variants(config, variants)
  import jax
  from benchmarks import report, results, train
  from models import oracle
  import objectives

  from benchmarks import memory
  jax.devices()  # the backend is up from here: the memory check sees the devices' limit
  schemes = [n for n, _ in resolved.values()]
  memory.check(config, schemes + (['mle'] if config.train.warm_start_steps else []))
  main_process = train.is_main_process()
  # Every process checks the directory; only process 0 writes (all see the same files).
  refusal = None
  try:
    config_hash = prepare_output_dir(output_dir, config, overwrite=overwrite,
                                     write=main_process, variants=variants, log=log)
  except (ValueError, OSError) as e:  # OSError: results.WriteError
    refusal = e
  if jax.process_count() > 1:  # all agree before any compute: none waits for a refused one
    agree_or_raise(refusal is not None)
  if refusal is not None:
    raise refusal
  store = results.Store(output_dir)  # ValueError naming the file when unreadable
  results.check_checkpoints(output_dir)  # likewise, before any compute
  say = log if main_process else (lambda s: None)
  title = title or f'divbench: preset {config.preset}'
  say(f'divbench: preset {config.preset}, schemes {",".join(resolved)}, {config.num_seeds} '
      f'seeds, devices ({jax.device_count()}): {jax.devices()}, output {output_dir}')
  problem = oracle.make_problem(config.problem)
  schemes = {label: objectives.make(name, cfg, problem) for label, (name, cfg) in resolved.items()}
  for label, scheme in schemes.items():
    if scheme.describe is not None:
      say(f'[{label}] {scheme.describe()}')
  # The run ETA of the progress lines: run-steps still to train per phase, rates so far.
  phases = [(label, name, cfg.train.num_steps,
             len(train.run_grid(schemes[label], range(cfg.num_seeds), cfg.pis)))
            for label, (name, cfg) in resolved.items()]
  if config.train.warm_start_steps:
    phases.insert(0, (train.WARM_START, 'mle', config.train.warm_start_steps, config.num_seeds))
  to_go, rates = train.steps_to_go(store.rows, phases), {}
  warm = None
  if config.train.warm_start_steps:
    warm, _ = train.warm_start(problem, config, store, output_dir=output_dir,
                               config_hash=config_hash, log=say, upcoming=to_go[1:],
                               rates=rates)
  for i, (label, (name, cfg)) in enumerate(resolved.items(), start=len(phases) - len(resolved)):
    train.train_scheme(label, schemes[label], problem, cfg, store, output_dir=output_dir,
                       config_hash=config_hash, log=say, warm=warm, base_scheme=name,
                       upcoming=to_go[i + 1:], rates=rates)
    if main_process:
      report.write_report(output_dir, store.rows, title=title)
  return store.rows


def agree_or_raise(refused: bool) -> None:
  """Multi-host: every process says whether it refused the output directory (a collective).

  The processes that did not refuse raise ValueError naming the first one that did, so no
  process waits forever at a later collective for a process that has already exited.
  """
  import numpy as np
  from jax.experimental import multihost_utils
  flags = np.asarray(multihost_utils.process_allgather(np.int32(refused))).reshape(-1)
  if not refused and flags.any():
    raise ValueError(f'--output_dir: refused by process {int(np.argmax(flags))} (see its '
                     'error); this process wrote nothing')


def check_distributed_flags(distributed: bool, coordinator, num_processes, process_id):
  """ValueError naming the flag when the multi-host flags are inconsistent."""
  given = {'--coordinator_address': coordinator, '--num_processes': num_processes,
           '--process_id': process_id}
  if not distributed:
    for flag, value in given.items():
      if value is not None:
        raise ValueError(f'{flag}: only meaningful with --distributed')
    return
  if num_processes is not None and num_processes < 1:
    raise ValueError(f'--num_processes: must be a positive integer, got {num_processes}')
  if process_id is not None and not (
      0 <= process_id < (num_processes if num_processes is not None else float('inf'))):
    raise ValueError(f'--process_id: must be in [0, --num_processes), got {process_id}')


def _saved_hash(path: str):
  """The 'hash' of a config.json, or None when the file is not a JSON object."""
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError):  # ValueError: JSONDecodeError and UnicodeDecodeError
    return None
  return saved.get('hash') if isinstance(saved, dict) else None


def prepare_output_dir(output_dir: str, config, *, overwrite: bool, write: bool = True,
                       variants=None, log=print) -> str:
  """Creates output_dir, takes its lock and writes config.json; returns the config hash.

  The lock (output_dir/.lock, results.acquire_lock; a stale one of a killed run is taken
  over with a notice through log) is held on return: the caller releases it
  (results.release_lock; execute does). The temporary files of a killed run are removed.

  Raises ValueError naming --output_dir when it cannot be written, when another run holds
  it, or when it holds a run of a different config (unless overwrite), and naming
  config.json when it is unreadable (with overwrite: discarded like a different config's);
  then no file of the run in output_dir has changed and the lock is released. A run of the
  same config is resumed. With write=False (the other processes of a multi-host run) it
  only checks and takes no lock.
  """
  from benchmarks import results
  config_dict = config.to_dict()
  if not config_dict['train'].get('inject_nan'):  # testing only: kept out of a normal run's
    config_dict['train'].pop('inject_nan', None)  # hash, so directories from before resume
  for field in OPERATIONAL:
    section, name = field.split('.')
    config_dict[section].pop(name, None)
  saved = {'config': config_dict}
  if variants is not None:  # labelled scheme configurations: part of what the results are of
    saved['variants'] = {k: [n, {f: v for f, v in o.items() if f not in OPERATIONAL}]
                         for k, (n, o) in variants.items()}
  config_hash = results.config_hash(saved if variants is not None else config_dict)
  path = os.path.join(output_dir, 'config.json')
  try:
    os.makedirs(output_dir, exist_ok=True)
    probe = os.path.join(output_dir, f'.write-probe-{os.getpid()}')
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as e:
    raise ValueError(f'--output_dir: cannot write to {output_dir!r} ({e.strerror})') from None
  if write:  # process 0 holds output_dir from here on: no other run writes it
    results.acquire_lock(output_dir, log=log)
    results.remove_temps(output_dir)  # of a killed run: unused
  try:
    _check_saved_config(path, output_dir, config_hash, overwrite=overwrite, write=write,
                        saved=saved, log=log)
    if write:
      results.atomic_write(path, json.dumps(dict(saved, hash=config_hash),
                                            indent=2, sort_keys=True, default=str))
  except BaseException:
    results.release_lock(output_dir)
    raise
  return config_hash


def without_added_defaults(saved, current, default):
  """`current` less the fields that `saved` lacks and that hold `default`'s value.

  A field added to configs/base.py after a run was written must default to the behaviour
  from before it (a development rule), so a config that differs from the saved one only by
  such fields describes the same run. Nested dicts recurse; a field the saved config lacks
  but whose value is not the default stays (and so makes the configs differ).
  """
  if not (isinstance(saved, dict) and isinstance(current, dict)):
    return current
  default = default if isinstance(default, dict) else {}
  out = {}
  for k, v in current.items():
    if k not in saved:
      if k in default and _as_json(v) == _as_json(default[k]):
        continue
      out[k] = v
    else:
      out[k] = without_added_defaults(saved[k], v, default.get(k))
  return out


def _as_json(value):
  """value as config.json holds it (tuples as lists, other objects as str)."""
  return json.loads(json.dumps(value, sort_keys=True, default=str))


def _same_run_before_new_fields(path: str, saved: dict) -> list:
  """When config.json differs from `saved` (the config now) only by fields added since at
  their defaults: those fields' dotted names; else []."""
  from benchmarks.configs import base
  try:
    with open(path) as f:
      old = json.load(f)
  except (OSError, ValueError):
    return []
  if not isinstance(old, dict) or not isinstance(old.get('config'), dict):
    return []
  old = {k: v for k, v in old.items() if k != 'hash'}
  old.setdefault('variants', None)
  now = _as_json(dict(saved, variants=saved.get('variants')))
  default = _as_json({'config': base.get_config().to_dict()})
  pruned = without_added_defaults(old, now, default)
  if pruned != old:
    return []
  added = []
  def walk(a, b, prefix):
    for k, v in b.items():
      if k not in a:
        added.append(prefix + k)
      elif isinstance(v, dict) and isinstance(a[k], dict):
        walk(a[k], v, prefix + k + '.')
  walk(old['config'], now['config'], '')
  return added


def _check_saved_config(path: str, output_dir: str, config_hash: str, *, overwrite: bool,
                        write: bool, saved=None, log=print) -> None:
  """Refuses (ValueError) a config.json that is unreadable or of another config, unless
  overwrite: then, with write, removes that run's results, summary, checkpoints and plots.
  A config.json written before fields were added, equal to `saved` once those fields are at
  their defaults, is the same run: it resumes (and config.json is rewritten by the caller)."""
  if os.path.exists(path):
    old = _saved_hash(path)
    if old is None and not overwrite:
      raise ValueError(f'{path}: not valid JSON (truncated write?); pass --overwrite to '
                       f'discard the results in {output_dir}, or choose another --output_dir')
    added = (_same_run_before_new_fields(path, saved)
             if old is not None and old != config_hash and saved is not None else [])
    if added:
      if write:
        log(f'divbench: {path} was written before {", ".join(sorted(added))} existed; '
            'at their defaults they describe the same run: resuming')
      return
    if old != config_hash:
      if not overwrite:
        raise ValueError(f'--output_dir: {output_dir!r} holds results of a different config '
                         f'(hash {old}, now {config_hash}); pass --overwrite or choose '
                         'another directory')
      if not write:
        return
      for name in ('results.jsonl', 'summary.md'):
        if os.path.exists(os.path.join(output_dir, name)):
          os.remove(os.path.join(output_dir, name))
      shutil.rmtree(os.path.join(output_dir, 'checkpoints'), ignore_errors=True)
      shutil.rmtree(os.path.join(output_dir, 'plots'), ignore_errors=True)
