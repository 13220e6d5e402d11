"""Direct minimisation of KL(Q ‖ P) or JS_π using the oracle's known density (and, with the
'exact' estimator, of KL(P ‖ Q), MLE's population objective, for converged end points).

The reference the adversarial schemes approximate: they learn a discriminator (or mediator)
to estimate a divergence from samples; here the oracle's log P is simply evaluated. The
generator Q draws B = batch-size sequences per step (the data batch is unused) and follows one
of two unbiased gradient estimators (config.direct.estimator), for one of two divergences
(config.direct.divergence).

'score': REINFORCE on whole sequences x ~ Q with a baseline b (independent of x):
  ∇ E_Q[f] = E_Q[∇log Q(x) · (f(x) − b)]   (plus E_Q[∇f], which is 0 for both f below)
  kl_qp: f(x) = log Q(x) − log P(x). ∇KL(Q ‖ P) = E_Q[∇log Q · f] + E_Q[∇log Q] and the
    second term vanishes (Σ_x ∇Q(x) = 0).
  js_pi: f(x) = (1−π) log(Q(x)/M(x)), M = πP + (1−π)Q. Differentiating
    JS_π = π E_P[log P/M] + (1−π) E_Q[log Q/M] gives (1−π) E_Q[∇log Q · log(Q/M)]
    + (1−π) E_Q[∇log Q] − Σ_x (πP + (1−π)Q)(x) ∇log M(x); the second term is 0 as above
    and the third is −Σ_x ∇M(x) = −(1−π) Σ_x ∇Q(x) = 0. So only samples of Q are needed:
    ∇JS_π = (1−π) E_Q[∇log Q · log(Q/M)].
'per_step': the chain rule D = w Σ_t E_{s~Q}[k_t(s)] with k_t(s) = KL(Q(·|s) ‖ R(·|s)) for
  prefixes s = x_<t, where (w, R) = (1, P) for kl_qp and (1−π, M_π held fixed) for js_pi
  (∇JS_π = (1−π) ∇KL(Q ‖ M_π) with M_π's own dependence on θ dropped, as above; its next-token
  conditionals are `teacher_forcing.exact_mediator_log_probs`). Its gradient is
    w Σ_t E[∇k_t(s)]  +  w Σ_t E[∇log Q(x_t | x_<t) · C_t],   C_t = Σ_{u>t} k_u(x_<u):
  the exact full-vocabulary KL of each next-token distribution, differentiated through
  Q(·|s) (as CoT's generator signal), plus the score-function term of the prefixes' law
  with the cost-to-go C_t made of the *exact* future per-step KLs (a Rao-Blackwellised
  return: each future token's log-ratio is replaced by its conditional expectation),
  less a per-step baseline b_t. Unbiased for ∇D; with the exact mediator, the first sum is
  CoT's generator signal and the second the term CoT omits (objectives/cot.py).

'exact': the divergence itself, by enumeration of all V^T sequences (the enumerable problem):
  log Q(x) of every x (`LSTMLM.all_log_probs`, over the prefix tree: each prefix's state once;
  a value and gradient on V = 6, T = 6 with E = H = 4 took 2 ms against 77 ms over the 46,656
  full sequences, 2-core CPU, 2026-12-07), differentiable, against log P(x) (computed once),
  so the loss is KL(Q ‖ P)/T or JS_π/T exactly and its gradient is the exact gradient: no
  sampling. Refused
  (one line naming the field) when V^T > base.MAX_ENUMERATE. For claims about minimisers: with
  config.direct.optimizer = 'lbfgs' (optax's L-BFGS with its zoom line search, for this
  deterministic objective) the run descends to a stationary point; the step reports the
  exact gradient norm ('grad_norm'), and config.direct.grad_tol is the convergence rule
  (`converged`: 1 at a step whose exact gradient norm is at most grad_tol; a row's
  train_converged is its share of the interval's steps, 1.0 when every step met it).

Baselines (config.direct.baseline): 'loo', the mean of the other B−1 samples' costs (per step
for 'per_step'): independent of the sample it is subtracted from, so still unbiased; or
'none'. The pure functions also take a constant (float or array), e.g. for enumeration tests.
"""

import functools

import jax
import jax.numpy as jnp

import divergences
from objectives import base
from objectives import footprint
from objectives import teacher_forcing

DIVERGENCES = ('kl_qp', 'js_pi')
EXACT_DIVERGENCES = DIVERGENCES + ('kl_pq',)  # KL(P ‖ Q): MLE's population objective, exactly
SAMPLED_ESTIMATORS = ('score', 'per_step')  # unbiased estimates from samples of Q
ESTIMATORS = SAMPLED_ESTIMATORS + ('exact',)
BASELINES = ('loo', 'none')


def _check_divergence(divergence: str) -> None:
  if divergence not in DIVERGENCES:
    raise ValueError(f'--config.direct.divergence: {divergence!r} is not one of '
                     f'{", ".join(DIVERGENCES)}')


def leave_one_out_mean(values: jax.Array) -> jax.Array:
  """For each row, the mean of the other rows: [B, ...] -> [B, ...] (B >= 2)."""
  n = values.shape[0]
  if n < 2:
    raise ValueError(f'a leave-one-out baseline needs at least 2 samples; got {n}.')
  return (values.sum(axis=0, keepdims=True) - values) / (n - 1)


def baseline_of(costs: jax.Array, baseline) -> jax.Array:
  """The baseline subtracted from `costs` [B, ...]: 'loo', 'none' (0) or a given constant."""
  if isinstance(baseline, str):
    if baseline == 'loo':
      return leave_one_out_mean(costs)
    if baseline == 'none':
      return jnp.zeros_like(costs)
    raise ValueError(f'--config.direct.baseline: {baseline!r} is not one of '
                     f'{", ".join(BASELINES)}')
  return jnp.broadcast_to(jnp.asarray(baseline, costs.dtype), costs.shape)


def sequence_cost(log_q: jax.Array, log_p: jax.Array, pi, *, divergence: str,
                  seq_len: int) -> jax.Array:
  """The per-token cost f(x)/T whose score-function gradient is that of the divergence.

  Args:
    log_q: log Q(x) (log-space) of samples x ~ Q, [B].
    log_p: log P(x) (log-space) of the same samples, [B].
    pi: weight of P in the mixture (js_pi only; ignored, may be NaN, for kl_qp).
    divergence: 'kl_qp' or 'js_pi'.
    seq_len: T.

  Returns:
    [B]: kl_qp: (log Q − log P)/T, whose Q-mean is KL(Q ‖ P)/T; js_pi: (1−π) log(Q/M)/T,
    whose Q-mean is the Q-side (1−π) KL(Q ‖ M_π)/T of JS_π/T.
  """
  _check_divergence(divergence)
  if divergence == 'kl_qp':
    return (log_q - log_p) / seq_len
  pi = jnp.asarray(pi, log_q.dtype)
  # log(Q/M) = −log(π P/Q + (1−π)); log 0 = −inf at π = 0 leaves log(1−π) (= 0) alone.
  log_q_over_m = -jnp.logaddexp(jnp.log(pi) + log_p - log_q, jnp.log1p(-pi))
  return (1 - pi) * log_q_over_m / seq_len


def score_surrogate(log_q: jax.Array, cost: jax.Array, baseline) -> jax.Array:
  """REINFORCE surrogate: value = cost, gradient = (cost − baseline) ∇log Q.

  Args:
    log_q: log Q(x) of samples x ~ Q, differentiable, [B].
    cost: per-sample cost f(x) (its gradient is stopped), [B].
    baseline: 'loo', 'none' or a constant broadcastable to [B].

  Returns:
    [B]; the gradient of its mean is the score-function estimate of ∇E_Q[f].
  """
  cost = jax.lax.stop_gradient(cost)
  advantage = jax.lax.stop_gradient(cost - baseline_of(cost, baseline))
  # log_q − sg(log_q) is 0 in value and ∇log Q in gradient: the value stays the cost.
  return cost + advantage * (log_q - jax.lax.stop_gradient(log_q))


def score_loss(model, params, samples: jax.Array, log_p: jax.Array, pi, *,
               divergence: str, baseline='loo') -> jax.Array:
  """The 'score' estimator on samples of the generator.

  Args:
    model: the generator module (an LSTMLM).
    params: its variables.
    samples: int32 [B, T] sequences drawn from Q (constants).
    log_p: [B] log P of the samples under the oracle.
    pi: weight of P (js_pi only).
    divergence: 'kl_qp' or 'js_pi'.
    baseline: 'loo', 'none' or a constant.

  Returns:
    [B]: value = `sequence_cost` (per token); gradient of the mean = unbiased estimate of
    ∇KL(Q ‖ P)/T or ∇JS_π/T.
  """
  log_q = model.apply(params, samples, method='log_prob')
  cost = sequence_cost(log_q, log_p, pi, divergence=divergence, seq_len=samples.shape[-1])
  return score_surrogate(log_q, cost, baseline)


def per_step_surrogate(q_next_log_probs: jax.Array, target_next_log_probs: jax.Array,
                       tokens: jax.Array, weight, baseline) -> jax.Array:
  """Per-step surrogate: exact next-token KLs plus a score term with the future KLs.

  Args:
    q_next_log_probs: log Q(v | x_<t) (log-space, differentiable), [B, T, V].
    target_next_log_probs: log R(v | x_<t), the target's next-token log-probs (held fixed),
      [B, T, V].
    tokens: int [B, T], the samples x ~ Q whose prefixes condition the rows.
    weight: w, a scalar multiplying the whole estimate (1, or 1−π for JS_π).
    baseline: per-step baseline for the cost-to-go: 'loo', 'none' or a constant
      broadcastable to [B, T].

  Returns:
    [B]: value = w Σ_t k_t / T with k_t = KL(Q(·|x_<t) ‖ R(·|x_<t)) (its Q-mean is
    w KL(Q ‖ R)/T); gradient = w (Σ_t ∇k_t + Σ_t (C_t − b_t) ∇log Q(x_t | x_<t)) / T with
    C_t = Σ_{u>t} k_u, whose Q-mean is w ∇KL(Q ‖ R)/T for R held fixed.
  """
  per_step = divergences.kl(q_next_log_probs,
                            jax.lax.stop_gradient(target_next_log_probs))  # [B, T]
  k = jax.lax.stop_gradient(per_step)
  # C_t = Σ_{u>t} k_u: the future KLs, i.e. those whose prefixes contain x_t.
  cost_to_go = jnp.cumsum(k[:, ::-1], axis=1)[:, ::-1] - k
  advantage = jax.lax.stop_gradient(cost_to_go - baseline_of(cost_to_go, baseline))
  log_q_tok = jnp.take_along_axis(q_next_log_probs, tokens[..., None], axis=-1)[..., 0]
  score = advantage * (log_q_tok - jax.lax.stop_gradient(log_q_tok))  # value 0
  return weight * (per_step + score).sum(axis=-1) / tokens.shape[-1]


def per_step_loss(model, params, samples: jax.Array, p_next_log_probs: jax.Array, pi, *,
                  divergence: str, baseline='loo') -> jax.Array:
  """The 'per_step' estimator on samples of the generator.

  Args:
    model: the generator module (an LSTMLM).
    params: its variables.
    samples: int32 [B, T] sequences drawn from Q (constants).
    p_next_log_probs: [B, T, V] the oracle's teacher-forced next-token log-probs on them.
    pi: weight of P (js_pi only).
    divergence: 'kl_qp' (target P, weight 1) or 'js_pi' (target M_π held fixed, weight 1−π).
    baseline: 'loo', 'none' or a constant.

  Returns:
    [B]: see `per_step_surrogate`; the gradient of the mean is an unbiased estimate of
    ∇KL(Q ‖ P)/T or ∇JS_π/T.
  """
  _check_divergence(divergence)
  q_next = teacher_forcing.next_token_log_probs(model, params, samples)
  if divergence == 'kl_qp':
    target, weight = p_next_log_probs, 1.0
  else:
    target = teacher_forcing.exact_mediator_log_probs(p_next_log_probs, jax.lax.stop_gradient(q_next),
                                          samples, pi)
    weight = 1 - jnp.asarray(pi, q_next.dtype)
  return per_step_surrogate(q_next, target, samples, weight, baseline)


def estimator_loss(model, params, samples: jax.Array, oracle, oracle_params, pi, *,
                   estimator: str, divergence: str, baseline='loo') -> jax.Array:
  """Per-sample losses [B] of `estimator` ('score' | 'per_step'), scoring with the oracle.

  Args:
    model, params: the generator module and its variables.
    samples: int32 [B, T] sequences drawn from Q (constants).
    oracle, oracle_params: the oracle module and its variables (its density replaces data).
    pi: weight of P (js_pi only).
    estimator, divergence, baseline: as in `score_loss` / `per_step_loss`.
  """
  if estimator not in SAMPLED_ESTIMATORS:
    raise ValueError(f'estimator_loss: {estimator!r} is not one of {SAMPLED_ESTIMATORS} (the '
                     "'exact' estimator takes no samples: `exact_objective`)")
  if estimator == 'score':
    log_p = oracle.apply(oracle_params, samples, method='log_prob')
    return score_loss(model, params, samples, log_p, pi, divergence=divergence,
                      baseline=baseline)
  p_next = teacher_forcing.next_token_log_probs(oracle, oracle_params, samples)
  return per_step_loss(model, params, samples, p_next, pi, divergence=divergence,
                       baseline=baseline)


def exact_objective(log_q_all: jax.Array, log_p_all: jax.Array, pi, *, divergence: str,
                    seq_len: int) -> jax.Array:
  """The divergence per token from every sequence's log-probabilities.

  Args:
    log_q_all: log Q(x) (log-space) of all V^T sequences, [N] (differentiable).
    log_p_all: log P(x) of the same sequences, [N].
    pi: weight of P (js_pi only).
    divergence: 'kl_qp' (KL(Q ‖ P)), 'js_pi' (JS_π(P, Q)) or 'kl_pq' (KL(P ‖ Q): what MLE
      minimises with infinite data).
    seq_len: T.

  Returns:
    scalar: the divergence / T (its gradient is the exact gradient).
  """
  if divergence not in EXACT_DIVERGENCES:
    raise ValueError(f'--config.direct.divergence: {divergence!r} is not one of '
                     f'{", ".join(EXACT_DIVERGENCES)}')
  if divergence == 'kl_pq':
    return divergences.kl(log_p_all, log_q_all) / seq_len
  if divergence == 'kl_qp':
    return divergences.kl(log_q_all, log_p_all) / seq_len
  return divergences.js_pi(log_p_all, log_q_all, jnp.asarray(pi, log_q_all.dtype)) / seq_len


def check_config(config) -> None:
  """ValueError naming the first invalid --config.direct.* field; no compute."""
  dc = config.direct
  if dc.divergence == 'kl_pq' and dc.estimator != 'exact':
    raise ValueError("--config.direct.divergence: 'kl_pq' only with the estimator 'exact' (from "
                     'samples of P, KL(P ‖ Q) is what `mle` minimises)')
  if dc.divergence != 'kl_pq':
    _check_divergence(dc.divergence)
  if dc.estimator not in ESTIMATORS:
    raise ValueError(f'--config.direct.estimator: {dc.estimator!r} is not one of '
                     f'{", ".join(ESTIMATORS)}')
  if not (isinstance(dc.baseline, (int, float)) or dc.baseline in BASELINES):
    raise ValueError(f'--config.direct.baseline: {dc.baseline!r} is not one of '
                     f'{", ".join(BASELINES)} or a number')
  for field in ('learning_rate', 'grad_clip'):
    base.check_positive('direct', field, dc[field])
  base.check_exact('direct', config, hint='use per_step or score')


def make(config, problem) -> base.Scheme:
  """Direct minimisation (config.direct); uses π only for divergence='js_pi'."""
  check_config(config)
  dc = config.direct
  model = base.generator_from_config(config)
  optimizer = base.exact_optimizer(dc)
  oracle, oracle_params = problem.model, problem.params
  seq_len = config.problem.seq_len

  def init(key, generator_params=None):
    return base.init_network(model, optimizer, key, generator_params)

  if dc.estimator == 'exact':
    log_p_all = base.compile_time_constant(
        lambda: oracle.apply(oracle_params, method='all_log_probs'))

    def exact_loss(params, pi):
      log_q = model.apply(params, method='all_log_probs')  # the prefix tree: every sequence
      return exact_objective(log_q, log_p_all(), pi, divergence=dc.divergence,
                             seq_len=seq_len)

    def step(state, batch, key, pi):
      del batch, key  # deterministic: every sequence, no data, no sampling
      return base.exact_step(optimizer, functools.partial(exact_loss, pi=pi), state,
                             lbfgs=dc.optimizer == 'lbfgs', grad_tol=dc.grad_tol)
  else:
    def loss_fn(params, samples, pi):
      return estimator_loss(model, params, samples, oracle, oracle_params, pi,
                            estimator=dc.estimator, divergence=dc.divergence,
                            baseline=dc.baseline).mean()

    def step(state, batch, key, pi):
      # The data batch only sets the number of samples: the oracle's density replaces data.
      samples = model.apply(state.params, key, batch.shape[0], method='sample')
      loss, grads = jax.value_and_grad(loss_fn)(state.params, samples, pi)
      return base.apply_gradients(optimizer, state, grads), {'loss': loss}

  return base.Scheme(init=init, step=step, generator_params=lambda s: s.params,
                     generator=model, uses_pi=dc.divergence == 'js_pi')


def working_set_bytes(config) -> int:
  """Activations of one step: the samples, then P's and Q's [B, T, V] next-token KLs with
  their backward pass (per_step), or both models' teacher-forced passes (score); 'exact':
  one chunk's forward and backward plus the [V^T] log-prob vectors and all sequences."""
  B = config.train.batch_size
  if config.direct.estimator == 'exact':
    return footprint.generator_tree_bytes(config)
  if config.direct.estimator == 'per_step':
    return footprint.sampling_bytes(config, B) + 7 * footprint.full_bytes(config, B)
  return footprint.sampling_bytes(config, B) + 2 * footprint.teacher_forced_bytes(config, B)
