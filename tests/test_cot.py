"""Tests of objectives/cot.py: shapes, the mediator's optimum, and what the generator's signal is."""

import functools

from absl.testing import absltest
import chex
import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np
import optax

from _smoke import final_rows, smoke_config
from benchmarks import configs
import divergences
from models import oracle as oracle_lib
from models.mediator import make_mediator
from objectives import cot
from objectives import teacher_forcing
import objectives

V, T = 3, 3
PIS = (0.1, 0.5, 0.9)


@functools.lru_cache(maxsize=None)
def _setup():
  """An enumerable problem (27 sequences); the generator has the oracle's sizes (so Q = P is
  a valid generator) and a larger init scale (so it starts far from P)."""
  config = configs.get_preset('smoke')
  config.problem.update(vocab_size=V, seq_len=T, embed_dim=4, hidden_dim=4, num_train=64,
                        num_test=32)
  config.generator.update(embed_dim=4, hidden_dim=4, init_scale=1.0)
  problem = oracle_lib.make_problem(config.problem)
  return config, problem, objectives.make('cot', config, problem)


def _all_sequences():
  return divergences.enumerate_sequences(V, T, 0, V**T)


def _flat(tree):
  return ravel_pytree(tree)[0]


def _rel_err(a, b):
  return float(jnp.linalg.norm(_flat(a) - _flat(b)) / jnp.linalg.norm(_flat(b)))


class CoTLossTest(absltest.TestCase):

  def test_shapes_under_vmap_and_finite_gradients(self):
    config, problem, scheme = _setup()
    gen = scheme.generator
    med = make_mediator(vocab_size=V, seq_len=T, embed_dim=4, hidden_dim=4,
                        width_factor=config.cot.mediator_width_factor)
    states = jax.jit(jax.vmap(scheme.init))(jax.random.split(jax.random.PRNGKey(0), 3))
    chex.assert_shape(states.mediator.params['params']['Wo'], (3, 8, V))  # twice as wide
    # Stand-ins for a data batch and a generator batch (where samples come from is immaterial).
    batch, samples = problem.train[:8], problem.train[8:16]

    @jax.jit
    def one(state):
      log_m = teacher_forcing.next_token_log_probs(med, state.mediator.params, samples)
      g_loss = lambda p: cot.generator_loss(gen, p, samples, log_m)
      m_loss = lambda p: cot.mediator_loss(med, p, batch, samples, 0.5)
      direct_nll = cot.balanced_nll(
          med.apply(state.mediator.params, batch, method='log_prob'),
          med.apply(state.mediator.params, samples, method='log_prob'), 0.5, seq_len=T)
      return (g_loss(state.generator.params), m_loss(state.mediator.params),
              jax.grad(lambda p: g_loss(p).mean())(state.generator.params),
              jax.grad(lambda p: m_loss(p).mean())(state.mediator.params), direct_nll)

    g, m, g_grads, m_grads, direct_nll = jax.vmap(one)(states)
    np.testing.assert_allclose(m, direct_nll, rtol=1e-5)
    chex.assert_shape([g, m], (3, 8))
    chex.assert_trees_all_equal_shapes(g_grads, states.generator.params)
    chex.assert_trees_all_equal_shapes(m_grads, states.mediator.params)
    chex.assert_tree_all_finite((g, m, g_grads, m_grads))
    self.assertTrue(bool(jnp.all(g >= 0)))  # a sum of KLs
    self.assertGreater(float(jnp.abs(g_grads['params']['Wo']).max()), 0.0)

  def test_mediator_loss_is_minimised_by_the_mixture(self):
    # E_{x~P, y~Q}[balanced_nll] = H(M_π, M)/T ≥ H(M_π)/T, with equality iff M = M_π: by
    # enumerating all (x, y) pairs, the exact mixture beats P, Q and the other mixtures.
    _, problem, scheme = _setup()
    xs = _all_sequences()
    log_p = problem.model.apply(problem.params, xs, method='log_prob')
    log_q = scheme.generator.apply(scheme.init(jax.random.PRNGKey(2)).generator.params, xs,
                                   method='log_prob')
    p, q = jnp.exp(log_p), jnp.exp(log_q)
    mixture = lambda w: jnp.logaddexp(jnp.log(w) + log_p, jnp.log1p(-w) + log_q)
    for pi in PIS:
      def expected(log_m):
        pairs = cot.balanced_nll(log_m[:, None], log_m[None, :], pi, seq_len=T)  # [x, y]
        return float(jnp.sum(p[:, None] * q[None, :] * pairs))
      best = expected(mixture(pi))
      log_mix = mixture(pi)
      np.testing.assert_allclose(best, -jnp.sum(jnp.exp(log_mix) * log_mix) / T, rtol=1e-5)
      others = [expected(log_p), expected(log_q)]
      others += [expected(mixture(w)) for w in (0.05, 0.3, 0.7, 0.95) if w != pi]
      self.assertLess(best, min(others) - 1e-4, msg=f'pi={pi}')

  def test_generator_signal_is_the_js_gradient_without_the_prefix_score_term(self):
    # With the exact mediator M_π plugged in, by enumeration over x ~ Q:
    #   (1−π) (E[∇ generator_loss] + Σ_t E[∇log Q(x_<t) · KL_t(x_<t)] / T) = ∇JS_π/T exactly,
    # where KL_t = KL(Q(·|x_<t) ‖ M_π(·|x_<t)); the values satisfy
    #   E[generator_loss] = KL(Q ‖ M_π)/T (sequence-level mixture; the KL chain rule).
    # The first term alone (CoT's update) is biased: the gap is the omitted score term.
    _, problem, scheme = _setup()
    gen = scheme.generator
    xs = _all_sequences()
    log_p = problem.model.apply(problem.params, xs, method='log_prob')
    p_next = teacher_forcing.next_token_log_probs(problem.model, problem.params, xs)
    params = scheme.init(jax.random.PRNGKey(3)).generator.params

    def exact_js(params, pi):
      return divergences.exact(lambda x: problem.model.apply(problem.params, x,
                                                             method='log_prob'),
                               lambda x: gen.apply(params, x, method='log_prob'),
                               vocab_size=V, seq_len=T, pis=jnp.reshape(pi, (1,)),
                               chunk_size=V**T)['js_pi'][0]

    @jax.jit
    def terms(params, pi):
      q_next = teacher_forcing.next_token_log_probs(gen, params, xs)
      log_m = teacher_forcing.exact_mediator_log_probs(p_next, q_next, xs, pi)
      w = jax.lax.stop_gradient(jnp.exp(gen.apply(params, xs, method='log_prob')))
      signal = lambda prm: jnp.sum(w * cot.generator_loss(gen, prm, xs, log_m))
      kl_t = jax.lax.stop_gradient(divergences.kl(q_next, log_m))  # [N, T]

      def prefix_score(prm):
        tok = gen.apply(prm, xs, method='token_log_probs')  # [N, T]
        log_prefix = jnp.cumsum(tok, axis=1) - tok          # log Q(x_<t)
        return jnp.sum(w[:, None] * log_prefix * kl_t) / T

      log_q = gen.apply(params, xs, method='log_prob')
      log_mix = jnp.logaddexp(jnp.log(pi) + log_p, jnp.log1p(-pi) + log_q)
      kl_q_m = jnp.sum(jnp.exp(log_q) * (log_q - log_mix)) / T
      return (signal(params), kl_q_m, jax.grad(signal)(params),
              jax.grad(prefix_score)(params), jax.grad(exact_js)(params, pi))

    for pi in PIS:
      value, kl_q_m, g_cot, g_prefix, g_js = terms(params, jnp.float32(pi))
      np.testing.assert_allclose(value, kl_q_m, rtol=1e-4)
      scaled = lambda g: jax.tree.map(lambda a: (1 - pi) * a, g)
      total = jax.tree.map(lambda a, b: a + b, g_cot, g_prefix)
      self.assertLess(_rel_err(scaled(total), g_js), 1e-4, msg=f'pi={pi}')
      self.assertGreater(_rel_err(scaled(g_cot), g_js), 1e-2, msg=f'pi={pi}')  # the bias

  def test_generator_signal_vanishes_at_q_equals_p(self):
    # At Q = P the mixture is P whatever π, every KL_t is 0, and so is its gradient.
    _, problem, scheme = _setup()
    gen, xs = scheme.generator, problem.train[:16]
    p_next = teacher_forcing.next_token_log_probs(problem.model, problem.params, xs)
    log_m = teacher_forcing.exact_mediator_log_probs(p_next, p_next, xs, 0.3)
    np.testing.assert_allclose(log_m, p_next, atol=1e-5)
    loss, grads = jax.jit(jax.value_and_grad(
        lambda prm: cot.generator_loss(gen, prm, xs, log_m).mean()))(problem.params)
    self.assertLess(abs(float(loss)), 1e-6)
    self.assertLess(float(jnp.abs(_flat(grads)).max()), 1e-5)


class CoTStepTest(absltest.TestCase):

  def test_generator_first_then_mediator_on_fresh_samples_of_the_updated_generator(self):
    # The step recomputed from the module's pieces with its keys (split(step key) = keys of
    # the generator's and the mediator's sample draws). Large learning rates make one update
    # change each network enough that the other order, or stale samples, would differ; the
    # mediator's Adam betas are not the defaults, so its optimiser state pins them.
    config, problem, _ = _setup()
    config = config.copy_and_resolve_references()
    config.cot.update(generator_learning_rate=0.3, mediator_learning_rate=0.3,
                      mediator_b1=0.5, mediator_b2=0.8)
    scheme = objectives.make('cot', config, problem)
    gen = scheme.generator
    med = make_mediator(vocab_size=V, seq_len=T, embed_dim=4, hidden_dim=4,
                        width_factor=config.cot.mediator_width_factor)
    cc = config.cot
    adam = lambda lr, b1, b2: optax.chain(optax.clip_by_global_norm(cc.grad_clip),
                                          optax.adam(lr, b1=b1, b2=b2))
    gen_opt = adam(cc.generator_learning_rate, cc.generator_b1, cc.generator_b2)
    med_opt = adam(cc.mediator_learning_rate, cc.mediator_b1, cc.mediator_b2)
    state = scheme.init(jax.random.PRNGKey(4))
    batch, key, pi = problem.train[:16], jax.random.PRNGKey(5), jnp.float32(0.3)
    k_gen, k_med = jax.random.split(key)

    def update(opt, opt_state, params, loss):
      updates, opt_state = opt.update(jax.grad(loss)(params), opt_state, params)
      return optax.apply_updates(params, updates), opt_state

    @jax.jit
    def expected(state):
      g, m = state.generator, state.mediator
      sample = lambda params, k: gen.apply(params, k, batch.shape[0], method='sample')

      def gen_update(med_params):
        samples = sample(g.params, k_gen)
        log_m = teacher_forcing.next_token_log_probs(med, med_params, samples)
        return update(gen_opt, g.opt_state, g.params,
                      lambda p: cot.generator_loss(gen, p, samples, log_m).mean())[0]

      def med_update(gen_params, opt):
        samples = sample(gen_params, k_med)
        return update(opt, opt.init(m.params), m.params,
                      lambda p: cot.mediator_loss(med, p, batch, samples, pi).mean())

      new_gen = gen_update(m.params)
      new_med, med_opt_state = med_update(new_gen, med_opt)
      return dict(gen=new_gen, med=new_med, med_opt_state=med_opt_state,
                  gen_after_new_med=gen_update(new_med),
                  med_on_old_gen=med_update(g.params, med_opt)[0],
                  med_opt_state_default_betas=med_update(new_gen, adam(
                      cc.mediator_learning_rate, 0.9, 0.999))[1],
                  old_samples=sample(g.params, k_med), new_samples=sample(new_gen, k_med))

    new, _ = jax.jit(scheme.step)(state, batch, key, pi)
    want = expected(state)
    chex.assert_trees_all_close(new.generator.params, want['gen'], atol=1e-6)
    chex.assert_trees_all_close(new.mediator.params, want['med'], atol=1e-6)
    chex.assert_trees_all_close(new.mediator.opt_state, want['med_opt_state'], atol=1e-6)
    # The alternatives really differ: the order and the samples are pinned, and so are the betas.
    big = lambda a, b: float(jnp.abs(_flat(a) - _flat(b)).max()) > 1e-3
    self.assertFalse(np.array_equal(want['old_samples'], want['new_samples']))
    self.assertTrue(big(want['gen_after_new_med'], want['gen']))
    self.assertTrue(big(want['med_on_old_gen'], want['med']))
    self.assertTrue(big(want['med_opt_state_default_betas'], want['med_opt_state']))

  def test_bad_betas_name_the_field(self):
    config, problem, _ = _setup()
    config = config.copy_and_resolve_references()
    config.cot.mediator_b2 = 1.0
    with self.assertRaisesRegex(ValueError, '--config.cot.mediator_b2'):
      objectives.make('cot', config, problem)


class CoTTrainTest(absltest.TestCase):

  def test_smoke_training(self):
    config = smoke_config()
    config.pis = (0.3, 0.7)
    scheme, last = final_rows('cot', config)
    self.assertTrue(scheme.uses_pi)
    self.assertLen(last, 4)  # 2 seeds x 2 π
    self.assertEqual(sorted(r['pi'] for r in last), [0.3, 0.3, 0.7, 0.7])
    for r in last:
      self.assertFalse(r['diverged'])
      for key in ('kl_pq', 'kl_qp', 'nll_oracle', 'entropy_q', 'train_loss',
                  'train_mediator_loss'):
        self.assertTrue(np.isfinite(r[key]), msg=key)


if __name__ == '__main__':
  absltest.main()
