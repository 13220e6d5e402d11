"""Professor forcing (Lamb et al., 2016): match free-running to teacher-forced hidden dynamics.

A discriminator D (models.sequence_discriminator) reads the generator's hidden-state sequences
("behaviour") and tells teacher-forced runs on data batches (label 1) from free-running runs
on the generator's own samples (label 0). The generator minimises, per sequence,
  [ −log Q(x)  +  λ · C_f ] / T,   C_f = −log D(h_free)
i.e. it learns the data by teacher forcing and, through the paper's generator term C_f, makes
its free-running behaviour look teacher-forced to D. λ = 1 is the paper's plain sum of the
sequence NLL and C_f; dividing by T keeps the loss per token like every other scheme's. With
`teacher_forced_term`, the paper's optional C_t = −log(1 − D(h_teacher)) is added to C_f
(teacher-forced behaviour pulled towards free-running); it is off by default. The free-running
hidden states are differentiable w.r.t. the generator's parameters through the recurrence and
the embeddings of the sampled inputs; the sampled tokens are discrete and carry no gradient,
as in the paper.

Each step uses one free-running batch of the data batch's size, and updates the generator and
the discriminator simultaneously from the same forward pass (both gradients at the current
parameters of both networks).

References:
  Lamb, Goyal, Zhang, Zhang, Courville, Bengio. Professor Forcing: A New Algorithm for
    Training Recurrent Networks. NeurIPS 2016. https://arxiv.org/abs/1610.09038
"""

from typing import Tuple

import flax
import jax
import jax.numpy as jnp
import optax

from models import sampling
from models.sequence_discriminator import SequenceDiscriminator
from objectives import base
from objectives import mle


@flax.struct.dataclass
class State:
  """The generator's and the discriminator's parameters and optimiser states."""
  generator: base.GeneratorState
  discriminator: base.GeneratorState


def discriminator_from_config(config) -> SequenceDiscriminator:
  """The hidden-state discriminator of `config.professor_forcing`."""
  pf = config.professor_forcing
  return SequenceDiscriminator(hidden_dim=pf.disc_hidden_dim, mlp_dim=pf.disc_mlp_dim,
                               bidirectional=pf.disc_bidirectional)


def discriminator_optimizer(config) -> optax.GradientTransformation:
  """Adam at `config.professor_forcing.disc_learning_rate`, clipped at train.grad_clip."""
  return optax.chain(optax.clip_by_global_norm(config.train.grad_clip),
                     optax.adam(config.professor_forcing.disc_learning_rate))


def _logits_both(disc, disc_params, h_teacher, h_free) -> Tuple[jax.Array, jax.Array]:
  # One discriminator pass over the 2B sequences: half the scans to compile and run.
  logits = disc.apply(disc_params, jnp.concatenate([h_teacher, h_free], axis=0))
  return logits[:h_teacher.shape[0]], logits[h_teacher.shape[0]:]


def _bce(logit_teacher: jax.Array, logit_free: jax.Array) -> jax.Array:
  # −log σ(l) = softplus(−l) and −log(1 − σ(l)) = softplus(l): stable for any logit.
  return jax.nn.softplus(-logit_teacher) + jax.nn.softplus(logit_free)


def discriminator_loss(disc, disc_params, h_teacher: jax.Array,
                       h_free: jax.Array) -> jax.Array:
  """Binary cross-entropy of D: teacher-forced is label 1, free-running label 0.

  Args:
    disc: the SequenceDiscriminator.
    disc_params: its variables.
    h_teacher: [B, T, H] teacher-forced hidden states (on data).
    h_free: [B, T, H] free-running hidden states (on generator samples).

  Returns:
    [B]: −log D(h_teacher) − log(1 − D(h_free)) per pair of sequences.
  """
  return _bce(*_logits_both(disc, disc_params, h_teacher, h_free))


def generator_loss(model, disc, params, disc_params, batch: jax.Array, key: jax.Array, *,
                   weight, teacher_forced_term: bool = False,
                   method: str = sampling.DEFAULT) -> Tuple[jax.Array, dict]:
  """The generator's professor-forcing loss.

  Args:
    model: the generator module (an LSTMLM).
    disc: the SequenceDiscriminator.
    params: the generator's variables (differentiated).
    disc_params: the discriminator's variables (held fixed by the caller).
    batch: int32 [B, T] samples of P.
    key: PRNG key of the B free-running samples.
    weight: λ ≥ 0, scalar: the weight of the adversarial term against the sequence NLL.
    teacher_forced_term: also add C_t = −log(1 − D(h_teacher)) (static).
    method: the categorical sampler of the free-running run.

  Returns:
    (loss [B]: (−log Q(x_b) + λ · adversarial_b) / T, aux) with aux = {'nll' [B]: per token
    as `mle.nll`, 'adversarial' [B]: C_f (+ C_t) per sequence, 'h_teacher' [B, T, H],
    'h_free' [B, T, H]}.
  """
  nll = mle.nll(model, params, batch)
  h_teacher = model.apply(params, batch, method='hidden_states')
  _, h_free = model.apply(params, key, batch.shape[0], method,
                          method='free_running_hidden_states')
  if teacher_forced_term:
    logit_teacher, logit_free = _logits_both(disc, disc_params, h_teacher, h_free)
    # −log D(h_free) − log(1 − D(h_teacher)): the labels of the discriminator's loss, swapped.
    adversarial = _bce(logit_free, logit_teacher)
  else:
    adversarial = jax.nn.softplus(-disc.apply(disc_params, h_free))    # −log D(h_free)
  aux = dict(nll=nll, adversarial=adversarial, h_teacher=h_teacher, h_free=h_free)
  return nll + (weight / batch.shape[-1]) * adversarial, aux


def check_config(config) -> None:
  """ValueError naming the first invalid --config.professor_forcing.* field."""
  pf = config.professor_forcing
  base.check_positive('professor_forcing', 'weight', pf.weight, allow_zero=True)
  for field in ('disc_hidden_dim', 'disc_mlp_dim'):
    base.check_positive('professor_forcing', field, pf[field], integer=True)
  base.check_positive('professor_forcing', 'disc_learning_rate', pf.disc_learning_rate)


def make(config, problem) -> base.Scheme:
  """Professor forcing with Adam for both networks (config.train, config.professor_forcing).

  The generator starts from the same initialisation as MLE's for the same key. The step
  reports 'loss' (the generator's total), 'nll', 'adversarial', 'disc_loss' and
  'disc_accuracy' (fraction of the 2B sequences D classifies right).
  """
  del problem  # only data batches are seen
  check_config(config)
  pf = config.professor_forcing
  model = base.generator_from_config(config)
  disc = discriminator_from_config(config)
  g_opt = base.optimizer_from_config(config.train)
  d_opt = discriminator_optimizer(config)

  def init(key, generator_params=None):
    generator = base.init_network(model, g_opt, key, generator_params)  # = mle.make(...).init(key)
    features = jnp.zeros((1, model.seq_len, model.hidden_dim))
    d_params = disc.init(jax.random.fold_in(key, 1), features)
    discriminator = base.GeneratorState(d_params, d_opt.init(d_params),
                                        jnp.zeros((), jnp.int32))
    return State(generator, discriminator)

  def step(state, batch, key, pi):
    del pi
    g, d = state.generator, state.discriminator

    def g_objective(params):
      losses, aux = generator_loss(model, disc, params, d.params, batch, key, weight=pf.weight,
                                   teacher_forced_term=pf.teacher_forced_term)
      return losses.mean(), aux

    (g_value, aux), g_grads = jax.value_and_grad(g_objective, has_aux=True)(g.params)
    h_teacher = jax.lax.stop_gradient(aux['h_teacher'])
    h_free = jax.lax.stop_gradient(aux['h_free'])

    def d_objective(d_params):
      logit_teacher, logit_free = _logits_both(disc, d_params, h_teacher, h_free)
      correct = jnp.concatenate([logit_teacher > 0, logit_free < 0])
      return _bce(logit_teacher, logit_free).mean(), correct.mean()

    (d_value, d_acc), d_grads = jax.value_and_grad(d_objective, has_aux=True)(d.params)
    new = State(base.apply_gradients(g_opt, g, g_grads), base.apply_gradients(d_opt, d, d_grads))
    metrics = dict(loss=g_value, nll=aux['nll'].mean(), adversarial=aux['adversarial'].mean(),
                   disc_loss=d_value, disc_accuracy=d_acc)
    return new, metrics

  return base.Scheme(init=init, step=step, generator_params=lambda s: s.generator.params,
                     generator=model, uses_pi=False)
