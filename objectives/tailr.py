"""TaiLr: NLL of data with each token weighted by the model's own, clamped, probability ratio.

Ji et al. (ICLR 2023) minimise the total variation distance TV(P, Q) through a weighted NLL
of data tokens, as their code trains it (no label smoothing here):

  L(x) = −(1/T) Σ_t w_t log Q(x_t | x_<t),
  w_t = sg[ clamp( Q(x_t|x_<t) / (γ + (1 − γ) Q(x_t|x_<t)), min_weight, 1 ) ],

the weight held fixed (no gradient). γ = 0 makes every weight 1 (MLE exactly); γ = 1 weights
each token by its probability under Q, whose expected update is the gradient of the
per-token −Σ_t p·q that bounds TV; min_weight keeps low-probability data tokens learning.
`distill`'s divergence 'tvd' is the TV distance itself with the teacher's density; this is
the data-only objective the paper trains. Its expectation is not a divergence the suite
reports: the runs place it on the KL plane beside MLE.

The paper's scripts set (γ, min_weight) per task: (1e-7, 0.2) on synthetic data and long
text, (0.1, 0.3) on IWSLT, (0.8, 0.2) on Gigaword; defaults here (0.1, 0.3).

Reference: Ji, Ke, Hu, Zhang, Huang, Tailoring Language Generation Models under Total
Variation Distance, ICLR 2023.
"""

import jax
import jax.numpy as jnp

from objectives import base
from objectives import footprint


def weights(log_q_tok: jax.Array, gamma, min_weight) -> jax.Array:
  """TaiLr's per-token weights from log Q(x_t | x_<t) [...]: clamp(q / (γ + (1−γ) q),
  min_weight, 1), same shape, gradient stopped."""
  log_q_tok = jax.lax.stop_gradient(log_q_tok)
  q = jnp.exp(log_q_tok)
  ratio = jnp.exp(log_q_tok - jnp.log(gamma + (1.0 - gamma) * q))
  return jnp.clip(ratio, min_weight, 1.0)


def loss(model, params, batch: jax.Array, *, gamma, min_weight) -> jax.Array:
  """Per-row weighted NLL [B] of data rows int32 [B, T]: −(1/T) Σ_t w_t log Q(x_t | x_<t)."""
  log_q_tok = model.apply(params, batch, method='token_log_probs')
  return -(weights(log_q_tok, gamma, min_weight) * log_q_tok).mean(axis=-1)


def check_config(config) -> None:
  """ValueError naming the first invalid --config.tailr.* field; no compute."""
  for field in ('gamma', 'min_weight'):
    base.check_unit_interval('tailr', field, config.tailr[field])


def make(config, problem) -> base.Scheme:
  """TaiLr's weighted NLL on data batches with config.train's Adam and clipping."""
  del problem  # data batches only, like MLE
  check_config(config)
  model = base.generator_from_config(config)
  optimizer = base.optimizer_from_config(config.train)
  gamma, min_weight = float(config.tailr.gamma), float(config.tailr.min_weight)

  def init(key, generator_params=None):
    return base.init_network(model, optimizer, key, generator_params)

  def step(state, batch, key, pi):
    del key, pi
    value, grads = jax.value_and_grad(lambda p: loss(
        model, p, batch, gamma=gamma, min_weight=min_weight).mean())(state.params)
    return base.apply_gradients(optimizer, state, grads), {'loss': value}

  return base.Scheme(init=init, step=step, generator_params=lambda s: s.params,
                     generator=model, uses_pi=False)


def working_set_bytes(config) -> int:
  """Activations of one step: the batch's teacher-forced pass."""
  return footprint.teacher_forced_bytes(config, config.train.batch_size)
