"""How much memory a run needs, estimated from its config alone (before any compilation).

`benchmarks.engine.configuration.validate` refuses a config whose estimate exceeds the memory the machine
has (`limit_bytes`), naming --num_seeds, instead of failing after compilation in XLA's
allocator or the kernel's OOM killer.

It is an estimate with a safety factor, not a measurement. Counted (float32 = 4 bytes):
  * states (`state_bytes`): per run, parameters and Adam's two moments of every network it
    trains: the generator (models/lstm.py: embedding V·E, 4 gates of (E + H)·H + H, output
    H·V + V), the CNN or LSTM discriminator, professor forcing's GRU or CoT's mediator;
    SeqGAN's second Adam and delayed copy. tests/test_memory.py pins these counts to the
    schemes' own init. Two copies (a chunk's input and output: jit does not donate them).
  * working memory, the largest of: a training step (PARAM_TEMPS parameter-sized buffers;
    activations: LSTM states [B, T, ·], logits in chunks of generator.logits_chunk_bytes
    (models/output_layer.py), the scheme's full [B, T, V] arrays, rollouts and discriminator
    inputs), an evaluation (the samples, and its largest stage: eval.batch_size sequences
    sampled or scored at a time, or the enumeration chunk), each times the runs computed at
    once (seed_strategy 'map': 1, 'batched': map_batch_size, 'vmap': all; train.over_runs);
    and a third copy of the states (a checkpoint's bytes, between chunks).
  * fixed: the oracle, the train and test tokens, the results rows held in memory.
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

Schemes (and an experiment's variants) run one after another, so a config needs the largest
of its schemes' estimates (with the warm start's generators, kept for every scheme).

The limit (`limit_bytes`) is DIVBENCH_MEMORY_LIMIT_BYTES when set (a test, or a machine
where the estimate is too cautious), else the memory of the local devices when JAX's backend
is already initialised and reports a `bytes_limit` (GPUs, TPUs), else the host's available
memory (/proc/meminfo MemAvailable). It never initialises a backend itself: a multi-host run
calls `jax.distributed.initialize` after validation, and that must come first.
"""

import copy
import os

F32 = 4                         # bytes of a float32 or int32
RUNTIME_BYTES = 1152 * 2 ** 20  # python, jax, the XLA compiler's memory, plotting (measured)
SAFETY = 1.5                    # multiplies every size-dependent term
PARAM_TEMPS = 4                 # parameter-sized buffers of a step (gradients, updates, carries)
ROW_BYTES = 4096                # one results row (a Python dict of ~40 fields)
ENV_LIMIT = 'DIVBENCH_MEMORY_LIMIT_BYTES'


# --- parameter counts --------------------------------------------------------------------

def lstm_params(vocab_size: int, embed_dim: int, hidden_dim: int) -> int:
  """Parameters of an LSTMLM (models/lstm.py): embedding, 4 gates, output layer."""
  V, E, H = vocab_size, embed_dim, hidden_dim
  return V * E + 4 * (E * H + H * H + H) + H * V + V


def cnn_widths(config):
  """The (width, filters) pairs of the CNN discriminator that fit in T (others are dropped)."""
  dc = config.discriminator
  return [(w, n) for w, n in zip(dc.filter_widths, dc.num_filters) if w <= config.problem.seq_len]


def discriminator_params(config, kind: str) -> int:
  """Parameters of the adversarial schemes' discriminator (models/discriminator.py)."""
  dc, V = config.discriminator, config.problem.vocab_size
  if kind == 'oracle':  # the exact best response: nothing trained
    return 0
  if kind == 'lstm':  # flax OptimizedLSTMCell: input kernels without bias, then a logit
    E, H = dc.embed_dim, dc.hidden_dim
    return V * E + 4 * (E * H + H * H + H) + H + 1
  widths = cnn_widths(config)
  features = sum(n for _, n in widths)
  convs = sum(w * dc.embed_dim * n + n for w, n in widths)
  return V * dc.embed_dim + convs + 2 * (features * features + features) + features + 1


def sequence_discriminator_params(config) -> int:
  """Parameters of professor forcing's GRU discriminator over [T, H + V] behaviours."""
  pf = config.professor_forcing
  D, Hd = (2 if pf.disc_bidirectional else 1), pf.disc_hidden_dim
  features = config.generator.hidden_dim + config.problem.vocab_size
  head, width = 0, D * Hd
  for _ in range(pf.disc_mlp_layers):
    head, width = head + width * pf.disc_mlp_dim + pf.disc_mlp_dim, pf.disc_mlp_dim
  return features * D * 3 * Hd + D * 3 * Hd + D * Hd * 3 * Hd + D * Hd + head + width + 1


def generator_params(config) -> int:
  """Parameters of the generator (config.generator's widths on the problem's vocabulary)."""
  return lstm_params(config.problem.vocab_size, config.generator.embed_dim,
                     config.generator.hidden_dim)


def adversarial_kind(config, scheme_name: str):
  """The discriminator kind of an adversarial scheme, None for the others."""
  if scheme_name in ('gan_pi', 'gumbel_gan', 'seqgan'):
    return config[scheme_name].discriminator
  return None


def network_params(config, scheme_name: str) -> dict:
  """{network: parameter count} of the networks a run of the scheme trains."""
  out = {'generator': generator_params(config)}
  kind = adversarial_kind(config, scheme_name)
  if kind is not None:
    out['discriminator'] = discriminator_params(config, kind)
  if scheme_name == 'professor_forcing':
    out['discriminator'] = sequence_discriminator_params(config)
  if scheme_name == 'cot':
    f = config.cot.mediator_width_factor
    out['mediator'] = lstm_params(config.problem.vocab_size, f * config.generator.embed_dim,
                                  f * config.generator.hidden_dim)
  return out


def state_bytes(config, scheme_name: str) -> int:
  """Bytes of one run's state: parameters and two Adam moments of every network."""
  params = network_params(config, scheme_name)
  floats = 3 * sum(params.values())
  if scheme_name == 'seqgan':  # the policy-gradient phase's own Adam, and a delayed copy
    floats += 2 * params['generator']
    if config.seqgan.rollout == 'delayed':
      floats += params['generator']
  return F32 * floats


# --- working memory of one run -------------------------------------------------------------

def _logits(config, rows: int) -> int:
  """Bytes of float32 logits held at once for `rows` teacher-forced positions (chunked)."""
  return min(config.generator.logits_chunk_bytes, F32 * rows * config.problem.vocab_size)


def teacher_forced_bytes(config, num: int, *, width: int = 1, backward: bool = True) -> int:
  """Log-probs of num sequences: LSTM states [num, T, ·] and chunked logits (3 buffers with
  the backward pass: logits, softmax, their cotangent)."""
  T = config.problem.seq_len
  E, H = width * config.generator.embed_dim, width * config.generator.hidden_dim
  states = F32 * num * T * (E + (10 if backward else 6) * H)
  return states + (3 if backward else 2) * _logits(config, num * T)


def sampling_bytes(config, num: int) -> int:
  """Ancestral sampling of num sequences: per-step logits [num, V] and their CDF, tokens."""
  V, T, H = config.problem.vocab_size, config.problem.seq_len, config.generator.hidden_dim
  return F32 * num * (2 * V + 8 * H + 2 * T)


def full_bytes(config, num: int) -> int:
  """One float32 [num, T, V] array (unchunked next-token distributions or relaxed one-hots)."""
  return F32 * num * config.problem.seq_len * config.problem.vocab_size


def discriminator_bytes(config, kind: str, num: int, *, backward: bool = True) -> int:
  """Activations of the CNN / LSTM discriminator on num sequences."""
  dc, T = config.discriminator, config.problem.seq_len
  if kind == 'oracle':  # log P − log Q by teacher forcing
    return 2 * teacher_forced_bytes(config, num, backward=False)
  if kind == 'lstm':
    return F32 * num * T * (dc.embed_dim + (10 if backward else 6) * dc.hidden_dim)
  widths = cnn_widths(config)
  convs = sum((T - w + 1) * n for w, n in widths)
  features = sum(n for _, n in widths)  # pooled, then the highway's gate and layer
  return F32 * num * (T * dc.embed_dim + (2 if backward else 1) * (convs + 3 * features))


def step_bytes(config, scheme_name: str) -> int:
  """Activations of one run's training step (what a step holds beyond parameter-sized
  buffers). The multiples of [B, T, V] arrays were fitted to XLA's temporary buffers on the
  seqgan preset (V = 5,000), where they dominate."""
  B, T = config.train.batch_size, config.problem.seq_len
  tf, full = teacher_forced_bytes(config, B), full_bytes(config, B)
  if scheme_name == 'mle':
    return tf
  if scheme_name == 'scheduled_sampling':  # each step's model sample of the previous token
    return tf + sampling_bytes(config, B)
  if scheme_name == 'direct':
    if config.direct.estimator == 'per_step':  # P's and Q's [B, T, V] next-token KLs, backward
      return sampling_bytes(config, B) + 7 * full
    return sampling_bytes(config, B) + 2 * tf
  if scheme_name == 'cot':  # KL(G ‖ M) over full [B, T, V]; the mediator on data and samples
    return (sampling_bytes(config, B) + 4 * full
            + teacher_forced_bytes(config, 2 * B, width=config.cot.mediator_width_factor))
  if scheme_name == 'distill':  # student and teacher samples, both models' chunked logits
    return 2 * sampling_bytes(config, B) + 2 * tf + 4 * _logits(config, B * T)
  if scheme_name == 'professor_forcing':  # [B, T, H + V] behaviours through the GRU
    pf = config.professor_forcing
    D = 2 if pf.disc_bidirectional else 1
    behaviour = F32 * B * T * (config.generator.hidden_dim + config.problem.vocab_size)
    return tf + 8 * behaviour + 6 * F32 * B * T * D * 3 * pf.disc_hidden_dim
  kind = adversarial_kind(config, scheme_name)
  if kind is None:  # a scheme this module does not know: as if it held 10 [B, T, V] arrays
    return sampling_bytes(config, B) + tf + 10 * full
  d_data = discriminator_bytes(config, kind, 2 * B)  # D on B data and B samples
  if scheme_name == 'seqgan':  # rollouts: N completions of each prefix, then D scores them all
    completions = (T - 1) * config.seqgan.num_rollouts * B
    rollouts = max(sampling_bytes(config, completions),
                   discriminator_bytes(config, kind, completions, backward=False))
    return tf + max(d_data, rollouts)
  gumbel = scheme_name == 'gumbel_gan' or config.gan_pi.estimator == 'gumbel'
  relaxed = 3 * full + 2 * discriminator_bytes(config, 'lstm' if kind == 'oracle' else kind,
                                                2 * B) if gumbel else 0
  return sampling_bytes(config, B) + tf + d_data + relaxed


def evaluation_bytes(config) -> int:
  """Working memory of one run's evaluation (benchmarks/engine/evaluate.py): the samples and
  log-probs it keeps, and the largest of its stages (sampling, scoring, the exposure KLs, the
  enumeration), each eval.batch_size sequences at a time."""
  ec, T = config.eval, config.problem.seq_len
  n, bs, m = ec.num_samples, ec.batch_size, config.problem.num_test
  held = F32 * (n * T + 4 * n + 4 * m)  # Q's samples, the log-probs of both sides
  if ec.fresh_test:
    held += F32 * m * T
  if ec.bleu:  # references and n-gram ids of both sample sets (numpy, on the host)
    held += 2 * F32 * (n + m) * T * (ec.bleu_n + 1)
  score = teacher_forced_bytes(config, bs, backward=False)
  stage = max(sampling_bytes(config, bs), score)
  if ec.get('exposure_bias'):  # per-step KL(P_t ‖ Q_t): both models' logits, chunked
    stage = max(stage, 2 * score)
  if ec.exact:
    num = min(ec.enumerate_chunk, config.problem.vocab_size ** T)
    stage = max(stage, 3 * teacher_forced_bytes(config, num, backward=False))
  return held + stage


# --- a whole run ---------------------------------------------------------------------------

def uses_pi(config, scheme_name: str) -> bool:
  """Whether the runner sweeps the π grid for the scheme (its Scheme.uses_pi; True for a
  scheme this module does not know)."""
  if scheme_name == 'direct':
    return config.direct.divergence == 'js_pi'
  if scheme_name == 'distill':
    return config.distill.divergence == 'jsd'
  return scheme_name not in ('mle', 'scheduled_sampling', 'professor_forcing', 'gumbel_gan',
                             'seqgan')


def num_runs(config, scheme_name: str) -> int:
  """Runs of the scheme: seeds × π (when the scheme sweeps π)."""
  return config.num_seeds * (len(config.pis) if uses_pi(config, scheme_name) else 1)


def runs_at_once(config, runs: int) -> int:
  """How many runs a chunk computes at the same time (train.over_runs)."""
  strategy = config.train.seed_strategy
  if strategy == 'vmap':
    return runs
  if strategy == 'batched':
    return min(config.train.map_batch_size, runs)
  return 1


def breakdown(config, scheme_name: str) -> dict:
  """{part: bytes} before the safety factor; the estimate is RUNTIME_BYTES + SAFETY × their
  sum.

  'states': two copies of every run's state (a chunk's input and output: jit does not donate
    them), the warm-start generators and the nll_test-selected ones.
  'working': the larger of a step's or an evaluation's working memory (times the runs
    computed at once) and a third copy of the states (the checkpoint's bytes, written
    between chunks).
  'fixed': the oracle, the train and test tokens, the results rows.
  """
  pc, tc = config.problem, config.train
  runs = num_runs(config, scheme_name)
  gen = F32 * generator_params(config)
  one_copy = runs * state_bytes(config, scheme_name)
  states = 2 * one_copy
  if tc.warm_start_steps:  # every seed's warm-start generator, kept for every scheme
    states += config.num_seeds * gen
  if config.eval.alphas and config.eval.select == 'nll_test':  # the selected generators
    states += 2 * runs * gen
  params = sum(network_params(config, scheme_name).values())
  permutation = 4 * F32 * pc.num_train  # the epoch's shuffle (a sort of the data indices)
  step = F32 * PARAM_TEMPS * params + permutation + step_bytes(config, scheme_name)
  working = max(runs_at_once(config, runs) * max(step, evaluation_bytes(config)), one_copy)
  oracle = F32 * lstm_params(pc.vocab_size, pc.embed_dim, pc.hidden_dim)
  evaluations = tc.num_steps // tc.eval_every + 1
  alphas = config.eval.alphas
  rows = runs * evaluations * (1 + (1 if isinstance(alphas, (int, float)) else len(alphas)))
  fixed = oracle + F32 * (pc.num_train + pc.num_test) * (pc.seq_len + 1) + ROW_BYTES * rows
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
  if config.train.seed_strategy != 'map':
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
