"""Throughput: seed-steps/s of MLE training against the number of seeds S, and sampling speed.

  python -m benchmarks.measure.throughput --preset=seqgan --num_seeds=1,2,4 --output_dir=DIR

For each S it times the jitted training chunk (`benchmarks.engine.train.make_runner`, K steps per
call, `block_until_ready`, median of --repeats calls after a compile call whose time is
reported separately; all S and the PyTorch loop are timed round-robin, so a change in the
machine's speed during the run hits them alike) and reports seed-steps/s, the ratio to S=1,
the achieved FLOP/s from an analytic count, and its fraction of the device's dense-matmul
rate measured in the same run. With PyTorch installed (extra `[compare]`), it times the same
model and step as a plain per-seed PyTorch loop (nn.LSTM, Adam, clipping), and
`torch.multinomial` sampling. Writes throughput.json, throughput.md and throughput.png.

Competing processes distort these numbers (a PyTorch per-seed loop slows several-fold when
others share the cores), so the load averages and the matmul rate are recorded before and
after the measurements (`machine_state`; result['machine']), and when `machine_was_busy`
gives reasons, throughput.md opens with a warning and stderr says so.

`--generator=transformer` measures the transformer generator instead (config.generator's
depth, heads and positions; width E, MLP width H) against the same decoder written in PyTorch
(pre-LN blocks, `scaled_dot_product_attention` with a causal mask), and sampling of that
generator with JAX's key-value cache under `lax.scan` against a PyTorch loop with its own
key-value cache and `torch.multinomial` (the LSTM's sampling row samples the oracle).

FLOP count of one MLE step of one seed (multiply-add = 2 FLOPs), batch B, length T:
  LSTM         forward F = 2·B·T·(4H·(E + H) + H·V)   (gate projections, recurrence, output)
  transformer  forward F = 2·B·T·(L·(4E² + 2T·E + 2E·H) + E·V)   (q, k, v and output
               projections, scores and weighted sums over all T positions, the MLP, output)
  backward ≈ 2F (gradients w.r.t. inputs and weights), so a step ≈ 3F.
The softmax, embedding gather and optimiser update are O(B·T·V) and O(#params) and left out,
so the count is a lower bound on the work done.
"""

import importlib.util
import json
import math
import os
import statistics
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import configs
from benchmarks.analysis import figures
from benchmarks.engine import cli
from benchmarks.engine import configuration
from benchmarks.engine import files
from benchmarks.engine import train
from models import oracle
import objectives
from objectives import base as scheme_base

_PRESET = flags.DEFINE_string('preset', 'seqgan', 'Preset whose sizes are measured.')
_NUM_SEEDS = flags.DEFINE_list('num_seeds', ['1', '2', '4'], 'Values of S to measure.')
_STRATEGY = flags.DEFINE_string('strategy', None, "Seed strategy ('map', 'vmap', 'batched'); "
                                "default: 'map' on CPU, 'vmap' on accelerators.")
_STEPS = flags.DEFINE_integer('steps', 157, 'Steps per timed call (157 = one SeqGAN epoch).')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed calls per S (the median is reported).')
_SAMPLES = flags.DEFINE_integer('samples', 10_000, 'Sequences drawn in the sampling benchmark.')
_TORCH = flags.DEFINE_bool('torch', True, 'Compare with PyTorch when it is installed.')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'results/throughput', 'Where results go.')
_ADVERSARIAL = flags.DEFINE_string('adversarial', 'gan_pi', 'An adversarial scheme also timed '
                                   "(π = 0.5 if it takes one); '' skips it.")
_ADVERSARIAL_STEPS = flags.DEFINE_integer('adversarial_steps', 20, 'Steps per timed call of '
                                          'the adversarial scheme.')
PARTS = ('mle', 'adversarial', 'sampling', 'memory')
GENERATORS = ('lstm', 'transformer')
_GENERATOR = flags.DEFINE_string('generator', 'lstm', 'The generator measured: lstm or '
                                 'transformer (config.generator.kind).')
_PARTS = flags.DEFINE_list('parts', list(PARTS), 'What to measure: MLE training (with the '
                           'PyTorch loop), the --adversarial scheme, sampling, memory.')


def step_flops(config) -> float:
  """Analytic FLOPs of one MLE step of one seed (see the module docstring)."""
  B, T = config.train.batch_size, config.problem.seq_len
  V, E, H = config.problem.vocab_size, config.generator.embed_dim, config.generator.hidden_dim
  if config.generator.get('kind', 'lstm') == 'transformer':
    L = config.generator.num_layers
    return 3 * 2 * B * T * (L * (4 * E * E + 2 * T * E + 2 * E * H) + E * V)
  return 3 * 2 * B * T * (4 * H * (E + H) + H * V)


def _median_time(fn, repeats):
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def interleaved_times(fns, repeats):
  """{name: [wall time of each repeat]} of zero-argument callables, timed round-robin.

  Every repeat times each callable once, in turn, so a change in the machine's speed during
  the run (other tenants, clock scaling) affects all of them alike; ratios are best taken
  per repeat (`paired_ratio`).
  """
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      t = time.perf_counter()
      jax.block_until_ready(fn())
      times[name].append(time.perf_counter() - t)
  return times


def paired_ratio(numerator, denominator) -> float:
  """Median over repeats of numerator[i] / denominator[i] (two lists of times)."""
  return statistics.median(a / b for a, b in zip(numerator, denominator))


def matmul_rate(n: int = 2048, repeats: int = 5) -> float:
  """The device's measured dense float32 matmul FLOP/s (n x n x n): its practical peak."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
  f = jax.jit(lambda x: x @ x)
  jax.block_until_ready(f(a))
  return 2 * n ** 3 / _median_time(lambda: f(a), repeats)


_START = (time.monotonic(), time.process_time())  # the first window of `machine_state`
BUSY_LOAD = 0.5      # busy: other processes' load > BUSY_LOAD x cores (before or after)
BUSY_RATE = 0.2      # busy: matmul rate after differs from before by more than 20%


def cores() -> int:
  """The cores this process may run on."""
  return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


def _busy_cpu_s():
  """Seconds of CPU time all processes have spent busy since boot (/proc/stat), or None."""
  try:
    with open('/proc/stat') as f:
      fields = [int(x) for x in f.readline().split()[1:]]
  except (OSError, ValueError):
    return None
  idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
  return (sum(fields[:8]) - idle) / os.sysconf('SC_CLK_TCK')


def machine_state(previous=None, matmul_flops=None) -> dict:
  """The machine's load now: load averages, an estimate of this process's share of the 1-min
  one, the matmul rate (measured unless given) and counters for the next window.

  own_load: this process's CPU seconds per second over the window since `previous` (or since
  import), weighted by the 1-min load average's memory: own cores x (1 - exp(-window / 60 s)).
  others_cores (with `previous`, where /proc/stat exists): the cores other processes kept busy
  on average over the window (all CPU time minus this process's, per second).
  """
  now, cpu, busy = time.monotonic(), time.process_time(), _busy_cpu_s()
  t0, cpu0 = (previous['clock'], previous['cpu_s']) if previous else _START
  window = max(now - t0, 1e-9)
  own = (cpu - cpu0) / window
  state = dict(load_avg=list(os.getloadavg()), own_load=own * (1 - math.exp(-window / 60)),
               matmul_flops=matmul_rate() if matmul_flops is None else matmul_flops,
               clock=now, cpu_s=cpu, busy_cpu_s=busy)
  if previous and busy is not None and previous.get('busy_cpu_s') is not None:
    state['others_cores'] = max((busy - previous['busy_cpu_s']) / window - own, 0.0)
  return state


def machine_was_busy(before, after, cores) -> list:
  """Reasons (sentences) to distrust the timings taken between two `machine_state`s; [] = idle.

  Busy when the 1-min load average minus this process's share (own_load) exceeds
  BUSY_LOAD x cores before or after, when other processes kept more than BUSY_LOAD x cores busy
  on average in between (others_cores, where measured), or when the matmul rate after differs
  from the one before by more than BUSY_RATE.
  """
  limit = BUSY_LOAD * cores
  reasons = []
  for when, state in (('before', before), ('after', after)):
    load, own = state['load_avg'][0], state.get('own_load', 0.0)
    if load - own > limit:
      reasons.append(f'1-min load average {when} the measurements {load:.2f} ({load - own:.2f} '
                     f'beyond this process) > {BUSY_LOAD:g} x {cores} cores')
  others = after.get('others_cores')
  if others is not None and others > limit:
    reasons.append(f'other processes kept {others:.2f} cores busy on average during the '
                   f'measurements (> {BUSY_LOAD:g} x {cores} cores)')
  change = after['matmul_flops'] / before['matmul_flops'] - 1
  if abs(change) > BUSY_RATE:
    reasons.append(f'matmul rate {change:+.0%} after the measurements '
                   f'({before["matmul_flops"] / 1e9:.1f} -> {after["matmul_flops"] / 1e9:.1f} '
                   f'GFLOP/s; more than {BUSY_RATE:.0%})')
  return reasons


def jax_chunks(config, problem, seeds, strategy, steps, scheme_name='mle'):
  """{S: (compile_s, run)}: compiled training chunks of `steps` steps, warmed up (π = 0.5
  for schemes that take one)."""
  out = {}
  for s in seeds:
    c = config.copy_and_resolve_references()
    c.train.update(seed_strategy=strategy, eval_every=steps, num_steps=steps, map_batch_size=s)
    scheme = objectives.make(scheme_name, c, problem)
    runner = train.make_runner(scheme, problem, c)
    keys = train.run_keys(0, range(s))
    pi = 0.5 if scheme.uses_pi else None
    args = (runner.init(keys), keys, train.pis_array([(i, pi) for i in range(s)]),
            jnp.int32(0), problem.train)
    t = time.perf_counter()
    compiled = runner.chunk.lower(*args).compile()
    compile_s = time.perf_counter() - t
    jax.block_until_ready(compiled(*args))  # warm-up
    out[s] = (compile_s, lambda compiled=compiled, args=args: compiled(*args))
  return out


def _torch_transformer(config):
  """The transformer generator (models/transformer.py) as a PyTorch module: forward(inputs
  [B, T]) -> logits [B, T, V]; `cached(tokens [B], cache, t)` one position with a key-value
  cache (sampling)."""
  import torch
  gc, V, T = config.generator, config.problem.vocab_size, config.problem.seq_len
  D, M, L, heads = gc.embed_dim, gc.hidden_dim, gc.num_layers, gc.num_heads
  F = torch.nn.functional

  class Block(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.ln1, self.ln2 = torch.nn.LayerNorm(D), torch.nn.LayerNorm(D)
      self.qkv, self.proj = torch.nn.Linear(D, 3 * D), torch.nn.Linear(D, D)
      self.fc1, self.fc2 = torch.nn.Linear(D, M), torch.nn.Linear(M, D)

    def heads(self, x):
      return x.view(x.shape[0], x.shape[1], heads, D // heads).transpose(1, 2)

    def forward(self, r, cache=None, t=None):
      q, k, v = self.qkv(self.ln1(r)).chunk(3, dim=-1)
      q, k, v = self.heads(q), self.heads(k), self.heads(v)
      if cache is None:
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
      else:  # one position t: write its keys and values, attend to positions <= t
        cache[0][:, :, t:t + 1], cache[1][:, :, t:t + 1] = k, v
        a = F.scaled_dot_product_attention(q, cache[0][:, :, :t + 1], cache[1][:, :, :t + 1])
      r = r + self.proj(a.transpose(1, 2).reshape(r.shape))
      return r + self.fc2(F.gelu(self.fc1(self.ln2(r)), approximate='tanh'))  # as jax.nn.gelu

  class LM(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.emb = torch.nn.Embedding(V, D)
      self.pos = torch.nn.Parameter(torch.zeros(T, D))
      self.blocks = torch.nn.ModuleList([Block() for _ in range(L)])
      self.lnf, self.out = torch.nn.LayerNorm(D), torch.nn.Linear(D, V)

    def forward(self, inputs):
      r = self.emb(inputs) + self.pos[:inputs.shape[1]]
      for block in self.blocks:
        r = block(r)
      return self.out(self.lnf(r))

    def cached(self, tokens, caches, t):
      r = (self.emb(tokens) + self.pos[t])[:, None]
      for block, cache in zip(self.blocks, caches):
        r = block(r, cache, t)
      return self.out(self.lnf(r[:, 0]))

  return LM()


def _torch_lstm(config):
  import torch
  V, E, H = config.problem.vocab_size, config.generator.embed_dim, config.generator.hidden_dim

  class LM(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.emb = torch.nn.Embedding(V, E)
      self.lstm = torch.nn.LSTM(E, H, batch_first=True)
      self.out = torch.nn.Linear(H, V)

    def forward(self, inputs):
      h, _ = self.lstm(self.emb(inputs))
      return self.out(h)

  return LM()


def torch_loop(config, problem, steps):
  """(device, version, run): `steps` steps of the same model and step as a PyTorch loop."""
  import torch
  V, B = config.problem.vocab_size, config.train.batch_size
  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  torch.manual_seed(0)
  transformer = config.generator.get('kind', 'lstm') == 'transformer'
  model = (_torch_transformer(config) if transformer else _torch_lstm(config)).to(device)
  for p in model.parameters():
    torch.nn.init.normal_(p, std=config.generator.init_scale)
  opt = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate)
  data = torch.as_tensor(np.array(problem.train), dtype=torch.long, device=device)
  start = torch.zeros((B, 1), dtype=torch.long, device=device)
  gen = torch.Generator(device='cpu').manual_seed(0)

  def run():
    for _ in range(steps):
      idx = torch.randint(0, data.shape[0], (B,), generator=gen).to(device)
      batch = data[idx]
      logits = model(torch.cat([start, batch[:, :-1]], dim=1))
      loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), batch.reshape(-1))
      opt.zero_grad()
      loss.backward()
      torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
      opt.step()
    if device == 'cuda':
      torch.cuda.synchronize()

  run()  # warm-up
  print(f'torch: {device}, {torch.get_num_threads()} threads', flush=True)
  return device, torch.__version__, run


def measure_training(config, problem, seeds, strategy, steps, repeats, name='mle',
                     with_torch=False):
  """Scheme `name`'s chunks for each S (and the PyTorch MLE loop), timed round-robin.

  Returns ([{S, compile_s, chunk_s, seed_steps_per_s, per_seed_time_ratio, times} (plus
  speedup_vs_torch with torch)], torch result dict or None). chunk_s is the median time; the
  ratios are medians of per-repeat ratios (`interleaved_times`, `paired_ratio`):
  per_seed_time_ratio = (t_S / S) / t_first, speedup_vs_torch = t_torch / (t_S / S).
  """
  chunks = jax_chunks(config, problem, seeds, strategy, steps, name)
  fns = {s: run for s, (_, run) in chunks.items()}
  if with_torch:
    device, version, fns['torch'] = torch_loop(config, problem, steps)
  times = interleaved_times(fns, repeats)
  rows = []
  for s, (compile_s, _) in chunks.items():
    dt = statistics.median(times[s])
    per_seed = [t / s for t in times[s]]
    row = dict(S=s, compile_s=compile_s, chunk_s=dt, seed_steps_per_s=s * steps / dt,
               per_seed_time_ratio=paired_ratio(per_seed, times[seeds[0]]), times=times[s])
    if with_torch:
      row['speedup_vs_torch'] = paired_ratio(times['torch'], per_seed)
    rows.append(row)
    print(f'jax {name} {strategy} S={s}: {s * steps / dt:.2f} seed-steps/s '
          f'(compile {compile_s:.1f}s, {steps} steps in {dt:.2f}s)', flush=True)
  torch_result = None
  if with_torch:
    dt = statistics.median(times['torch'])
    torch_result = dict(device=device, chunk_s=dt, seed_steps_per_s=steps / dt, version=version,
                        times=times['torch'])
    print(f'torch ({device}): {steps / dt:.1f} seed-steps/s', flush=True)
  return rows, torch_result


def torch_transformer_like(config, params):
  """`_torch_transformer(config)` holding the JAX transformer's variables `params`."""
  import torch
  net = _torch_transformer(config)
  p = {k: torch.as_tensor(np.array(v)) for k, v in params['params'].items()}
  with torch.no_grad():
    net.emb.weight.copy_(p['embedding'])
    net.pos.copy_(p['position'])
    for i, block in enumerate(net.blocks):
      for name, layer in (('ln1', block.ln1), ('ln2', block.ln2)):
        layer.weight.copy_(p[f'{name}_scale'][i])
        layer.bias.copy_(p[f'{name}_bias'][i])
      for w, b, layer in (('Wqkv', 'bqkv', block.qkv), ('Wproj', 'bproj', block.proj),
                          ('W1', 'b1', block.fc1), ('W2', 'b2', block.fc2)):
        layer.weight.copy_(p[w][i].T)
        layer.bias.copy_(p[b][i])
    net.lnf.weight.copy_(p['lnf_scale'])
    net.lnf.bias.copy_(p['lnf_bias'])
    net.out.weight.copy_(p['Wo'].T)
    net.out.bias.copy_(p['bo'])
  return net


def _transformer_sampler(config, params, num):
  """A PyTorch sampler of `num` sequences with a key-value cache, from the transformer
  generator with the JAX variables `params`."""
  import torch
  net = torch_transformer_like(config, params)
  gc, T = config.generator, config.problem.seq_len
  shape = (num, gc.num_heads, T, gc.embed_dim // gc.num_heads)

  @torch.no_grad()
  def sample():
    caches = [(torch.zeros(shape), torch.zeros(shape)) for _ in range(gc.num_layers)]
    tok = torch.zeros(num, dtype=torch.long)
    out = []
    for t in range(T):
      probs = torch.softmax(net.cached(tok, caches, t), dim=1)
      tok = torch.multinomial(probs, 1)[:, 0]
      out.append(tok)
    return torch.stack(out, 1)

  return sample


def measure_sampling(problem, num, repeats, with_torch, config=None):
  """Sequences/s drawn from the oracle (or, with a transformer config, from the transformer
  generator at its init): JAX samplers and torch.multinomial, timed round-robin."""
  model, params = problem.model, problem.params
  torch_sample = None
  if config is not None and config.generator.get('kind', 'lstm') == 'transformer':
    model = scheme_base.generator_from_config(config)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, model.seq_len), jnp.int32))
    if with_torch:
      torch_sample = _transformer_sampler(config, params, num)
  fns = {}
  for method in ('icdf', 'gumbel'):
    f = jax.jit(lambda k, m=method: model.apply(params, k, num, 1.0, m, method='sample'))
    jax.block_until_ready(f(jax.random.PRNGKey(0)))
    fns[f'jax_{method}'] = lambda f=f: f(jax.random.PRNGKey(1))
  if torch_sample is not None:
    torch_sample()
    fns['torch_multinomial'] = lambda: (torch_sample(), None)[1]
  elif with_torch:
    import torch
    p = {k: torch.as_tensor(np.array(v)) for k, v in params['params'].items()}
    W = torch.cat([p['Wi'], p['Wf'], p['Wog'], p['Wc']], 1)
    U = torch.cat([p['Ui'], p['Uf'], p['Uog'], p['Uc']], 1)
    b = torch.cat([p['bi'], p['bf'], p['bog'], p['bc']])

    @torch.no_grad()
    def sample():
      h = torch.zeros(num, model.hidden_dim)
      c = torch.zeros(num, model.hidden_dim)
      tok = torch.zeros(num, dtype=torch.long)
      out = []
      for _ in range(model.seq_len):
        z = p['embedding'][tok] @ W + h @ U + b
        zi, zf, zo, zc = z.chunk(4, dim=1)
        c = torch.sigmoid(zf) * c + torch.sigmoid(zi) * torch.tanh(zc)
        h = torch.sigmoid(zo) * torch.tanh(c)
        probs = torch.softmax(h @ p['Wo'] + p['bo'], dim=1)
        tok = torch.multinomial(probs, 1)[:, 0]
        out.append(tok)
      return torch.stack(out, 1)

    sample()
    fns['torch_multinomial'] = lambda: (sample(), None)[1]
  times = interleaved_times(fns, repeats)
  out = {name: num / statistics.median(ts) for name, ts in times.items()}
  if with_torch:
    out['icdf_vs_torch'] = paired_ratio(times['torch_multinomial'], times['jax_icdf'])
  for name, rate in out.items():
    print(f'sampling {name}: {rate:.0f} sequences/s', flush=True)
  return out


def eval_memory(config, problem):
  """Compiler-reported peak temporary memory of one seed's evaluation (bytes)."""
  scheme = objectives.make('mle', config, problem)
  runner = train.make_runner(scheme, problem, config)
  keys = train.run_keys(0, [0])
  states = runner.init(keys)
  params = runner.generator_params(states)
  analysis = runner.evaluate_generators.lower(params, keys, 0).compile().memory_analysis()
  if analysis is None:
    return None
  return dict(temp_bytes=int(analysis.temp_size_in_bytes),
              argument_bytes=int(analysis.argument_size_in_bytes),
              output_bytes=int(analysis.output_size_in_bytes))


def plot(result, path):
  """Seed-steps/s against S (log-log), with linear scaling and the PyTorch loop for scale."""
  fig, axes = figures.subplots(width=5.5, height=4)
  ax = axes[0, 0]
  series = [('MLE', result['jax'], 'C0')]
  if result.get('adversarial'):
    series.append((result['adversarial']['scheme'], result['adversarial']['rows'], 'C2'))
  for name, rows, color in series:
    s = [r['S'] for r in rows]
    ax.plot(s, [r['seed_steps_per_s'] for r in rows], 'o-', color=color,
            label=f'JAX {name} ({result["strategy"]})')
    ax.plot(s, [rows[0]['seed_steps_per_s'] * x / s[0] for x in s], ':', color=color,
            alpha=0.6, label=f'{name}: linear in S')
  if result.get('torch'):
    ax.axhline(result['torch']['seed_steps_per_s'], color='C3', ls='--',
               label='PyTorch MLE per-seed loop')
  ax.set_xscale('log', base=2)
  ax.set_yscale('log')
  ax.set_xlabel('seeds S')
  ax.set_ylabel('seed-steps / s')
  ax.set_title(f'Training throughput, preset {result["preset"]}, {result["device"]}',
               fontsize=9)
  ax.legend(fontsize=7)
  figures.save(fig, path)


def _scaling_table(rows, step_flops=None, matmul_flops=None):
  """Markdown rows of a scaling table (FLOP/s columns only with an analytic count)."""
  base = rows[0]['seed_steps_per_s']
  head = '| S | seed-steps/s | ratio to first S | per-seed time ratio | vs PyTorch |'
  if step_flops:
    head += ' GFLOP/s | fraction of matmul rate |'
  lines = [head + ' compile s |', '|' + '---|' * (head.count('|') )]
  for r in rows:
    vs_torch = f'{r["speedup_vs_torch"]:.2f}x' if 'speedup_vs_torch' in r else '-'
    line = (f'| {r["S"]} | {r["seed_steps_per_s"]:.2f} | {r["seed_steps_per_s"] / base:.2f} | '
            f'{r["per_seed_time_ratio"]:.2f} | {vs_torch} |')
    if step_flops:
      gflops = r['seed_steps_per_s'] * step_flops / 1e9
      line += f' {gflops:.1f} | {gflops * 1e9 / matmul_flops:.1%} |'
    lines.append(line + f' {r["compile_s"]:.1f} |')
  return lines


def machine_markdown(machine) -> list:
  """Markdown lines on the machine's load around the measurements (result['machine'])."""
  b, a = machine['before'], machine['after']
  line = (f'Machine ({machine["cores"]} cores): 1-min load average {b["load_avg"][0]:.2f} before '
          f'(this process ~{b["own_load"]:.2f}), {a["load_avg"][0]:.2f} after (this process '
          f'~{a["own_load"]:.2f})')
  if a.get('others_cores') is not None:
    line += f'; other processes used {a["others_cores"]:.2f} cores on average in between'
  line += (f'; matmul rate {b["matmul_flops"] / 1e9:.1f} GFLOP/s before, '
           f'{a["matmul_flops"] / 1e9:.1f} after.')
  lines = [line]
  if machine['busy']:
    lines = ['**Warning: the machine was busy, so these timings (and the ratios to PyTorch, '
             'whose per-seed loop suffers most) are not trustworthy:** '
             + '; '.join(machine['busy']) + '. Rerun on an idle machine.', ''] + lines
  return lines


def markdown(result) -> str:
  generator = result.get('generator', 'lstm')
  lines = [f'# Throughput: preset {result["preset"]}, {generator} generator, on '
           f'{result["device"]}', '']
  if result.get('machine'):
    lines += machine_markdown(result['machine']) + ['']
  lines.append(f'Measured dense matmul rate {result["matmul_flops"] / 1e9:.1f} GFLOP/s.')
  if result.get('jax'):
    lines += ['', f'## MLE ({result["steps"]} steps per call; analytic '
              f'{result["step_flops"] / 1e9:.3f} GFLOP per seed-step)', '']
    lines += _scaling_table(result['jax'], result['step_flops'], result['matmul_flops'])
    lines += ['', 'Ratios are medians of per-repeat ratios (all timed round-robin); per-seed '
              'time ratio = (time of S seeds / S) / time of the first S.']
  if result.get('torch'):
    t = result['torch']['seed_steps_per_s']
    lines += ['', f'PyTorch {result["torch"]["version"]} per-seed loop '
              f'({result["torch"]["device"]}): {t:.1f} seed-steps/s (median).']
  if result.get('adversarial'):
    adv = result['adversarial']
    lines += ['', f'## {adv["scheme"]} ({adv["steps"]} steps per call)', '']
    lines += _scaling_table(adv['rows'])
  if result.get('sampling'):
    smp = dict(result['sampling'])
    ratio = smp.pop('icdf_vs_torch', None)
    source = ('the transformer generator (key-value cache)' if generator == 'transformer'
              else 'the oracle')
    lines += ['', f'Sampling {result["samples"]} sequences from {source}: ' + ', '.join(
        f'{k} {v:.0f}/s' for k, v in smp.items())]
    if ratio is not None:
      lines.append(f'icdf vs torch.multinomial: {ratio:.2f}x')
  if result.get('eval_memory'):
    m = result['eval_memory']
    lines += ['', f'Evaluation of one seed on {result["eval_samples"]} samples: compiler peak '
              f'temporary memory {m["temp_bytes"] / 2**20:.1f} MiB.']
  return '\n'.join(lines) + '\n'


def check_flags(*, preset: str, num_seeds, parts, adversarial: str, counts: dict,
                generator: str = 'lstm'):
  """(the preset's config, the S values) of the flags' values, or ValueError naming the
  flag, before any compute. counts: {'--steps': value, ...}, each a positive integer."""
  if generator not in GENERATORS:
    raise ValueError(f'--generator: {generator!r} is not one of {", ".join(GENERATORS)}')
  config = configs.get_preset(preset)
  config.generator.kind = generator
  try:
    seeds = [int(s) for s in num_seeds]
  except ValueError:
    seeds = []
  if not seeds or any(s < 1 for s in seeds):
    raise ValueError('--num_seeds: positive integers, e.g. 1,2,4')
  configuration.check_unique('--num_seeds', seeds)
  configuration.check_unique('--parts', list(parts))
  for flag, value in counts.items():
    if value < 1:
      raise ValueError(f'{flag}: must be a positive integer, got {value}')
  unknown = set(parts) - set(PARTS)
  if unknown:
    raise ValueError(f'--parts: unknown {", ".join(sorted(unknown))}; known: '
                     f'{", ".join(PARTS)}')
  if adversarial:
    if adversarial not in objectives.REGISTRY:
      raise ValueError(f'--adversarial: unknown scheme {adversarial!r}; known: '
                       f'{", ".join(objectives.REGISTRY)}')
    objectives.check_config(adversarial, config)
  return config, seeds


def main(argv):
  del argv
  cli.quiet_backend_probe()
  try:
    config, seeds = check_flags(
        preset=_PRESET.value, num_seeds=_NUM_SEEDS.value, parts=_PARTS.value,
        adversarial=_ADVERSARIAL.value, generator=_GENERATOR.value,
        counts={'--steps': _STEPS.value, '--repeats': _REPEATS.value,
                '--samples': _SAMPLES.value, '--adversarial_steps': _ADVERSARIAL_STEPS.value})
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  platform = jax.devices()[0].platform
  strategy = _STRATEGY.value or train.concrete_strategy('auto', platform)
  device = f'{platform}:{jax.devices()[0].device_kind} x{jax.device_count()}'
  print(f'throughput: preset {_PRESET.value}, {_GENERATOR.value} generator, device {device}, '
        f'strategy {strategy}', flush=True)
  before = machine_state()  # load averages and the matmul rate before any measurement
  problem = oracle.make_problem(config.problem)
  result = dict(preset=_PRESET.value, generator=_GENERATOR.value, device=device,
                strategy=strategy, steps=_STEPS.value,
                step_flops=step_flops(config), matmul_flops=before['matmul_flops'],
                samples=_SAMPLES.value, eval_samples=config.eval.num_samples)
  has_torch = bool(_TORCH.value) and importlib.util.find_spec('torch') is not None
  if _TORCH.value and not has_torch:
    print('torch is not installed: skipping the PyTorch comparison '
          "(pip install -e '.[compare]')", flush=True)
  if 'mle' in _PARTS.value:
    result['jax'], result['torch'] = measure_training(
        config, problem, seeds, strategy, _STEPS.value, _REPEATS.value, with_torch=has_torch)
  if 'adversarial' in _PARTS.value and _ADVERSARIAL.value:
    result['adversarial'] = dict(
        scheme=_ADVERSARIAL.value, steps=_ADVERSARIAL_STEPS.value,
        rows=measure_training(config, problem, seeds, strategy, _ADVERSARIAL_STEPS.value,
                              _REPEATS.value, name=_ADVERSARIAL.value)[0])
  if 'sampling' in _PARTS.value:
    result['sampling'] = measure_sampling(problem, _SAMPLES.value, _REPEATS.value, has_torch,
                                          config)
  if 'memory' in _PARTS.value:
    result['eval_memory'] = eval_memory(config, problem)
  after = machine_state(before)
  public = ('load_avg', 'own_load', 'matmul_flops', 'others_cores')
  result['machine'] = dict(
      cores=cores(), busy=machine_was_busy(before, after, cores()),
      **{k: {f: v for f, v in s.items() if f in public} for k, s in (('before', before),
                                                                       ('after', after))})
  if result['machine']['busy']:
    print('WARNING: the machine was busy during the measurements: '
          + '; '.join(result['machine']['busy']), file=sys.stderr, flush=True)
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  files.atomic_write(os.path.join(_OUTPUT_DIR.value, 'throughput.json'),
                       json.dumps(result, indent=2))
  md = markdown(result)
  files.atomic_write(os.path.join(_OUTPUT_DIR.value, 'throughput.md'), md)
  if result.get('jax'):
    plot(result, os.path.join(_OUTPUT_DIR.value, 'throughput.png'))
  print(md, flush=True)


if __name__ == '__main__':
  app.run(main)
