"""Conformance: does a third-party per-token distillation loss compute the divergence it claims?

    python -m benchmarks.conformance --loss=MODULE:FUNCTION --divergence=jsd [--framework=torch]

A loss is a function of (student logits [B, T, V], teacher logits [B, T, V], mask [B, T] of
the positions that count, and its hyper-parameters β and τ) returning a scalar, in JAX or
PyTorch; a small adapter (ADAPTERS, or a function of the user's) fits another signature to
it. A `Spec` states what the loss claims to be: the divergence of each position's next-token
distributions P (teacher) and Q (student), the convention of its β, how the positions are
reduced and how the temperature enters. The battery (`cases`) runs it on random, peaked,
flat, near-equal and disjoint-support distributions, β at the ends, in the middle and off it (¼: a mixture weighted β ↔ 1 − β agrees at ½), masked
positions, two temperatures, float32 and bfloat16, and compares the value and the gradient
with respect to the student's logits with the reference below (JAX autodiff, float32, from
the same rounded inputs). Each case passes, or fails with the measured error; a value below
zero for a divergence that cannot be negative fails too.

Reference, per position (divergences.categorical):
  fkl   KL(P‖Q)      rkl   KL(Q‖P)      tv   ½ Σ|P − Q|
  skl   KL(P ‖ αP + (1−α)Q)             srkl KL(Q ‖ (1−α)P + αQ)       (α = skew_alpha)
  jsd   convention 'gkd' (GKD's Eq. 1, TRL's and Liger's): β KL(P‖M) + (1−β) KL(Q‖M),
        M = βP + (1−β)Q, with β = 0 and β = 1 taken as KL(P‖Q) and KL(Q‖P) (the end
        points those libraries special-case; the unscaled formula is 0 there);
        convention 'scaled' (divbench's distill): the same divided by β(1−β), whose limits
        are those two KLs.
Temperature τ ('divide'): both logits divided by τ before the softmax; 'divide_t2': the
divergence of those then multiplied by τ² (Hinton et al.'s gradient scaling).
Reduction over the positions with mask 1: 'token_mean' (their sum over their number; TRL's
'batchmean' with labels), 'sequence_mean' (their sum over B), 'sum'.
"""

import datetime
import importlib
from importlib import metadata
import math
from typing import Callable, List, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from divergences import categorical
from objectives import distill

DIVERGENCES = ('fkl', 'rkl', 'jsd', 'skl', 'srkl', 'tv')
CONVENTIONS = ('gkd', 'scaled')
REDUCTIONS = ('token_mean', 'sequence_mean', 'sum')
TEMPERATURES = ('divide', 'divide_t2')
FRAMEWORKS = ('jax', 'torch')
NONNEGATIVE = DIVERGENCES  # every divergence here is ≥ 0
BETAS = (0.0, 0.25, 0.5, 1.0)  # ½ cannot tell a swapped mixture weight (β ↔ 1 − β) from the right one
DISTRIBUTIONS = ('random', 'peaked', 'flat', 'near', 'disjoint')
MASKS = ('all', 'partial')
TAUS = (1.0, 2.0)
DTYPES = ('float32', 'bfloat16')
# |got − want| ≤ atol + rtol |want| (values), ‖g − g*‖ ≤ atol + rtol ‖g*‖ (gradients): float32
# leaves ~1e-6 relative; bfloat16 inputs and arithmetic keep 8 bits of mantissa (~4e-3 per
# operation), so a correct bfloat16 loss is within a few percent.
TOLERANCES = {'float32': (1e-4, 1e-5), 'bfloat16': (5e-2, 2e-2)}
NEGATIVE_SLACK = 1e-3  # how far below zero a value may round before it is a failure
SHAPE = (2, 3, 8)      # B, T, V of every case


class Spec(NamedTuple):
  """What a loss claims to compute (module docstring)."""
  divergence: str
  convention: str = 'gkd'
  reduction: str = 'token_mean'
  temperature: str = 'divide'
  skew_alpha: float = 0.1
  framework: str = 'jax'


class Case(NamedTuple):
  """One input of the battery: its name, logits [B, T, V] (float32 numpy), mask [B, T],
  β (None where the divergence takes none), τ and the dtype the loss receives."""
  name: str
  student: np.ndarray
  teacher: np.ndarray
  mask: np.ndarray
  beta: Optional[float]
  tau: float
  dtype: str


class Result(NamedTuple):
  case: str
  passed: bool
  value: float
  want: float
  value_err: float
  grad_err: float
  message: str


def check_spec(spec: Spec) -> None:
  """ValueError naming the flag of the first field of `spec` that is not known."""
  for flag, value, known in (('--divergence', spec.divergence, DIVERGENCES),
                             ('--convention', spec.convention, CONVENTIONS),
                             ('--reduction', spec.reduction, REDUCTIONS),
                             ('--temperature', spec.temperature, TEMPERATURES),
                             ('--framework', spec.framework, FRAMEWORKS)):
    if value not in known:
      raise ValueError(f'{flag}: unknown {value!r}; known: {", ".join(known)}')
  if not 0 <= spec.skew_alpha <= 1:
    raise ValueError(f'--skew_alpha: must be in [0, 1], got {spec.skew_alpha!r}')


# --- the reference ---------------------------------------------------------------------------

def per_position(spec: Spec, student, teacher, beta, tau):
  """The reference divergence of each position: logits [..., V] -> [...] (JAX, float32)."""
  log_q = jax.nn.log_softmax(student / tau, axis=-1)
  log_p = jax.nn.log_softmax(teacher / tau, axis=-1)
  d = spec.divergence
  if d == 'fkl':
    out = categorical.kl(log_p, log_q)
  elif d == 'rkl':
    out = categorical.kl(log_q, log_p)
  elif d == 'tv':
    out = categorical.total_variation(log_p, log_q)
  elif d == 'skl':
    out = categorical.skew_kl(log_p, log_q, spec.skew_alpha)
  elif d == 'srkl':
    out = categorical.skew_kl(log_q, log_p, spec.skew_alpha)
  elif d == 'jsd':
    if beta in (0.0, 1.0):  # both conventions' end points
      out = categorical.kl(log_p, log_q) if beta == 0.0 else categorical.kl(log_q, log_p)
    else:
      out = categorical.js_pi_scaled(log_p, log_q, beta)
      if spec.convention == 'gkd':
        out = out * beta * (1 - beta)
  else:
    raise ValueError(f'--divergence: unknown {d!r}')
  return out * tau ** 2 if spec.temperature == 'divide_t2' else out


def reduce(values, mask, reduction: str):
  """Positions [B, T] with mask [B, T] -> the scalar of `reduction`."""
  m = mask.astype(values.dtype)
  total = jnp.sum(values * m)
  if reduction == 'sum':
    return total
  if reduction == 'sequence_mean':
    return total / values.shape[0]
  return total / jnp.maximum(jnp.sum(m), 1.0)


def reference(spec: Spec, case: Case):
  """(value, gradient w.r.t. the student's logits [B, T, V]) of the case, float32, from the
  inputs as the loss receives them (rounded to its dtype)."""
  student = jnp.asarray(case.student, case.dtype).astype(jnp.float32)
  teacher = jnp.asarray(case.teacher, case.dtype).astype(jnp.float32)
  fn = lambda s: reduce(per_position(spec, s, teacher, case.beta, case.tau),
                        jnp.asarray(case.mask), spec.reduction)
  value, grad = jax.value_and_grad(fn)(student)
  return float(value), np.asarray(grad, np.float32)


# --- the battery -----------------------------------------------------------------------------

def _logits(kind: str, rng) -> tuple:
  """(student, teacher) logits [B, T, V] of one kind of distribution pair."""
  shape = SHAPE
  if kind == 'random':
    return rng.normal(0, 2, shape), rng.normal(0, 2, shape)
  if kind == 'peaked':  # the teacher nearly one-hot, the student broad
    t = rng.normal(0, 1, shape)
    top = rng.integers(0, shape[-1], shape[:-1])
    np.put_along_axis(t, top[..., None], 10.0, axis=-1)
    return rng.normal(0, 1, shape), t
  if kind == 'flat':  # the student uniform
    return np.zeros(shape), rng.normal(0, 2, shape)
  if kind == 'near':  # nearly equal: the divergence is small, cancellation shows
    t = rng.normal(0, 2, shape)
    return t + rng.normal(0, 0.05, shape), t
  if kind == 'disjoint':  # each puts almost no mass where the other has its mass
    half = shape[-1] // 2
    s, t = rng.normal(0, 1, shape), rng.normal(0, 1, shape)
    s[..., :half] -= 30.0
    t[..., half:] -= 30.0
    return s, t
  raise ValueError(kind)


def cases(spec: Spec, *, distributions: Sequence[str] = DISTRIBUTIONS,
          betas: Sequence[float] = BETAS, masks: Sequence[str] = MASKS,
          taus: Sequence[float] = TAUS, dtypes: Sequence[str] = DTYPES,
          seed: int = 0) -> List[Case]:
  """The battery for `spec` (β only for jsd), each case named by its settings."""
  # Each kind from its own stream: a subset of the battery has the same cases.
  pairs = {kind: _logits(kind, np.random.default_rng([seed, DISTRIBUTIONS.index(kind)]))
           for kind in distributions}
  full = np.ones(SHAPE[:2], bool)
  partial = full.copy()
  partial[0, -1] = partial[1, 1:] = False
  mask_of = {'all': full, 'partial': partial}
  out = []
  for kind in distributions:
    s, t = pairs[kind]
    for beta in (betas if spec.divergence == 'jsd' else (None,)):
      for mask in masks:
        for tau in taus:
          for dtype in dtypes:
            name = ', '.join([kind] + ([f'β={beta:g}'] if beta is not None else [])
                             + [f'mask={mask}', f'τ={tau:g}', dtype])
            out.append(Case(name, s.astype(np.float32), t.astype(np.float32), mask_of[mask],
                            beta, tau, dtype))
  return out


# --- calling the loss --------------------------------------------------------------------------

def call(loss: Callable, spec: Spec, case: Case):
  """(value, gradient w.r.t. the student's logits as float32 numpy) of the loss on the case."""
  if spec.framework == 'jax':
    student = jnp.asarray(case.student, case.dtype)
    teacher = jnp.asarray(case.teacher, case.dtype)
    fn = lambda s: loss(s, teacher, jnp.asarray(case.mask), beta=case.beta, temperature=case.tau)
    value, grad = jax.value_and_grad(fn)(student)
    return float(jnp.asarray(value, jnp.float32)), np.asarray(grad, np.float32)
  torch = _torch()
  dtype = getattr(torch, case.dtype)
  student = torch.tensor(case.student).to(dtype).requires_grad_(True)
  teacher = torch.tensor(case.teacher).to(dtype)
  value = loss(student, teacher, torch.tensor(case.mask), beta=case.beta,
               temperature=case.tau)
  value.backward()
  return float(value.detach().float()), student.grad.detach().float().numpy()


def _torch():
  try:
    return importlib.import_module('torch')
  except ImportError:
    raise ValueError('--framework: torch is not installed (pip install \'.[conformance]\')') \
        from None


def check_case(loss: Callable, spec: Spec, case: Case) -> Result:
  """Runs one case: value and gradient against the reference, and the sign."""
  want, want_grad = reference(spec, case)
  try:
    value, grad = call(loss, spec, case)
  except Exception as e:  # pylint: disable=broad-except  (a crash is this case's failure)
    return Result(case.name, False, math.nan, want, math.nan, math.nan,
                  f'raised {type(e).__name__}: {e}'.splitlines()[0])
  rtol, atol = TOLERANCES[case.dtype]
  value_err = abs(value - want)
  scale = float(np.linalg.norm(want_grad))
  grad_err = float(np.linalg.norm(np.nan_to_num(grad, nan=np.inf) - want_grad))
  problems = []
  if not math.isfinite(value) or value_err > atol + rtol * abs(want):
    problems.append(f'value {value:.6g}, want {want:.6g}')
  if spec.divergence in NONNEGATIVE and value < -NEGATIVE_SLACK:
    problems.append(f'value {value:.6g} < 0 for a divergence')
  if not math.isfinite(grad_err) or grad_err > atol + rtol * scale:
    problems.append(f'gradient off by {grad_err:.3g} (‖g*‖ = {scale:.3g})')
  return Result(case.name, not problems, value, want, value_err, grad_err,
                '; '.join(problems) or 'ok')


def run(loss: Callable, spec: Spec, battery: Optional[Sequence[Case]] = None) -> List[Result]:
  """Every case of the battery (default: `cases(spec)`)."""
  check_spec(spec)
  return [check_case(loss, spec, c) for c in (cases(spec) if battery is None else battery)]


def line(r: Result) -> str:
  return f'{"PASS" if r.passed else "FAIL"} {r.case}' + ('' if r.passed else f': {r.message}')


def markdown(name: str, spec: Spec, results: Sequence[Result]) -> str:
  """A table of the results: one row per case, with the errors."""
  passed = sum(r.passed for r in results)
  lines = [f'### `{name}`', '',
           f'Claimed: {spec.divergence}'
           + (f' ({spec.convention} convention)' if spec.divergence == 'jsd' else '')
           + f', reduction {spec.reduction}, temperature {spec.temperature}, '
           f'{spec.framework}. {passed} of {len(results)} cases pass.', '',
           '| case | result | value | reference | value error | gradient error |',
           '|---|---|---|---|---|---|']
  for r in results:
    lines.append(f'| {r.case} | {"pass" if r.passed else "**fail**: " + r.message} | '
                 f'{r.value:.6g} | {r.want:.6g} | {r.value_err:.2g} | {r.grad_err:.2g} |')
  return '\n'.join(lines) + '\n'


# --- adapters ----------------------------------------------------------------------------------

def divbench_distill(divergence: str) -> Callable:
  """divbench's own per-token `objectives.distill.token_divergence` as a loss (JAX): the
  token mean over the mask, logits divided by τ. Spec: its divergence, convention 'scaled'."""
  names = {'fkl': 'fkl', 'rkl': 'rkl', 'jsd': 'jsd', 'skl': 'skl', 'srkl': 'srkl', 'tv': 'tvd'}

  def loss(student, teacher, mask, *, beta=None, temperature=1.0):
    log_q = jax.nn.log_softmax(student.astype(jnp.float32) / temperature, axis=-1)
    log_p = jax.nn.log_softmax(teacher.astype(jnp.float32) / temperature, axis=-1)
    d = distill.token_divergence(log_p, log_q, beta, divergence=names[divergence])
    return reduce(d, mask, 'token_mean')
  return loss


def trl_gkd() -> Callable:
  """TRL's `GKDTrainer.generalized_jsd_loss` (PyTorch; `trl.experimental.gkd` since TRL 1.x),
  the mask given as labels (−100 where masked), reduction 'batchmean'. Spec: jsd, convention
  'gkd', token_mean, divide."""
  trainer = importlib.import_module('trl.experimental.gkd').GKDTrainer

  def loss(student, teacher, mask, *, beta=None, temperature=1.0):
    labels = mask.long() * 0
    labels[~mask.bool()] = -100
    return trainer.generalized_jsd_loss(student, teacher, labels=labels, beta=beta,
                                        temperature=temperature, reduction='batchmean')
  return loss


def trl_distillation() -> Callable:
  """The divergence of TRL's `DistillationTrainer` (PyTorch; its chunked loss over hidden
  states and `lm_head` weights, `_chunked_divergence_loss`), called with the logits as hidden
  states and an identity `lm_head`, so its logits are the case's. Spec: jsd, convention 'gkd',
  token_mean (its mean over the valid positions), divide."""
  torch = _torch()
  fn = importlib.import_module('trl.trainer.distillation_trainer')._chunked_divergence_loss  # pylint: disable=protected-access

  def loss(student, teacher, mask, *, beta=None, temperature=1.0):
    eye = torch.eye(student.shape[-1], dtype=student.dtype)
    return fn(student, teacher, eye, eye.to(teacher.dtype), mask.long(), beta,
              temperature=temperature)[0]
  return loss


def easydel_gkd() -> Callable:
  """EasyDeL's `generalized_jsd_loss` (JAX; the loss of its GKD trainer), the mask given as
  `mask`. Its docstring claims GKD's generalised JSD (Agarwal et al. 2024). Spec: jsd,
  convention 'gkd', token_mean (its sum over the mask over the mask's count), divide."""
  fn = importlib.import_module(
      'easydel.trainers.generalized_knowledge_distillation_trainer._fn').generalized_jsd_loss

  def loss(student, teacher, mask, *, beta=None, temperature=1.0):
    return fn(student, teacher, mask=mask, beta=beta, temperature=temperature)
  return loss


# name -> (make the loss, its Spec): what `--adapter` offers.
# The distribution whose version a page states for each adapter.
PACKAGES = {'trl_gkd': 'trl', 'trl_distillation': 'trl', 'easydel_gkd': 'easydel'}
ADAPTERS = {
    'divbench_distill_jsd': (lambda: divbench_distill('jsd'), Spec('jsd', 'scaled')),
    'divbench_distill_fkl': (lambda: divbench_distill('fkl'), Spec('fkl')),
    'divbench_distill_rkl': (lambda: divbench_distill('rkl'), Spec('rkl')),
    'divbench_distill_skl': (lambda: divbench_distill('skl'), Spec('skl')),
    'divbench_distill_srkl': (lambda: divbench_distill('srkl'), Spec('srkl')),
    'divbench_distill_tv': (lambda: divbench_distill('tv'), Spec('tv')),
    'trl_gkd': (trl_gkd, Spec('jsd', 'gkd', 'token_mean', 'divide', framework='torch')),
    'trl_distillation': (trl_distillation,
                         Spec('jsd', 'gkd', 'token_mean', 'divide', framework='torch')),
    'easydel_gkd': (easydel_gkd, Spec('jsd', 'gkd', 'token_mean', 'divide')),
}


def load_adapter(name: str):
  """(loss, Spec) of adapter `name`; ValueError naming --adapter when it is unknown or its
  package (PyTorch first: its one-line error) is not installed."""
  if name not in ADAPTERS:
    raise ValueError(f'--adapter: unknown {name!r}; known: {", ".join(ADAPTERS)}')
  make, spec = ADAPTERS[name]
  check_spec(spec)
  if spec.framework == 'torch':
    _torch()
  try:
    return make(), spec
  except ImportError as e:
    raise ValueError(f'--adapter: {name} needs a package that is not installed: {e}') from None


def resolve_loss(path: str) -> Callable:
  """'module.sub:function' -> the function; ValueError naming --loss when it cannot be had."""
  module_name, sep, attr = path.partition(':')
  if not sep or not module_name or not attr:
    raise ValueError(f'--loss: give MODULE:FUNCTION, got {path!r}')
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise ValueError(f'--loss: cannot import {module_name!r}: {e}') from None
  fn = module
  for part in attr.split('.'):
    fn = getattr(fn, part, None)
  if not callable(fn):
    raise ValueError(f'--loss: {path!r} is not a callable')
  return fn


def version(adapter: str) -> str:
  """The installed version of the package an adapter calls ('divbench' for our own)."""
  packages = [PACKAGES.get(adapter, 'divbench')]
  if ADAPTERS[adapter][1].framework == 'torch':
    packages.append('torch')
  out = []
  for package in packages:
    try:
      out.append(f'{package} {metadata.version(package)}')
    except metadata.PackageNotFoundError:
      out.append(f'{package} (not installed)')
  return ', '.join(out)


def summary(reports) -> str:
  """Markdown: one row per adapter — (name, version, Spec, results or None when its package
  is not installed) — with its failing cases, then each adapter's table."""
  lines = ['| loss | version | claimed | cases passed | failing cases |', '|---|---|---|---|---|']
  for name, ver, spec, results in reports:
    claim = spec.divergence + (f' ({spec.convention})' if spec.divergence == 'jsd' else '')
    if results is None:
      lines.append(f'| `{name}` | {ver} | {claim} | not run | |')
      continue
    failed = [r.case for r in results if not r.passed]
    shown = '; '.join(failed[:6]) + (f'; … ({len(failed)} in all)' if len(failed) > 6 else '')
    lines.append(f'| `{name}` | {ver} | {claim} | {len(results) - len(failed)} of '
                 f'{len(results)} | {shown or "none"} |')
  tables = [markdown(name, spec, results) for name, _, spec, results in reports
            if results is not None]
  head = ['# Conformance of per-token distillation losses', '',
          'Each loss against the exact reference of the divergence it claims '
          '(`benchmarks/measure/conformance.py`: the reference, the conventions, the battery '
          f'of {len(cases(Spec("jsd")))} jsd cases — {len(DISTRIBUTIONS)} distribution pairs '
          f'× β ∈ {{{", ".join(f"{b:g}" for b in BETAS)}}} × {len(MASKS)} masks × τ ∈ '
          f'{{{", ".join(f"{t:g}" for t in TAUS)}}} × float32 and bfloat16; '
          f'{len(cases(Spec("fkl")))} for the others — and the tolerances).', '',
          'Command: `python -m benchmarks.conformance --adapter=all '
          '--output=docs/findings/conformance.md`  ',
          f'Date: {datetime.date.today().isoformat()}; on the CPU, JAX {jax.__version__}. A loss whose package is not '
          'installed is listed as not run (`pip install \'.[conformance]\'` installs TRL and '
          'PyTorch; EasyDeL, whose dependencies pin their own flax and transformers, goes in '
          'an environment of its own: `pip install easydel torch` there, then this package).',
          '']
  return '\n'.join(head + lines) + '\n\n## Every case\n\n' + '\n'.join(tables)
