"""How much memory a run needs, estimated from its config alone (before any compilation).

`benchmarks.engine.configuration.validate` refuses a config whose estimate exceeds the memory
the machine has (`limit_bytes`), naming --num_seeds, instead of failing after compilation in
XLA's allocator or the kernel's OOM killer.

It is an estimate with a safety factor, not a measurement. Counted (float32 = 4 bytes):
  * states (`state_bytes`): per run, every array of the scheme's state, read from
    `jax.eval_shape` of the scheme's own `init` (no compute): parameters and optimiser
    moments of every network it trains, copies. Two copies (a chunk's input and output: jit
    does not donate them).
  * working memory, the largest of: a training step (PARAM_TEMPS parameter-sized buffers,
    the parameters taken as a third of the state; the activations the scheme module declares
    with `working_set_bytes(config)`: LSTM states [B, T, ·], logits in chunks of
    generator.logits_chunk_bytes (models/output_layer.py), full [B, T, V] arrays, rollouts and
    discriminator inputs, sized with objectives/footprint.py), an evaluation (the samples,
    and its largest stage: eval.batch_size sequences sampled or scored at a time, or the
    enumeration chunk), each times the runs computed at
    once (seed_strategy 'map': 1, 'batched': map_batch_size, 'vmap': all; train.over_runs);
    and a third copy of the states (a checkpoint's bytes, between chunks).
  * fixed: the oracle, the train and test tokens, the results rows held in memory.
A scheme module without `working_set_bytes` (a user's own) is estimated generously, as if its
step held ten [B, T, V] arrays besides a sampling and a teacher-forced pass. This module spells
no scheme name.
The estimate is RUNTIME_BYTES + SAFETY × (states + working + fixed). RUNTIME_BYTES is what
any run holds whatever its sizes: python, jax and the libraries (256 MiB), the report's
plotting, and the XLA compiler's memory, which glibc keeps after compiling (a process that
only compiles one scheme's chunk and evaluation on `small` peaks at 490 MiB for mle, 1,040
MiB for seqgan; `--preset=smoke --schemes=all` at 1,025 MiB).

Calibration (issue 13, 2-core CPU): states + working + fixed is 1.0–1.7× the buffers XLA
reports (`compiled.memory_analysis()`: arguments + outputs + temporaries of the chunk, or
the arguments and the evaluation's temporaries) for every scheme on the small, enumerable and
seqgan presets (seqgan: V = 5,000, 4 seeds vmapped: 0.2–9 GiB). The estimate is 1.1–1.9× the
peak resident memory of whole runs (`/usr/bin/time`; 1.2–2.4× less the 256 MiB of importing
jax): smoke and small mle with 1 and 8 seeds, small mle and professor forcing with 8 seeds
vmapped, enumerable mle, seqgan mle / direct / gumbel_gan with 4 seeds, smoke with every
scheme; the runs that fit easily are the furthest off (the constant dominates).
The transformer generator (`generator.kind='transformer'`, seqgan sizes, 1 seed, 2026-12-07):
states + working + fixed is 1.1× (seqgan), 3.0× (cot) and 4.6× (mle) the buffers XLA reports
for the training chunk alone (the working term also covers the evaluation): cautious, never
below.

Schemes (and an experiment's variants) run one after another, so a config needs the largest
of its schemes' estimates (with the warm start's generators, kept for every scheme).

The limit (`limit_bytes`) is DIVBENCH_MEMORY_LIMIT_BYTES when set (a test, or a machine
where the estimate is too cautious), else the memory of the local devices when JAX's backend
is already initialised and reports a `bytes_limit` (GPUs, TPUs), else the host's available
memory (/proc/meminfo MemAvailable). It never initialises a backend itself: a multi-host run
calls `jax.distributed.initialize` after validation, and that must come first.
"""

import copy
import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections

from models import oracle
from models.lstm import LSTMLM
from objectives import footprint
import objectives

RUNTIME_BYTES = 1152 * 2 ** 20  # python, jax, the XLA compiler's memory, plotting (measured)
SAFETY = 1.5                    # multiplies every size-dependent term
PARAM_TEMPS = 4                 # parameter-sized buffers of a step (gradients, updates, carries)
ROW_BYTES = 4096                # one results row (a Python dict of ~40 fields)
ENV_LIMIT = 'DIVBENCH_MEMORY_LIMIT_BYTES'
# Fields that change neither a scheme's state nor whether it sweeps π: left out of the key
# under which `_traced` remembers a scheme's shapes (the seed search changes num_seeds).
_NOT_SHAPES = ('num_seeds', 'pis', 'schemes', 'seed')


# --- sizes read from the schemes' own init ---------------------------------------------------

def lstm_params(vocab_size: int, embed_dim: int, hidden_dim: int) -> int:
  """Parameters of an LSTMLM (models/lstm.py): embedding, 4 gates, output layer (the
  oracle's size; the generator's and the schemes' come from their init)."""
  V, E, H = vocab_size, embed_dim, hidden_dim
  return V * E + 4 * (E * H + H * H + H) + H * V + V


def stand_in_problem(config) -> oracle.Problem:
  """The problem as a scheme's `make` sees it, with no parameters or data drawn: building a
  scheme reads neither (they are closed over by its step)."""
  pc = config.problem
  model = LSTMLM(vocab_size=pc.vocab_size, embed_dim=pc.embed_dim, hidden_dim=pc.hidden_dim,
                 seq_len=pc.seq_len)
  return oracle.Problem(model=model, params=None, train=None, test=None, test_logp=None)


def _floats(tree) -> int:
  """Elements of the non-scalar leaves of a tree of shapes (scalars: step counters)."""
  return int(sum(x.size for x in jax.tree_util.tree_leaves(tree) if x.ndim))


@functools.lru_cache(maxsize=256)
def _traced(scheme_name: str, config_json: str):
  """(state floats, generator floats, uses_pi) of the scheme on the config (JSON): its init
  traced by `jax.eval_shape` (no compilation, no compute)."""
  config = ml_collections.ConfigDict(json.loads(config_json))
  scheme = objectives.make(scheme_name, config, stand_in_problem(config))
  key = jax.ShapeDtypeStruct((2,), jnp.uint32)
  with jax.log_compiles(False):  # tracing only: no line for a user's JAX_LOG_COMPILES
    state = jax.eval_shape(scheme.init, key)
    generator = jax.eval_shape(scheme.generator_params, state)
  return _floats(state), _floats(generator), bool(scheme.uses_pi)


def traced(config, scheme_name: str):
  """`_traced` of config, remembered for configs equal up to _NOT_SHAPES."""
  shapes = {k: v for k, v in config.to_dict().items() if k not in _NOT_SHAPES}
  return _traced(scheme_name, json.dumps(shapes, sort_keys=True, default=list))


def state_bytes(config, scheme_name: str) -> int:
  """Bytes of one run's state (every non-scalar array of the scheme's init)."""
  return footprint.F32 * traced(config, scheme_name)[0]


def generator_params(config, scheme_name: str = 'mle') -> int:
  """Elements of the generator's variables (as the scheme's init makes them)."""
  return traced(config, scheme_name)[1]


def uses_pi(config, scheme_name: str) -> bool:
  """Whether the runner sweeps the π grid for the scheme (its Scheme.uses_pi)."""
  return traced(config, scheme_name)[2]


# --- working memory of one run -------------------------------------------------------------

def step_bytes(config, scheme_name: str) -> int:
  """Activations of one run's training step: the scheme module's `working_set_bytes`, or for
  a module without one, ten [B, T, V] arrays besides a sampling and a teacher-forced pass."""
  declared = getattr(objectives.module(scheme_name), 'working_set_bytes', None)
  if declared is not None:
    return int(declared(config))
  B = config.train.batch_size
  return (footprint.sampling_bytes(config, B) + footprint.teacher_forced_bytes(config, B)
          + 10 * footprint.full_bytes(config, B))


def evaluation_bytes(config) -> int:
  """Working memory of one run's evaluation (benchmarks/engine/evaluate.py): the samples and
  log-probs it keeps, and the largest of its stages (sampling, scoring, the exposure KLs, the
  enumeration), each eval.batch_size sequences at a time."""
  ec, T = config.eval, config.problem.seq_len
  n, bs, m = ec.num_samples, ec.batch_size, config.problem.num_test
  held = footprint.F32 * (n * T + 4 * n + 4 * m)  # Q's samples, the log-probs of both sides
  if ec.fresh_test:
    held += footprint.F32 * m * T
  if ec.bleu:  # references and n-gram ids of both sample sets (numpy, on the host)
    held += 2 * footprint.F32 * (n + m) * T * (ec.bleu_n + 1)
  score = footprint.teacher_forced_bytes(config, bs, backward=False)
  stage = max(footprint.sampling_bytes(config, bs), score)
  if ec.get('exposure_bias'):  # per-step KL(P_t ‖ Q_t): both models' logits, chunked
    stage = max(stage, 2 * score)
  if ec.exact:
    num = min(ec.enumerate_chunk, config.problem.vocab_size ** T)
    stage = max(stage, 3 * footprint.teacher_forced_bytes(config, num, backward=False))
  return held + stage


# --- a whole run ---------------------------------------------------------------------------

def num_runs(config, scheme_name: str) -> int:
  """Runs of the scheme: seeds × π (when the scheme sweeps π)."""
  return config.num_seeds * (len(config.pis) if uses_pi(config, scheme_name) else 1)


def runs_at_once(config, runs: int) -> int:
  """How many runs a chunk computes at the same time (train.over_runs)."""
  strategy = config.train.seed_strategy
  if strategy == 'auto':  # as the runner will resolve it, once the backend is up
    strategy = 'vmap' if device_limit_bytes() is not None else 'map'
  if strategy == 'vmap':
    return runs
  if strategy == 'batched':
    return min(config.train.map_batch_size, runs)
  return 1


def breakdown(config, scheme_name: str) -> dict:
  """{part: bytes} before the safety factor; the estimate is RUNTIME_BYTES + SAFETY × their
  sum.

  'states': two copies of every run's state (a chunk's input and output: jit does not donate
    them), the warm-start generators and the selected ones (eval.select).
  'working': the larger of a step's or an evaluation's working memory (times the runs
    computed at once) and a third copy of the states (the checkpoint's bytes, written
    between chunks).
  'fixed': the oracle, the train and test tokens, the results rows.
  """
  pc, tc = config.problem, config.train
  runs = num_runs(config, scheme_name)
  gen = footprint.F32 * generator_params(config, scheme_name)
  one_copy = runs * state_bytes(config, scheme_name)
  states = 2 * one_copy
  if tc.warm_start_steps:  # every seed's warm-start generator, kept for every scheme
    states += config.num_seeds * gen
  if config.eval.alphas and config.eval.select != 'last':  # the selected generators
    states += 2 * runs * gen
  params = traced(config, scheme_name)[0] // 3  # parameters and two moments, roughly
  permutation = 4 * footprint.F32 * pc.num_train  # the epoch's shuffle (a sort of indices)
  step = footprint.F32 * PARAM_TEMPS * params + permutation + step_bytes(config, scheme_name)
  working = max(runs_at_once(config, runs) * max(step, evaluation_bytes(config)), one_copy)
  oracle_bytes = footprint.F32 * lstm_params(pc.vocab_size, pc.embed_dim, pc.hidden_dim)
  evaluations = tc.num_steps // tc.eval_every + 1
  alphas = config.eval.alphas
  rows = runs * evaluations * (1 + (1 if isinstance(alphas, (int, float)) else len(alphas)))
  data = footprint.F32 * (pc.num_train + pc.num_test) * (pc.seq_len + 1)
  fixed = oracle_bytes + data + ROW_BYTES * rows
  return {'states': states, 'working': working, 'fixed': fixed}


def estimate_memory_bytes(config, scheme_name: str) -> int:
  """Estimated peak memory (bytes) of running scheme `scheme_name` with config; pure.

  RUNTIME_BYTES + SAFETY × (states + working memory + problem and rows): see the module
  docstring for what each part counts and how it was calibrated.
  """
  return int(RUNTIME_BYTES + SAFETY * sum(breakdown(config, scheme_name).values()))


# --- the machine -------------------------------------------------------------------------

def host_available_bytes(meminfo: str = '/proc/meminfo'):
  """(bytes, what they are) of the host's available memory: /proc/meminfo MemAvailable, else
  the free physical pages (os.sysconf), else (None, 'unknown')."""
  try:
    with open(meminfo) as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) * 1024, 'the available memory (MemAvailable)'  # kB
  except (OSError, ValueError, IndexError):
    pass
  try:
    return (os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE'),
            'the free memory (sysconf)')
  except (ValueError, OSError, AttributeError):
    return None, 'unknown'


def device_limit_bytes(num_devices=None):
  """Sum of `bytes_limit` over the first num_devices local devices (None = all) when JAX's
  backend is already initialised and reports it (GPU, TPU); None otherwise (CPU, or no
  backend yet: this never initialises one)."""
  try:
    from jax._src import xla_bridge
    if not xla_bridge.backends_are_initialized():
      return None
    import jax
    devices = jax.local_devices()[:num_devices]
    limits = [(d.memory_stats() or {}).get('bytes_limit') for d in devices]
  except Exception:  # noqa: BLE001  (a private API, or a backend without memory_stats)
    return None
  if not limits or not all(limits):
    return None
  return int(sum(limits))


def limit_bytes(environ=None):
  """(bytes, what they are) of the memory a run may use; (None, reason) when unknown."""
  environ = os.environ if environ is None else environ
  text = environ.get(ENV_LIMIT, '').strip()
  if text:
    try:
      value = int(float(text))
    except ValueError:
      raise ValueError(f'{ENV_LIMIT}: expected a number of bytes, got {text!r}') from None
    if value > 0:
      return value, f'the limit {ENV_LIMIT}'
  device = device_limit_bytes()
  if device is not None:
    return device, 'the device memory'
  return host_available_bytes()


def gib(num_bytes: float) -> str:
  """'12.3 GiB'."""
  return f'{num_bytes / 2 ** 30:.1f} GiB'


def max_seeds(config, scheme_name: str, limit: int) -> int:
  """The largest --num_seeds whose estimate fits in limit (0 when none does); pure."""
  cfg = copy.deepcopy(config)

  def fits(seeds):
    cfg.num_seeds = seeds
    return estimate_memory_bytes(cfg, scheme_name) <= limit

  lo, hi = 0, max(1, config.num_seeds)
  while fits(hi):  # the estimate grows with the seeds: double, then bisect
    lo, hi = hi, 2 * hi
  while hi - lo > 1:
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if fits(mid) else (lo, mid)
  return lo


def _advice(config, scheme_name: str, limit: int) -> str:
  """What would fit: fewer seeds, running the seeds one at a time, or smaller sizes."""
  fit = max_seeds(config, scheme_name, limit)
  advice = f'use at most {fit} seeds' if fit else 'even 1 seed does not fit: shrink the sizes'
  if runs_at_once(config, 2) > 1:  # the seeds are computed together: map would fit more
    one_at_a_time = copy.deepcopy(config)
    one_at_a_time.train.seed_strategy = 'map'
    if estimate_memory_bytes(one_at_a_time, scheme_name) <= limit:
      advice += ' or --config.train.seed_strategy=map (one run at a time)'
  return advice


def check(config, scheme_names, environ=None) -> None:
  """ValueError naming --num_seeds when a scheme's estimate exceeds the limit; no compute.

  The message says the estimate, the limit and what would fit, e.g. '--num_seeds: 100000
  seeds of mle need an estimated 9.3 GiB, more than the available memory (MemAvailable),
  7.5 GiB; use at most 80000 seeds, or set DIVBENCH_MEMORY_LIMIT_BYTES to overrule the
  estimate (benchmarks/engine/memory.py)'.
  """
  limit, what = limit_bytes(environ)
  if limit is None:
    return
  for name in scheme_names:
    need = estimate_memory_bytes(config, name)
    if need > limit:
      runs = num_runs(config, name)
      grid = f' × {len(config.pis)} π' if runs != config.num_seeds else ''
      raise ValueError(
          f'--num_seeds: {config.num_seeds} seeds{grid} of {name} need an estimated '
          f'{gib(need)}, more than {what}, {gib(limit)}; {_advice(config, name, limit)}, or '
          f'set {ENV_LIMIT} to overrule the estimate (benchmarks/engine/memory.py)')


def check_run(config, resolved, environ=None) -> None:
  """`check` of every scheme (or variant) of a run, each under its own config, and of the
  warm start (an MLE run of every seed) when config.train.warm_start_steps > 0.

  Args:
    config: the run's config.
    resolved: {label: (scheme name, config)}, as `configuration.resolve_variants` gives.
    environ: as for `limit_bytes`.
  """
  if config.train.warm_start_steps:
    check(config, ['mle'], environ)
  for name, cfg in resolved.values():
    check(cfg, [name], environ)
