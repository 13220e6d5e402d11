"""Scheduled sampling (Bengio et al., 2015): teacher forcing with the model's own samples mixed in.

At training step i, each input token after the start token is the data token x_{t-1} with
probability ε_i, otherwise a token drawn from the model's own step-(t-1) distribution (given
the inputs it was fed); the loss is the per-token NLL of the data tokens x_t under these mixed
inputs. The draws are discrete and carry no gradient. ε_i decays from (about) 1 to small
values with a schedule: 'linear' ε = max(ε_min, 1 − c·i), 'exponential' ε = k^i,
'inverse_sigmoid' ε = k / (k + exp(i / k)).

Huszár (2015) showed the objective is improper: its optimum is not P unless ε = 1. On a
two-step sequence the fixed point is Q* = ε P + (1 − ε) P(x_1) P(x_2) (see
`tabular_fixed_point`), so at ε = 0 it learns the product of the marginals.

References:
  Bengio, Vinyals, Jaitly, Shazeer. Scheduled Sampling for Sequence Prediction with Recurrent
    Neural Networks. NeurIPS 2015. https://arxiv.org/abs/1506.03099
  Huszár. How (not) to Train your Generative Model: Scheduled Sampling, Likelihood,
    Adversary? 2015. https://arxiv.org/abs/1511.05101
"""

from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

from objectives import base
from objectives import footprint

SCHEDULES = ('linear', 'exponential', 'inverse_sigmoid')


# --- schedules of ε_i, the probability of feeding the data token at training step i ---------

def linear(step: jax.Array, *, slope: float, minimum: float) -> jax.Array:
  """ε = max(minimum, 1 − slope · step): scalar float32 in [minimum, 1]."""
  return jnp.maximum(minimum, 1.0 - slope * jnp.asarray(step, jnp.float32))


def exponential(step: jax.Array, *, base: float) -> jax.Array:
  """ε = base^step with 0 < base ≤ 1: scalar float32 in (0, 1], 1 at step 0."""
  return jnp.exp(jnp.asarray(step, jnp.float32) * jnp.log(jnp.float32(base)))


def inverse_sigmoid(step: jax.Array, *, k: float) -> jax.Array:
  """ε = k / (k + exp(step / k)) with k ≥ 1: k / (k + 1) at step 0, half at step k ln k.

  exp overflows to +inf for step > ~88 k, which gives ε = 0 exactly (never NaN).
  """
  return k / (k + jnp.exp(jnp.asarray(step, jnp.float32) / k))


def check_config(config) -> None:
  """ValueError naming the --config.scheduled_sampling field that is out of range."""
  ss_config = config.scheduled_sampling
  flag = '--config.scheduled_sampling.'
  if ss_config.schedule not in SCHEDULES:
    raise ValueError(f'{flag}schedule: {ss_config.schedule!r} is not one of '
                     f'{", ".join(SCHEDULES)}')
  checks = (('linear_slope', lambda v: v >= 0, '>= 0'),
            ('linear_min', lambda v: 0 <= v <= 1, 'in [0, 1]'),
            ('exponential_base', lambda v: 0 < v <= 1, 'in (0, 1]'),
            ('inverse_sigmoid_k', lambda v: v >= 1, '>= 1'))
  for field, ok, what in checks:
    value = ss_config[field]
    if not isinstance(value, (int, float)) or not ok(value):
      raise ValueError(f'{flag}{field}: must be {what}, got {value!r}')


def epsilon(ss_config, step: jax.Array) -> jax.Array:
  """ε_i of `config.scheduled_sampling` at training step i (int, may be traced): scalar."""
  if ss_config.schedule == 'linear':
    return linear(step, slope=ss_config.linear_slope, minimum=ss_config.linear_min)
  if ss_config.schedule == 'exponential':
    return exponential(step, base=ss_config.exponential_base)
  if ss_config.schedule == 'inverse_sigmoid':
    return inverse_sigmoid(step, k=ss_config.inverse_sigmoid_k)
  raise ValueError(f'--config.scheduled_sampling.schedule: unknown {ss_config.schedule!r}')


def schedule_summary(ss_config, num_steps: int, *, low: float = 0.05) -> str:
  """One line saying how ε_i of `config.scheduled_sampling` falls over a run of num_steps.

  The schedules' defaults are sized for `small`'s 2,000 steps; on a longer run they can reach
  their end value early, leaving most of it at ε ≈ 0 (the product-of-marginals regime of
  Huszár's fixed point). The scheme's `describe` gives this line, which the runner logs before
  training, so the shape of the schedule is seen before the run, not in its results.

  Args:
    ss_config: config.scheduled_sampling.
    num_steps: the run's training steps N (the generator's updates 0 … N − 1).
    low: the ε below which the line says from which step on ε stays.

  Returns:
    e.g. for the config's defaults over the seqgan preset's 19,050 steps: 'inverse_sigmoid
    schedule: ε (the data token's probability) 0.997 at step 0, 0.000 at 25%, 0.000 at 50%,
    0.000 at 75%, 0.000 at step 19,049; below 0.05 from step 2,595 (14% of the run) on'.
  """
  last = max(num_steps - 1, 0)
  marks = [(0, 'step 0')] + [(round(last * f), f'{int(f * 100)}%') for f in (0.25, 0.5, 0.75)]
  marks.append((last, f'step {last:,}'))
  steps = jnp.arange(num_steps)
  eps = np.asarray(epsilon(ss_config, steps))
  text = (f'{ss_config.schedule} schedule: ε (the data token\'s probability) '
          + ', '.join(f'{eps[i]:.3f} at {where}' for i, where in marks))
  below = np.flatnonzero(eps >= low)  # ε is non-increasing: below `low` after the last of these
  first_low = 0 if below.size == 0 else int(below[-1]) + 1
  if first_low < num_steps:
    text += (f'; below {low:g} from step {first_low:,} ({100 * first_low / num_steps:.0f}% of '
             'the run) on')
  return text


# --- the loss ----------------------------------------------------------------------------------

def loss(model, params, batch: jax.Array, key: jax.Array, eps) -> jax.Array:
  """Per-token NLL of each data sequence under scheduled mixing of the inputs.

  Args:
    model: the generator module (an LSTMLM).
    params: its variables.
    batch: int32 [B, T] samples of P.
    key: PRNG key of the coins and of the model's draws.
    eps: scalar in [0, 1] (may be traced): the probability that an input is the data token.

  Returns:
    [B]: −Σ_t log q(x_t | mixed inputs) / T. With eps = 1 this is `mle.nll` exactly; the
    gradient ignores how the drawn inputs depend on the parameters (no score-function term).
  """
  logp = model.apply(params, batch, key, eps, method='mixed_token_log_probs')
  return -logp.sum(axis=-1) / batch.shape[-1]


# --- Huszár's improperness example, exactly ---------------------------------------------------

def expected_objective_tabular(log_q1: jax.Array, log_q2: jax.Array, p: jax.Array,
                               eps) -> jax.Array:
  """The expected scheduled-sampling loss of a tabular two-step model, in closed form.

  For a sequence x = (x_1, x_2) ~ P, the first input is the start token, so step 1 scores
  −log q1(x_1); the second input is x_1 with probability ε, else y ~ q1 drawn by the model
  (independent of x), so step 2 scores −log q2(x_2 | x_1) or −log q2(x_2 | y). Averaging the
  coin and the draw:
    L(q) = E_{x~P}[ −log q1(x_1) − ε log q2(x_2 | x_1) − (1 − ε) Σ_y q1(y) log q2(x_2 | y) ]
         = −Σ_a P1(a) log q1(a) − ε Σ_{a,b} P(a, b) log q2(b | a)
           − (1 − ε) Σ_y q1(y) Σ_b P2(b) log q2(b | y),
  with P1, P2 the marginals of P. Since the draw carries no gradient, q1 in the last sum is
  held fixed (stop_gradient): the gradient of L is then the expected gradient of the sampled
  loss, i.e. what scheduled sampling follows. This is T = 2 times the mean of `loss`.

  Args:
    log_q1: [V] log q1(x_1).
    log_q2: [V, V] log q2(x_2 | x_1), rows indexed by the conditioning token.
    p: [V, V] P(x_1, x_2), summing to 1.
    eps: scalar in [0, 1].

  Returns:
    scalar: the sequence-level expected loss (nats).
  """
  p1, p2 = p.sum(axis=1), p.sum(axis=0)
  mix = jax.lax.stop_gradient(jnp.exp(log_q1))  # the draw's distribution: no gradient

  def xlogq(w, logq):  # w · log q with 0 · log 0 = 0 (q may vanish where w does)
    return jnp.where(w > 0, w * logq, 0.0).sum()

  step1 = -xlogq(p1, log_q1)
  data_input = -xlogq(p, log_q2)
  model_input = -xlogq(mix[:, None] * p2[None, :], log_q2)
  return step1 + eps * data_input + (1.0 - eps) * model_input


def tabular_fixed_point(p: jax.Array, eps) -> Tuple[jax.Array, jax.Array]:
  """The tabular model scheduled sampling converges to, in closed form.

  The gradient of `expected_objective_tabular` w.r.t. q1 comes only from −Σ P1 log q1, so
  q1* = P1. Given q1*, each row q2(· | y) is a cross-entropy minimiser with target
  [ε P(y, ·) + (1 − ε) q1*(y) P2(·)] / [ε P1(y) + (1 − ε) q1*(y)] = ε P(· | y) + (1 − ε) P2(·),
  so Q*(x_1, x_2) = ε P(x_1, x_2) + (1 − ε) P1(x_1) P2(x_2): P only at ε = 1, the product of
  the marginals at ε = 0. Rows with P1(y) = 0 get no weight; they are set to P2.

  Args:
    p: [V, V] P(x_1, x_2).
    eps: scalar in [0, 1].

  Returns:
    (q1 [V], q2 [V, V]) probabilities.
  """
  p1, p2 = p.sum(axis=1), p.sum(axis=0)
  cond = p / jnp.where(p1 > 0, p1, 1.0)[:, None]
  q2 = jnp.where(p1[:, None] > 0, eps * cond + (1.0 - eps) * p2[None, :], p2[None, :])
  return p1, q2


# --- the scheme ---------------------------------------------------------------------------------

def make(config, problem) -> base.Scheme:
  """Scheduled sampling on data batches with Adam and gradient clipping (config.train).

  ε_i follows `config.scheduled_sampling` with i = the generator's update count; the step
  reports the mixed-input NLL ('loss') and ε ('eps').
  """
  del problem  # only data batches are seen
  check_config(config)
  ss = config.scheduled_sampling
  model = base.generator_from_config(config)
  optimizer = base.optimizer_from_config(config.train)

  def init(key, generator_params=None):
    return base.init_network(model, optimizer, key, generator_params)

  def step(state, batch, key, pi):
    del pi
    eps = epsilon(ss, state.count)
    value, grads = jax.value_and_grad(
        lambda p: loss(model, p, batch, key, eps).mean())(state.params)
    return base.apply_gradients(optimizer, state, grads), {'loss': value, 'eps': eps}

  return base.Scheme(init=init, step=step, generator_params=lambda s: s.params,
                     generator=model, uses_pi=False,
                     describe=lambda: schedule_summary(ss, config.train.num_steps))


def working_set_bytes(config) -> int:
  """Activations of one step: the teacher-forced pass and each step's model sample of the
  previous token."""
  B = config.train.batch_size
  return footprint.teacher_forced_bytes(config, B) + footprint.sampling_bytes(config, B)
