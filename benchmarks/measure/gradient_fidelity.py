"""Gradient fidelity: does each scheme's expected update follow the gradient of its divergence?

    python -m benchmarks.measure.gradient_fidelity [--output_dir=results/gradient_fidelity]

On a space small enough to enumerate (a random N(0, 1) LSTM oracle with V = 3, T = 4 by
default), the exact gradient g* = ∇_θ D(θ) of a per-token divergence D w.r.t. the generator's
parameters is computed by autodiff through `divergences.exact`, and compared with the
scheme's expected update g:
  * 'exact' rows: g is the expectation of the scheme's gradient computed by enumeration
    (e.g. Σ_x Q(x) ∇loss(x), the sampling law held fixed);
  * 'mc' rows: g is the mean over `num_keys` keys of the scheme's gradient on a batch of
    `batch_size` samples (as in training), with standard errors.
Metrics (per generator init, then mean and worst over `num_inits` inits drawn with a larger
init scale than training's, so Q is far from P): cosine(g, g*), relative error ‖g − g*‖/‖g*‖
and the norm ratio ‖g‖/‖g*‖. For 'mc' rows also the noise floor sqrt(Σ_j Var(g_j)/K)/‖g*‖,
the relative error an unbiased estimator shows from noise alone, and delete-a-group jackknife
standard errors (20 groups) of the cosine and the relative error.

Adding rows: write `builder(setup: Setup) -> list[Estimate]` and append it to
`ROW_BUILDERS`. Build the gradient functions once per builder (they take the generator's
parameters and π as arguments), so each compiles once for all inits and π values;
`Setup.expectation` and `Setup.monte_carlo` do the enumeration and the key loop. E.g. the
GAN_π rows (`gan_pi_rows`) build, inside their loss(params, xs, pi), D*(x) =
πP(x) / (πP(x) + (1−π)Q(x)) from the oracle's and `Setup.log_q`'s log-probs (gradient
stopped, as for a fixed discriminator), and return `Estimate('gan_pi', ..., 'js_pi', pi,
'exact', [...])`; `seqgan_rows` does the same at π = ½ with exact rollouts and reports the
one expected update against two targets (JS_½ and KL(Q‖P)). `distill_rows` compares each
per-token distillation objective with the sequence-level divergence of the same name
(`DISTILL_TARGETS`; the targets beyond `divergences.exact`'s are the categorical divergences
of the two enumerated sequence distributions, `sequence_divergence`).

Outputs (atomic): <output_dir>/gradient_fidelity.json (setup, rows with per-init values) and
gradient_fidelity.md (the table, also printed).
"""

import dataclasses
import json
import math
import os
import time
from typing import Any, Callable, List, NamedTuple, Optional, Sequence

from absl import app
from absl import flags
import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np

from benchmarks import configs
from benchmarks.engine import cli
from benchmarks.engine import files
from divergences import categorical
import divergences
from models import oracle as oracle_lib
from objectives import adversarial
from objectives import base
from objectives import cot
from objectives import direct
from objectives import distill
from objectives import kl_estimator
from objectives import seqgan
from objectives import teacher_forcing

PyTree = Any
# The targets g* can be the gradient of (per token): by `divergences.exact`, then whole-sequence
# divergences of the enumerated distributions (a categorical over V^T sequences):
# js_pi_scaled = JS_π/(π(1−π)), skew_kl_pq = KL(P ‖ αP + (1−α)Q), skew_kl_qp =
# KL(Q ‖ (1−α)P + αQ) (α = config.distill.skew_alpha), tv = ½ Σ_x |P(x) − Q(x)|,
# alpha_beta = D_AB^{(α,β)}(P ‖ Q) (α, β = config.distill.ab_alpha, ab_beta).
EXACT_DIVERGENCES = ('kl_pq', 'kl_qp', 'js_pi')
SEQUENCE_DIVERGENCES = ('js_pi_scaled', 'skew_kl_pq', 'skew_kl_qp', 'tv', 'alpha_beta')
DIVERGENCES = EXACT_DIVERGENCES + SEQUENCE_DIVERGENCES
PIS = (0.1, 0.5, 0.9)
JACKKNIFE_GROUPS = 20


class Options(NamedTuple):
  """The knobs of one benchmark run (the flags of `main`)."""
  vocab_size: int = 3
  seq_len: int = 4
  width: int = 4            # E = H of oracle and generator
  init_scale: float = 1.0   # generator init N(0, s²); training uses 0.1
  num_inits: int = 4        # generator parameter draws
  num_keys: int = 2_000     # Monte-Carlo keys per 'mc' row
  batch_size: int = 16      # samples per key in 'mc' rows
  pis: Sequence[float] = PIS
  seed: int = 0


class Estimate(NamedTuple):
  """A scheme's expected gradient, one entry per generator init, and what it is compared with.

  Attributes:
    scheme: the scheme's name ('mle', 'direct', 'cot', ...).
    estimator: what was differentiated, in words (shown in the table).
    divergence: the exact target, one of DIVERGENCES (per token).
    pi: π of a js_pi target (also passed to the scheme), else None.
    method: 'exact' (expectation by enumeration) or 'mc' (mean over keys).
    gradients: per init, a pytree like the generator's parameters ('exact'), or the same
      with a leading [num_keys] axis ('mc').
  """
  scheme: str
  estimator: str
  divergence: str
  pi: Optional[float]
  method: str
  gradients: List[PyTree]


@dataclasses.dataclass
class Setup:
  """The enumerable problem, the generator inits, and helpers to build gradient functions.

  Attributes:
    options: the Options.
    config: the ConfigDict the schemes are built from (smoke preset, resized).
    problem: models.Problem with the oracle P.
    generator: the generator LSTMLM.
    inits: generator variables, one per init.
    sequences: int32 [V^T, T], all sequences.
    log_p_all: [V^T] log P of each.
  """
  options: Options
  config: Any
  problem: Any
  generator: Any
  inits: List[PyTree]
  sequences: jax.Array
  log_p_all: jax.Array

  @property
  def seq_len(self) -> int:
    return self.options.seq_len

  def log_q(self, params, x: jax.Array) -> jax.Array:
    """log Q(x): [n, T] -> [n]."""
    return self.generator.apply(params, x, method='log_prob')

  def expectation(self, loss_fn: Callable, weights: str = 'q') -> Callable:
    """A jitted (params, pi) -> ∇_θ Σ_x w(x) loss_fn(θ, x_all, pi)[x], w held fixed.

    Args:
      loss_fn: (params, sequences [N, T], pi) -> per-sequence losses [N].
      weights: 'q' (w = Q_θ(x), gradient stopped: the sampling law is not differentiated)
        or 'p' (w = P(x)).
    """
    xs, p = self.sequences, jnp.exp(self.log_p_all)

    @jax.jit
    def grad(params, pi):
      w = p if weights == 'p' else jax.lax.stop_gradient(jnp.exp(self.log_q(params, xs)))
      return jax.grad(lambda prm: jnp.sum(w * loss_fn(prm, xs, pi)))(params)
    return grad

  def monte_carlo(self, loss_fn: Callable) -> Callable:
    """A jitted (params, pi, key) -> gradients [num_keys, ...] of loss_fn on fresh samples.

    Args:
      loss_fn: (params, samples [batch_size, T] drawn from Q, pi) -> scalar loss, the
        scheme's per-step objective.
    """
    n, num_keys = self.options.batch_size, self.options.num_keys

    @jax.jit
    def grads(params, pi, key):
      def one(k):
        samples = self.generator.apply(params, k, n, method='sample')
        return jax.grad(loss_fn)(params, samples, pi)
      return jax.lax.map(one, jax.random.split(key, num_keys), batch_size=256)
    return grads


def make_setup(options: Options) -> Setup:
  """The oracle (random N(0, 1) LSTM, sizes from options) and `num_inits` generator inits."""
  config = configs.get_preset('smoke')
  o = options
  config.problem.update(vocab_size=o.vocab_size, seq_len=o.seq_len, embed_dim=o.width,
                        hidden_dim=o.width, num_train=64, num_test=64)
  config.generator.update(embed_dim=o.width, hidden_dim=o.width, init_scale=o.init_scale)
  problem = oracle_lib.make_problem(config.problem)
  generator = base.generator_from_config(config)
  keys = jax.random.split(jax.random.PRNGKey(o.seed), o.num_inits)
  zeros = jnp.zeros((1, o.seq_len), jnp.int32)
  inits = [generator.init(k, zeros) for k in keys]
  xs = divergences.enumerate_sequences(o.vocab_size, o.seq_len, 0, o.vocab_size ** o.seq_len)
  log_p_all = problem.model.apply(problem.params, xs, method='log_prob')
  return Setup(o, config, problem, generator, inits, xs, log_p_all)


def exact_divergences(setup: Setup) -> Callable:
  """A jitted (params, pi) -> divergences.exact(P, Q_θ) dict with pis = [pi] (per token)."""
  o, oracle = setup.options, setup.problem

  @jax.jit
  def fn(params, pi):
    return divergences.exact(
        lambda x: oracle.model.apply(oracle.params, x, method='log_prob'),
        lambda x: setup.log_q(params, x), vocab_size=o.vocab_size, seq_len=o.seq_len,
        pis=jnp.reshape(pi, (1,)), chunk_size=min(4096, o.vocab_size ** o.seq_len))
  return fn


def sequence_divergence(setup: Setup, name: str) -> Callable:
  """(params, pi) -> the whole-sequence divergence `name` of SEQUENCE_DIVERGENCES, per token.

  P and Q_θ over all V^T sequences are two categoricals (`Setup.sequences`), so the
  categorical divergences apply to them directly.
  """
  alpha = setup.config.distill.skew_alpha
  ab = (float(setup.config.distill.ab_alpha), float(setup.config.distill.ab_beta))
  fns = {
      'js_pi_scaled': lambda lp, lq, pi: categorical.js_pi_scaled(lp, lq, pi),
      'skew_kl_pq': lambda lp, lq, pi: categorical.skew_kl(lp, lq, alpha),
      'skew_kl_qp': lambda lp, lq, pi: categorical.skew_kl(lq, lp, alpha),
      'tv': lambda lp, lq, pi: categorical.total_variation(lp, lq),
      'alpha_beta': lambda lp, lq, pi: categorical.alpha_beta(lp, lq, *ab),
  }

  def fn(params, pi):
    log_q_all = setup.log_q(params, setup.sequences)
    return fns[name](setup.log_p_all, log_q_all, pi) / setup.seq_len
  return fn


def exact_gradient_fn(setup: Setup) -> Callable:
  """(params, divergence, pi) -> g* = ∇_θ D per token, by autodiff through enumeration."""
  values = exact_divergences(setup)
  grads = {
      name: jax.jit(jax.grad(
          lambda prm, pi, name=name: jnp.reshape(values(prm, pi)[name], (-1,))[0]))
      for name in EXACT_DIVERGENCES
  }
  grads.update({name: jax.jit(jax.grad(sequence_divergence(setup, name)))
                for name in SEQUENCE_DIVERGENCES})

  def fn(params, divergence, pi):
    return grads[divergence](params, jnp.float32(0.5 if pi is None else pi))
  return fn


# --- row builders ------------------------------------------------------------------------------


def mle_rows(setup: Setup) -> List[Estimate]:
  """MLE: E_{x~P}[∇ nll(x)] against ∇KL(P ‖ Q) (unbiased: equal up to float error)."""
  gen = setup.generator
  grad = setup.expectation(lambda prm, xs, pi: teacher_forcing.nll(gen, prm, xs), weights='p')
  return [Estimate('mle', 'teacher forcing, E_P[∇nll]', 'kl_pq', None, 'exact',
                   [grad(p, jnp.float32(0)) for p in setup.inits])]


def _direct_loss(setup: Setup, estimator: str, divergence: str, baseline):
  """(params, samples [n, T], pi) -> per-sample losses [n] of objectives.direct."""
  gen, oracle = setup.generator, setup.problem

  def loss(prm, xs, pi):
    return direct.estimator_loss(gen, prm, xs, oracle.model, oracle.params, pi,
                                 estimator=estimator, divergence=divergence,
                                 baseline=baseline)
  return loss


def direct_rows(setup: Setup) -> List[Estimate]:
  """Direct: both estimators, KL(Q ‖ P) and JS_π; exact (constant baseline 0) and MC (loo)."""
  rows = []
  for estimator in direct.SAMPLED_ESTIMATORS:
    for divergence in direct.DIVERGENCES:
      grad = setup.expectation(_direct_loss(setup, estimator, divergence, 0.0))
      pis = setup.options.pis if divergence == 'js_pi' else (None,)
      for pi in pis:
        pi_arg = jnp.float32(np.nan if pi is None else pi)
        rows.append(Estimate('direct', f'{estimator}, constant baseline', divergence, pi,
                             'exact', [grad(p, pi_arg) for p in setup.inits]))
  key = jax.random.PRNGKey(setup.options.seed + 1)
  for estimator in direct.SAMPLED_ESTIMATORS:
    for divergence, pi in (('kl_qp', None), ('js_pi', 0.5)):
      per_sample = _direct_loss(setup, estimator, divergence, 'loo')
      mc = setup.monte_carlo(lambda prm, xs, pi, f=per_sample: f(prm, xs, pi).mean())
      pi_arg = jnp.float32(np.nan if pi is None else pi)
      rows.append(Estimate(
          'direct', f'{estimator}, loo baseline, B={setup.options.batch_size}', divergence,
          pi, 'mc', [mc(p, pi_arg, jax.random.fold_in(key, i))
                     for i, p in enumerate(setup.inits)]))
  return rows


def cot_rows(setup: Setup) -> List[Estimate]:
  """CoT's generator signal with the exact mediator M_π plugged in, against ∇JS_π.

  The expectation over the generator's own prefixes is by enumeration; the signal is scaled
  by (1−π), the factor in ∇JS_π = (1−π) ∇KL(Q ‖ M_π) (M_π held fixed), so that the
  relative error and norm ratio are meaningful (the cosine does not depend on it).
  """
  gen, oracle = setup.generator, setup.problem

  def loss(prm, xs, pi):
    p_next = teacher_forcing.next_token_log_probs(oracle.model, oracle.params, xs)
    q_next = jax.lax.stop_gradient(teacher_forcing.next_token_log_probs(gen, prm, xs))
    log_m = teacher_forcing.exact_mediator_log_probs(p_next, q_next, xs, pi)
    return (1 - pi) * cot.generator_loss(gen, prm, xs, log_m)

  grad = setup.expectation(loss)
  return [Estimate('cot', 'per-step KL(G‖M_π), exact mediator, ×(1−π)', 'js_pi', pi, 'exact',
                   [grad(p, jnp.float32(pi)) for p in setup.inits])
          for pi in setup.options.pis]


def _oracle_log_p(setup: Setup, xs: jax.Array) -> jax.Array:
  oracle = setup.problem
  return oracle.model.apply(oracle.params, xs, method='log_prob')


def gan_pi_rows(setup: Setup) -> List[Estimate]:
  """GAN_π's REINFORCE generator update with the exact D* = πP/(πP + (1−π)Q), against ∇JS_π.

  D* is built from the oracle's and the generator's log-probs with its gradient stopped (a
  fixed discriminator), the expectation over Q by enumeration (no baseline: its expectation
  is 0). Minimax: E_Q[(1−π) log(1−D*) ∇log Q] = ∇JS_π exactly (D* stationary in D).
  Non-saturating: −(1−π) log D* gives (1−π)∇KL(Q‖P) − ∇JS_π, compared with ∇JS_π to show
  how far it is from it.
  """
  seq_len = setup.seq_len
  rows = []
  for kind in adversarial.GENERATOR_LOSSES:
    def loss(prm, xs, pi, kind=kind):
      log_q = setup.log_q(prm, xs)
      logits = adversarial.optimal_logits(_oracle_log_p(setup, xs), jax.lax.stop_gradient(log_q),
                                     pi)
      values = adversarial.generator_loss_terms(logits, pi, kind)
      return adversarial.reinforce_surrogate(log_q, values) / seq_len

    grad = setup.expectation(loss)
    label = ('minimax (1−π)log(1−D*), REINFORCE' if kind == 'minimax' else
             'non-saturating −(1−π)log D*, REINFORCE [=(1−π)∇KL(Q‖P)−∇JS_π]')
    rows += [Estimate('gan_pi', label, 'js_pi', pi, 'exact',
                      [grad(p, jnp.float32(pi)) for p in setup.inits])
             for pi in setup.options.pis]
  return rows


def exact_prefix_rewards(log_q: jax.Array, reward: jax.Array, xs: jax.Array,
                         vocab_size: int) -> jax.Array:
  """SeqGAN's rewards with exact rollouts: R_t(x) = E_{x'~Q}[reward(x') | x'_{1:t} = x_{1:t}].

  Args:
    log_q: log Q of every sequence of the space, [N = V^T].
    reward: reward(x) of each, [N].
    xs: the sequences, int [N, T] (all of them).
    vocab_size: V.

  Returns:
    [N, T]: column t−1 is the expected reward over Q's completions of the prefix x_{1:t};
    column T−1 is reward(x) itself (as `seqgan.rollout_rewards`, without sampling noise).
  """
  q = jnp.exp(log_q)
  cols = []
  prefix_id = jnp.zeros(xs.shape[0], jnp.int32)
  for t in range(xs.shape[1]):
    prefix_id = prefix_id * vocab_size + xs[:, t]
    num = vocab_size ** (t + 1)
    mass = jax.ops.segment_sum(q, prefix_id, num_segments=num)
    total = jax.ops.segment_sum(q * reward, prefix_id, num_segments=num)
    cols.append(total[prefix_id] / mass[prefix_id])
  return jnp.stack(cols, axis=1)


def seqgan_rows(setup: Setup) -> List[Estimate]:
  """SeqGAN's policy-gradient update with the exact D* (π = ½) and exact rollouts.

  The reward is D*(x) = P/(P + Q) (gradient stopped), the reward of a prefix its exact
  expectation over Q's completions (the rollout policy = the generator); the update is
  E_Q[∇ seqgan.policy_gradient_loss], enumerated. Compared with ∇JS_½ (what the GAN
  objective minimises) and with ∇KL(Q‖P) (the reverse KL it is often said to follow).
  (R_t being E[D* | y_{1:t}], the expectation equals that of the whole-sequence reward
  −D*(y) ∇log Q(y) / T: exact rollouts change the variance, not the expected update.)
  """
  gen, vocab = setup.generator, setup.options.vocab_size

  def loss(prm, xs, pi):
    del pi
    log_q = jax.lax.stop_gradient(setup.log_q(prm, xs))
    d_star = jax.nn.sigmoid(adversarial.optimal_logits(_oracle_log_p(setup, xs), log_q, 0.5))
    rewards = exact_prefix_rewards(log_q, d_star, xs, vocab)
    logp = gen.apply(prm, xs, method='token_log_probs')
    return seqgan.policy_gradient_loss(logp, rewards)

  grad = setup.expectation(loss)
  gradients = [grad(p, jnp.float32(0.5)) for p in setup.inits]
  label = 'policy gradient, reward D*=P/(P+Q), exact rollouts'
  return [Estimate('seqgan', label, 'js_pi', 0.5, 'exact', gradients),
          Estimate('seqgan', label, 'kl_qp', None, 'exact', gradients)]


# distill's divergence -> the sequence-level divergence of the same name (DIVERGENCES).
DISTILL_TARGETS = {'fkl': 'kl_pq', 'rkl': 'kl_qp', 'jsd': 'js_pi_scaled', 'skl': 'skew_kl_pq',
                   'srkl': 'skew_kl_qp', 'tvd': 'tv', 'abkd': 'alpha_beta'}
DISTILL_LAMBDA = 0.5  # the share of student rows of the mixed-prefix rows


def distill_updates(setup: Setup, divergence: str) -> Callable:
  """A jitted (params, beta) -> the expected updates of `distill` with `divergence`, by prefix.

  Returns {'data': the mean of ∇L over the training set (setup.problem.train),
  'teacher': Σ_x P(x) ∇L(x), 'student_none': Σ_x Q(x) ∇L(x) with cost_to_go 'none',
  'student_full': the same with 'full'} (Q held fixed, baseline 0: any baseline has expectation
  0), L = objectives.distill.loss. A mixture with a share λ of student rows has the expected
  update λ·student + (1−λ)·other (a Bernoulli per row).
  """
  gen, oracle = setup.generator, setup.problem
  xs, data, p = setup.sequences, setup.problem.train, jnp.exp(setup.log_p_all)
  options = distill.options_from_config(setup.config.distill)

  def loss(prm, tokens, student, beta, cost_to_go):
    rows = jnp.full(tokens.shape[:1], student)
    return distill.loss(gen, prm, oracle.model, oracle.params, tokens, rows,
                        beta if divergence == 'jsd' else None, divergence=divergence,
                        cost_to_go=cost_to_go, baseline=0.0, **options)

  @jax.jit
  def updates(params, beta):
    q = jax.lax.stop_gradient(jnp.exp(setup.log_q(params, xs)))
    grad = lambda f: jax.grad(f)(params)
    return {
        'data': grad(lambda prm: loss(prm, data, False, beta, 'none').mean()),
        'teacher': grad(lambda prm: jnp.sum(p * loss(prm, xs, False, beta, 'none'))),
        'student_none': grad(lambda prm: jnp.sum(q * loss(prm, xs, True, beta, 'none'))),
        'student_full': grad(lambda prm: jnp.sum(q * loss(prm, xs, True, beta, 'full'))),
    }
  return updates


def distill_rows(setup: Setup, names: Sequence[str] = tuple(DISTILL_TARGETS),
                 with_mc: bool = True) -> List[Estimate]:
  """distill: each divergence of `names` × prefix source × cost_to_go, exact expected updates,
  against the gradient of the sequence-level divergence of the same name (DISTILL_TARGETS;
  jsd at β = each π of options.pis); plus (`with_mc`) one Monte-Carlo row of rkl on student
  prefixes with the cost-to-go and the leave-one-out baseline, as trained. Prefix sources:
  the training set, the teacher's samples, the student's own (with and without the score
  term), and a mixture with a share DISTILL_LAMBDA of student rows, the rest the teacher's.
  ('full' changes only student rows: data and teacher rows have one cost_to_go each.)
  """
  lam = DISTILL_LAMBDA
  sources = (
      ('data', lambda g: g['data']),
      ('teacher', lambda g: g['teacher']),
      ('student, none', lambda g: g['student_none']),
      ('student, full', lambda g: g['student_full']),
      (f'λ={lam:g} student / teacher, none',
       lambda g: jax.tree.map(lambda s, t: lam * s + (1 - lam) * t, g['student_none'],
                              g['teacher'])),
      (f'λ={lam:g} student / teacher, full',
       lambda g: jax.tree.map(lambda s, t: lam * s + (1 - lam) * t, g['student_full'],
                              g['teacher'])),
  )
  rows = []
  for divergence in names:
    updates = distill_updates(setup, divergence)
    for beta in (setup.options.pis if divergence == 'jsd' else (None,)):
      per_init = [updates(p, jnp.float32(np.nan if beta is None else beta))
                  for p in setup.inits]
      rows += [Estimate('distill', f'{divergence}, {label}', DISTILL_TARGETS[divergence], beta,
                        'exact', [combine(g) for g in per_init])
               for label, combine in sources]
  if not with_mc:
    return rows
  gen, oracle, n = setup.generator, setup.problem, setup.options.batch_size

  def mc_loss(prm, samples, pi):
    del pi
    return distill.loss(gen, prm, oracle.model, oracle.params, samples, jnp.ones(n, bool),
                        divergence='rkl', cost_to_go='full', baseline='loo').mean()

  mc = setup.monte_carlo(mc_loss)
  key = jax.random.PRNGKey(setup.options.seed + 2)
  rows.append(Estimate('distill', f'rkl, student, full, loo baseline, B={n}', 'kl_qp', None,
                       'mc', [mc(p, jnp.float32(np.nan), jax.random.fold_in(key, i))
                              for i, p in enumerate(setup.inits)]))
  return rows


# kl_estimator's settings the rows compare: (estimator, top_k, renormalise) x (use, returns).
KL_ESTIMATORS = (('k1', 0, False), ('k2', 0, False), ('k3', 0, False), ('analytic', 0, False),
                 ('top_k', 1, False), ('top_k', 2, False), ('top_k', 2, True))
KL_USES = (('loss', 'to_go'), ('reward', 'to_go'), ('reward', 'total'), ('both', 'to_go'))
# Monte-Carlo rows (as trained: leave-one-out baseline, options.batch_size samples).
KL_MC = (('k1', 'reward', 'to_go'), ('k3', 'loss', 'to_go'), ('k3', 'both', 'to_go'),
         ('analytic', 'both', 'to_go'))


def kl_estimator_label(estimator: str, top_k: int, renormalise: bool, use: str,
                       returns: str) -> str:
  """'k3 as loss', 'k1 as reward (total)', 'top-2 renormalised as both', ..."""
  name = (estimator if estimator != 'top_k'
          else f'top-{top_k}' + (' renormalised' if renormalise else ''))
  return f'{name} as {use}' + (f' ({returns})' if use == 'reward' else '')


def kl_estimator_rows(setup: Setup, estimators=KL_ESTIMATORS, uses=KL_USES,
                      mc_settings=KL_MC) -> List[Estimate]:
  """kl_estimator: each estimate of KL(Q_t‖P_t) on the student's samples (`estimators`) used
  as a loss, a reward or both (`uses`), exact expected updates (Q held fixed, baseline 0)
  against ∇KL[Q‖P] and against ∇KL[P‖Q] (which one does it follow?); plus Monte-Carlo rows
  of `mc_settings` with the leave-one-out baseline. top_k > V is skipped."""
  gen, oracle, v = setup.generator, setup.problem, setup.options.vocab_size

  def per_sequence(estimator, top_k, renormalise, use, returns, baseline):
    def loss(prm, xs, pi):
      del pi
      return kl_estimator.loss(gen, prm, oracle.model, oracle.params, xs, estimator=estimator,
                               use=use, returns=returns, baseline=baseline,
                               top_k=max(top_k, 1), renormalise=renormalise)
    return loss

  rows = []
  for estimator, top_k, renormalise in estimators:
    if top_k > v:
      continue
    for use, returns in uses:
      grad = setup.expectation(per_sequence(estimator, top_k, renormalise, use, returns, 0.0))
      per_init = [grad(p, jnp.float32(np.nan)) for p in setup.inits]
      label = kl_estimator_label(estimator, top_k, renormalise, use, returns)
      rows += [Estimate('kl_estimator', label, target, None, 'exact', per_init)
               for target in ('kl_qp', 'kl_pq')]
  key = jax.random.PRNGKey(setup.options.seed + 3)
  for i, (estimator, use, returns) in enumerate(mc_settings):
    f = per_sequence(estimator, 0, False, use, returns, 'loo')
    mc = setup.monte_carlo(lambda prm, xs, pi, f=f: f(prm, xs, pi).mean())
    rows.append(Estimate(
        'kl_estimator', kl_estimator_label(estimator, 0, False, use, returns)
        + f', loo baseline, B={setup.options.batch_size}', 'kl_qp', None, 'mc',
        [mc(p, jnp.float32(np.nan), jax.random.fold_in(jax.random.fold_in(key, i), j))
         for j, p in enumerate(setup.inits)]))
  return rows


# Append builders here: each returns Estimates for all of setup.inits.
ROW_BUILDERS: List[Callable[[Setup], List[Estimate]]] = [mle_rows, direct_rows, cot_rows,
                                                         gan_pi_rows, seqgan_rows,
                                                         distill_rows, kl_estimator_rows]


# --- metrics -------------------------------------------------------------------------------------


def _compare(g: np.ndarray, g_star: np.ndarray) -> dict:
  """cosine, rel_err, norm_ratio of flat vectors g against g*."""
  n_star, n_g = np.linalg.norm(g_star), np.linalg.norm(g)
  return dict(cosine=float(g @ g_star / (n_g * n_star)),
              rel_err=float(np.linalg.norm(g - g_star) / n_star),
              norm_ratio=float(n_g / n_star))


def _flat(tree) -> np.ndarray:
  return np.asarray(ravel_pytree(tree)[0], np.float64)


def _flat_keys(tree) -> np.ndarray:
  """[K, ...] stacked pytree -> [K, num_params]."""
  return np.asarray(jax.vmap(lambda t: ravel_pytree(t)[0])(tree), np.float64)


def compare_one(gradient, g_star, method: str) -> dict:
  """The metrics of one init: exact comparison, or MC mean with noise floor and jackknife SE."""
  g_star = _flat(g_star)
  if method == 'exact':
    return _compare(_flat(gradient), g_star)
  samples = _flat_keys(gradient)  # [K, D]
  k = samples.shape[0]
  out = _compare(samples.mean(axis=0), g_star)
  out['noise'] = float(math.sqrt(samples.var(axis=0, ddof=1).sum() / k)
                       / np.linalg.norm(g_star))
  groups = np.array_split(np.arange(k), JACKKNIFE_GROUPS)
  total = samples.sum(axis=0)
  loo = [_compare((total - samples[idx].sum(axis=0)) / (k - len(idx)), g_star)
         for idx in groups]
  n = len(groups)
  for name in ('cosine', 'rel_err'):
    values = np.array([m[name] for m in loo])
    out[f'{name}_se'] = float(math.sqrt((n - 1) / n * ((values - values.mean()) ** 2).sum()))
  return out


def score(estimate: Estimate, setup: Setup, exact_gradient: Callable) -> dict:
  """One result row: per-init metrics and their aggregate over inits."""
  per_init = [compare_one(g, exact_gradient(p, estimate.divergence, estimate.pi),
                          estimate.method)
              for g, p in zip(estimate.gradients, setup.inits)]
  row = dict(scheme=estimate.scheme, estimator=estimate.estimator,
             divergence=estimate.divergence, pi=estimate.pi, method=estimate.method)
  for name in per_init[0]:
    values = np.array([m[name] for m in per_init])
    if name.endswith('_se'):  # SE of the mean over independent inits
      row[name] = float(math.sqrt((values ** 2).sum()) / len(values))
    else:
      row[name] = float(values.mean())
  row['cosine_min'] = min(m['cosine'] for m in per_init)
  row['rel_err_max'] = max(m['rel_err'] for m in per_init)
  row['per_init'] = per_init
  return row


def _fmt(value: float, digits: int = 4) -> str:
  if abs(value) >= 1e-3 or value == 0:
    return f'{value:.{digits}f}'
  return f'{value:.1e}'


def markdown(rows: Sequence[dict], info: dict) -> str:
  """The results table (mean over inits, worst in brackets) and a note on the setup."""
  o = info['options']
  lines = [
      '# Gradient fidelity',
      '',
      f"Oracle: random N(0, 1) LSTM, V={o['vocab_size']}, T={o['seq_len']}, E=H={o['width']}; "
      f"{o['num_inits']} generator inits N(0, {o['init_scale']}²); exact divergences per token "
      f"at the inits (mean): KL(P‖Q) {info['kl_pq']:.3f}, KL(Q‖P) {info['kl_qp']:.3f}, "
      f"JS_0.5 {info['js_0.5']:.4f}. g* = ∇ of the divergence by autodiff through enumeration; "
      f"'exact' = expected update by enumeration, 'mc' = mean of {o['num_keys']} "
      f"batches of {o['batch_size']} (± jackknife SE; noise = the rel. error an unbiased "
      'estimator shows from Monte-Carlo noise alone). Over inits: cosine mean [min], rel. '
      'error mean [max], norm ratio mean. Sequence-level targets (per token): js_pi_scaled = '
      'JS_π/(π(1−π)), skew_kl_pq = KL(P‖αP+(1−α)Q), skew_kl_qp = KL(Q‖(1−α)P+αQ) '
      f"(α = {info.get('skew_alpha', 0.1):g}), tv = ½Σ_x|P(x)−Q(x)|, alpha_beta = "
      f"D_AB^(α,β)(P‖Q) (α, β = {info.get('ab', (0.5, 0.5))[0]:g}, "
      f"{info.get('ab', (0.5, 0.5))[1]:g}).",
      '',
      '| scheme | estimator | divergence | π | method | cosine | rel. error | ‖g‖/‖g*‖ | noise |',
      '|---|---|---|---|---|---|---|---|---|',
  ]
  for r in rows:
    pi = '' if r['pi'] is None else f"{r['pi']:g}"
    cos = f"{_fmt(r['cosine'], 6)} [{_fmt(r['cosine_min'], 6)}]"
    err = f"{_fmt(r['rel_err'])} [{_fmt(r['rel_err_max'])}]"
    if r['method'] == 'mc':
      cos = f"{_fmt(r['cosine'], 4)} ± {_fmt(r['cosine_se'])} [{_fmt(r['cosine_min'], 4)}]"
      err = f"{_fmt(r['rel_err'])} ± {_fmt(r['rel_err_se'])} [{_fmt(r['rel_err_max'])}]"
    noise = _fmt(r['noise']) if 'noise' in r else ''
    lines.append(f"| {r['scheme']} | {r['estimator']} | {r['divergence']} | {pi} | "
                 f"{r['method']} | {cos} | {err} | {_fmt(r['norm_ratio'], 3)} | {noise} |")
  return '\n'.join(lines) + '\n'


def run(options: Options = Options(), builders=None, log=print) -> dict:
  """Builds the setup, every row, and returns {'info': ..., 'rows': [...]}."""
  t0 = time.time()
  setup = make_setup(options)
  values = exact_divergences(setup)
  exact_gradient = exact_gradient_fn(setup)
  at_inits = [jax.device_get(values(p, jnp.float32(0.5))) for p in setup.inits]
  info = dict(options=options._asdict(), skew_alpha=setup.config.distill.skew_alpha,
              ab=(float(setup.config.distill.ab_alpha), float(setup.config.distill.ab_beta)),
              kl_pq=float(np.mean([v['kl_pq'] for v in at_inits])),
              kl_qp=float(np.mean([v['kl_qp'] for v in at_inits])),
              **{'js_0.5': float(np.mean([v['js_pi'][0] for v in at_inits]))})
  rows = []
  for builder in (ROW_BUILDERS if builders is None else builders):
    for estimate in builder(setup):
      rows.append(score(estimate, setup, exact_gradient))
    log(f'[{builder.__name__}] done ({time.time() - t0:.1f}s)')
  info['wall_time'] = time.time() - t0
  info['device'] = str(jax.devices()[0].platform)
  return dict(info=info, rows=rows)


def write(output: dict, output_dir: str) -> str:
  """Writes gradient_fidelity.json and .md atomically; returns the markdown."""
  md = markdown(output['rows'], output['info'])
  files.atomic_write(os.path.join(output_dir, 'gradient_fidelity.json'),
                       json.dumps(output, indent=1))
  files.atomic_write(os.path.join(output_dir, 'gradient_fidelity.md'), md)
  return md


def _define_flags():
  """The command-line flags (defined only when run as a program: benchmarks.run, imported
  alongside in one process, owns --output_dir too)."""
  d = Options()
  flags.DEFINE_string('output_dir', 'results/gradient_fidelity',
                      'Where gradient_fidelity.json and .md go.')
  flags.DEFINE_integer('vocab_size', d.vocab_size, 'V of the enumerable problem.')
  flags.DEFINE_integer('seq_len', d.seq_len, 'T of the enumerable problem.')
  flags.DEFINE_float('init_scale', d.init_scale, 'Generator init scale (training uses 0.1).')
  flags.DEFINE_integer('num_inits', d.num_inits, 'Generator parameter draws.')
  flags.DEFINE_integer('num_keys', d.num_keys, 'Monte-Carlo keys per mc row.')
  flags.DEFINE_integer('batch_size', d.batch_size, 'Samples per key in mc rows.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli.quiet_backend_probe()
  f = flags.FLAGS
  options = Options(vocab_size=f.vocab_size, seq_len=f.seq_len, init_scale=f.init_scale,
                    num_inits=f.num_inits, num_keys=f.num_keys, batch_size=f.batch_size)
  output = run(options, log=lambda s: print(s, flush=True))
  md = write(output, f.output_dir)
  print(md, flush=True)
  print(f"done in {output['info']['wall_time']:.1f}s; results in {f.output_dir}/", flush=True)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
