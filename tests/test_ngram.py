"""Tests of models/ngram.py (the n-gram and automaton oracles): exact probabilities, sampling frequencies,
the entropy's closed form, the context ids, and its configuration's refusals."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

import _smoke
from benchmarks import configs
import divergences
from models import ngram
from models import oracle as oracle_lib

V, T = 3, 4


def _model(order=2, concentration=0.5, seed=0):
  model = ngram.NGramLM(vocab_size=V, seq_len=T, order=order, concentration=concentration)
  return model, model.init(jax.random.PRNGKey(seed), jnp.zeros((1, T), jnp.int32))


def _automaton(states=5, concentration=0.5, seed=0, out_degree=0):
  model = ngram.AutomatonLM(vocab_size=V, seq_len=T, num_states=states,
                            concentration=concentration, out_degree=out_degree)
  return model, model.init(jax.random.PRNGKey(seed), jnp.zeros((1, T), jnp.int32))


class NGramTest(parameterized.TestCase):

  @parameterized.parameters(('ngram', 1), ('ngram', 2), ('ngram', 3), ('automaton', 1),
                            ('automaton', 6))
  def test_probabilities_sum_to_one_and_both_paths_agree(self, kind, size):
    model, params = _model(size) if kind == 'ngram' else _automaton(size)
    log_p = model.apply(params, method='all_log_probs')
    np.testing.assert_allclose(float(jnp.exp(log_p).sum()), 1.0, rtol=1e-5)
    xs = divergences.enumerate_sequences(V, T, 0, V ** T)
    np.testing.assert_allclose(model.apply(params, xs, method='log_prob'), log_p, atol=1e-5)

  def test_the_next_token_depends_on_exactly_the_last_k_tokens(self):
    model, params = _model(order=2)
    table = np.asarray(params['params']['log_table'])
    x = jnp.array([[2, 0, 1, 2]])
    got = np.asarray(model.apply(params, x, method='logits'))[0]
    # Digits d = token + 1, newest least significant, base V + 1; 0 before the start.
    contexts = [0, 2 + 1, (0 + 1) + (2 + 1) * (V + 1), (1 + 1) + (0 + 1) * (V + 1)]
    np.testing.assert_array_equal(got, table[contexts])
    # A change three tokens back changes nothing at order 2.
    y = x.at[0, 0].set(0)
    np.testing.assert_array_equal(np.asarray(model.apply(params, y, method='logits'))[0, 3],
                                  got[3])

  @parameterized.parameters('ngram', 'automaton')
  def test_sampled_frequencies_match_the_exact_law(self, kind):
    model, params = _model(1, 1.0) if kind == 'ngram' else _automaton(4, 1.0)
    draws = np.asarray(model.apply(params, jax.random.PRNGKey(3), 40_000, method='sample'))
    codes = (draws * V ** np.arange(T - 1, -1, -1)).sum(-1)  # lexicographic index
    counts = np.bincount(codes, minlength=V ** T)
    expected = np.asarray(jnp.exp(model.apply(params, method='all_log_probs'))) * len(codes)
    keep = expected >= 5  # chi-square on the cells with enough mass
    chi2 = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    self.assertLess(chi2, scipy.stats.chi2.ppf(0.999, keep.sum() - 1))

  @parameterized.parameters(('ngram', 1, 0.3), ('ngram', 2, 1.0), ('ngram', 3, 0.5),
                            ('automaton', 4, 0.5), ('automaton', 7, 2.0))
  def test_entropy_closed_form_equals_enumeration(self, kind, size, alpha):
    make = _model if kind == 'ngram' else _automaton
    model, params = make(size, alpha, seed=size)
    log_p = model.apply(params, method='all_log_probs')
    by_enumeration = -float(jnp.sum(jnp.exp(log_p) * log_p))
    np.testing.assert_allclose(float(model.apply(params, method='entropy')), by_enumeration,
                               rtol=1e-5)

  def test_the_automaton_moves_by_its_transition_table(self):
    model, params = _automaton(5)
    tables = params['params']['automaton']
    x = jnp.array([[2, 0, 1, 2]])
    states = [0]
    for tok in (2, 0, 1):
      states.append(int(tables['transitions'][states[-1], tok]))
    np.testing.assert_array_equal(np.asarray(model.apply(params, x, method='logits'))[0],
                                  np.asarray(tables['log_table'])[states])

  @parameterized.parameters(1, 2)
  def test_out_degree_bounds_each_states_successors(self, degree):
    model, params = _automaton(8, seed=degree, out_degree=degree)
    moves = np.asarray(params['params']['automaton']['transitions'])
    self.assertEqual(max(len(set(row)) for row in moves), degree)
    self.assertTrue(((moves >= 0) & (moves < 8)).all())
    log_p = model.apply(params, method='all_log_probs')
    np.testing.assert_allclose(float(jnp.exp(log_p).sum()), 1.0, rtol=1e-5)
    self.assertTrue(np.isfinite(np.asarray(log_p)).all())  # every sequence stays possible
    # One successor per state: the state path is the same whatever the tokens.
    if degree == 1:
      xs = divergences.enumerate_sequences(V, T, 0, V ** T)
      paths = np.asarray(model.apply(params, xs, method='hidden_states'))
      np.testing.assert_array_equal(paths, np.broadcast_to(paths[:1], paths.shape))

  @parameterized.parameters(('ngram', ngram.NGramLM), ('automaton', ngram.AutomatonLM))
  def test_the_problem_builds_and_its_data_are_its_samples(self, source, cls):
    config = configs.get_preset('smoke')
    config.problem.update(source=source, vocab_size=V, seq_len=T, num_train=64, num_test=32)
    oracle_lib.check_config(config.problem)
    problem = oracle_lib.make_problem(config.problem)
    self.assertIsInstance(problem.model, cls)
    np.testing.assert_allclose(problem.test_logp,
                               problem.model.apply(problem.params, problem.test,
                                                   method='log_prob'), rtol=1e-6)

  def test_distillation_from_the_ngram_teacher_trains_through_train_scheme(self):
    # The teacher is read through its hidden_states / logits_from_hidden, as the LSTM is.
    config = _smoke.smoke_config()
    config.problem.update(source='ngram', vocab_size=V, seq_len=T, num_train=64, num_test=32)
    config.distill.update(divergence='fkl', prefix='student')
    config.train.update(num_steps=10, eval_every=10)
    _, rows = _smoke.final_rows('distill', config)
    self.assertTrue(all(np.isfinite(r['kl_pq']) and np.isfinite(r['exposure_oracle'])
                        and not r['diverged'] for r in rows))

  @parameterized.parameters(({'ngram_order': 0}, 'ngram_order', 'integer'),
                            ({'state_concentration': 0.0}, 'state_concentration', '> 0'),
                            ({'ngram_order': 4, 'vocab_size': 500}, 'ngram_order', 'entries'),
                            ({'source': 'automaton', 'automaton_states': 0},
                             'automaton_states', 'integer'),
                            ({'source': 'automaton', 'automaton_out_degree': 9},
                             'automaton_out_degree', '0..'),
                            ({'source': 'pfa'}, 'source', 'not one of'))
  def test_refusals_name_the_field(self, fields, flag, words):
    config = configs.get_preset('smoke')
    config.problem.update({'source': 'ngram', **fields})
    with self.assertRaisesRegex(ValueError, f'--config.problem.{flag}: .*{words}'):
      oracle_lib.check_config(config.problem)


if __name__ == '__main__':
  absltest.main()
