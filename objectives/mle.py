"""Maximum likelihood (teacher forcing): minimises KL(P || Q) up to the constant H(P)."""

import jax

from objectives import base


def nll(model, params, batch: jax.Array) -> jax.Array:
  """Per-token negative log-likelihood of each data sequence.

  Args:
    model: the generator module (an LSTMLM).
    params: its variables.
    batch: int32 [B, T] samples of P.

  Returns:
    [B]: −log Q(x) / T. Its mean over x ~ P is KL(P || Q)/T + H(P)/T, so its gradient is an
    unbiased estimate of the gradient of KL(P || Q)/T.
  """
  return -model.apply(params, batch, method='log_prob') / batch.shape[-1]


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
    loss, grads = jax.value_and_grad(lambda p: nll(model, p, batch).mean())(state.params)
    return base.apply_gradients(optimizer, state, grads), {'loss': loss}

  return base.Scheme(init=init, step=step, generator_params=lambda s: s.params,
                     generator=model, uses_pi=False)
