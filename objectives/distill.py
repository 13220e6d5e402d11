"""Knowledge distillation from the oracle: per-token divergences on data, teacher or own prefixes.

The oracle P is a teacher with known next-token distributions P_t = P(·|x_<t). The student Q
minimises, on prefixes x of a batch, the per-token divergence over the full vocabulary

  L(x) = (1/T) Σ_t D(P_t, Q_t),   differentiated through Q_t = Q(·|x_<t) only,

with D (config.distill.divergence; TRL's names where it has them):
  fkl   KL(P_t ‖ Q_t)                      (Hinton's KD, SKD, SeqKD)
  rkl   KL(Q_t ‖ P_t)                      (on-policy distillation, MiniLLM's direction)
  jsd   JS_β(P_t, Q_t) / (β(1−β)),         GKD's generalised JSD, M = βP_t + (1−β)Q_t,
        JS_β = β KL(P_t‖M) + (1−β) KL(Q_t‖M), β = the run's π (swept by --pis, traced: one
        compile). Scaled so that β = 0 and β = 1 give exactly fkl and rkl, the end points GKD's
        code special-cases (unscaled JS_β → 0 there); 4·JS at β = ½. Same gradient direction
        as GKD's unscaled loss at every β ∈ (0, 1); only the step size differs.
  skl   KL(P_t ‖ αP_t + (1−α)Q_t)          (DistiLLM's skew KL, α = skew_alpha)
  srkl  KL(Q_t ‖ (1−α)P_t + αQ_t)          (DistiLLM's skew reverse KL)
  tvd   ½ ‖P_t − Q_t‖₁                     (TaiLr's total variation; the gradient of |·|)
  abkd  D_AB^{(α,β)}(P_t ‖ Q_t)            (ABKD's α-β divergence, α, β = ab_alpha, ab_beta;
                                           (1, 0) is fkl, (0, 1) rkl: categorical.alpha_beta)
  akl   w KL(P_t‖Q_t) + (1−w) KL(Q_t‖P_t)  (AKL, Wu et al. 2024: w = g_head/(g_head + g_tail),
        the gaps Σ|p − q| over the teacher's head (its top atoms up to mass μ = akl_mu, the
        top atom always) and its tail (categorical.head_tail_gaps); w held fixed, ½ at P = Q)
  eopd  KL(Q_t‖P_t) + c·1[H(P_t) > τ]·KL(P_t‖Q_t)  (entropy-aware on-policy distillation:
        τ = eopd_threshold nats, c = eopd_coef; both KLs analytic over the full vocabulary)
  taid  KL(P_t^(t) ‖ Q_t), P_t^(t) = softmax((1−t)·sg(log Q_t) + t·log P_t)  (TAID: the
        target interpolates, in logit space, from the detached student to the teacher; t
        rises linearly from taid_t_start to taid_t_end over config.train.num_steps, `taid_t`;
        the same gradient as TAID's cross-entropy H(P^(t), Q), value 0 at t = 0)

Prefixes (config.distill.prefix, lmbda): each row of the batch is, independently with
probability λ = lmbda (a Bernoulli per row, keyed), a fresh sample of the student (GKD's
on-policy rows), else a row of `prefix`'s source: 'data' (the training batch: supervised KD,
GKD's off-policy rows), 'teacher' (fresh oracle samples: sequence-level KD, TRL's seq_kd).
prefix = 'student' makes every row the student's sample (λ is then ignored). Student samples
are ancestral samples of softmax(logits / temperature) — exactly Q at temperature 1 (the
default), no top-k / top-p — and are constants (no gradient through the sampling); the loss
always scores Q at temperature 1.

Cost-to-go (config.distill.cost_to_go). The chain rule for a prefix law R:
  ∇ E_{x~R}[Σ_t D_t] = E_R[Σ_t ∇D_t] + E_R[Σ_t ∇log R(x_t | x_<t) · C_t],  C_t = Σ_{s>t} D_s.
'none' keeps the first sum (the per-token surrogate of the distillation papers and TRL).
'full' adds the second on the student's rows (R = Q), with the exact future per-token
divergences as the cost (gradient stopped) less a baseline b_t (config.distill.baseline:
'loo', the mean cost-to-go of the batch's *other* student rows at the same position, 0 when
there is none, independent of the row so still unbiased; or 'none'). Data and teacher prefixes
do not depend on θ: 'full' adds nothing there. So with 'full' the expected update on student
rows is ∇E_{x~Q}[Σ_t D(P_t, Q_t)]/T, which for rkl is exactly ∇KL[Q‖P]/T (E_Q[Σ_t
KL(Q_t‖P_t)] = KL[Q‖P] by the chain rule: `direct`'s per_step estimator); and fkl on teacher
prefixes is exactly ∇KL[P‖Q]/T (MLE's gradient) with either setting. Every other pairing is a
surrogate whose fidelity to the sequence-level divergence of the same name
`benchmarks.measure.gradient_fidelity` measures.

The full-vocabulary logits of teacher and student are formed in row chunks of at most
config.generator.logits_chunk_bytes each, under `jax.checkpoint` (the backward pass
recomputes a chunk's logits), so memory stays O(chunk × V) at V = 5000.

Estimator (config.distill.estimator). 'sampled' (the default) draws the batch of prefixes above
each step. 'exact' (enumerable problems, V^T ≤ base.MAX_ENUMERATE) replaces the batch by its
expectation over every prefix, both models run once over the prefix tree:

  L = (1/T) Σ_t Σ_{x_<t} R(x_<t) D(P_t, Q_t),   R = (1 − λ) P + λ Q   (λ = 1 for 'student'),

the population version of the sampled loss (prefix 'data' is refused: its population version
is 'teacher'). Q's prefix weights are held fixed under cost_to_go='none' and differentiated
under 'full', so the gradient is exactly the sampled estimator's expectation: fkl on teacher
prefixes is KL[P‖Q]/T and its gradient (MLE's population objective), rkl on student prefixes
with 'full' is KL[Q‖P]/T and its gradient. Deterministic: config.distill.optimizer='lbfgs'
(optax's L-BFGS) descends it to the convergence rule (exact gradient norm ≤ grad_tol), as in
`direct`, where the update is the gradient of the loss's value (teacher prefixes, or
cost_to_go='full'); student rows under 'none' follow a surrogate field that no function has
as gradient, so they take Adam (its fixed point is where the surrogate update vanishes). Student prefixes at a temperature ≠ 1 are weighted by the tempered Q.

Differences from the papers' own methods (README maps settings to methods): GKD's sampling
temperature (0.9 in TRL, scored at 1) is temperature=1 here unless configured; MiniLLM
optimises a length-normalised reward-to-go with PPO-style clipping and a teacher-mixed
sampler, here plain score-function with exact per-token costs; DistiLLM's adaptive
off-policy schedule and replay buffer are not implemented (a fixed λ); 'tvd' is the TV
distance itself (TaiLr's own data-only weighted NLL is the scheme `tailr`); TAID's adaptive
increment of t (a momentum of the loss's relative change) is not implemented, only its linear
floor; entropy-aware OPD's reverse-KL term is here the analytic per-token KL, not the paper's
PPO-clipped single-sample (k1) reward, and its forward KL the full vocabulary, not the top 16.

References:
  Agarwal et al., On-Policy Distillation of Language Models: Learning from Self-Generated
  Mistakes (GKD), ICLR 2024. Gu et al., MiniLLM: Knowledge Distillation of Large Language
  Models, ICLR 2024. Ko et al., DistiLLM, ICML 2024. Ji et al., Tailoring Language Generation
  Models under Total Variation Distance (TaiLr), ICLR 2023. Kim & Rush, Sequence-Level
  Knowledge Distillation, EMNLP 2016. Wu et al., Rethinking Kullback-Leibler Divergence in
  Knowledge Distillation for Large Language Models (AKL), COLING 2025. Shing et al., TAID:
  Temporally Adaptive Interpolated Distillation, ICLR 2025. Jin et al., Entropy-Aware
  On-Policy Distillation of Language Models, 2026.
"""

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp

from divergences import categorical
from models import output_layer
from objectives import base
from objectives import footprint
from objectives import token_terms

DIVERGENCES = ('fkl', 'rkl', 'jsd', 'skl', 'srkl', 'tvd', 'abkd', 'akl', 'eopd', 'taid')
PREFIXES = ('data', 'teacher', 'student')
COSTS_TO_GO = ('none', 'full')
BASELINES = token_terms.BASELINES
ESTIMATORS = ('sampled', 'exact')


def token_divergence(log_p: jax.Array, log_q: jax.Array, beta=None, *, divergence: str,
                     skew_alpha=0.1, ab=(0.5, 0.5), akl_mu=0.5, eopd_threshold=0.8,
                     eopd_coef=1.0, taid_t=1.0) -> jax.Array:
  """D(P_t, Q_t) of next-token distributions: [..., V] log-probs (log-space) -> [...].

  Args:
    log_p: log P(v | x_<t), the teacher's, [..., V].
    log_q: log Q(v | x_<t), the student's, same shape.
    beta: β ∈ [0, 1] of 'jsd' (scalar, may be traced); unused otherwise.
    divergence: one of DIVERGENCES (module docstring).
    skew_alpha: α of 'skl' / 'srkl'.
    ab: (α, β) of 'abkd' (Python floats: they pick the formula's branch).
    akl_mu: μ of 'akl' (the teacher's head mass).
    eopd_threshold, eopd_coef: τ (nats) and the forward-KL coefficient of 'eopd'.
    taid_t: t ∈ [0, 1] of 'taid' (scalar, may be traced; `taid_t`).
  """
  if divergence == 'fkl':
    return categorical.kl(log_p, log_q)
  if divergence == 'rkl':
    return categorical.kl(log_q, log_p)
  if divergence == 'jsd':
    return categorical.js_pi_scaled(log_p, log_q, beta)
  if divergence == 'skl':
    return categorical.skew_kl(log_p, log_q, skew_alpha)
  if divergence == 'srkl':
    return categorical.skew_kl(log_q, log_p, skew_alpha)
  if divergence == 'tvd':
    return categorical.total_variation(log_p, log_q)
  if divergence == 'abkd':
    return categorical.alpha_beta(log_p, log_q, *ab)
  if divergence == 'akl':
    head, tail = jax.lax.stop_gradient(categorical.head_tail_gaps(log_p, log_q, akl_mu))
    total = head + tail
    w_head = jnp.where(total > 0, head / jnp.where(total > 0, total, 1.0), 0.5)  # P = Q: ½
    return w_head * categorical.kl(log_p, log_q) + (1.0 - w_head) * categorical.kl(log_q,
                                                                                   log_p)
  if divergence == 'eopd':
    gate = categorical.entropy(log_p) > eopd_threshold
    return categorical.kl(log_q, log_p) + eopd_coef * gate * categorical.kl(log_p, log_q)
  if divergence == 'taid':
    target = jax.nn.log_softmax((1.0 - taid_t) * jax.lax.stop_gradient(log_q)
                                + taid_t * log_p, axis=-1)
    return categorical.kl(target, log_q)
  raise ValueError(f'--config.distill.divergence: unknown {divergence!r}; known: '
                   f'{", ".join(DIVERGENCES)}')


def student_baseline(costs: jax.Array, is_student: jax.Array, baseline) -> jax.Array:
  """The baseline b [B, T] subtracted from the cost-to-go `costs` [B, T] of student rows
  (`token_terms.baseline`: 'loo' over the other student rows at the same position, 'none',
  or a constant). Entries of non-student rows are unused."""
  return token_terms.baseline(costs, is_student, baseline, flag='--config.distill.baseline')


def surrogate(d: jax.Array, log_q_tok: jax.Array, is_student: jax.Array, *, cost_to_go: str,
              baseline='loo') -> jax.Array:
  """Per-row loss from per-token divergences: value (1/T) Σ_t d_t; gradient as configured.

  Args:
    d: D(P_t, Q_t) per position, differentiable through Q_t, [B, T].
    log_q_tok: log Q(x_t | x_<t) of the rows' tokens (differentiable), [B, T].
    is_student: bool [B], rows sampled from the student (the only ones 'full' changes).
    cost_to_go: 'none' (gradient (1/T) Σ_t ∇d_t) or 'full' (plus, on student rows,
      (1/T) Σ_t (C_t − b_t) ∇log Q(x_t | x_<t), C_t = Σ_{s>t} d_s held fixed).
    baseline: see `student_baseline`.

  Returns:
    [B]. With 'full', the Q-expectation of a student row's gradient is ∇E_Q[Σ_t d_t]/T.
  """
  seq_len = d.shape[-1]
  if cost_to_go == 'none':
    return d.sum(axis=-1) / seq_len
  if cost_to_go != 'full':
    raise ValueError(f'--config.distill.cost_to_go: unknown {cost_to_go!r}; known: '
                     f'{", ".join(COSTS_TO_GO)}')
  # C_t = Σ_{s>t} d_s: the future divergences, those whose prefixes contain x_t.
  cost = token_terms.costs_to_go(jax.lax.stop_gradient(d), include_current=False)
  advantage = (cost - student_baseline(cost, is_student, baseline)) * is_student[:, None]
  advantage = jax.lax.stop_gradient(advantage)
  score = advantage * (log_q_tok - jax.lax.stop_gradient(log_q_tok))  # value 0
  return (d + score).sum(axis=-1) / seq_len


def loss(student, params, teacher, teacher_params, tokens: jax.Array, is_student: jax.Array,
         beta=None, *, divergence: str, cost_to_go: str = 'none', baseline='loo',
         chunk_bytes: int = output_layer.CHUNK_BYTES, **options) -> jax.Array:
  """The distillation loss of each row of a batch of prefixes.

  Args:
    student: the student module (an LSTMLM); params: its variables (differentiated).
    teacher: the teacher module (the oracle LSTMLM); teacher_params: its variables.
    tokens: int32 [B, T] prefixes (constants), from `prefixes`.
    is_student: bool [B], which rows are the student's samples.
    beta: β of 'jsd' (scalar, may be traced); unused otherwise.
    divergence: see `token_divergence`; cost_to_go, baseline: see `surrogate`.
    chunk_bytes: bound on the logits held at once (`token_terms.per_token_terms`).
    **options: the divergence's own parameters (`token_divergence`; `options_from_config`).

  Returns:
    [B]: (1/T) Σ_t D(P_t, Q_t) per row (value), with the configured gradient.
  """
  d, log_q_tok = token_terms.model_terms(
      student, params, teacher, teacher_params, tokens,
      lambda log_p, log_q, x: token_divergence(log_p, log_q, beta, divergence=divergence,
                                               **options),
      chunk_bytes=chunk_bytes)
  return surrogate(d, log_q_tok, is_student, cost_to_go=cost_to_go, baseline=baseline)


def prefixes(key: jax.Array, batch: jax.Array, sample_student: Callable,
             sample_teacher: Callable, *, prefix: str, lmbda: float):
  """The batch of prefixes of one step, and which rows are the student's samples.

  Args:
    key: PRNG key of the step's draws.
    batch: int32 [B, T], the training batch (the rows of prefix 'data').
    sample_student: (key, num) -> int32 [num, T] samples of the student.
    sample_teacher: (key, num) -> int32 [num, T] samples of the teacher.
    prefix: 'data' | 'teacher' | 'student' (then every row is the student's; lmbda unused).
    lmbda: probability that a row is the student's sample (static); 0 and 1 draw only the
      source they use.

  Returns:
    (tokens int32 [B, T], is_student bool [B]): row i is the student's sample where
    is_student[i] (a Bernoulli(λ) per row), else `prefix`'s.
  """
  if prefix not in PREFIXES:
    raise ValueError(f'--config.distill.prefix: unknown {prefix!r}; known: '
                     f'{", ".join(PREFIXES)}')
  num = batch.shape[0]
  lam = 1.0 if prefix == 'student' else float(lmbda)
  k_rows, k_student, k_teacher = jax.random.split(key, 3)
  # uniform < 0 never holds and uniform < 1 always does: λ ∈ {0, 1} are exact.
  is_student = jax.random.bernoulli(k_rows, lam, (num,))
  if lam == 1.0:
    return sample_student(k_student, num), is_student
  other = batch if prefix == 'data' else sample_teacher(k_teacher, num)
  if lam == 0.0:
    return other, is_student
  return jnp.where(is_student[:, None], sample_student(k_student, num), other), is_student


def _check_exact_prefix(prefix: str) -> None:
  if prefix not in ('teacher', 'student'):
    raise ValueError(f"--config.distill.prefix: the 'exact' estimator takes 'teacher' or "
                     f"'student' prefixes (the population of 'data' is 'teacher'), got "
                     f'{prefix!r}')


def exact_loss(teacher_logits, student_logits, beta=None, *, divergence: str, prefix: str,
               lmbda: float, cost_to_go: str = 'none', temperature: float = 1.0,
               **options) -> jax.Array:
  """The sampled loss's expectation over every prefix (the 'exact' estimator): a scalar.

  Args:
    teacher_logits: the teacher's next-token logits of every prefix, level by level
      (`LSTMLM.prefix_tree_logits`: T arrays, level t [V^t, V]; constants).
    student_logits: the student's, same shapes (differentiable).
    beta, divergence, **options: as in `token_divergence`.
    prefix: 'teacher' or 'student' (the law of the rows that are not the student's own when
      'teacher'); lmbda: the student's share of rows (1 for 'student').
    cost_to_go: 'none' (Q's prefix weights held fixed: the per-token surrogate's expected
      gradient) or 'full' (differentiated: the score term's expectation).
    temperature: the student's sampling temperature (its prefix weights; the loss scores Q).

  Returns:
    (1/T) Σ_t Σ_{x_<t} [(1 − λ) P(x_<t) + λ Q_τ(x_<t)] D(P_t, Q_t).
  """
  _check_exact_prefix(prefix)
  lam = 1.0 if prefix == 'student' else float(lmbda)
  seq_len = len(teacher_logits)
  log_w_p = log_w_q = jnp.zeros((1,), student_logits[0].dtype)  # log-weights of the prefixes
  total = 0.0
  for lp_logits, lq_logits in zip(teacher_logits, student_logits):
    log_p = jax.nn.log_softmax(lp_logits, axis=-1)
    log_q = jax.nn.log_softmax(lq_logits, axis=-1)
    d = token_divergence(log_p, log_q, beta, divergence=divergence, **options)
    w_q = jnp.exp(log_w_q)
    if cost_to_go == 'none':
      w_q = jax.lax.stop_gradient(w_q)
    if lam < 1.0:
      total += (1.0 - lam) * jnp.sum(jnp.exp(log_w_p) * d)
    if lam > 0.0:
      total += lam * jnp.sum(w_q * d)
    log_q_tau = log_q if temperature == 1.0 else jax.nn.log_softmax(lq_logits / temperature,
                                                                   axis=-1)
    log_w_p = (log_w_p[:, None] + log_p).reshape(-1)  # the children: i·V + v
    log_w_q = (log_w_q[:, None] + log_q_tau).reshape(-1)
  return total / seq_len


def options_from_config(dc) -> dict:
  """The keyword parameters of `token_divergence` set by config.distill (all but TAID's t,
  which moves with the step: `taid_t`)."""
  return dict(skew_alpha=dc.skew_alpha,
              ab=(float(dc.ab_alpha), float(dc.ab_beta)),  # Python floats: pick the branch
              akl_mu=dc.akl_mu, eopd_threshold=dc.eopd_threshold, eopd_coef=dc.eopd_coef)


def taid_t(dc, step, num_steps: int) -> jax.Array:
  """TAID's t at update `step` (may be traced) of `num_steps`: linear from taid_t_start to
  taid_t_end over the run (TAID's schedule without its adaptive increment), then held."""
  frac = jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / max(int(num_steps), 1))
  return dc.taid_t_start + (dc.taid_t_end - dc.taid_t_start) * frac


def check_config(config) -> None:
  """ValueError naming the first invalid --config.distill.* field; no compute."""
  dc = config.distill
  base.check_choice('distill', 'divergence', dc.divergence, DIVERGENCES)
  base.check_choice('distill', 'prefix', dc.prefix, PREFIXES)
  base.check_choice('distill', 'cost_to_go', dc.cost_to_go, COSTS_TO_GO)
  base.check_choice('distill', 'baseline', dc.baseline, BASELINES)
  base.check_choice('distill', 'estimator', dc.estimator, ESTIMATORS)
  for field in ('lmbda', 'skew_alpha', 'akl_mu', 'taid_t_start', 'taid_t_end'):
    base.check_unit_interval('distill', field, dc[field])
  for field in ('temperature', 'learning_rate', 'grad_clip'):
    base.check_positive('distill', field, dc[field])
  if dc.taid_t_start > dc.taid_t_end:
    raise ValueError(f'--config.distill.taid_t_start: must not exceed taid_t_end '
                     f'({dc.taid_t_end!r}), got {dc.taid_t_start!r}')
  for field in ('eopd_threshold', 'eopd_coef'):
    base.check_positive('distill', field, dc[field], allow_zero=True)
  if dc.optimizer == 'lbfgs' and dc.divergence in ('akl', 'taid'):
    raise ValueError(f"--config.distill.optimizer: 'lbfgs' needs a loss whose gradient is its "
                     f"value's; {dc.divergence!r} holds part of its loss fixed (its weights or "
                     f'target), so use adam')
  for field in ('ab_alpha', 'ab_beta'):
    value = dc[field]
    if not (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)):
      raise ValueError(f'--config.distill.{field}: must be a finite number, got {value!r}')
  if dc.temperature != 1 and dc.cost_to_go == 'full':
    raise ValueError(f"--config.distill.temperature: cost_to_go='full' needs prefixes drawn "
                     f'from Q itself (temperature 1): its score-function term is that of '
                     f"Q's law, which the loss scores; got {dc.temperature!r}")
  base.check_exact('distill', config, hint="use the estimator 'sampled'")
  if dc.estimator == 'exact':
    _check_exact_prefix(dc.prefix)
  if dc.optimizer == 'lbfgs' and dc.cost_to_go == 'none' and (
      dc.prefix == 'student' or dc.lmbda > 0):
    raise ValueError("--config.distill.optimizer: 'lbfgs' needs a loss whose gradient is its "
                     "value's; on the student's own prefixes with cost_to_go='none' the update "
                     "is a surrogate that holds Q's prefix weights fixed (no function has it "
                     "as gradient), so L-BFGS's line search does not apply: use adam, or "
                     "cost_to_go='full'")


def make(config, problem) -> base.Scheme:
  """Distillation from the oracle (config.distill); uses π as β only for divergence='jsd'."""
  check_config(config)
  dc = config.distill
  model = base.generator_from_config(config)
  optimizer = base.exact_optimizer(dc)
  teacher, teacher_params = problem.model, problem.params
  uses_beta = dc.divergence == 'jsd'
  options = options_from_config(dc)
  chunk_bytes = config.generator.logits_chunk_bytes
  num_steps = config.train.num_steps

  def loss_fn(params, tokens, is_student, beta, t):
    return loss(model, params, teacher, teacher_params, tokens, is_student, beta,
                divergence=dc.divergence, cost_to_go=dc.cost_to_go, baseline=dc.baseline,
                chunk_bytes=chunk_bytes, taid_t=t, **options).mean()

  def init(key, generator_params=None):
    return base.init_network(model, optimizer, key, generator_params)

  if dc.estimator == 'exact':
    teacher_tree = base.compile_time_constant(
        lambda: teacher.apply(teacher_params, method='prefix_tree_logits'))

    def exact_fn(params, beta, t):
      return exact_loss(teacher_tree(), model.apply(params, method='prefix_tree_logits'),
                        beta, divergence=dc.divergence, prefix=dc.prefix, lmbda=dc.lmbda,
                        cost_to_go=dc.cost_to_go, temperature=dc.temperature, taid_t=t,
                        **options)

    def exact_step(state, batch, key, pi):
      del batch, key  # deterministic: every prefix, no data, no sampling
      beta = pi if uses_beta else None
      t = taid_t(dc, state.count, num_steps)
      state, metrics = base.exact_step(optimizer, functools.partial(exact_fn, beta=beta, t=t),
                                       state, lbfgs=dc.optimizer == 'lbfgs',
                                       grad_tol=dc.grad_tol)
      if dc.divergence == 'taid':
        metrics['taid_t'] = t
      return state, metrics

    return base.Scheme(init=init, step=exact_step, generator_params=lambda s: s.params,
                       generator=model, uses_pi=uses_beta)

  def step(state, batch, key, pi):
    # The teacher is the fixed oracle: the state is the student's alone.
    params = state.params
    tokens, is_student = prefixes(
        key, batch,
        lambda k, n: model.apply(params, k, n, dc.temperature, method='sample'),
        lambda k, n: teacher.apply(teacher_params, k, n, method='sample'),
        prefix=dc.prefix, lmbda=dc.lmbda)
    beta = pi if uses_beta else None  # π is NaN in runs of a scheme that takes none
    t = taid_t(dc, state.count, num_steps)
    value, grads = jax.value_and_grad(loss_fn)(params, tokens, is_student, beta, t)
    metrics = {'loss': value, 'student_share': is_student.mean(dtype=jnp.float32)}
    if dc.divergence == 'taid':
      metrics['taid_t'] = t
    return base.apply_gradients(optimizer, state, grads), metrics

  return base.Scheme(init=init, step=step, generator_params=lambda s: s.params,
                     generator=model, uses_pi=uses_beta)


def working_set_bytes(config) -> int:
  """Activations of one step: student and teacher samples, both models' chunked logits
  ('exact': both models over the prefix tree, the student's kept for the backward pass)."""
  if config.distill.estimator == 'exact':
    return (footprint.generator_tree_bytes(config)
            + footprint.prefix_tree_bytes(config, config.problem.hidden_dim, backward=False))
  B, T = config.train.batch_size, config.problem.seq_len
  return (2 * footprint.sampling_bytes(config, B)
          + 2 * footprint.teacher_forced_bytes(config, B)
          + 4 * footprint.logits_bytes(config, B * T))
