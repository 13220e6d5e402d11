"""SeqGAN (Yu et al. 2017): policy gradient with Monte-Carlo rollouts and a CNN discriminator.

Three phases, chosen inside the pure step by the scheme's own step counter so the runner's
chunked `lax.scan` runs them unchanged:
  1. steps [0, pretrain_steps): MLE on the data batch (teacher forcing), as `mle`.
  2. steps [pretrain_steps, + d_pretrain_steps): discriminator pre-training, `d_steps`
     updates per step, each on fresh generator samples and a random batch of training data.
  3. afterwards, adversarial steps: one generator update by REINFORCE, then (with
     `rollout='delayed'`) the rollout policy moves towards the generator, then `d_steps`
     discriminator updates.
The generator's reward for token y_t of a sample y (`rollout_rewards`) is, for t < T, the mean
of D(completion) over N completions of the prefix y_{1:t} drawn from the rollout policy, and
for t = T, D(y) itself. The rollout policy (`config.seqgan.rollout`):
  'generator' (default): the current generator. This is the paper's rollout policy, and what
     SeqGAN's public code computes: its ROLLOUT network is built once from `tf.identity` of the
     generator's variables, and `update_params` only builds new, unused ops and rebinds
     Python attributes, so the "delayed copy" never enters the sampling graph (issues #23,
     #28, #29 of LantaoYu/SeqGAN).
  'delayed': the delayed copy the code intended, θ_roll ← r θ_roll + (1 − r) θ after every
     generator update (r = `rollout_update_rate`, SeqGAN 0.8), the embedding copied outright;
     it equals the generator when the adversarial phase starts (`update_rollout`).
The generator minimises
  −(1/T) Σ_t R_t log G(y_t | y_<t)                    (`policy_gradient_loss`)
averaged over the batch (SeqGAN sums over batch and time; with Adam only the clipping
threshold sees the difference); no baseline, as SeqGAN. As in SeqGAN (two `AdamOptimizer`s,
`pretrain_updates` and `g_updates`, both lr 0.01 and clipped at global norm 5), the MLE phase
and the policy-gradient phase have separate Adam states: the first policy-gradient update
starts from a fresh Adam state (`SeqGANState.pg_opt_state`), at `pg_learning_rate`
(default: `train.learning_rate`). D is SeqGAN's CNN with dropout, trained on the balanced
cross-entropy (gan_pi's loss at π = 1/2, i.e. the mean over a half-data, half-generated
batch); the rewards use D without dropout. All rollouts of a step are one vmapped
computation over (prefix pair, rollout) (`_paired_completions`).

Metrics of the discriminator part (0 in the MLE phase): `d_loss`, `d_real` / `d_fake` (mean
probability of "data" D assigns, with dropout, to the data / generated half of its batch,
before each update; means over the step's `d_steps` updates) and `d_accuracy` (after the
step's updates, the fraction of 2B further sequences, B fresh samples and B random training
sequences, that D without dropout classifies right; logit > 0 means data).

Remaining differences from SeqGAN's code: D's batches are B data + B fresh samples (SeqGAN:
minibatches of 64 drawn from a shuffled pool of 10,000 data and 10,000 samples, the samples
reused for 3 epochs), so one update here sees 2B sequences; the `seqgan` preset counts its
budget in those updates. On `small` the budgets are much smaller than SeqGAN's (see
benchmarks/configs/base.py).

The step is a generator part (a switch over MLE / nothing / policy gradient) followed by a
discriminator part (nothing / `d_steps` updates), each an `adversarial.synchronized_switch` on the phase.
Under `jax.vmap` over runs (the runner's 'vmap' strategy) a plain `lax.switch` on a batched
index becomes a select that evaluates every phase each step; `synchronized_switch` runs only
the phases some run is in (runs advance in lockstep: one phase per step).
"""

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from models import discriminator as discriminator_lib
from models import sampling
from objectives import adversarial
from objectives import base
from objectives import footprint
from objectives import teacher_forcing
from objectives.adversarial import synchronized_switch

PyTree = Any
MLE_PHASE, D_PRETRAIN_PHASE, ADVERSARIAL_PHASE = 0, 1, 2
ROLLOUTS = ('generator', 'delayed')
D_METRICS = ('d_loss', 'd_real', 'd_fake', 'd_accuracy')


@flax.struct.dataclass
class SeqGANState:
  """Generator, its policy-gradient Adam, rollout policy, discriminator, steps taken."""
  generator: base.GeneratorState  # params, the MLE phase's Adam state, updates of both phases
  pg_opt_state: PyTree     # the policy-gradient phase's own Adam state (SeqGAN's g_updates)
  rollout: PyTree          # rollout='delayed': the delayed copy's variables; 'generator': None
  discriminator: base.GeneratorState
  step: jax.Array          # int32 scalar: runner steps taken, selects the phase


def phase(step, *, pretrain_steps: int, d_pretrain_steps: int) -> jax.Array:
  """The phase of step `step`: MLE_PHASE, D_PRETRAIN_PHASE or ADVERSARIAL_PHASE (int32)."""
  step = jnp.asarray(step)
  return ((step >= pretrain_steps).astype(jnp.int32)
          + (step >= pretrain_steps + d_pretrain_steps).astype(jnp.int32))


# --- rollouts and rewards ------------------------------------------------------------------

def complete_prefixes(model, params, tokens: jax.Array, prefix_len, key: jax.Array,
                      method: str = sampling.DEFAULT) -> jax.Array:
  """Keeps the first `prefix_len` tokens of each sequence and samples the rest from `model`.

  Args:
    model: an LSTMLM (the rollout policy).
    params: its variables.
    tokens: int32 [B, T] sequences whose prefixes are kept.
    prefix_len: int scalar in [0, T] (may be traced, e.g. vmapped over).
    key: PRNG key.
    method: the categorical sampler.

  Returns:
    int32 [B, T]: tokens[:, :prefix_len] followed by a draw of the suffix from the model
    conditioned on that prefix.
  """
  num, seq_len = tokens.shape
  keys = jax.random.split(key, seq_len)

  def body(state, xs):
    carry, prev = state
    s, k, data_tok = xs
    carry, logits = model.apply(params, carry, prev, method='step')
    tok = jnp.where(s < prefix_len, data_tok, sampling.categorical(k, logits, method=method))
    return (carry, tok), tok

  init = (model.apply(params, num, method='initial_carry'),
          model.apply(params, num, method='start_tokens'))
  _, toks = jax.lax.scan(body, init, (jnp.arange(seq_len), keys, tokens.T))
  return toks.T


def _paired_completions(model, params, tokens: jax.Array, key: jax.Array, num_rollouts: int,
                        method: str) -> jax.Array:
  """One completion per rollout of every prefix y_{1:t}, t = 1..T−1: [T−1, N, B, T].

  A completion of y_{1:t} samples T − t tokens, so the prefixes t and T − t together need
  exactly T sampling steps: each of the ⌊T/2⌋ vmapped lanes (t1 = j + 1, t2 = T − 1 − j)
  starts from the teacher-forced state after y_{1:t1} and, after T − t1 = t2 steps, restarts
  from the state after y_{1:t2}. That is T·⌊T/2⌋ steps per rollout instead of T·(T − 1), and
  no step is spent re-reading a prefix. (With T even, the middle lane's second completion of
  y_{1:T/2} is computed and dropped.)
  """
  num, seq_len = tokens.shape
  # carries[k] = the state after the inputs (start, y_1, ..., y_k): it predicts y_{k+1}.
  def feed(carry, inputs):
    carry, _ = model.apply(params, carry, inputs, method='step')
    return carry, carry
  inputs = model.apply(params, tokens, method='inputs')  # [B, T]: start, y_1..y_{T−1}
  _, carries = jax.lax.scan(feed, model.apply(params, num, method='initial_carry'), inputs.T)
  positions = jnp.arange(seq_len)

  def lane(t1, t2, key):
    state_at = lambda t: (jax.tree.map(lambda c: c[t - 1], carries), tokens[:, t - 1])

    def body(state, xs):
      s, k = xs
      # After t2 steps the first completion is done: restart from the prefix y_{1:t2}.
      state = jax.tree.map(lambda a, b: jnp.where(s == t2, b, a), state, state_at(t2))
      carry, prev = state
      carry, logits = model.apply(params, carry, prev, method='step')
      tok = sampling.categorical(k, logits, method=method)
      return (carry, tok), tok

    _, emitted = jax.lax.scan(body, state_at(t1), (positions, jax.random.split(key, seq_len)))
    emitted = emitted.T  # [B, T]: steps 0..t2−1 are y_{t1+1..T}, steps t2..T−1 are y_{t2+1..T}
    first = jnp.where(positions < t1, tokens,
                      jnp.take(emitted, jnp.clip(positions - t1, 0, seq_len - 1), axis=1))
    second = jnp.where(positions < t2, tokens, emitted)
    return first, second

  lanes = seq_len // 2
  t1 = jnp.arange(1, lanes + 1)
  keys = jax.random.split(key, lanes * num_rollouts).reshape(lanes, num_rollouts, -1)
  first, second = jax.vmap(jax.vmap(lane, (None, None, 0)), (0, 0, 0))(t1, seq_len - t1, keys)
  # first[j] completes y_{1:j+1}; second[j] completes y_{1:T−1−j}: reversed, t = ⌈T/2⌉..T−1.
  second = second[::-1][seq_len % 2 == 0:]
  return jnp.concatenate([first, second])


def rollout_rewards(model, rollout_params, score: Callable[[jax.Array], jax.Array],
                    tokens: jax.Array, key: jax.Array, num_rollouts: int,
                    method: str = sampling.DEFAULT) -> jax.Array:
  """SeqGAN's per-token rewards by Monte-Carlo search.

  Args:
    model: the rollout policy's LSTMLM.
    rollout_params: its variables.
    score: int [n, T] -> D's probability that each sequence is data, [n] in [0, 1].
    tokens: int32 [B, T] generated sequences.
    key: PRNG key.
    num_rollouts: N, completions per prefix (static).
    method: the categorical sampler of the completions.

  Returns:
    [B, T] in [0, 1]: column t−1 (t = 1..T−1) is the mean score of N completions of the
    prefix y_{1:t} drawn from the rollout policy; column T−1 is score(y). All completions
    come from one vmapped computation (`_paired_completions`), scored in one call.
  """
  num, seq_len = tokens.shape
  last = score(tokens)[:, None]
  if seq_len == 1:
    return last
  completions = _paired_completions(model, rollout_params, tokens, key, num_rollouts, method)
  scores = score(completions.reshape(-1, seq_len)).reshape(seq_len - 1, num_rollouts, num)
  return jnp.concatenate([scores.mean(axis=1).T, last], axis=1)


def sample_and_rewards(model, params, rollout_params, score: Callable[[jax.Array], jax.Array],
                       key: jax.Array, batch_size: int, num_rollouts: int):
  """The policy-gradient phase's data: B samples of the generator and their rewards.

  Args:
    model: the generator's LSTMLM (also the rollout policy's module).
    params: the generator's variables (the samples come from these).
    rollout_params: the rollout policy's variables (the generator's own, or a delayed copy).
    score: int [n, T] -> D's probability that each sequence is data, [n].
    key: PRNG key, split into the sampling key and the rollouts' key.
    batch_size: B (static).
    num_rollouts: N (static).

  Returns:
    (samples int32 [B, T], rewards [B, T] from `rollout_rewards`).
  """
  k_sample, k_roll = jax.random.split(key)
  samples = model.apply(params, k_sample, batch_size, method='sample')
  return samples, rollout_rewards(model, rollout_params, score, samples, k_roll, num_rollouts)


def policy_gradient_loss(token_log_probs: jax.Array, rewards: jax.Array) -> jax.Array:
  """−(1/T) Σ_t R_t log G(y_t | y_<t) per sequence; the rewards carry no gradient.

  Args:
    token_log_probs: log G(y_t | y_<t), [B, T] (differentiable).
    rewards: R_t, [B, T].

  Returns:
    [B].
  """
  return -(token_log_probs * jax.lax.stop_gradient(rewards)).mean(axis=-1)


def update_rollout(rollout_params: PyTree, gen_params: PyTree, rate) -> PyTree:
  """θ_roll ← rate · θ_roll + (1 − rate) · θ_gen; the embedding is copied (as SeqGAN)."""
  def mix(path, roll, gen):
    if any(getattr(p, 'key', None) == 'embedding' for p in path):
      return gen
    return rate * roll + (1 - rate) * gen
  return jax.tree_util.tree_map_with_path(mix, rollout_params, gen_params)


# --- the scheme ----------------------------------------------------------------------------

def check_config(config) -> None:
  """ValueError naming the first invalid --config.seqgan.* or discriminator field."""
  sc = config.seqgan
  base.check_choice('seqgan', 'discriminator', sc.discriminator, discriminator_lib.KINDS)
  for field in ('pretrain_steps', 'd_pretrain_steps', 'd_steps'):
    base.check_positive('seqgan', field, sc[field], integer=True, allow_zero=True)
  base.check_positive('seqgan', 'num_rollouts', sc.num_rollouts, integer=True)
  base.check_choice('seqgan', 'rollout', sc.rollout, ROLLOUTS)
  if sc.pg_learning_rate is not None:
    base.check_positive('seqgan', 'pg_learning_rate', sc.pg_learning_rate)
  if not (isinstance(sc.rollout_update_rate, (int, float)) and
          0.0 <= sc.rollout_update_rate <= 1.0):
    raise ValueError('--config.seqgan.rollout_update_rate: must be in [0, 1], got '
                     f'{sc.rollout_update_rate!r}')
  adversarial.check_discriminator_config(config)


def make(config, problem) -> base.Scheme:
  """SeqGAN from config.seqgan (phases by step; see the module docstring)."""
  check_config(config)
  sc = config.seqgan
  gen = base.generator_from_config(config)
  gen_opt = base.optimizer_from_config(config.train)  # the MLE phase's Adam
  pg_learning_rate = (config.train.learning_rate if sc.pg_learning_rate is None
                      else sc.pg_learning_rate)
  pg_opt = optax.chain(optax.clip_by_global_norm(config.train.grad_clip),
                       optax.adam(pg_learning_rate))  # the policy-gradient phase's Adam
  disc = adversarial.discriminator_from_config(config, sc.discriminator)
  disc_opt = adversarial.discriminator_optimizer(config.discriminator)
  batch_size, seq_len = config.train.batch_size, config.problem.seq_len
  data = problem.train
  half = jnp.float32(0.5)
  delayed = sc.rollout == 'delayed'
  rate = float(sc.rollout_update_rate)
  l2 = float(config.discriminator.l2)
  phase_of = lambda step: phase(step, pretrain_steps=sc.pretrain_steps,
                                d_pretrain_steps=sc.d_pretrain_steps)

  def init(key, generator_params=None):
    k_gen, k_disc = jax.random.split(key)
    gstate = base.init_network(gen, gen_opt, k_gen, generator_params)
    return SeqGANState(gstate, pg_opt.init(gstate.params),
                       gstate.params if delayed else None,
                       adversarial.init_discriminator(disc, disc_opt, k_disc, seq_len),
                       jnp.zeros((), jnp.int32))

  def zeros():  # the generator part's metrics, 0 where a phase has none
    return {name: jnp.zeros((), jnp.float32) for name in ('nll', 'pg_loss', 'reward')}

  def batch_nll(params, batch):
    return teacher_forcing.nll(gen, params, batch).mean()

  def fresh_batches(gen_params, key):
    """B fresh generator samples and B random training sequences."""
    k_gen, k_data = jax.random.split(key)
    fake = gen.apply(gen_params, k_gen, batch_size, method='sample')
    return data[jax.random.randint(k_data, (batch_size,), 0, data.shape[0])], fake

  def d_updates(dstate, gen_params, key):
    """`d_steps` D updates, each on fresh samples and a random data batch; then D's
    accuracy (no dropout) on one more such pair of batches."""
    if sc.d_steps == 0:
      return dstate, {k: jnp.zeros(()) for k in D_METRICS}

    def body(dstate, k):
      k_batches, k_upd = jax.random.split(k)
      real, fake = fresh_batches(gen_params, k_batches)
      dstate, m = adversarial.discriminator_update(disc, disc_opt, dstate, real, fake, k_upd, half,
                                              l2=l2)
      return dstate, {k: m[k] for k in ('d_loss', 'd_real', 'd_fake')}

    k_scan, k_acc = jax.random.split(key)
    dstate, m = jax.lax.scan(body, dstate, jax.random.split(k_scan, sc.d_steps))
    real, fake = fresh_batches(gen_params, k_acc)
    accuracy = adversarial.discriminator_accuracy(disc.apply(dstate.params, real),
                                      disc.apply(dstate.params, fake))
    return dstate, dict({k: v.mean() for k, v in m.items()}, d_accuracy=accuracy)

  # Generator part of each phase: (state, batch, key) -> (state, metrics).
  def mle_update(state, batch, key):
    del key
    loss, grads = jax.value_and_grad(batch_nll)(state.generator.params, batch)
    gstate = base.apply_gradients(gen_opt, state.generator, grads)
    # The delayed copy starts the adversarial phase equal to the generator.
    rollout = gstate.params if delayed else None
    return state.replace(generator=gstate, rollout=rollout), dict(zeros(), nll=loss)

  def no_update(state, batch, key):  # D pre-training leaves the generator alone
    del key
    return state, dict(zeros(), nll=batch_nll(state.generator.params, batch))

  def policy_gradient_update(state, batch, key):
    params = state.generator.params
    d_params = state.discriminator.params
    score = lambda x: jax.nn.sigmoid(disc.apply(d_params, x))  # deterministic D
    samples, rewards = sample_and_rewards(gen, params, state.rollout if delayed else params,
                                          score, key, batch_size, sc.num_rollouts)

    def loss_fn(p):
      logp = gen.apply(p, samples, method='token_log_probs')
      return policy_gradient_loss(logp, rewards).mean()

    pg_loss, grads = jax.value_and_grad(loss_fn)(params)
    # The policy-gradient phase's own Adam state; the MLE phase's is kept unchanged.
    updated = base.apply_gradients(pg_opt, state.generator.replace(opt_state=state.pg_opt_state),
                                   grads)
    gstate = updated.replace(opt_state=state.generator.opt_state)
    rollout = update_rollout(state.rollout, gstate.params, rate) if delayed else None
    metrics = dict(zeros(), nll=batch_nll(params, batch), pg_loss=pg_loss,
                   reward=rewards.mean())
    return state.replace(generator=gstate, pg_opt_state=updated.opt_state,
                         rollout=rollout), metrics

  # Discriminator part: none while pre-training G, else `d_steps` updates against the
  # (just updated) generator. Split from the generator part so its code is compiled once.
  def no_d_update(dstate, gen_params, key):
    del gen_params, key
    return dstate, {k: jnp.zeros(()) for k in D_METRICS}

  def step(state, batch, key, pi):
    del pi
    k_gen, k_disc = jax.random.split(key)
    ph = phase_of(state.step)
    state, metrics = synchronized_switch(
        ph, [mle_update, no_update, policy_gradient_update], state, batch, k_gen)
    dstate, d_metrics = synchronized_switch(
        jnp.minimum(ph, 1), [no_d_update, d_updates], state.discriminator,
        state.generator.params, k_disc)
    metrics = dict(metrics, phase=ph.astype(jnp.float32), **d_metrics)
    return state.replace(discriminator=dstate, step=state.step + 1), metrics

  return base.Scheme(init=init, step=step, generator_params=lambda s: s.generator.params,
                     generator=gen, uses_pi=False)


def working_set_bytes(config) -> int:
  """Activations of one step: the teacher-forced pass, then the larger of the discriminator on
  B data and B samples and the rollouts (N completions of each prefix, all scored by D)."""
  B, T = config.train.batch_size, config.problem.seq_len
  kind = config.seqgan.discriminator
  d_data = adversarial.discriminator_bytes(config, kind, 2 * B)
  completions = (T - 1) * config.seqgan.num_rollouts * B
  rollouts = max(footprint.sampling_bytes(config, completions),
                 adversarial.discriminator_bytes(config, kind, completions, backward=False))
  return footprint.teacher_forced_bytes(config, B) + max(d_data, rollouts)
