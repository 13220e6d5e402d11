"""Tests of objectives/professor_forcing.py and models/sequence_discriminator.py."""


from absl.testing import absltest
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from _smoke import final_rows, smoke_config
from benchmarks import configs
from models.sequence_discriminator import SequenceDiscriminator
from objectives import adversarial
from objectives import base
from objectives import professor_forcing as pf
import objectives


def _scheme(weight=1.0, teacher_forced_term=False, **gates):
  """The scheme on a tiny generator and discriminator (data batches come as arguments).

  `gates`: g_accuracy_threshold / d_accuracy_ceiling overrides.
  """
  config = configs.get_preset('smoke')
  config.problem.update(vocab_size=5, seq_len=4)
  config.generator.update(embed_dim=4, hidden_dim=4, init_scale=0.5)
  config.professor_forcing.update(weight=weight, teacher_forced_term=teacher_forced_term,
                                  disc_hidden_dim=4, disc_mlp_dim=4, disc_mlp_layers=1,
                                  **gates)
  return config, objectives.make('professor_forcing', config, None)


def _params(module, example, seed, scale, num_seeds=None):
  """N(0, scale²) variables of `module` for inputs like `example` (leading seed axis if asked).

  Built with numpy from the variables' shapes: jitting `init` (threefry, the GRU's orthogonal
  init) costs seconds of compilation per test and adds nothing here; the smoke run covers
  `init`.
  """
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), example)
  rng = np.random.default_rng(seed)
  lead = () if num_seeds is None else (num_seeds,)
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, scale, lead + s.shape), s.dtype),
                      shapes)


def _both_params(config, scheme, seed, num_seeds=None):
  """(generator variables, discriminator variables) for the tiny scheme."""
  model, disc = scheme.generator, pf.discriminator_from_config(config)
  T, F = config.problem.seq_len, config.generator.hidden_dim + config.problem.vocab_size
  return (_params(model, jnp.zeros((1, T), jnp.int32), seed, 0.5, num_seeds),
          _params(disc, jnp.zeros((1, T, F)), seed + 1, 0.5, num_seeds))


def _batch(config, num, seed=0):
  pc = config.problem
  return jax.random.randint(jax.random.PRNGKey(seed), (num, pc.seq_len), 0, pc.vocab_size)


def _state(config, scheme, seed):
  """A PF state whose generator part is MLE's initial state for PRNGKey(seed + 3), with a
  N(0, 0.5²) discriminator and its fresh Adam state."""
  mle = objectives.make('mle', config, None)
  _, d_params = _both_params(config, scheme, seed)
  d_opt = pf.discriminator_optimizer(config)
  return pf.State(mle.init(jax.random.PRNGKey(seed + 3)),
                  base.GeneratorState(d_params, d_opt.init(d_params), jnp.int32(0)))


class DiscriminatorTest(absltest.TestCase):

  def test_gru_is_flax_gru_cell(self):
    # The hoisted, two-direction scan computes flax's GRUCell recurrence in each direction
    # (the backward one on the time-reversed sequence), given the same weights.
    H, F = 5, 6
    disc = SequenceDiscriminator(hidden_dim=H, mlp_dim=7, mlp_layers=2)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, F))
    v = disc.init(jax.random.PRNGKey(1), x)
    p = v['params']
    W, b, U = p['input']['kernel'], p['input']['bias'], p['recurrent_kernel']
    ours = disc.apply(v, x, method='final_states')
    chex.assert_shape(ours, (3, 2 * H))
    chex.assert_shape(disc.apply(v, x), (3,))
    for direction, reverse in ((0, False), (1, True)):
      cell = {}
      for i, gate in enumerate('rzn'):
        cols = slice((3 * direction + i) * H, (3 * direction + i + 1) * H)
        cell['i' + gate] = {'kernel': W[:, cols], 'bias': b[cols]}
        cell['h' + gate] = {'kernel': U[direction][:, i * H:(i + 1) * H]}
      cell['hn']['bias'] = p['recurrent_bias'][direction]
      rnn = nn.RNN(nn.GRUCell(H), reverse=reverse, keep_order=True, return_carry=True)
      carry, _ = rnn.apply({'params': {'cell': cell}}, x)
      np.testing.assert_allclose(ours[:, direction * H:(direction + 1) * H], carry, atol=1e-6)
    # Each recurrent [H, H] block is orthogonal, as GRUCell's.
    for block in np.split(np.asarray(U[1]), 3, axis=1):
      np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-5)

  def test_unidirectional_and_linear_head(self):
    disc = SequenceDiscriminator(hidden_dim=3, mlp_dim=2, mlp_layers=0, bidirectional=False)
    x = jnp.ones((2, 5, 4))
    v = disc.init(jax.random.PRNGKey(0), x)
    self.assertEqual(sorted(v['params']), ['input', 'out', 'recurrent_bias',
                                           'recurrent_kernel'])
    chex.assert_shape(disc.apply(v, x, method='final_states'), (2, 3))
    chex.assert_shape(disc.apply(v, x), (2,))


class LossTest(absltest.TestCase):

  def test_free_running_states_are_those_of_the_samples(self):
    # `free_running_hidden_states` (kept in LSTMLM): exactly `sample`'s tokens, and the
    # teacher-forced hidden states of those tokens.
    config, scheme = _scheme()
    model = scheme.generator
    params, _ = _both_params(config, scheme, 0)
    key = jax.random.PRNGKey(1)

    @jax.jit
    def run(params):
      toks, hs = model.apply(params, key, 6, method='free_running_hidden_states')
      return (toks, hs, model.apply(params, key, 6, method='sample'),
              model.apply(params, toks, method='hidden_states'))

    toks, hs, sampled, teacher = run(params)
    np.testing.assert_array_equal(toks, sampled)
    chex.assert_shape(hs, (6, config.problem.seq_len, config.generator.hidden_dim))
    np.testing.assert_allclose(hs, teacher, atol=1e-6)

  def test_behaviours(self):
    # [B, T, H + V] each; the teacher-forced one is on the batch, the free-running one on the
    # samples of `key`; the softmax part sums to 1.
    config, scheme = _scheme()
    model = scheme.generator
    params, _ = _both_params(config, scheme, 0)
    batch, key = _batch(config, 6), jax.random.PRNGKey(1)
    T, H, V = config.problem.seq_len, config.generator.hidden_dim, config.problem.vocab_size
    teacher, free = jax.jit(pf.behaviours, static_argnums=0)(model, params, batch, key)
    chex.assert_shape([teacher, free], (6, T, H + V))
    np.testing.assert_allclose(teacher, model.apply(params, batch, method='behaviour'))
    samples = model.apply(params, key, 6, method='sample')
    np.testing.assert_allclose(free, model.apply(params, samples, method='behaviour'),
                               atol=1e-6)
    np.testing.assert_allclose(free[..., H:].sum(-1), 1.0, atol=1e-5)

  def test_shapes_under_vmap_and_finite_gradients(self):
    config, scheme = _scheme(teacher_forced_term=True)
    model, disc = scheme.generator, pf.discriminator_from_config(config)
    batch = _batch(config, 8)
    T, F = config.problem.seq_len, config.generator.hidden_dim + config.problem.vocab_size

    @jax.jit
    def run(g_params, d_params, seeds):
      def grads(g, d, key):
        def g_fn(p):
          losses, aux = pf.generator_loss(model, disc, p, d, batch, key, weight=1.0,
                                          teacher_forced_term=True)
          return losses.mean(), (losses, aux)

        (_, (losses, aux)), g_grads = jax.value_and_grad(g_fn, has_aux=True)(g)
        d_fn = lambda q: pf.discriminator_loss(disc, q, aux['b_teacher'], aux['b_free']).mean()
        d_value, d_grads = jax.value_and_grad(d_fn)(d)
        return losses, aux, g_grads, d_value, d_grads

      return jax.vmap(grads)(g_params, d_params, seeds)

    g_params, d_params = _both_params(config, scheme, 0, num_seeds=3)
    losses, aux, g_grads, d_value, d_grads = run(g_params, d_params,
                                                 jax.random.split(jax.random.PRNGKey(0), 3))
    chex.assert_shape([losses, aux['nll'], aux['adversarial']], (3, 8))
    chex.assert_shape([aux['b_teacher'], aux['b_free']], (3, 8, T, F))
    chex.assert_shape(d_value, (3,))
    # λ = 1: the sequence NLL plus C_f + C_t, per token.
    np.testing.assert_allclose(losses, aux['nll'] + aux['adversarial'] / T, rtol=1e-6)
    chex.assert_trees_all_equal_shapes(g_grads, g_params)
    chex.assert_trees_all_equal_shapes(d_grads, d_params)
    chex.assert_tree_all_finite((losses, aux, g_grads, d_value, d_grads))
    for grads in (g_grads, d_grads):
      self.assertGreater(float(optax.tree.norm(grads)), 0.0)
    # The adversarial gradient reaches the output layer through the softmax part.
    self.assertGreater(float(jnp.abs(g_grads['params']['Wo']).sum()), 0.0)
    self.assertFalse(np.allclose(losses[0], losses[1]))  # seeds differ

  def test_discriminator_alone_learns_fixed_inputs(self):
    # Teacher-forced behaviour on repetitive data (x_t = the row's token, for every t) vs the
    # generator's free-running behaviour, both fixed: Adam on D alone lowers its loss from
    # about log 4 (chance, for the sum of the two cross-entropies) to well below it.
    config, scheme = _scheme()
    model, disc = scheme.generator, pf.discriminator_from_config(config)
    V, T = config.problem.vocab_size, config.problem.seq_len
    batch = jnp.repeat(jnp.arange(32, dtype=jnp.int32)[:, None] % V, T, axis=1)
    g, d = _both_params(config, scheme, 0)
    d = jax.tree.map(lambda x: 0.3 * x, d)  # start near chance
    opt = optax.adam(1e-2)

    @jax.jit
    def train_d(g, d, key):
      b_teacher, b_free = pf.behaviours(model, g, batch, key)
      loss_fn = lambda q: pf.discriminator_loss(disc, q, b_teacher, b_free).mean()

      def body(carry, _):
        q, o = carry
        value, grads = jax.value_and_grad(loss_fn)(q)
        updates, o = opt.update(grads, o, q)
        return (optax.apply_updates(q, updates), o), value

      (d, _), values = jax.lax.scan(body, (d, opt.init(d)), None, length=300)
      logits = pf._logits_both(disc, d, b_teacher, b_free)
      return values, loss_fn(d), adversarial.discriminator_accuracy(*logits)

    values, final, acc = train_d(g, d, jax.random.PRNGKey(2))
    np.testing.assert_allclose(values[0], np.log(4), atol=0.2)
    self.assertLess(float(final), 0.5 * float(values[0]))
    self.assertLess(float(final), float(values[150]))
    self.assertGreater(float(acc), 0.9)

  def test_weight_zero_is_the_mle_update(self):
    # With λ = 0 the generator's update is MLE's, bit for bit, from the same state and key,
    # whatever D's accuracy; with λ > 0 and the gate open it is not.
    config, scheme = _scheme(weight=0.0, g_accuracy_threshold=0.0)
    _, scheme_adv = _scheme(weight=1.0, g_accuracy_threshold=0.0)
    mle = objectives.make('mle', config, None)
    batch = _batch(config, 8)
    key = jax.random.PRNGKey(4)
    # The generator's part of the state is MLE's initial state (pf.make initialises it with
    # the same call, base.init_network, so a seed's PF and MLE runs start alike).
    state = _state(config, scheme, 0)

    @jax.jit
    def run(state):
      nan = jnp.float32(jnp.nan)
      return (scheme.step(state, batch, key, nan)[0].generator,
              mle.step(state.generator, batch, key, nan)[0],
              scheme_adv.step(state, batch, key, nan)[0].generator)

    ours, ref, adv = run(state)
    chex.assert_trees_all_equal(ours, ref)
    self.assertFalse(np.allclose(adv.params['params']['Wi'], ref.params['params']['Wi']))

  def test_gates(self):
    # g: threshold 0 applies the adversarial term always (the update is that of
    # `generator_loss`), threshold > 1 never (the update is MLE's, bit for bit).
    # d: ceiling 0 leaves D's parameters, Adam state and count exactly unchanged; ceiling > 1
    # trains D.
    batch = _batch(_scheme()[0], 8)
    key = jax.random.PRNGKey(4)
    nan = jnp.float32(jnp.nan)
    steps = {}
    for name, gates in dict(open=dict(g_accuracy_threshold=0.0, d_accuracy_ceiling=1.5),
                            closed=dict(g_accuracy_threshold=1.5, d_accuracy_ceiling=0.0)
                            ).items():
      config, scheme = _scheme(**gates)
      steps[name] = scheme.step
    mle = objectives.make('mle', config, None)
    model, disc = scheme.generator, pf.discriminator_from_config(config)
    g_opt = base.optimizer_from_config(config.train)
    state = _state(config, scheme, 0)

    @jax.jit
    def run(state):
      grads = jax.grad(lambda p: pf.generator_loss(model, disc, p, state.discriminator.params,
                                                   batch, key, weight=1.0)[0].mean())(
          state.generator.params)
      return ({name: step(state, batch, key, nan) for name, step in steps.items()},
              mle.step(state.generator, batch, key, nan)[0],
              base.apply_gradients(g_opt, state.generator, grads))

    out, mle_update, adv_update = run(state)
    (opened, m_open), (closed, m_closed) = out['open'], out['closed']
    self.assertEqual(float(m_open['g_gate']), 1.0)
    self.assertEqual(float(m_open['d_gate']), 1.0)
    self.assertEqual(float(m_closed['g_gate']), 0.0)
    self.assertEqual(float(m_closed['d_gate']), 0.0)
    self.assertEqual(float(m_open['disc_accuracy']), float(m_closed['disc_accuracy']))
    chex.assert_trees_all_close(opened.generator, adv_update, atol=1e-6)
    chex.assert_trees_all_equal(closed.generator, mle_update)
    self.assertFalse(np.allclose(opened.generator.params['params']['Wi'],
                                 mle_update.params['params']['Wi']))
    self.assertEqual(float(m_closed['loss']), float(m_closed['nll']))
    chex.assert_trees_all_equal(closed.discriminator, state.discriminator)
    self.assertEqual(int(opened.discriminator.count), 1)
    self.assertFalse(np.allclose(opened.discriminator.params['params']['out']['kernel'],
                                 state.discriminator.params['params']['out']['kernel']))

  def test_vmapped_step_is_the_per_run_step(self):
    # Under vmap (the GPU strategy) each run takes its own gates: a threshold between the
    # runs' accuracies opens the generator's gate for some runs only, and every run's update
    # equals its unvmapped step.
    config, scheme = _scheme()
    batch = _batch(config, 8)
    states = [_state(config, scheme, seed) for seed in range(4)]
    keys = jax.random.split(jax.random.PRNGKey(5), 4)
    nan = jnp.float32(jnp.nan)
    accs = [float(jax.jit(scheme.step)(s, batch, k, nan)[1]['disc_accuracy'])
            for s, k in zip(states, keys)]
    threshold = float(np.median(accs))
    _, scheme = _scheme(g_accuracy_threshold=threshold, d_accuracy_ceiling=threshold)
    step = jax.jit(lambda s, k: scheme.step(s, batch, k, nan))
    singles = [step(s, k) for s, k in zip(states, keys)]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
    batched = jax.jit(jax.vmap(lambda s, k: scheme.step(s, batch, k, nan)))(stacked, keys)
    gates = [float(m['g_gate']) for _, m in singles]
    self.assertEqual(sorted(set(gates)), [0.0, 1.0])
    for i, single in enumerate(singles):
      chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], batched), single, atol=1e-6)

  def test_bad_config_names_the_field(self):
    for field, value in (('weight', -1.0), ('g_accuracy_threshold', -0.1),
                         ('d_accuracy_ceiling', float('nan')), ('disc_mlp_layers', -1)):
      config, _ = _scheme()
      config.professor_forcing[field] = value
      with self.assertRaisesRegex(ValueError, f'--config.professor_forcing.{field}'):
        objectives.make('professor_forcing', config, None)


class TrainSchemeTest(absltest.TestCase):

  def test_smoke_run(self):
    config = smoke_config()
    _, last = final_rows('professor_forcing', config)
    self.assertLen(last, config.num_seeds)
    for r in last:
      self.assertFalse(r['diverged'])
      for key in ('nll_test', 'kl_pq', 'nll_oracle', 'entropy_q', 'train_loss', 'train_nll',
                  'train_adversarial', 'train_disc_loss', 'train_disc_accuracy',
                  'train_g_gate', 'train_d_gate'):
        self.assertTrue(np.isfinite(r[key]), key)
      for key in ('train_disc_accuracy', 'train_g_gate', 'train_d_gate'):
        self.assertBetween(r[key], 0.0, 1.0)


if __name__ == '__main__':
  absltest.main()
