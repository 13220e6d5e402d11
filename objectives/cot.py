"""Cooperative Training (CoT, Lu et al. 2019), generalised to the π-weighted mixture.

Two networks cooperate. The mediator M (an LSTM, `models.mediator`) is trained by maximum
likelihood on a π-weighted mixture of data and generator samples,

  min_M  π E_{x~P}[−log M(x)] + (1−π) E_{x~G}[−log M(x)],

whose minimiser over all distributions is M_π = π P + (1−π) G, the mixture inside
JS_π = π KL(P ‖ M_π) + (1−π) KL(G ‖ M_π) (π = ½ is CoT's balanced NLL). The generator G
follows, at every step t of prefixes s = x_<t it sampled itself, the full-vocabulary signal

  KL(G(·|s) ‖ M(·|s)) = Σ_x G(x|s) (log G(x|s) − log M(x|s)),

differentiated through G(·|s) only: no REINFORCE, no gradient through the sampling of the
prefixes, M held fixed. No MLE pre-training; one generator and one mediator step per iteration,
in CoT's order: the generator first, on its own fresh samples and with the mediator as it was
before the step; then the mediator, on a data batch and fresh samples of the updated
generator (the step's key is split for the two draws).

What the generator's signal is. With M fixed and autoregressive, the chain rule gives
KL(G ‖ M) = Σ_t E_{s~G}[KL(G(·|s) ‖ M(·|s))], and with M = M_π held fixed
  ∇_θ JS_π = (1−π) ∇_θ KL(G_θ ‖ M_π)
           = (1−π) Σ_t ( E_{s~G}[∇_θ KL_t(s)] + E_{s~G}[∇_θ log G_θ(s) · KL_t(s)] ),
with KL_t(s) = KL(G_θ(·|s) ‖ M_π(·|s)) (the terms through M_π's own dependence on θ cancel).
CoT's expected update, T · E[∇ generator_loss] = Σ_t E_{s~G}[∇_θ KL_t(s)], keeps the first
sum and omits the second, the score-function term of the prefixes' law. So even with the
exact mediator it is a biased estimate of ∇JS_π in general (both are exactly 0 at G = P, where
every KL_t vanishes). tests/test_cot.py pins this decomposition by enumeration;
benchmarks/measure/gradient_fidelity.py measures the bias.

Optimisers as CoT: generator Adam lr 1e-3, mediator Adam lr 3e-3, both β = (0.9, 0.95)
(`config.cot`). Remaining differences from CoT's public code (desire2020/CoT):
  * the mediator's dropout (keep 0.5 on its LSTM outputs during its update) is not
    implemented;
  * the mediator is `models.mediator` (SeqGAN's LSTM equations, N(0, init_scale²) init) where
    CoT uses a CuDNN LSTM with orthogonal kernels;
  * both gradients are clipped at global norm `config.cot.grad_clip` (CoT clips neither);
  * the mediator's loss is per token (CoT's is per sequence, Σ_t, i.e. T times larger: with
    Adam only the clipping threshold and ε see the difference);
  * data batches follow the runner's per-epoch permutation (CoT reads its data file in order).

References:
  Sidi Lu, Lantao Yu, Siyuan Feng, Yaoming Zhu, Weinan Zhang, Yong Yu. "CoT: Cooperative
  Training for Generative Modeling of Discrete Data." ICML 2019. arXiv:1804.03782.
"""

import flax
import jax
import optax

import divergences
from models import mediator as mediator_lib
from objectives import base
from objectives import footprint
from objectives import teacher_forcing


def balanced_nll(log_m_on_p: jax.Array, log_m_on_q: jax.Array, pi, *,
                 seq_len: int) -> jax.Array:
  """The π-weighted per-token NLL of a mediator, elementwise (broadcasting).

  Args:
    log_m_on_p: log M(x) (log-space) of data sequences x ~ P, shape `[...]`.
    log_m_on_q: log M(y) (log-space) of generator sequences y ~ G, broadcastable with it.
    pi: the weight of the data, scalar in [0, 1] (may be traced).
    seq_len: T, the per-token normaliser.

  Returns:
    (π·(−log M(x)) + (1−π)·(−log M(y))) / T, the broadcast shape. Its expectation over
    independent x ~ P, y ~ G is the cross-entropy H(M_π, M)/T, minimised by M = M_π.
  """
  return (pi * -log_m_on_p + (1 - pi) * -log_m_on_q) / seq_len


def mediator_loss(mediator, params, data: jax.Array, samples: jax.Array, pi) -> jax.Array:
  """The mediator's loss: `balanced_nll` of a data batch paired with a generator batch.

  Args:
    mediator: the mediator module (an LSTMLM).
    params: its variables.
    data: int32 [B, T] samples of P.
    samples: int32 [B, T] samples of G (constants: no gradient reaches the generator).
    pi: the data weight π, scalar (may be traced).

  Returns:
    [B]: per-token balanced NLL of each (data, sample) pair; the mean is the loss.
  """
  log_m_on_p = mediator.apply(params, data, method='log_prob')
  log_m_on_q = mediator.apply(params, samples, method='log_prob')
  return balanced_nll(log_m_on_p, log_m_on_q, pi, seq_len=data.shape[-1])


def generator_loss(generator, params, samples: jax.Array,
                   mediator_log_probs: jax.Array) -> jax.Array:
  """CoT's generator loss: the per-step KL from the generator to the mediator, per token.

  Args:
    generator: the generator module (an LSTMLM).
    params: its variables (the loss is differentiated with respect to these).
    samples: int32 [B, T] sequences drawn from the generator (constants).
    mediator_log_probs: [B, T, V] the mediator's next-token log-probs log M(v | x_<t) along
      `samples`, computed by the caller from a learnt mediator or plugged in exactly
      (`exact_mediator_log_probs`); held fixed (its gradient is stopped).

  Returns:
    [B]: (1/T) Σ_t KL(G(·|x_<t) ‖ M(·|x_<t)) for each sequence, differentiable through G's
    next-token distributions only. Its mean over x ~ G is KL(G ‖ M)/T when M is
    autoregressive; its expected gradient omits the prefixes' score-function term (module
    docstring).
  """
  log_g = teacher_forcing.next_token_log_probs(generator, params, samples)
  expected_shape = (*samples.shape, generator.vocab_size)
  if mediator_log_probs.shape != expected_shape:
    raise ValueError(f'mediator_log_probs must be [B, T, V] = {expected_shape}; got '
                     f'{mediator_log_probs.shape}.')
  per_step = divergences.kl(log_g, jax.lax.stop_gradient(mediator_log_probs))  # [B, T]
  return per_step.sum(axis=-1) / samples.shape[-1]


@flax.struct.dataclass
class CoTState:
  """The training state of one CoT run: generator and mediator, each with its optimiser."""
  generator: base.GeneratorState
  mediator: base.GeneratorState


def check_config(config) -> None:
  """ValueError naming the first invalid --config.cot.* field."""
  cc = config.cot
  for field in ('generator_learning_rate', 'mediator_learning_rate', 'grad_clip'):
    base.check_positive('cot', field, cc[field])
  base.check_positive('cot', 'mediator_width_factor', cc.mediator_width_factor, integer=True)
  for field in ('generator_b1', 'generator_b2', 'mediator_b1', 'mediator_b2'):
    if not (isinstance(cc[field], (int, float)) and 0 <= cc[field] < 1):
      raise ValueError(f'--config.cot.{field}: must be in [0, 1), got {cc[field]!r}')


def make(config, problem) -> base.Scheme:
  """CoT with the optimisers of config.cot; π (the mediator's data weight) comes per run."""
  del problem  # CoT sees data batches only.
  check_config(config)
  cc = config.cot
  generator = base.generator_from_config(config)
  mediator = mediator_lib.from_config(config.problem, config.generator,
                                      cc.mediator_width_factor)
  gen_opt = optax.chain(optax.clip_by_global_norm(cc.grad_clip),
                        optax.adam(cc.generator_learning_rate, b1=cc.generator_b1,
                                   b2=cc.generator_b2))
  med_opt = optax.chain(optax.clip_by_global_norm(cc.grad_clip),
                        optax.adam(cc.mediator_learning_rate, b1=cc.mediator_b1,
                                   b2=cc.mediator_b2))

  def init(key, generator_params=None):
    k_gen, k_med = jax.random.split(key)
    return CoTState(base.init_network(generator, gen_opt, k_gen, generator_params),
                    base.init_network(mediator, med_opt, k_med))

  def step(state, batch, key, pi):
    # CoT's order: the generator's update on its own samples with the current mediator, then
    # the mediator's on the data batch and fresh samples of the updated generator.
    k_gen, k_med = jax.random.split(key)
    gen, med = state.generator, state.mediator
    num = batch.shape[0]
    samples = generator.apply(gen.params, k_gen, num, method='sample')
    log_m = teacher_forcing.next_token_log_probs(mediator, med.params, samples)
    g_loss, g_grads = jax.value_and_grad(
        lambda p: generator_loss(generator, p, samples, log_m).mean())(gen.params)
    gen = base.apply_gradients(gen_opt, gen, g_grads)
    fresh = generator.apply(gen.params, k_med, num, method='sample')
    m_loss, m_grads = jax.value_and_grad(
        lambda p: mediator_loss(mediator, p, batch, fresh, pi).mean())(med.params)
    state = CoTState(gen, base.apply_gradients(med_opt, med, m_grads))
    return state, {'loss': g_loss, 'mediator_loss': m_loss}

  return base.Scheme(init=init, step=step, generator_params=lambda s: s.generator.params,
                     generator=generator, uses_pi=True)


def working_set_bytes(config) -> int:
  """Activations of one step: KL(G ‖ M) over full [B, T, V] arrays, and the mediator on B data
  and B samples."""
  B = config.train.batch_size
  return (footprint.sampling_bytes(config, B) + 4 * footprint.full_bytes(config, B)
          + footprint.teacher_forced_bytes(config, 2 * B,
                                           width=config.cot.mediator_width_factor))
