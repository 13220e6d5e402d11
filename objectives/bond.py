"""BOND: distil the Best-of-N distribution of a reference policy by a Jeffreys divergence.

Sessa et al. (2024) train a policy Q to match π_BoN, the law of the best of N samples of a
reference policy π_ref under a reward r, by

  J_β(Q) = (1 − β) KL(π_BoN ‖ Q) + β KL(Q ‖ π_BoN)      (β = config.bond.beta weights the
                                                         backward KL; BOND's J-BOND: ½)

so that one sample of Q does what best-of-N sampling of π_ref does. Here π_ref is the
generator where training starts (the MLE warm start, config.train.warm_start_steps, else its
initialisation), frozen in the state; the reward is the oracle's log-likelihood r(x) = log P(x)
(quality as the oracle judges it), so π_BoN trades the reference's coverage for precision and
the suite's metrics place Q and the trade-off on the KL plane. With ties in r broken
uniformly, π_BoN(x) = π_ref(x) Σ_{k<N} F_≤(x)^k F_<(x)^{N−1−k}, F_≤ / F_< the π_ref-mass of
rewards ≤ / < r(x) (`rerank.reranked_probs`); without ties N π_ref(x) F_≤(x)^{N−1} for small
π_ref(x).

Estimators (config.bond.estimator):
  'exact'    enumerable problems (V^T ≤ base.MAX_ENUMERATE): π_BoN of every sequence exactly
             (from the frozen reference at every step: one pass over its prefix tree, no
             gradient; the rewards' ranks once per run), J_β/T and its exact gradient;
             with optimizer='lbfgs', descended to the convergence rule as `direct`'s.
  'sampled'  the Monte-Carlo form: the forward term (1 − β)·(−log Q(y))/T on best-of-N draws
             y of π_ref (N·B reference samples a step, the best of each N by r:
             `rerank.rerank_sample`), unbiased for ∇KL(π_BoN ‖ Q)/T; the backward term
             β·(log Q(x) − log π̂_BoN(x))/T as the cost of a score-function estimator on
             B samples x ~ Q (leave-one-out baseline), with BOND's estimate
             log π̂_BoN(x) = log π_ref(x) + log N + (N − 1) log p̂_≤(x), p̂_≤(x) the share of
             `quantile_samples` fresh reference samples whose reward is ≤ r(x), floored at
             1/(quantile_samples + 1). The estimate is biased (the quantile is estimated, the
             formula is the no-tie small-mass limit); `exact` is the reference.
The evaluation reports Q's divergences from the oracle P as for every scheme; π_BoN is not P.

Reference: Sessa et al., BOND: Aligning LLMs with Best-of-N Distillation, 2024 (ICLR 2025).
"""

import functools
import math

import flax
import jax
import jax.numpy as jnp

from divergences import categorical
from objectives import base
from objectives import footprint
from objectives import rerank
from objectives import token_terms

ESTIMATORS = ('sampled', 'exact')


@flax.struct.dataclass
class BondState:
  """The policy's parameters and optimiser (`gen`), and the frozen reference's variables."""
  gen: base.GeneratorState
  ref: base.PyTree

  @property
  def params(self):
    return self.gen.params

  @property
  def count(self):
    return self.gen.count


def bon_log_probs(log_ref_all: jax.Array, reward_ranks, n: int) -> jax.Array:
  """log π_BoN of every sequence [V^T] from log π_ref [V^T] and the rewards' ranks
  (`rerank.score_ranks` of the rewards [V^T]), exactly."""
  return rerank.reranked_log_probs_ranked(log_ref_all, reward_ranks, n)


def jeffreys(log_target: jax.Array, log_q: jax.Array, beta) -> jax.Array:
  """(1 − β) KL(target ‖ Q) + β KL(Q ‖ target) of two distributions over one enumerated
  support [N] (log-space; 0·log 0 = 0): a scalar. β is a Python float: at β = 0 or 1 the
  other KL is not formed (0 · ∞ would be NaN where it is infinite)."""
  beta = float(beta)
  out = 0.0
  if beta < 1.0:
    out += (1.0 - beta) * categorical.kl(log_target, log_q)
  if beta > 0.0:
    out += beta * categorical.kl(log_q, log_target)
  return out


def quantile_log_prob(rewards: jax.Array, reference_rewards: jax.Array) -> jax.Array:
  """log p̂_≤ [B]: the log share of `reference_rewards` [K] at or below each of `rewards` [B],
  floored at 1/(K + 1) (never log 0)."""
  k = reference_rewards.shape[0]
  share = jnp.mean(reference_rewards[None, :] <= rewards[:, None], axis=-1)
  return jnp.log(jnp.maximum(share, 1.0 / (k + 1)))


def sampled_loss(model, params, bon_samples: jax.Array, samples: jax.Array,
                 log_bon_hat: jax.Array, beta, *, baseline='loo') -> jax.Array:
  """The Monte-Carlo J_β surrogate (a scalar): its gradient estimates ∇J_β/T.

  Args:
    model, params: the policy Q (params differentiated).
    bon_samples: int [B, T] best-of-N draws of π_ref (the forward term's data).
    samples: int [B, T] draws of Q (constants: the backward term's score function).
    log_bon_hat: [B] log π̂_BoN(samples) (constants).
    beta: β ∈ [0, 1].
    baseline: 'loo' | 'none' | a constant (`token_terms.baseline`).
  """
  seq_len = samples.shape[-1]
  forward = -model.apply(params, bon_samples, method='log_prob').mean() / seq_len
  log_q = model.apply(params, samples, method='log_prob')
  cost = jax.lax.stop_gradient(log_q - log_bon_hat)[:, None]  # [B, 1]
  every = jnp.ones(samples.shape[:1], bool)
  adv = jax.lax.stop_gradient(
      cost - token_terms.baseline(cost, every, baseline, flag='--config.bond.baseline'))[:, 0]
  backward = jnp.mean(adv * log_q) / seq_len
  return (1.0 - beta) * forward + beta * backward


def check_config(config) -> None:
  """ValueError naming the first invalid --config.bond.* field; no compute."""
  bc = config.bond
  base.check_choice('bond', 'estimator', bc.estimator, ESTIMATORS)
  base.check_choice('bond', 'baseline', bc.baseline, token_terms.BASELINES)
  base.check_positive('bond', 'num_candidates', bc.num_candidates, integer=True)
  base.check_positive('bond', 'quantile_samples', bc.quantile_samples, integer=True)
  for field in ('learning_rate', 'grad_clip'):
    base.check_positive('bond', field, bc[field])
  base.check_unit_interval('bond', 'beta', bc.beta)
  base.check_exact('bond', config, hint="use the estimator 'sampled'")


def make(config, problem) -> base.Scheme:
  """BOND towards the best of config.bond.num_candidates reference samples by log P."""
  check_config(config)
  bc = config.bond
  model = base.generator_from_config(config)
  optimizer = base.exact_optimizer(bc)
  oracle, oracle_params = problem.model, problem.params
  n, beta, seq_len = int(bc.num_candidates), float(bc.beta), config.problem.seq_len

  def init(key, generator_params=None):
    gen = base.init_network(model, optimizer, key, generator_params)
    return BondState(gen, gen.params)

  def reward(tokens):
    return oracle.apply(oracle_params, tokens, method='log_prob')

  if bc.estimator == 'exact':
    # The rewards are fixed: their ranks once, concretely (a sort of V^T constants inside
    # the step would be constant-folded by XLA at every compile: 45 s at 6^6).
    reward_ranks = base.compile_time_constant(
        lambda: rerank.score_ranks(oracle.apply(oracle_params, method='all_log_probs')))

    def exact_loss(params, log_bon):
      return jeffreys(log_bon, model.apply(params, method='all_log_probs'), beta) / seq_len

    def step(state, batch, key, pi):
      del batch, key, pi  # deterministic: every sequence
      log_bon = jax.lax.stop_gradient(bon_log_probs(
          model.apply(state.ref, method='all_log_probs'), reward_ranks(), n))
      gen, metrics = base.exact_step(optimizer, functools.partial(exact_loss, log_bon=log_bon),
                                     state.gen, lbfgs=bc.optimizer == 'lbfgs',
                                     grad_tol=bc.grad_tol)
      return BondState(gen, state.ref), metrics
  else:
    def step(state, batch, key, pi):
      del pi
      num = batch.shape[0]  # the data batch only sets the number of samples
      k_bon, k_q, k_quant = jax.random.split(key, 3)
      sample_ref = lambda k, m: model.apply(state.ref, k, m, method='sample')
      bon = rerank.rerank_sample(k_bon, sample_ref, reward, num, n)
      samples = model.apply(state.gen.params, k_q, num, method='sample')
      ref_rewards = reward(sample_ref(k_quant, int(bc.quantile_samples)))
      log_bon_hat = (model.apply(state.ref, samples, method='log_prob') + math.log(n)
                     + (n - 1) * quantile_log_prob(reward(samples), ref_rewards))
      loss, grads = jax.value_and_grad(lambda p: sampled_loss(
          model, p, bon, samples, log_bon_hat, beta, baseline=bc.baseline))(state.gen.params)
      return BondState(base.apply_gradients(optimizer, state.gen, grads), state.ref), {
          'loss': loss}

  return base.Scheme(init=init, step=step, generator_params=lambda s: s.gen.params,
                     generator=model, uses_pi=False)


def working_set_bytes(config) -> int:
  """Activations of one step: N·B reference samples and their rewards, B policy samples, the
  quantile's reference samples, teacher-forced passes of both ('exact': the prefix tree of
  the policy and the reference)."""
  if config.bond.estimator == 'exact':
    return 2 * footprint.generator_tree_bytes(config)
  B = config.train.batch_size
  draws = B * (int(config.bond.num_candidates) + 1) + int(config.bond.quantile_samples)
  return footprint.sampling_bytes(config, draws) + 3 * footprint.teacher_forced_bytes(config,
                                                                                      draws)
