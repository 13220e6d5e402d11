"""Maximum likelihood (teacher forcing): minimises KL(P || Q) up to the constant H(P)."""

import jax

from objectives import base
from objectives import footprint
from objectives import teacher_forcing


def check_config(config) -> None:
  """MLE has no section of its own: config.train is checked by the runner."""
  del config


def make(config, problem) -> base.Scheme:
  """MLE on data batches with Adam and gradient clipping (config.train)."""
  del problem  # MLE only sees data batches.
  model = base.generator_from_config(config)
  optimizer = base.optimizer_from_config(config.train)

  def init(key, generator_params=None):
    return base.init_network(model, optimizer, key, generator_params)

  def step(state, batch, key, pi):
    del key, pi
    loss, grads = jax.value_and_grad(lambda p: teacher_forcing.nll(model, p, batch).mean())(state.params)
    return base.apply_gradients(optimizer, state, grads), {'loss': loss}

  return base.Scheme(init=init, step=step, generator_params=lambda s: s.params,
                     generator=model, uses_pi=False)


def working_set_bytes(config) -> int:
  """Activations of one step: the batch's teacher-forced pass."""
  return footprint.teacher_forced_bytes(config, config.train.batch_size)
