"""KL penalties on the student's own samples: k1, k2, k3, analytic or top-K, as loss or reward.

As RL penalties and on-policy distillation use them: an estimator of KL(Q_t ‖ P_t) on the
student's own samples, used as a loss, as a reward, or both.

Each step draws B sequences x ~ Q (the student, temperature 1; constants) and computes, at
every position, an estimate k_t of KL(Q_t ‖ P_t) with P the oracle as teacher
(config.kl_estimator.estimator; divergences/kl_estimators.py):
  k1, k2, k3   at the sampled token, from log r_t = log P(x_t|x_<t) − log Q(x_t|x_<t);
  analytic     the full-vocabulary KL(Q_t ‖ P_t);
  top_k        its sum over Q_t's top_k tokens, renormalised over them or not (`renormalise`).
The row's loss has the value (1/T) Σ_t k_t and, by `use`, the gradient
  'loss'    (1/T) Σ_t ∇k_t: the estimate differentiated directly (through Q's log-probs, the
            samples and prefixes held fixed) — GRPO's KL term is k3 used so;
  'reward'  (1/T) Σ_t (G_t − b_t) ∇log Q(x_t|x_<t): the estimate as a (negative) reward in a
            score-function term, G_t = Σ_{s≥t} k_s (`returns` 'to_go') or Σ_s k_s ('total'),
            b_t a baseline (`baseline` 'loo': the other rows' mean G_t at t; or 'none');
  'both'    the sum of the two: the full gradient of E_Q[(1/T) Σ_t k_t].
What the expected update of each is, exactly (per token, expectation over x ~ Q; for the
analytic and top-K forms k_t depends on x_<t only, so G_t's own term k_t adds nothing in
expectation):
  k1 'loss'              0: E_{x_t~Q_t}[∇log Q_t(x_t)] = 0 at every prefix;
  k1 'reward' (either)   ∇KL[Q‖P]: REINFORCE on log Q(x) − log P(x);
  k1, k3, analytic 'both'  ∇KL[Q‖P]: k1 and k3 are unbiased per token, so E_Q[Σ_t k_t] =
                         KL[Q‖P] and 'both' is its full gradient;
  k2 'loss'              = analytic 'loss': E_{Q_t}[(log Q_t − log P_t)(x)∇log Q_t(x)] is the
                         prefix-fixed gradient of KL(Q_t‖P_t) (distill rkl, student prefixes,
                         cost_to_go 'none');
  k3 'loss'              E_{Q_t}[(1 − r)∇log Q_t] = −Σ_v P_t(v)∇log Q_t(v): the prefix-fixed
                         gradient of the *forward* KL(P_t‖Q_t) on the student's prefixes
                         (distill fkl, student prefixes, 'none');
  k2 'both', top_k       the gradients of other objectives, measured in
                         benchmarks/measure/gradient_fidelity.py.
tests/test_kl_estimator.py pins each identity above by enumeration.

References: Schulman, "Approximating KL divergence" (2020); Shao et al., DeepSeekMath (GRPO's
k3 KL loss), 2024; the tinker-cookbook's analytic top-K reverse KL (its PR #677).
"""

import jax
import jax.numpy as jnp

from divergences import kl_estimators
from models import output_layer
from objectives import base
from objectives import footprint
from objectives import token_terms

ESTIMATORS = kl_estimators.SAMPLED + ('analytic', 'top_k')
USES = ('loss', 'reward', 'both')
RETURNS = ('to_go', 'total')
BASELINES = token_terms.BASELINES


def token_fn(estimator: str, top_k: int = 5, renormalise: bool = False):
  """(log P [n, V], log Q [n, V], tokens int [n]) -> the estimate k [n] of KL(Q_t ‖ P_t)."""
  if estimator not in ESTIMATORS:
    raise ValueError(f'--config.kl_estimator.estimator: unknown {estimator!r}; known: '
                     f'{", ".join(ESTIMATORS)}')

  def fn(log_p, log_q, x):
    if estimator == 'analytic':
      return kl_estimators.analytic(log_q, log_p)
    if estimator == 'top_k':
      return kl_estimators.top_k(log_q, log_p, top_k, renormalise=renormalise)
    at = lambda lp: jnp.take_along_axis(lp, x[:, None], axis=-1)[:, 0]
    return kl_estimators.sampled(estimator, at(log_p), at(log_q))
  return fn


def surrogate(k: jax.Array, log_q_tok: jax.Array, *, use: str, returns: str = 'to_go',
              baseline='loo') -> jax.Array:
  """Per-row loss of the estimates: value (1/T) Σ_t k_t, gradient by `use` (module docstring).

  Args:
    k: the estimates k_t [B, T], differentiable through the student's log-probs.
    log_q_tok: log Q(x_t | x_<t) of the sampled tokens [B, T] (differentiable).
    use: one of USES; returns: one of RETURNS ('reward' and 'both').
    baseline: 'loo', 'none', or a constant broadcastable to [B, T] (e.g. 0.0 for an
      expectation by enumeration, where 'loo' has no other rows).

  Returns:
    [B].
  """
  if use not in USES:
    raise ValueError(f'--config.kl_estimator.use: unknown {use!r}; known: {", ".join(USES)}')
  if returns not in RETURNS:
    raise ValueError(f'--config.kl_estimator.returns: unknown {returns!r}; known: '
                     f'{", ".join(RETURNS)}')
  seq_len = k.shape[-1]
  fixed = jax.lax.stop_gradient(k)
  pathwise = fixed if use == 'reward' else k
  if use == 'loss':
    return pathwise.sum(axis=-1) / seq_len
  if returns == 'to_go':
    g = token_terms.costs_to_go(fixed, include_current=True)
  else:
    g = jnp.broadcast_to(fixed.sum(axis=-1, keepdims=True), fixed.shape)
  b = token_terms.baseline(g, jnp.ones(g.shape[0], bool), baseline,
                           flag='--config.kl_estimator.baseline')
  advantage = jax.lax.stop_gradient(g - b)
  score = advantage * (log_q_tok - jax.lax.stop_gradient(log_q_tok))  # value 0
  return (pathwise + score).sum(axis=-1) / seq_len


def loss(student, params, teacher, teacher_params, tokens: jax.Array, *, estimator: str,
         use: str, returns: str = 'to_go', baseline='loo', top_k: int = 5,
         renormalise: bool = False,
         chunk_bytes: int = output_layer.CHUNK_BYTES) -> jax.Array:
  """The loss of each row of the student's samples `tokens` int [B, T] (constants): [B]."""
  k, log_q_tok = token_terms.model_terms(student, params, teacher, teacher_params, tokens,
                                         token_fn(estimator, top_k, renormalise),
                                         chunk_bytes=chunk_bytes)
  return surrogate(k, log_q_tok, use=use, returns=returns, baseline=baseline)


def check_config(config) -> None:
  """ValueError naming the first invalid --config.kl_estimator.* field; no compute."""
  kc = config.kl_estimator
  base.check_choice('kl_estimator', 'estimator', kc.estimator, ESTIMATORS)
  base.check_choice('kl_estimator', 'use', kc.use, USES)
  base.check_choice('kl_estimator', 'returns', kc.returns, RETURNS)
  base.check_choice('kl_estimator', 'baseline', kc.baseline, BASELINES)
  base.check_positive('kl_estimator', 'top_k', kc.top_k, integer=True)
  if kc.estimator == 'top_k' and kc.top_k > config.problem.vocab_size:
    raise ValueError(f'--config.kl_estimator.top_k: at most the vocabulary size '
                     f'{config.problem.vocab_size}, got {kc.top_k}')
  for field in ('learning_rate', 'grad_clip'):
    base.check_positive('kl_estimator', field, kc[field])


def make(config, problem) -> base.Scheme:
  """The KL penalty (config.kl_estimator) on the student's own samples; no π."""
  check_config(config)
  kc = config.kl_estimator
  model = base.generator_from_config(config)
  optimizer = base.optimizer_from_config(kc)
  teacher, teacher_params = problem.model, problem.params
  batch_size = config.train.batch_size

  def init(key, generator_params=None):
    return base.init_network(model, optimizer, key, generator_params)

  def step(state, batch, key, pi):
    del batch, pi  # on-policy: the student's own samples, no data
    tokens = model.apply(state.params, key, batch_size, method='sample')

    def loss_fn(params):
      return loss(model, params, teacher, teacher_params, tokens, estimator=kc.estimator,
                  use=kc.use, returns=kc.returns, baseline=kc.baseline, top_k=kc.top_k,
                  renormalise=kc.renormalise,
                  chunk_bytes=config.generator.logits_chunk_bytes).mean()

    value, grads = jax.value_and_grad(loss_fn)(state.params)
    return base.apply_gradients(optimizer, state, grads), {'loss': value}

  return base.Scheme(init=init, step=step, generator_params=lambda s: s.params,
                     generator=model, uses_pi=False)


def working_set_bytes(config) -> int:
  """Activations of one step: the student's samples, both models' teacher-forced passes and
  their chunked logits (as distill's sampled estimator)."""
  B, T = config.train.batch_size, config.problem.seq_len
  return (footprint.sampling_bytes(config, B) + 2 * footprint.teacher_forced_bytes(config, B)
          + 4 * footprint.logits_bytes(config, B * T))
