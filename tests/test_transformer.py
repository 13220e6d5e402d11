"""Tests of models/transformer.py (the causal transformer generator) and of the generator's kind:
teacher forcing against the cached steps, causality, exact probabilities, sampling frequencies,
the scheme-specific paths, and the configuration's refusals."""

import json
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from benchmarks import configs
from benchmarks.engine import configuration
import divergences
from models import generator as generator_lib
from models import mediator
from models import transformer
import objectives

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V, T = 4, 4


def _model(positions='learned', layers=2, heads=2, seed=0):
  model = transformer.TransformerLM(vocab_size=V, embed_dim=8, hidden_dim=12, seq_len=T,
                                    num_layers=layers, num_heads=heads, positions=positions,
                                    init_scale=0.5)
  return model, model.init(jax.random.PRNGKey(seed), jnp.zeros((1, T), jnp.int32))


class TransformerTest(parameterized.TestCase):

  @parameterized.parameters(('learned', 2, 2), ('sinusoidal', 1, 4), ('learned', 3, 1))
  def test_teacher_forced_log_probs_equal_the_cached_steps(self, positions, layers, heads):
    model, params = _model(positions, layers, heads)
    x = model.apply(params, jax.random.PRNGKey(1), 16, method='sample')
    forced = np.asarray(model.apply(params, x, method='token_log_probs'))
    carry = model.apply(params, 16, method='initial_carry')
    prev = model.apply(params, 16, method='start_tokens')
    stepped = []
    for t in range(T):
      carry, logits = model.apply(params, carry, prev, method='step')
      stepped.append(np.asarray(jax.nn.log_softmax(logits))[np.arange(16), x[:, t]])
      prev = x[:, t]
    np.testing.assert_allclose(np.stack(stepped, 1), forced, atol=2e-5)

  def test_a_token_changes_no_earlier_logits(self):
    model, params = _model()
    x = model.apply(params, jax.random.PRNGKey(1), 8, method='sample')
    y = x.at[:, 1].set((x[:, 1] + 1) % V)
    a = np.asarray(model.apply(params, x, method='logits'))
    b = np.asarray(model.apply(params, y, method='logits'))
    np.testing.assert_array_equal(a[:, :2], b[:, :2])  # rows 0, 1 have not read x_1
    self.assertGreater(np.abs(a[:, 2:] - b[:, 2:]).max(), 1e-3)

  @parameterized.parameters('learned', 'sinusoidal')
  def test_enumerated_probabilities_sum_to_one_and_match_teacher_forcing(self, positions):
    model, params = _model(positions)
    log_p = model.apply(params, method='all_log_probs')
    np.testing.assert_allclose(float(jnp.exp(log_p).sum()), 1.0, rtol=1e-5)
    xs = divergences.enumerate_sequences(V, T, 0, V ** T)
    np.testing.assert_allclose(model.apply(params, xs, method='log_prob'), log_p, atol=2e-5)

  def test_sampled_frequencies_match_the_exact_law(self):
    model, params = _model()
    draws = np.asarray(model.apply(params, jax.random.PRNGKey(3), 40_000, method='sample'))
    counts = np.bincount((draws * V ** np.arange(T - 1, -1, -1)).sum(-1), minlength=V ** T)
    probs = np.exp(np.asarray(model.apply(params, method='all_log_probs'), np.float64))
    probs /= probs.sum()
    _, p_value = scipy.stats.chisquare(counts, 40_000 * probs)
    self.assertGreater(p_value, 1e-3)

  def test_sinusoids_are_vaswanis(self):
    table = np.asarray(transformer.sinusoids(5, 6))
    pos, i = 3, 1  # column pair 1: sin in column 2, cos in column 3
    freq = 10000.0 ** (-2 * i / 6)
    np.testing.assert_allclose(table[pos, 2], np.sin(pos * freq), rtol=1e-5)
    np.testing.assert_allclose(table[pos, 3], np.cos(pos * freq), rtol=1e-5)
    np.testing.assert_array_equal(table[0, 1::2], 1.0)

  def test_init_scales_the_residual_projections_by_depth(self):
    model, params = _model(layers=2)
    p = params['params']
    big = transformer.TransformerLM(vocab_size=400, embed_dim=64, hidden_dim=64, seq_len=T,
                                    num_layers=8, num_heads=2, init_scale=0.1)
    q = big.init(jax.random.PRNGKey(0), jnp.zeros((1, T), jnp.int32))['params']
    np.testing.assert_allclose(float(q['Wqkv'].std()), 0.1, rtol=0.02)
    np.testing.assert_allclose(float(q['W2'].std()), 0.1 / 4, rtol=0.03)  # 1/√(2·8)
    np.testing.assert_array_equal(p['lnf_scale'], 1.0)
    np.testing.assert_array_equal(p['bqkv'], 0.0)


class SchemePathsTest(absltest.TestCase):
  """The paths scheduled sampling, professor forcing and the Gumbel GAN take."""

  def test_mixing_at_eps_one_is_teacher_forcing_and_at_zero_free_running(self):
    model, params = _model()
    x = model.apply(params, jax.random.PRNGKey(1), 8, method='sample')
    key = jax.random.PRNGKey(2)
    mixed = model.apply(params, x, key, 1.0, method='mixed_token_log_probs')
    np.testing.assert_allclose(mixed, model.apply(params, x, method='token_log_probs'),
                               atol=1e-6)
    # eps = 0: the inputs are the model's own draws, as `sample` draws them with the same key.
    fed = model.apply(params, x, key, 0.0, 'icdf', method='mixed_inputs')
    own = model.apply(params, jax.random.split(key)[0], 8, method='sample')
    np.testing.assert_array_equal(fed[:, 1:], own[:, :-1])

  def test_free_running_behaviour_is_the_behaviour_of_the_samples(self):
    model, params = _model()
    toks, behaviour = model.apply(params, jax.random.PRNGKey(4), 6,
                                  method='free_running_behaviour')
    np.testing.assert_array_equal(toks, model.apply(params, jax.random.PRNGKey(4), 6,
                                                    method='sample'))
    np.testing.assert_allclose(behaviour, model.apply(params, toks, method='behaviour'),
                               atol=1e-6)
    self.assertEqual(behaviour.shape, (6, T, model.state_dim + V))
    np.testing.assert_allclose(np.asarray(behaviour[..., model.state_dim:]).sum(-1), 1.0,
                               rtol=1e-5)

  def test_hard_relaxed_samples_are_ancestral_samples(self):
    model, params = _model()
    key = jax.random.PRNGKey(5)
    toks, soft = model.apply(params, key, 64, 0.5, True, method='sample_relaxed')
    np.testing.assert_array_equal(np.asarray(soft).argmax(-1), toks)
    np.testing.assert_allclose(np.asarray(soft).sum(-1), 1.0, rtol=1e-6)
    # Gradients reach the embeddings through the fed-back soft inputs.
    grads = jax.grad(lambda p: model.apply(p, key, 8, 0.5, method='sample_relaxed')[1][
        ..., 0].sum())(params)
    self.assertGreater(float(jnp.abs(grads['params']['embedding']).sum()), 0.0)


class EverySchemeCliTest(absltest.TestCase):

  def test_every_scheme_trains_a_transformer_through_the_cli(self):
    # One invocation, every registered scheme, one seed, one chunk of 10 steps.
    out = os.path.join(tempfile.mkdtemp(), 'run')
    proc = subprocess.run(
        [sys.executable, '-m', 'benchmarks.run', '--preset=smoke', '--schemes=all',
         '--num_seeds=1', '--pis=0.5', f'--output_dir={out}',
         '--config.generator.kind=transformer', '--config.generator.num_layers=1',
         '--config.train.num_steps=10', '--config.train.eval_every=10',
         '--config.eval.num_samples=64', '--config.eval.batch_size=64',
         '--config.seqgan.pretrain_steps=5', '--config.seqgan.d_pretrain_steps=1'],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(out, 'results.jsonl')) as f:
      rows = [json.loads(line) for line in f]
    last = {r['scheme']: r for r in rows if r['step'] == 10}
    self.assertEqual(set(last), set(objectives.REGISTRY))
    for name, row in last.items():
      self.assertFalse(row['diverged'], name)
      self.assertTrue(np.isfinite([row['kl_pq'], row['kl_qp'], row['nll_oracle']]).all(), name)
    with open(os.path.join(out, 'config.json')) as f:
      self.assertEqual(json.load(f)['config']['generator']['kind'], 'transformer')
    # The checkpoint samples through benchmarks.sample, which rebuilds the transformer.
    sample = subprocess.run(
        [sys.executable, '-m', 'benchmarks.sample', f'--run_dir={out}', '--scheme=mle',
         '--num_samples=4'], cwd=ROOT, capture_output=True, text=True, timeout=300)
    self.assertEqual(sample.returncode, 0, sample.stderr[-3000:])
    lines = [json.loads(l) for l in sample.stdout.splitlines() if l.startswith('{')]
    self.assertLen(lines, 4)
    for line in lines:
      self.assertLen(line['tokens'], 8)
      self.assertTrue(np.isfinite(line['log_q']) and line['log_q'] < 0)


class ConfigTest(parameterized.TestCase):

  def test_the_mediator_follows_the_generator_kind(self):
    config = configs.get_preset('smoke')
    config.generator.kind = 'transformer'
    med = mediator.from_config(config.problem, config.generator, 2)
    self.assertIsInstance(med, transformer.TransformerLM)
    self.assertEqual((med.embed_dim, med.num_layers), (16, config.generator.num_layers))

  @parameterized.parameters(
      ('kind', 'rnn', '--config.generator.kind'),
      ('num_heads', 3, '--config.generator.num_heads'),
      ('num_layers', 0, '--config.generator.num_layers'),
      ('positions', 'rotary', '--config.generator.positions'))
  def test_bad_fields_are_refused_naming_the_flag(self, field, value, flag):
    config = configs.get_preset('smoke')
    config.generator.kind = 'transformer'
    config.generator[field] = value
    with self.assertRaisesRegex(ValueError, f'^{flag}: '):
      configuration.validate(config)

  def test_lstm_ignores_the_transformer_fields(self):
    config = configs.get_preset('smoke')
    config.generator.num_heads = 3  # would not divide embed_dim 8
    configuration.validate(config)
    self.assertEqual(type(generator_lib.from_config(config.problem, config.generator)).__name__,
                     'LSTMLM')


if __name__ == '__main__':
  absltest.main()
