"""Professor forcing (Lamb et al., 2016): match free-running to teacher-forced behaviour.

What the paper does. A generator RNN is run twice per update: teacher-forced on a data batch
and free-running on its own samples. Its "behaviour" at each step, the pre-tanh hidden
activations and the softmax output, forms a sequence B that a discriminator D (a
bidirectional GRU with an MLP on top) classifies as teacher-forced (label 1) or free-running
(label 0), trained by binary cross-entropy C_d. The generator minimises the data NLL plus
C_f = −log D(B_free) (free-running behaviour made to look teacher-forced, the teacher-forced
one held fixed), optionally plus C_t = −log(1 − D(B_teacher)). Gradients reach the generator
through the behaviour (recurrence, embeddings of the inputs, softmax), not through the discrete
samples. D and G are scheduled by D's accuracy: the generator receives the adversarial
gradient only while D is accurate (above 75%), and D is trained only while its accuracy is
below 99%. (Their generators were GRUs, much wider than ours; their D was sized for them.)

What we do. Per sequence, the generator minimises
  [ −log Q(x)  +  g · λ · C_f ] / T,
λ = `weight` (1 = the paper's plain sum; dividing by T keeps the loss per token like every
other scheme's), with `teacher_forced_term` adding C_t to C_f. The behaviour of step t is
`LSTMLM.behaviour` / `free_running_behaviour`: concat(c_t, softmax(logits_t)) [H + V], where
c_t is the LSTM cell state, the argument of the output tanh in h_t = o_t · tanh(c_t) (the
LSTM analogue of the paper's pre-tanh GRU activation), and softmax(logits_t) is the full
next-token distribution, fed to D as it is (D's first layer is an [H + V, 2 · 3 · H_D] matmul,
the largest of the step).
D is `models.sequence_discriminator.SequenceDiscriminator`: a bidirectional GRU of
`disc_hidden_dim` units per direction, its two final states concatenated, then
`disc_mlp_layers` ReLU layers of `disc_mlp_dim` and a linear logit.

Each step draws one free-running batch of the data batch's size, and computes D's accuracy
on these 2B sequences at D's current parameters (before its update). The gates are
  g = [accuracy ≥ g_accuracy_threshold]   (the adversarial term is applied),
  d = [accuracy < d_accuracy_ceiling]     (D takes its Adam step; otherwise D's parameters,
                                           Adam state and count are left exactly as they were).
With g = 0 the generator's update is MLE's (the adversarial branch is skipped, and under
vmap it runs only when some run needs it). Both updates are simultaneous: each gradient is
taken at the current parameters of both networks, from the same free-running batch.

Differences from the paper, all deliberate:
  * LSTM generator, so c_t stands for the pre-tanh activation (the paper's GRUs).
  * D's sizes are ours (config.professor_forcing), chosen for 32-unit generators; the
    summary of the bidirectional GRU is its two final states.
  * The loss is per token (÷ T); λ weighs C_f against the NLL (the paper adds them).
  * The paper states accuracy > 75% for the generator's gate; we apply it at ≥, so a
    threshold of 0 means "always" (the values differ only at accuracy exactly 0.75).
  * The accuracy the gates read is that of the current batch (2B sequences, before D's
    update), our reading of the paper; no running average.

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
from objectives import adversarial as adversarial_lib
from objectives import base
from objectives import footprint
from objectives import teacher_forcing


@flax.struct.dataclass
class State:
  """The generator's and the discriminator's parameters and optimiser states."""
  generator: base.GeneratorState
  discriminator: base.GeneratorState


def discriminator_from_config(config) -> SequenceDiscriminator:
  """The behaviour discriminator of `config.professor_forcing`."""
  pf = config.professor_forcing
  return SequenceDiscriminator(hidden_dim=pf.disc_hidden_dim, mlp_dim=pf.disc_mlp_dim,
                               mlp_layers=pf.disc_mlp_layers,
                               bidirectional=pf.disc_bidirectional)


def discriminator_optimizer(config) -> optax.GradientTransformation:
  """Adam at `config.professor_forcing.disc_learning_rate`, clipped at train.grad_clip."""
  return optax.chain(optax.clip_by_global_norm(config.train.grad_clip),
                     optax.adam(config.professor_forcing.disc_learning_rate))


def behaviours(model, params, batch: jax.Array, key: jax.Array,
               method: str = sampling.DEFAULT) -> Tuple[jax.Array, jax.Array]:
  """The generator's teacher-forced and free-running behaviour.

  Args:
    model: the generator module (an LSTMLM).
    params: its variables.
    batch: int32 [B, T] samples of P.
    key: PRNG key of the B free-running samples.
    method: the categorical sampler of the free-running run.

  Returns:
    (teacher [B, T, H + V] on the batch, free [B, T, H + V] on B of the generator's own
    samples), each concat(c_t, softmax(logits_t)), differentiable w.r.t. params.
  """
  teacher = model.apply(params, batch, method='behaviour')
  _, free = model.apply(params, key, batch.shape[0], method, method='free_running_behaviour')
  return teacher, free


def _logits_both(disc, disc_params, b_teacher, b_free) -> Tuple[jax.Array, jax.Array]:
  # One discriminator pass over the 2B sequences: half the scans to compile and run.
  logits = disc.apply(disc_params, jnp.concatenate([b_teacher, b_free], axis=0))
  return logits[:b_teacher.shape[0]], logits[b_teacher.shape[0]:]


def _bce(logit_teacher: jax.Array, logit_free: jax.Array) -> jax.Array:
  # −log σ(l) = softplus(−l) and −log(1 − σ(l)) = softplus(l): stable for any logit.
  return jax.nn.softplus(-logit_teacher) + jax.nn.softplus(logit_free)


def discriminator_loss(disc, disc_params, b_teacher: jax.Array,
                       b_free: jax.Array) -> jax.Array:
  """Binary cross-entropy of D: teacher-forced is label 1, free-running label 0.

  Args:
    disc: the SequenceDiscriminator.
    disc_params: its variables.
    b_teacher: [B, T, F] teacher-forced behaviour (on data).
    b_free: [B, T, F] free-running behaviour (on generator samples).

  Returns:
    [B]: −log D(b_teacher) − log(1 − D(b_free)) per pair of sequences.
  """
  return _bce(*_logits_both(disc, disc_params, b_teacher, b_free))


def _adversarial(logit_teacher, logit_free, teacher_forced_term: bool) -> jax.Array:
  if teacher_forced_term:
    # −log D(b_free) − log(1 − D(b_teacher)): the labels of the discriminator's loss, swapped.
    return _bce(logit_free, logit_teacher)
  return jax.nn.softplus(-logit_free)  # −log D(b_free)


def generator_loss(model, disc, params, disc_params, batch: jax.Array, key: jax.Array, *,
                   weight, teacher_forced_term: bool = False,
                   method: str = sampling.DEFAULT) -> Tuple[jax.Array, dict]:
  """The generator's professor-forcing loss with the adversarial term applied (gate open).

  Args:
    model: the generator module (an LSTMLM).
    disc: the SequenceDiscriminator.
    params: the generator's variables (differentiated).
    disc_params: the discriminator's variables (held fixed by the caller).
    batch: int32 [B, T] samples of P.
    key: PRNG key of the B free-running samples.
    weight: λ ≥ 0, scalar: the weight of the adversarial term against the sequence NLL.
    teacher_forced_term: also add C_t = −log(1 − D(b_teacher)) (static).
    method: the categorical sampler of the free-running run.

  Returns:
    (loss [B]: (−log Q(x_b) + λ · adversarial_b) / T, aux) with aux = {'nll' [B]: per token
    as `teacher_forcing.nll`, 'adversarial' [B]: C_f (+ C_t) per sequence, 'b_teacher' [B, T, H + V],
    'b_free' [B, T, H + V]}.
  """
  nll = teacher_forcing.nll(model, params, batch)
  b_teacher, b_free = behaviours(model, params, batch, key, method)
  if teacher_forced_term:
    logit_teacher, logit_free = _logits_both(disc, disc_params, b_teacher, b_free)
  else:
    # C_f alone needs D on the free-running half only.
    logit_teacher, logit_free = None, disc.apply(disc_params, b_free)
  adversarial = _adversarial(logit_teacher, logit_free, teacher_forced_term)
  aux = dict(nll=nll, adversarial=adversarial, b_teacher=b_teacher, b_free=b_free)
  return nll + (weight / batch.shape[-1]) * adversarial, aux


def check_config(config) -> None:
  """ValueError naming the first invalid --config.professor_forcing.* field."""
  pf = config.professor_forcing
  base.check_positive('professor_forcing', 'weight', pf.weight, allow_zero=True)
  for field in ('disc_hidden_dim', 'disc_mlp_dim'):
    base.check_positive('professor_forcing', field, pf[field], integer=True)
  base.check_positive('professor_forcing', 'disc_mlp_layers', pf.disc_mlp_layers,
                      integer=True, allow_zero=True)
  base.check_positive('professor_forcing', 'disc_learning_rate', pf.disc_learning_rate)
  for field in ('g_accuracy_threshold', 'd_accuracy_ceiling'):
    base.check_positive('professor_forcing', field, pf[field], allow_zero=True)


def make(config, problem) -> base.Scheme:
  """Professor forcing with Adam for both networks (config.train, config.professor_forcing).

  The generator starts from the same initialisation as MLE's for the same key. The step
  reports 'loss' (the generator's total, with the gate), 'nll', 'adversarial' (C_f (+ C_t)
  at D's current parameters, whether applied or not), 'disc_loss', 'disc_accuracy' (fraction
  of the 2B sequences D classifies right, before its update), 'g_gate' (1 when the
  adversarial term was applied) and 'd_gate' (1 when D was updated).
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
    features = jnp.zeros((1, model.seq_len, model.state_dim + model.vocab_size))
    d_params = disc.init(jax.random.fold_in(key, 1), features)
    discriminator = base.GeneratorState(d_params, d_opt.init(d_params),
                                        jnp.zeros((), jnp.int32))
    return State(generator, discriminator)

  def step(state, batch, key, pi):
    del pi
    g, d = state.generator, state.discriminator
    # D's inputs: this step's behaviour, as data. The generator branch below recomputes it
    # (same key, same values) under its own gradient: a generator pass is cheap next to D's.
    b_teacher, b_free = jax.lax.stop_gradient(behaviours(model, g.params, batch, key))

    def d_objective(d_params):
      logit_teacher, logit_free = _logits_both(disc, d_params, b_teacher, b_free)
      return _bce(logit_teacher, logit_free).mean(), (logit_teacher, logit_free)

    (d_value, (logit_teacher, logit_free)), d_grads = jax.value_and_grad(
        d_objective, has_aux=True)(d.params)
    d_acc = adversarial_lib.discriminator_accuracy(logit_teacher, logit_free)
    g_gate = d_acc >= pf.g_accuracy_threshold
    d_gate = d_acc < pf.d_accuracy_ceiling

    # The branches take every per-run value as an operand (synchronized_switch's vmap rule
    # sees only operands): ((loss, nll), gradient) of the generator.
    def mle_branch(params, d_params, batch, key):
      del d_params, key
      nll, grads = jax.value_and_grad(lambda p: teacher_forcing.nll(model, p, batch).mean())(params)
      return (nll, nll), grads

    def adversarial_branch(params, d_params, batch, key):
      def objective(p):
        losses, aux = generator_loss(model, disc, p, d_params, batch, key, weight=pf.weight,
                                     teacher_forced_term=pf.teacher_forced_term)
        return losses.mean(), aux['nll'].mean()
      return jax.value_and_grad(objective, has_aux=True)(params)

    # λ = 0 makes the adversarial gradient exactly 0: skip the branch (static).
    branches = [mle_branch] if pf.weight == 0 else [mle_branch, adversarial_branch]
    gate_index = g_gate.astype(jnp.int32) if pf.weight else jnp.zeros((), jnp.int32)
    (g_value, nll), g_grads = adversarial_lib.synchronized_switch(
        gate_index, branches, g.params, d.params, batch, key)

    trained = base.apply_gradients(d_opt, d, d_grads)
    new_d = jax.tree.map(lambda new, old: jnp.where(d_gate, new, old), trained, d)
    new = State(base.apply_gradients(g_opt, g, g_grads), new_d)
    adversarial = _adversarial(logit_teacher, logit_free, pf.teacher_forced_term)
    metrics = dict(loss=g_value, nll=nll, adversarial=adversarial.mean(),
                   disc_loss=d_value, disc_accuracy=d_acc,
                   g_gate=g_gate.astype(jnp.float32), d_gate=d_gate.astype(jnp.float32))
    return new, metrics

  return base.Scheme(init=init, step=step, generator_params=lambda s: s.generator.params,
                     generator=model, uses_pi=False)


def working_set_bytes(config) -> int:
  """Activations of one step: the teacher-forced pass and [B, T, H + V] behaviours through
  the GRU discriminator."""
  B, T = config.train.batch_size, config.problem.seq_len
  pf = config.professor_forcing
  D = 2 if pf.disc_bidirectional else 1
  behaviour = footprint.F32 * B * T * (footprint.state_dim(config) + config.problem.vocab_size)
  return (footprint.teacher_forced_bytes(config, B) + 8 * behaviour
          + 6 * footprint.F32 * B * T * D * 3 * pf.disc_hidden_dim)
