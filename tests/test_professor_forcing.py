"""Tests of objectives/professor_forcing.py and models/sequence_discriminator.py."""


from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from _smoke import final_rows, smoke_config
import objectives
from benchmarks import configs
from objectives import base
from objectives import professor_forcing as pf


def _scheme(weight=1.0, teacher_forced_term=False):
  """The scheme on a tiny generator and discriminator (data batches come as arguments)."""
  config = configs.get_preset('smoke')
  config.problem.update(vocab_size=5, seq_len=4)
  config.generator.update(embed_dim=4, hidden_dim=4, init_scale=0.5)
  config.professor_forcing.update(weight=weight, teacher_forced_term=teacher_forced_term,
                                  disc_hidden_dim=4, disc_mlp_dim=4)
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
  T, H = config.problem.seq_len, config.generator.hidden_dim
  return (_params(model, jnp.zeros((1, T), jnp.int32), seed, 0.5, num_seeds),
          _params(disc, jnp.zeros((1, T, H)), seed + 1, 0.5, num_seeds))


def _batch(config, num, seed=0):
  pc = config.problem
  return jax.random.randint(jax.random.PRNGKey(seed), (num, pc.seq_len), 0, pc.vocab_size)


class LossTest(absltest.TestCase):

  def test_free_running_states_are_those_of_the_samples(self):
    # The free-running run draws exactly `sample`'s tokens, and its hidden states are the
    # teacher-forced states of those tokens: what D sees is the generator's real behaviour.
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

  def test_shapes_under_vmap_and_finite_gradients(self):
    config, scheme = _scheme(teacher_forced_term=True)
    model, disc = scheme.generator, pf.discriminator_from_config(config)
    batch = _batch(config, 8)
    T, H = config.problem.seq_len, config.generator.hidden_dim

    @jax.jit
    def run(g_params, d_params, seeds):
      def grads(g, d, key):
        def g_fn(p):
          losses, aux = pf.generator_loss(model, disc, p, d, batch, key, weight=1.0,
                                          teacher_forced_term=True)
          return losses.mean(), (losses, aux)

        (_, (losses, aux)), g_grads = jax.value_and_grad(g_fn, has_aux=True)(g)
        d_fn = lambda q: pf.discriminator_loss(disc, q, aux['h_teacher'], aux['h_free']).mean()
        d_value, d_grads = jax.value_and_grad(d_fn)(d)
        return losses, aux, g_grads, d_value, d_grads

      return jax.vmap(grads)(g_params, d_params, seeds)

    g_params, d_params = _both_params(config, scheme, 0, num_seeds=3)
    losses, aux, g_grads, d_value, d_grads = run(g_params, d_params,
                                                 jax.random.split(jax.random.PRNGKey(0), 3))
    chex.assert_shape([losses, aux['nll'], aux['adversarial']], (3, 8))
    chex.assert_shape([aux['h_teacher'], aux['h_free']], (3, 8, T, H))
    chex.assert_shape(d_value, (3,))
    # λ = 1: the sequence NLL plus C_f + C_t, per token.
    np.testing.assert_allclose(losses, aux['nll'] + aux['adversarial'] / T, rtol=1e-6)
    chex.assert_trees_all_equal_shapes(g_grads, g_params)
    chex.assert_trees_all_equal_shapes(d_grads, d_params)
    chex.assert_tree_all_finite((losses, aux, g_grads, d_value, d_grads))
    for grads in (g_grads, d_grads):
      self.assertGreater(float(optax.tree.norm(grads)), 0.0)
    self.assertFalse(np.allclose(losses[0], losses[1]))  # seeds differ

  def test_discriminator_alone_learns_fixed_inputs(self):
    # Teacher-forced states on repetitive data (x_t = the row's token, for every t) vs the
    # generator's free-running states, both fixed: Adam on D alone lowers its loss from about
    # log 4 (chance, for the sum of the two cross-entropies) to well below it.
    config, scheme = _scheme()
    model, disc = scheme.generator, pf.discriminator_from_config(config)
    V, T = config.problem.vocab_size, config.problem.seq_len
    batch = jnp.repeat(jnp.arange(32, dtype=jnp.int32)[:, None] % V, T, axis=1)
    g, d = _both_params(config, scheme, 0)
    d = jax.tree.map(lambda x: 0.3 * x, d)  # start near chance
    opt = optax.adam(1e-2)

    @jax.jit
    def train_d(g, d, key):
      h_teacher = model.apply(g, batch, method='hidden_states')
      _, h_free = model.apply(g, key, 32, method='free_running_hidden_states')
      loss_fn = lambda q: pf.discriminator_loss(disc, q, h_teacher, h_free).mean()

      def body(carry, _):
        q, o = carry
        value, grads = jax.value_and_grad(loss_fn)(q)
        updates, o = opt.update(grads, o, q)
        return (optax.apply_updates(q, updates), o), value

      (d, _), values = jax.lax.scan(body, (d, opt.init(d)), None, length=150)
      return values, loss_fn(d)

    values, final = train_d(g, d, jax.random.PRNGKey(2))
    np.testing.assert_allclose(values[0], np.log(4), atol=0.2)
    self.assertLess(float(final), 0.5 * float(values[0]))
    self.assertLess(float(final), float(values[75]))

  def test_weight_zero_is_the_mle_update(self):
    # With λ = 0 the generator's update is MLE's, bit for bit, from the same state and key;
    # with λ > 0 it is not (the adversarial gradient is live).
    config, scheme = _scheme(weight=0.0)
    _, scheme_adv = _scheme(weight=1.0)
    mle = objectives.make('mle', config, None)
    batch = _batch(config, 8)
    key = jax.random.PRNGKey(4)
    # The generator's part of the state is MLE's initial state (pf.make initialises it with
    # the same call, base.init_network, so a seed's PF and MLE runs start alike).
    _, d_params = _both_params(config, scheme, 0)
    d_opt = pf.discriminator_optimizer(config)
    state = pf.State(mle.init(jax.random.PRNGKey(3)),
                     base.GeneratorState(d_params, d_opt.init(d_params), jnp.int32(0)))

    @jax.jit
    def run(state):
      nan = jnp.float32(jnp.nan)
      return (scheme.step(state, batch, key, nan)[0].generator,
              mle.step(state.generator, batch, key, nan)[0],
              scheme_adv.step(state, batch, key, nan)[0].generator)

    ours, ref, adv = run(state)
    chex.assert_trees_all_equal(ours, ref)
    self.assertFalse(np.allclose(adv.params['params']['Wi'], ref.params['params']['Wi']))

  def test_bad_config_names_the_field(self):
    config, _ = _scheme()
    config.professor_forcing.weight = -1.0
    with self.assertRaisesRegex(ValueError, '--config.professor_forcing.weight'):
      objectives.make('professor_forcing', config, None)


class TrainSchemeTest(absltest.TestCase):

  def test_smoke_run(self):
    config = smoke_config()
    _, last = final_rows('professor_forcing', config)
    self.assertLen(last, config.num_seeds)
    for r in last:
      self.assertFalse(r['diverged'])
      for key in ('nll_test', 'kl_pq', 'nll_oracle', 'entropy_q', 'train_loss', 'train_nll',
                  'train_adversarial', 'train_disc_loss', 'train_disc_accuracy'):
        self.assertTrue(np.isfinite(r[key]), key)


if __name__ == '__main__':
  absltest.main()
