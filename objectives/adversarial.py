"""What the adversarial schemes share: the π-weighted GAN losses, the discriminator and its
update, gradient penalties, the oracle discriminator, the generic adversarial step, and the
phase switch.

`gan_pi`, `gumbel_gan` and `seqgan` build on this module; no scheme imports another scheme
for shared machinery. The maths (D* = πP/(πP + (1−π)Q), the minimax value JS_π − H(π), the
generator losses and estimators, the penalties, the oracle discriminator) is documented in
`objectives/gan_pi.py`, the scheme that exposes it with π swept.
"""

from typing import Callable, NamedTuple, Sequence

import flax
import jax
from jax.custom_batching import custom_vmap
import jax.numpy as jnp
import optax

from models import discriminator as discriminator_lib
from objectives import base
from objectives import footprint

GENERATOR_LOSSES = ('minimax', 'non_saturating')
ORACLE = 'oracle'  # the best-response discriminator l* computed from the densities, untrained
DISCRIMINATORS = discriminator_lib.KINDS + (ORACLE,)
ESTIMATORS = ('reinforce', 'gumbel')
PENALTIES = ('none', 'wgan_gp', 'dragan')
BASELINES = ('mean', 'none')


# --- pure losses ---------------------------------------------------------------------------

def optimal_logits(log_p: jax.Array, log_q: jax.Array, pi) -> jax.Array:
  """The optimal discriminator's logit l* = log(π P) − log((1 − π) Q), elementwise.

  Args:
    log_p: log P(x) (log-space), any shape.
    log_q: log Q(x), same shape.
    pi: weight of the data in (0, 1), scalar.

  Returns:
    l*(x), shaped like log_p: σ(l*) = D* = πP / (πP + (1 − π)Q).
  """
  return jnp.log(pi) + log_p - jnp.log1p(-pi) - log_q


def oracle_discriminator_logits(oracle, oracle_params, generator, params, x: jax.Array,
                                pi) -> jax.Array:
  """The oracle discriminator: l*(x) = log πP(x) − log (1 − π)Q(x) for the current Q.

  Args:
    oracle, oracle_params: P's module (an LSTMLM) and variables.
    generator, params: Q's module and variables.
    x: int [B, T] sequences.
    pi: weight of the data in (0, 1), scalar (may be traced).

  Returns:
    [B] logits, constant in Q's parameters (stop_gradient): a discriminator's output is a
    fixed function of x when the generator is updated.
  """
  log_p = oracle.apply(oracle_params, x, method='log_prob')
  log_q = jax.lax.stop_gradient(generator.apply(params, x, method='log_prob'))
  return optimal_logits(log_p, log_q, pi)


def discriminator_loss_terms(logits_data: jax.Array, logits_gen: jax.Array, pi):
  """Per-example terms of the π-weighted discriminator loss.

  Args:
    logits_data: D's logits l on data sequences, [B].
    logits_gen: D's logits on generator sequences, [B'].
    pi: weight of the data in [0, 1], scalar (may be traced).

  Returns:
    (data terms [B] = −π log σ(l) = π softplus(−l),
     generator terms [B'] = −(1 − π) log(1 − σ(l)) = (1 − π) softplus(l)).
    Their expectations under P and Q sum to L_D; the caller reduces (means, or sums weighted
    by P and Q when enumerating).
  """
  # softplus keeps log σ accurate for large |l| (log σ(l) = −softplus(−l)).
  return pi * jax.nn.softplus(-logits_data), (1 - pi) * jax.nn.softplus(logits_gen)


def discriminator_loss(logits_data: jax.Array, logits_gen: jax.Array, pi) -> jax.Array:
  """L_D = −π mean log D(data) − (1 − π) mean log(1 − D(gen)): scalar (see terms above)."""
  data, gen = discriminator_loss_terms(logits_data, logits_gen, pi)
  return data.mean() + gen.mean()


def generator_loss_terms(logits_gen: jax.Array, pi, kind: str = 'minimax') -> jax.Array:
  """The generator's per-sample loss f(x) (to be minimised in expectation under Q).

  Args:
    logits_gen: D's logits on generator samples, [B].
    pi: weight of the data in [0, 1], scalar (may be traced).
    kind: 'minimax' for f = (1 − π) log(1 − D) = −(1 − π) softplus(l), or 'non_saturating'
      for f = −(1 − π) log D = (1 − π) softplus(−l).

  Returns:
    f(x), [B], sequence level.
  """
  if kind == 'minimax':
    return -(1 - pi) * jax.nn.softplus(logits_gen)
  if kind == 'non_saturating':
    return (1 - pi) * jax.nn.softplus(-logits_gen)
  raise ValueError(f'--config.gan_pi.generator_loss: unknown {kind!r}; '
                   f'known: {", ".join(GENERATOR_LOSSES)}')


def leave_one_out_baseline(values: jax.Array) -> jax.Array:
  """b_i = mean of the other entries of values [B] (B >= 2): [B], independent of x_i."""
  n = values.shape[0]
  return (values.sum() - values) / (n - 1)


def reinforce_surrogate(log_q: jax.Array, values: jax.Array, baseline=0.0) -> jax.Array:
  """Score-function surrogate: stop_gradient(values − baseline) · log Q(x), per sample.

  Args:
    log_q: log Q(x) of the sampled sequences (differentiable in Q's parameters), [B].
    values: the per-sample loss f(x) (no gradient is taken through it), [B].
    baseline: scalar or [B], not depending on x_i (e.g. `leave_one_out_baseline`).

  Returns:
    [B]; the gradient of its mean is an unbiased estimate of ∇ E_Q[f].
  """
  return jax.lax.stop_gradient(values - baseline) * log_q


# --- gradient penalties --------------------------------------------------------------------

def logit_gradient_penalty(logit_fn: Callable[[jax.Array], jax.Array],
                           points: jax.Array) -> jax.Array:
  """(‖∇_x l(x)‖₂ − 1)² at each point, the norm over the whole [T, V] input.

  Args:
    logit_fn: relaxed one-hots [B, T, V] -> logits [B] (rows independent).
    points: [B, T, V].

  Returns:
    [B].
  """
  grads = jax.grad(lambda x: logit_fn(x).sum())(points)  # rows independent: per-row grads
  norms = jnp.sqrt(jnp.sum(grads ** 2, axis=(1, 2)) + 1e-12)  # eps: finite grad at 0
  return (norms - 1.0) ** 2


def wgan_gp_points(key: jax.Array, data_onehot: jax.Array, gen_onehot: jax.Array):
  """Interpolates ε x_data + (1 − ε) x_gen, ε ~ U[0, 1) per sequence: [B, T, V]."""
  eps = jax.random.uniform(key, (data_onehot.shape[0], 1, 1), data_onehot.dtype)
  return eps * data_onehot + (1 - eps) * gen_onehot


def dragan_points(key: jax.Array, data_onehot: jax.Array, noise: float):
  """DRAGAN's perturbed data x + c · std(x) · u, u ~ U[0, 1) elementwise: [B, T, V]."""
  u = jax.random.uniform(key, data_onehot.shape, data_onehot.dtype)
  return data_onehot + noise * jnp.std(data_onehot) * u


# --- the discriminator network and its update ----------------------------------------------

def discriminator_accuracy(logits_data: jax.Array, logits_gen: jax.Array) -> jax.Array:
  """Fraction of the sequences D classifies right: data when logit > 0, generated when < 0.

  Args:
    logits_data: D's logits on sequences of label 1 (data; teacher-forced for
      professor forcing), [B].
    logits_gen: D's logits on sequences of label 0 (generated; free-running), [B'].

  Returns:
    scalar in [0, 1], over all B + B' sequences (a logit of exactly 0 counts as wrong).
  """
  right = (logits_data > 0).sum() + (logits_gen < 0).sum()
  return right / (logits_data.size + logits_gen.size)


def discriminator_from_config(config, kind: str):
  """The discriminator module of `kind` with the sizes of `config.discriminator`."""
  dc = config.discriminator
  if kind not in discriminator_lib.KINDS:
    raise ValueError(f'unknown discriminator kind {kind!r}; '
                     f'known: {", ".join(discriminator_lib.KINDS)}')
  return discriminator_lib.make_discriminator(
      kind, vocab_size=config.problem.vocab_size, embed_dim=dc.embed_dim,
      filter_widths=tuple(dc.filter_widths), num_filters=tuple(dc.num_filters),
      hidden_dim=dc.hidden_dim, dropout_rate=dc.dropout_rate)


def discriminator_optimizer(dc) -> optax.GradientTransformation:
  """Adam with `config.discriminator.learning_rate` (SeqGAN: 1e-4), no clipping."""
  return optax.adam(dc.learning_rate)


def init_discriminator(module, optimizer, key: jax.Array, seq_len: int) -> base.GeneratorState:
  """The discriminator's variables and optimiser state (a `GeneratorState` of D)."""
  params = module.init(key, jnp.zeros((1, seq_len), jnp.int32))
  return base.GeneratorState(params, optimizer.init(params), jnp.zeros((), jnp.int32))


class PenaltyConfig(NamedTuple):
  """Gradient penalty knobs: kind ('none' | 'wgan_gp' | 'dragan'), weight, DRAGAN noise c."""
  kind: str = 'none'
  weight: float = 10.0
  noise: float = 0.5


def discriminator_update(module, optimizer, state: base.GeneratorState, x_data: jax.Array,
                         x_gen: jax.Array, key: jax.Array, pi, *, penalty=PenaltyConfig(),
                         l2: float = 0.0):
  """One Adam step of D on a data batch and a generator batch (dropout on).

  Args:
    module: the discriminator.
    optimizer: its optimizer.
    state: D's GeneratorState.
    x_data: int [B, T] data sequences.
    x_gen: int [B', T] generator samples, or relaxed one-hots [B', T, V] (treated as
      constants: no gradient reaches the generator).
    key: PRNG key (dropout, penalty points).
    pi: weight of the data, scalar (may be traced).
    penalty: PenaltyConfig.
    l2: weight of an L2 penalty Σ w² / 2 on the output layer (SeqGAN: 0.2).

  Returns:
    (new state, {'d_loss', 'd_real', 'd_fake', 'd_penalty'} scalars: the loss before the
    step, mean D on data and on generator samples, the mean gradient penalty).
  """
  x_gen = jax.lax.stop_gradient(x_gen)
  k_drop, k_pen, k_pts = jax.random.split(key, 3)
  vocab = module.vocab_size

  def loss_fn(params):
    logits = lambda x, k: module.apply(params, x, deterministic=False, rngs={'dropout': k})
    k1, k2 = jax.random.split(k_drop)
    l_data, l_gen = logits(x_data, k1), logits(x_gen, k2)
    loss = discriminator_loss(l_data, l_gen, pi)
    pen = jnp.zeros(())
    if penalty.kind != 'none':
      data_oh = jax.nn.one_hot(x_data, vocab)
      gen_oh = (x_gen if x_gen.ndim == 3 else jax.nn.one_hot(x_gen, vocab)).astype(data_oh.dtype)
      if penalty.kind == 'wgan_gp':
        points = wgan_gp_points(k_pts, data_oh, gen_oh)
      elif penalty.kind == 'dragan':
        points = dragan_points(k_pts, data_oh, penalty.noise)
      else:
        raise ValueError(f'unknown gradient penalty {penalty.kind!r}; '
                         f'known: {", ".join(PENALTIES)}')
      pen = logit_gradient_penalty(lambda x: logits(x, k_pen), points).mean()
      loss = loss + penalty.weight * pen
    if l2:
      out = params['params']['output']
      loss = loss + l2 * 0.5 * (jnp.sum(out['kernel'] ** 2) + jnp.sum(out['bias'] ** 2))
    aux = {'d_real': jax.nn.sigmoid(l_data).mean(), 'd_fake': jax.nn.sigmoid(l_gen).mean(),
           'd_penalty': pen}
    return loss, aux

  (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  return base.apply_gradients(optimizer, state, grads), dict(aux, d_loss=loss)


# --- the generic adversarial scheme (also gumbel_gan's) -------------------------------------

@flax.struct.dataclass
class GANState:
  """Generator and discriminator of an adversarial scheme."""
  generator: base.GeneratorState
  discriminator: base.GeneratorState


class AdversarialOptions(NamedTuple):
  """The knobs of `make_adversarial` (see config.gan_pi in benchmarks/configs/base.py)."""
  learning_rate: float = 1e-3
  d_learning_rate: float = 1e-3
  discriminator: str = 'cnn'
  generator_loss: str = 'minimax'
  estimator: str = 'reinforce'
  baseline: str = 'mean'
  straight_through: bool = False
  d_steps: int = 1
  penalty: PenaltyConfig = PenaltyConfig()


def check_options(opts: AdversarialOptions, section: str) -> None:
  """ValueError naming --config.<section>.<field> for an unknown choice or a bad number."""
  base.check_choice(section, 'discriminator', opts.discriminator, DISCRIMINATORS)
  base.check_positive(section, 'learning_rate', opts.learning_rate)
  base.check_positive(section, 'd_learning_rate', opts.d_learning_rate)
  base.check_choice(section, 'generator_loss', opts.generator_loss, GENERATOR_LOSSES)
  base.check_choice(section, 'estimator', opts.estimator, ESTIMATORS)
  base.check_choice(section, 'baseline', opts.baseline, BASELINES)
  base.check_choice(section, 'penalty', opts.penalty.kind, PENALTIES)
  base.check_positive(section, 'd_steps', opts.d_steps, integer=True, allow_zero=True)
  base.check_positive(section, 'penalty_weight', opts.penalty.weight, allow_zero=True)
  base.check_positive(section, 'dragan_noise', opts.penalty.noise, allow_zero=True)
  if opts.discriminator == ORACLE:
    if opts.estimator != 'reinforce':
      raise ValueError(f"--config.{section}.discriminator: 'oracle' needs the 'reinforce' "
                       f'estimator ({section} uses {opts.estimator!r}): the oracle density is '
                       'defined on token sequences, not on relaxed one-hots')
    if opts.penalty.kind != 'none':
      raise ValueError(f"--config.{section}.penalty: {opts.penalty.kind!r} penalises a learned "
                       f"discriminator; --config.{section}.discriminator='oracle' has none")


def check_discriminator_config(config) -> None:
  """ValueError naming the first invalid --config.discriminator.* field."""
  dc = config.discriminator
  for field in ('embed_dim', 'hidden_dim'):
    base.check_positive('discriminator', field, dc[field], integer=True)
  base.check_positive('discriminator', 'learning_rate', dc.learning_rate)
  base.check_positive('discriminator', 'l2', dc.l2, allow_zero=True)
  if not (isinstance(dc.dropout_rate, (int, float)) and 0 <= dc.dropout_rate < 1):
    raise ValueError(f'--config.discriminator.dropout_rate: must be in [0, 1), got '
                     f'{dc.dropout_rate!r}')
  widths, filters = tuple(dc.filter_widths), tuple(dc.num_filters)
  for field, values in (('filter_widths', widths), ('num_filters', filters)):
    if not values or not all(isinstance(v, int) and v >= 1 for v in values):
      raise ValueError(f'--config.discriminator.{field}: must be positive integers, got '
                       f'{values!r}')
  if len(widths) != len(filters):
    raise ValueError(f'--config.discriminator.num_filters: {len(filters)} counts for '
                     f'{len(widths)} filter widths')


def make_adversarial(config, problem, opts: AdversarialOptions, *, section: str,
                     temperature: Callable[[jax.Array], jax.Array], uses_pi: bool,
                     fixed_pi=None) -> base.Scheme:
  """A GAN scheme: per step, `d_steps` discriminator updates then one generator update.

  The first D update and the generator update share one generator batch; further D updates
  draw fresh ones. Every D update uses the step's data batch.

  Args:
    config: the whole config (problem, generator, train, discriminator sizes).
    problem: the Problem (only its sizes are used; data come as step batches).
    opts: AdversarialOptions.
    section: the config section name, for error messages ('gan_pi', 'gumbel_gan').
    temperature: generator update count -> Gumbel-softmax τ (used by 'gumbel').
    uses_pi: whether the runner's π drives the losses.
    fixed_pi: the π used when not uses_pi (e.g. 0.5, the standard GAN).
  """
  check_options(opts, section)
  gen = base.generator_from_config(config)
  gen_opt = optax.chain(optax.clip_by_global_norm(config.train.grad_clip),
                        optax.adam(opts.learning_rate))
  oracle_d = opts.discriminator == ORACLE
  if not oracle_d:
    disc = discriminator_from_config(config, opts.discriminator)
    disc_opt = optax.adam(opts.d_learning_rate)
  batch_size, seq_len = config.train.batch_size, config.problem.seq_len
  l2 = config.discriminator.l2

  def init(key, generator_params=None):
    k_gen, k_disc = jax.random.split(key)
    dstate = (base.GeneratorState({}, {}, jnp.zeros((), jnp.int32)) if oracle_d else
              init_discriminator(disc, disc_opt, k_disc, seq_len))
    return GANState(base.init_network(gen, gen_opt, k_gen, generator_params), dstate)

  def oracle_logits(params, x, pi):
    return oracle_discriminator_logits(problem.model, problem.params, gen, params, x, pi)

  def generator_sample(params, key, tau):
    """(samples fed to D: int [B, T] or relaxed [B, T, V], the int tokens)."""
    if opts.estimator == 'gumbel':
      toks, soft = gen.apply(params, key, batch_size, tau, opts.straight_through,
                             method='sample_relaxed')
      return soft, toks
    toks = gen.apply(params, key, batch_size, method='sample')
    return toks, toks

  def step(state, batch, key, pi):
    pi = pi if uses_pi else jnp.asarray(fixed_pi, jnp.float32)
    k_d, k_g = jax.random.split(key)
    tau = temperature(state.generator.count)
    params = state.generator.params

    # One generator batch serves the first D update and the generator update (as in most GAN
    # code); for 'gumbel' its pullback to the parameters is kept for the generator gradient.
    if opts.estimator == 'gumbel':
      x_gen, pullback, toks = jax.vjp(lambda p: generator_sample(p, k_g, tau), params,
                                      has_aux=True)
    else:
      x_gen, toks = generator_sample(params, k_g, tau)

    def d_body(dstate, xs):
      i, k = xs
      k_s, k_u = jax.random.split(k)
      if opts.d_steps == 1:
        fake = x_gen
      else:  # later D updates draw fresh samples (i is not batched over runs: a real branch)
        fake = jax.lax.cond(i == 0, lambda: x_gen,
                            lambda: generator_sample(params, k_s, tau)[0])
      return discriminator_update(disc, disc_opt, dstate, batch, fake, k_u, pi,
                                  penalty=opts.penalty, l2=l2)

    if oracle_d:  # the best response: nothing to train; report how it scores both batches
      dstate = state.discriminator
      l_data, l_fake = oracle_logits(params, batch, pi), oracle_logits(params, toks, pi)
      d_metrics = {'d_loss': discriminator_loss(l_data, l_fake, pi),
                   'd_real': jax.nn.sigmoid(l_data).mean(),
                   'd_fake': jax.nn.sigmoid(l_fake).mean(), 'd_penalty': jnp.zeros(())}
      d_logits = lambda x: oracle_logits(params, x, pi)  # noqa: E731
    else:
      dstate, d_metrics = jax.lax.scan(
          d_body, state.discriminator,
          (jnp.arange(opts.d_steps), jax.random.split(k_d, opts.d_steps)))
      d_metrics = {k: v.mean() for k, v in d_metrics.items()} if opts.d_steps else {
          k: jnp.zeros(()) for k in ('d_loss', 'd_real', 'd_fake', 'd_penalty')}
      # The generator's signal: the updated D, deterministic.
      d_logits = lambda x: disc.apply(dstate.params, x)  # noqa: E731

    if opts.estimator == 'gumbel':
      # Reparameterised: the loss is differentiated through D and the relaxed samples.
      def loss_of_samples(x):
        values = generator_loss_terms(d_logits(x), pi, opts.generator_loss)
        return values.mean() / seq_len, values
      (_, values), ct = jax.value_and_grad(loss_of_samples, has_aux=True)(x_gen)
      grads, = pullback(ct)
    else:
      # Score function: the draw and its losses are constants; only log Q is differentiated.
      values = generator_loss_terms(d_logits(toks), pi, opts.generator_loss)
      b = leave_one_out_baseline(values) if opts.baseline == 'mean' else 0.0

      def surrogate(p):
        log_q = gen.apply(p, toks, method='log_prob')
        return reinforce_surrogate(log_q, values, b).mean() / seq_len
      grads = jax.grad(surrogate)(params)

    gstate = base.apply_gradients(gen_opt, state.generator, grads)
    metrics = dict(d_metrics, g_loss=values.mean() / seq_len, tau=jnp.asarray(tau, jnp.float32),
                   g_grad_norm=optax.tree.norm(grads))
    return GANState(gstate, dstate), metrics

  return base.Scheme(init=init, step=step, generator_params=lambda s: s.generator.params,
                     generator=gen, uses_pi=uses_pi)


def options_from_config(section) -> AdversarialOptions:
  """AdversarialOptions from a config section with the fields of config.gan_pi."""
  return AdversarialOptions(
      learning_rate=section.learning_rate, d_learning_rate=section.d_learning_rate,
      discriminator=section.discriminator, generator_loss=section.generator_loss,
      estimator=section.estimator, baseline=section.baseline,
      straight_through=bool(section.straight_through), d_steps=section.d_steps,
      penalty=PenaltyConfig(section.penalty, section.penalty_weight, section.dragan_noise))


# --- phases of a scheme under vmap (seqgan) ---------------------------------------------------

def synchronized_switch(index: jax.Array, branches: Sequence[Callable], *operands):
  """`lax.switch(index, branches, *operands)` that stays a real branch under `jax.vmap`.

  Under vmap with a batched `index`, each branch runs (vmapped over all rows) only if some
  row selects it, and rows then take their own branch's output: the values `lax.switch`
  would give per row, at the cost of one branch when all rows agree (runs in lockstep)
  instead of all of them. Branch outputs must be pytrees of arrays.
  """
  @custom_vmap
  def switch(index, *ops):
    return jax.lax.switch(index, branches, *ops)

  @switch.def_vmap
  def _rule(axis_size, in_batched, index, *ops):
    # Give every operand a leading run axis so the vmapped branches see one layout.
    ops = [jax.tree.map(lambda x, b: x if b else jnp.broadcast_to(x, (axis_size,) + x.shape),
                        op, batched) for op, batched in zip(ops, in_batched[1:])]
    vmapped = [jax.vmap(branch) for branch in branches]
    if not in_batched[0]:
      out = jax.lax.switch(index, vmapped, *ops)
    else:
      index = jnp.clip(index, 0, len(branches) - 1)  # lax.switch clamps the index too
      shapes = jax.eval_shape(vmapped[0], *ops)
      skip = lambda *_: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
      out = None
      for i, branch in enumerate(vmapped):
        # Branch i runs only if some row needs it (each branch is compiled once).
        out_i = jax.lax.cond(jnp.any(index == i), branch, skip, *ops)
        if out is None:
          out = out_i
        else:
          take = index == i
          out = jax.tree.map(
              lambda a, b: jnp.where(take.reshape((-1,) + (1,) * (a.ndim - 1)), b, a),
              out, out_i)
    return out, jax.tree.map(lambda _: True, out)

  return switch(index, *operands)


def cnn_widths(config):
  """The (width, filters) pairs of the CNN discriminator that fit in T (others are dropped)."""
  dc = config.discriminator
  return [(w, n) for w, n in zip(dc.filter_widths, dc.num_filters) if w <= config.problem.seq_len]



def discriminator_bytes(config, kind: str, num: int, *, backward: bool = True) -> int:
  """Activations of the CNN / LSTM discriminator on num sequences."""
  dc, T = config.discriminator, config.problem.seq_len
  if kind == 'oracle':  # log P − log Q by teacher forcing
    return 2 * footprint.teacher_forced_bytes(config, num, backward=False)
  if kind == 'lstm':
    return footprint.F32 * num * T * (dc.embed_dim + (10 if backward else 6) * dc.hidden_dim)
  widths = cnn_widths(config)
  convs = sum((T - w + 1) * n for w, n in widths)
  features = sum(n for _, n in widths)  # pooled, then the highway's gate and layer
  return footprint.F32 * num * (T * dc.embed_dim + (2 if backward else 1) * (convs + 3 * features))



def working_set_bytes(config, kind: str, *, gumbel: bool) -> int:
  """Activations of one generic GAN step (`make_adversarial`): the generator's samples and
  teacher-forced pass, the discriminator on B data and B samples, and with the Gumbel
  estimator the relaxed [B, T, V] one-hots through a differentiable discriminator."""
  B = config.train.batch_size
  tf, full = footprint.teacher_forced_bytes(config, B), footprint.full_bytes(config, B)
  d_data = discriminator_bytes(config, kind, 2 * B)
  relaxed = (3 * full + 2 * discriminator_bytes(config, 'lstm' if kind == ORACLE else kind,
                                                2 * B) if gumbel else 0)
  return footprint.sampling_bytes(config, B) + tf + d_data + relaxed
