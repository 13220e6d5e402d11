"""A run's config: built from a preset, overrides and flags, then validated before any compute.

Every error is a ValueError naming the flag (`--num_seeds`, `--config.train.batch_size`, ...).
A scheme named by its import path (a user's own module) brings its config section: the
module's `get_config()` becomes `config.<last part of the path>` before overrides apply.
"""

import copy
import math

from benchmarks import configs
from benchmarks.engine import train
from models import generator, oracle, sampling
import objectives


_POSITIVE_INTS = ('num_seeds', 'problem.vocab_size', 'problem.seq_len', 'problem.embed_dim',
                  'problem.hidden_dim', 'problem.num_train', 'problem.num_test',
                  'generator.embed_dim', 'generator.hidden_dim',
                  'generator.logits_chunk_bytes', 'train.batch_size',
                  'train.num_steps', 'train.eval_every', 'train.map_batch_size',
                  'eval.num_samples', 'eval.batch_size', 'eval.max_enumerate',
                  'eval.enumerate_chunk', 'eval.bleu_n')
_POSITIVE_FLOATS = ('problem.init_scale', 'generator.init_scale', 'train.learning_rate',
                    'train.grad_clip', 'eval.temperature')
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
  check_unique('--pis', pis)
  return pis


def check_unique(flag: str, values) -> None:
  """ValueError naming the flag when a list-valued flag repeats a value."""
  twice = sorted({str(v) for v in values if list(values).count(v) > 1})
  if twice:
    raise ValueError(f'{flag}: {", ".join(twice)} given more than once')


def split_names(text: str):
  """'a, b' -> ['a', 'b'] (the comma-separated scheme names of --schemes)."""
  return [s.strip() for s in str(text).split(',') if s.strip()]


def schemes_in_argv(argv):
  """The value of the last --schemes=... of argv (before '--'), or None."""
  value = None
  args = list(argv[1:])
  for i, arg in enumerate(args):
    if arg == '--':
      break
    if arg.startswith('--schemes='):
      value = arg[len('--schemes='):]
    elif arg == '--schemes' and i + 1 < len(args):
      value = args[i + 1]
  return value


def build_config(preset: str, overrides: dict, *, schemes=None, num_seeds=None, pis=None):
  """The preset (with the config sections of schemes given by import path), then --config.*
  overrides, then the top-level flags."""
  config = configs.get_preset(preset)
  configs.add_scheme_sections(
      config, split_names(schemes if schemes is not None else config.schemes))
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
  """The list of scheme names of config.schemes ('all' expands to every registered one; a
  name with a dot is a module's import path, objectives.module)."""
  names = split_names(config.schemes)
  if names == ['all']:
    return list(objectives.REGISTRY)
  twice = sorted({s for s in names if names.count(s) > 1})
  if twice:
    raise ValueError(f'--schemes: {", ".join(twice)} named more than once')
  unknown = [s for s in names if not objectives.is_external(s) and s not in objectives.REGISTRY]
  if unknown or not names:
    raise ValueError(f'--schemes: unknown scheme(s) {", ".join(unknown) or "(none given)"}; '
                     f'known: {", ".join(objectives.REGISTRY)} or all, or the import path of '
                     'a module of your own (e.g. my_lab.my_objective)')
  for name in names:
    if objectives.is_external(name):
      try:
        module = objectives.module(name)
      except ValueError as e:
        raise ValueError(f'--schemes: {e}') from None
      if objectives.section(name) not in config and hasattr(module, 'get_config'):
        raise ValueError(f'--schemes: {name}: its config section is missing (build the '
                         'config with configuration.build_config)')
  return names


def validate(config) -> None:
  """Raises ValueError naming the offending flag; pure checks of the config, no compute.

  Whether the seeds fit in memory is checked once a run's schemes are resolved
  (`memory.check_run`, which the runner calls before any compute).
  """
  for field in _POSITIVE_INTS:
    value = _get(config, field)
    if not isinstance(value, int) or value < 1:
      raise ValueError(f'{_flag(field)}: must be a positive integer, got {value!r}')
  for field in _POSITIVE_FLOATS:
    value = _get(config, field)
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
      raise ValueError(f'{_flag(field)}: must be a positive number, got {value!r}')
  parse_pis(','.join(str(p) for p in config.pis))
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
  oracle.check_config(pc)
  generator.check_config(config.generator)
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
  check_unique('--config.eval.alphas', alphas)
  if config.eval.select not in SELECTIONS:
    raise ValueError(f'--config.eval.select: {config.eval.select!r} is not one of '
                     f'{", ".join(SELECTIONS)}')
  nv = pc.get('num_valid', 0)
  if not isinstance(nv, int) or isinstance(nv, bool) or nv < 0 or nv == 1:
    raise ValueError(f'--config.problem.num_valid: must be 0 (no validation set) or at least 2 '
                     f'(for a standard error), got {nv!r}')
  if config.eval.select == 'nll_valid' and not nv:
    raise ValueError("--config.eval.select: 'nll_valid' selects on the validation set, but "
                     '--config.problem.num_valid is 0 (give it a size, e.g. that of num_test)')
  if config.eval.exact and pc.vocab_size ** pc.seq_len > config.eval.max_enumerate:
    raise ValueError(f'--config.eval.exact: V^T = {pc.vocab_size}^{pc.seq_len} exceeds '
                     f'--config.eval.max_enumerate ({config.eval.max_enumerate})')


# Which generator of each run the α sweep (config.eval.alphas) evaluates.
SELECTIONS = ('last', 'nll_valid', 'nll_test')

# Fields all variants of a run share: the problem, the seeds, the evaluation and the warm start.
SHARED_FIELDS = ('preset', 'seed', 'num_seeds', 'schemes', 'pis', 'problem', 'generator', 'eval',
                 'train.warm_start_steps')


def resolve_variants(config, variants=None):
  """{label: (scheme name, config of that variant)}, each validated; no compute.

  Args:
    config: the run's validated config.
    variants: None (the schemes of config.schemes, each under its own name), or
      {label: (scheme name, {flattened field: value})}: several configurations of schemes in
      one run (e.g. gan_pi with minimax and with non-saturating losses), sharing the problem,
      seeds and warm start (SHARED_FIELDS may not be overridden).

  Raises:
    ValueError naming the variant and the field.
  """
  if variants is None:
    return {name: (name, config) for name in scheme_names(config)}
  if not variants:
    raise ValueError('variants: none given')
  out = {}
  for label, (name, overrides) in variants.items():
    if label == train.WARM_START:
      raise ValueError(f'variant {label!r}: the label is reserved for the warm-start phase')
    cfg = copy.deepcopy(config)
    try:
      objectives.module(name)
      configs.add_scheme_sections(cfg, [name])
    except ValueError as e:
      raise ValueError(f'variant {label!r}: {e}') from None
    for field, value in overrides.items():
      if any(field == f or field.startswith(f + '.') for f in SHARED_FIELDS):
        raise ValueError(f'variant {label!r}: --config.{field} is shared by all variants of '
                         'a run and cannot be overridden per variant')
      if not _has_field(cfg, field):
        raise ValueError(f'variant {label!r}: unknown config field {field!r}')
    cfg.update_from_flattened_dict(dict(overrides))
    cfg.schemes = name
    try:
      validate(cfg)
    except ValueError as e:
      raise ValueError(f'variant {label!r}: {e}') from None
    out[label] = (name, cfg)
  return out


def with_concrete_strategy(config):
  """config, or a copy whose train.seed_strategy 'auto' is the platform's strategy
  (`train.concrete_strategy`): what config.json records and the run uses. Initialises JAX's
  backend: call it after jax.distributed.initialize."""
  if config.train.seed_strategy != 'auto':
    return config
  config = copy.deepcopy(config)
  config.train.seed_strategy = train.concrete_strategy('auto')
  return config


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


