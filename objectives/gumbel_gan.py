"""Gumbel-softmax GAN (Kusner & Hernández-Lobato 2016): a GAN on relaxed one-hot sequences.

The generator LSTM emits at each step the relaxed one-hot y_t = softmax((l_t + g_t) / τ),
g_t ~ Gumbel(0, 1), and feeds its soft embedding back as the next input
(`LSTMLM.sample_relaxed`); the discriminator (an LSTM by default, as in the paper) reads the
relaxed rows of generated sequences and the exact one-hots of data sequences. The generator
is trained by backpropagating D's loss through the relaxation (a biased, low-variance
reparameterised gradient), the discriminator with the standard GAN loss (π = 1/2 in
`gan_pi`'s notation, i.e. half the usual binary cross-entropy). τ is annealed with the
number of generator updates i (`temperature`):
  'constant':    τ = tau_init
  'exponential': τ = max(tau_min, tau_init · exp(−tau_decay · i))
  'linear':      τ = max(tau_min, tau_init − (tau_init − tau_min) · i / tau_anneal_steps)
With `straight_through` the forward values are hard one-hots (so D sees sequences exactly
as distributed under the generator) and gradients are those of the soft samples.
"""

import jax
import jax.numpy as jnp

from objectives import adversarial
from objectives import base

SCHEDULES = ('constant', 'exponential', 'linear')


def temperature(count: jax.Array, *, schedule: str, tau_init: float, tau_min: float,
                decay: float, anneal_steps: int) -> jax.Array:
  """The Gumbel-softmax temperature after `count` generator updates (scalar, traceable).

  Args:
    count: number of generator updates made, int scalar.
    schedule: 'constant', 'exponential' or 'linear' (module docstring).
    tau_init: τ at count 0.
    tau_min: the floor of the annealed schedules.
    decay: the exponential schedule's rate per update.
    anneal_steps: the linear schedule's length in updates.

  Returns:
    float32 scalar τ > 0.
  """
  i = jnp.asarray(count, jnp.float32)
  if schedule == 'constant':
    return jnp.full((), tau_init, jnp.float32)
  if schedule == 'exponential':
    return jnp.maximum(tau_min, tau_init * jnp.exp(-decay * i))
  if schedule == 'linear':
    return jnp.maximum(tau_min, tau_init - (tau_init - tau_min) * i / anneal_steps)
  raise ValueError(f'--config.gumbel_gan.tau_schedule: unknown {schedule!r}; '
                   f'known: {", ".join(SCHEDULES)}')


def _options(gc) -> adversarial.AdversarialOptions:
  return adversarial.AdversarialOptions(
      learning_rate=gc.learning_rate, d_learning_rate=gc.d_learning_rate,
      discriminator=gc.discriminator, generator_loss=gc.generator_loss, estimator='gumbel',
      straight_through=bool(gc.straight_through), d_steps=gc.d_steps,
      penalty=adversarial.PenaltyConfig(gc.penalty, gc.penalty_weight, gc.dragan_noise))


def check_config(config) -> None:
  """ValueError naming the first invalid --config.gumbel_gan.* or discriminator field."""
  gc = config.gumbel_gan
  base.check_choice('gumbel_gan', 'tau_schedule', gc.tau_schedule, SCHEDULES)
  for field in ('tau_init', 'tau_min'):
    base.check_positive('gumbel_gan', field, gc[field])
  base.check_positive('gumbel_gan', 'tau_decay', gc.tau_decay, allow_zero=True)
  if gc.tau_schedule == 'linear':
    base.check_positive('gumbel_gan', 'tau_anneal_steps', gc.tau_anneal_steps, integer=True)
  adversarial.check_options(_options(gc), 'gumbel_gan')
  adversarial.check_discriminator_config(config)


def make(config, problem) -> base.Scheme:
  """gumbel_gan from config.gumbel_gan: a standard GAN (π = 1/2), Gumbel-softmax estimator."""
  check_config(config)
  gc = config.gumbel_gan
  schedule = dict(schedule=gc.tau_schedule, tau_init=float(gc.tau_init),
                  tau_min=float(gc.tau_min), decay=float(gc.tau_decay),
                  anneal_steps=int(gc.tau_anneal_steps))
  opts = _options(gc)
  return adversarial.make_adversarial(config, problem, opts, section='gumbel_gan',
                                 temperature=lambda count: temperature(count, **schedule),
                                 uses_pi=False, fixed_pi=0.5)


def working_set_bytes(config) -> int:
  """Activations of one step (`adversarial.working_set_bytes`, Gumbel estimator)."""
  return adversarial.working_set_bytes(config, config.gumbel_gan.discriminator, gumbel=True)
