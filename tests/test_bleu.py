"""Tests of benchmarks/analysis/bleu.py against a plain Counter implementation, NLTK and hand values."""

import collections
import functools
import math

from absl.testing import absltest
from absl.testing import parameterized
import chex
from hypothesis import strategies as st
import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.analysis import bleu

_SETTINGS = hypothesis.settings(
    max_examples=60, deadline=None, derandomize=True, database=None
)


def _ngrams(sentence, k):
  """Counter of the k-grams (tuples) of a sentence (a list)."""
  return collections.Counter(
      tuple(sentence[t:t + k]) for t in range(len(sentence) - k + 1))


def _reference_bleu(hypothesis, references, max_n, epsilon=0.1):
  """BLEU-max_n of one hypothesis, straight from the definition (NLTK, method1)."""
  hypothesis = [int(x) for x in hypothesis]
  references = [[int(x) for x in r] for r in references]
  log_sum = 0.0
  for k in range(1, max_n + 1):
    counts = _ngrams(hypothesis, k)
    max_ref = collections.Counter()
    for reference in references:
      max_ref |= _ngrams(reference, k)  # Counter union: the maximum count per k-gram.
    matches = sum(min(c, max_ref[g]) for g, c in counts.items())
    if k == 1 and matches == 0:
      return 0.0
    total = max(1, len(hypothesis) - k + 1)
    log_sum += math.log((matches if matches else epsilon) / total) / max_n
  hyp_len = len(hypothesis)
  ref_len = min((len(r) for r in references), key=lambda n: (abs(n - hyp_len), n))
  brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
  return brevity * math.exp(log_sum)


def _reference_self_bleu(samples, max_n):
  """Self-BLEU by explicit leave-one-out: sample i against every row but row i."""
  return np.array([_reference_bleu(samples[i], np.delete(samples, i, axis=0), max_n)
                   for i in range(samples.shape[0])])


def _tokens(seed, shape, vocab):
  return np.random.default_rng(seed).integers(0, vocab, size=shape)


@st.composite
def _bleu_inputs(draw):
  """(hypotheses [N, T_h], references [M, T_r], max_n) with small V, often T_h = T_r."""
  vocab = draw(st.sampled_from([1, 2, 3, 5, 50, 5000]))
  t_h = draw(st.integers(0, 8))
  t_r = draw(st.one_of(st.just(t_h), st.integers(0, 8)))
  n, m = draw(st.integers(1, 6)), draw(st.integers(1, 6))
  seed = draw(st.integers(0, 2**31))
  return (_tokens(seed, (n, t_h), vocab), _tokens(seed + 1, (m, t_r), vocab),
          draw(st.integers(1, 5)))


@st.composite
def _self_bleu_inputs(draw):
  """(samples [N, T], max_n), small V so that k-grams and whole sentences repeat."""
  vocab = draw(st.sampled_from([1, 2, 3, 4, 50]))
  shape = (draw(st.integers(2, 8)), draw(st.integers(0, 7)))
  return _tokens(draw(st.integers(0, 2**31)), shape, vocab), draw(st.integers(1, 5))


class BleuTest(parameterized.TestCase):

  @hypothesis.given(_bleu_inputs())
  @_SETTINGS
  def test_property_matches_reference(self, inputs):
    hyp, ref, max_n = inputs
    expected = [_reference_bleu(h, ref, max_n) for h in hyp]
    np.testing.assert_allclose(bleu.sentence_bleu(hyp, ref, max_n=max_n), expected,
                               rtol=1e-12, atol=1e-12)

  @hypothesis.given(_self_bleu_inputs())
  @_SETTINGS
  def test_property_self_bleu_matches_leave_one_out(self, inputs):
    samples, max_n = inputs
    np.testing.assert_allclose(bleu.self_bleu(samples, max_n=max_n),
                               _reference_self_bleu(samples, max_n), rtol=1e-12, atol=1e-12)

  @parameterized.parameters((4, 12, 60, 4), (20, 10, 80, 5), (500, 20, 40, 4))
  def test_larger_sets_match_reference(self, vocab, seq_len, num, max_n):
    # Small vocabularies give many tied top counts and repeated sentences.
    hyp = _tokens(0, (num, seq_len), vocab)
    ref = _tokens(1, (num + 7, seq_len), vocab)
    np.testing.assert_allclose(
        bleu.sentence_bleu(hyp, ref, max_n=max_n),
        [_reference_bleu(h, ref, max_n) for h in hyp], rtol=1e-12, atol=1e-12)
    samples = np.concatenate([hyp, hyp[:5]])  # exact duplicates too
    np.testing.assert_allclose(bleu.self_bleu(samples, max_n=max_n),
                               _reference_self_bleu(samples, max_n), rtol=1e-12, atol=1e-12)

  def test_matches_nltk(self):
    nltk_bleu = pytest.importorskip('nltk.translate.bleu_score')
    smoothing = nltk_bleu.SmoothingFunction().method1
    for seed, (vocab, t_h, t_r, max_n) in enumerate(
        [(3, 6, 6, 4), (8, 10, 10, 4), (5, 7, 7, 2), (6, 5, 8, 3), (4, 9, 6, 4), (2, 3, 3, 5)]):
      hyp, ref = _tokens(seed, (5, t_h), vocab), _tokens(seed + 50, (6, t_r), vocab)
      weights = (1.0 / max_n,) * max_n
      # Tokens as strings, the way Texygen feeds NLTK.
      words = lambda x: [str(t) for t in x]
      expected = [nltk_bleu.sentence_bleu([words(r) for r in ref], words(h), weights,
                                          smoothing_function=smoothing) for h in hyp]
      np.testing.assert_allclose(bleu.sentence_bleu(hyp, ref, max_n=max_n), expected,
                                 rtol=1e-12, atol=1e-12)
      if t_h == t_r:
        samples = np.concatenate([hyp, ref, hyp[:1]])
        expected = [nltk_bleu.sentence_bleu(
            [list(r) for r in np.delete(samples, i, axis=0)], list(samples[i]), weights,
            smoothing_function=smoothing) for i in range(samples.shape[0])]
        np.testing.assert_allclose(bleu.self_bleu(samples, max_n=max_n), expected,
                                   rtol=1e-12, atol=1e-12)

  def test_hand_computed(self):
    # Hypothesis 1 1 1 1 against 1 1 2 3 and 1 2 1 1: unigram 1 clipped at 3 (p1 = 3/4),
    # bigram (1,1) clipped at 1 (p2 = 1/3), no shared 3- or 4-gram (0.1/2 and 0.1/1).
    hyp, ref = np.array([[1, 1, 1, 1]]), np.array([[1, 1, 2, 3], [1, 2, 1, 1]])
    num, den = bleu.modified_precisions(hyp, ref, max_n=4)
    np.testing.assert_array_equal(num, [[3, 1, 0, 0]])
    np.testing.assert_array_equal(den, [4, 3, 2, 1])
    expected = [0.75, 0.5, (0.75 / 3 * 0.05) ** (1 / 3), (0.75 / 3 * 0.05 * 0.1) ** 0.25]
    np.testing.assert_allclose(bleu.sentence_bleu(hyp, ref, max_n=4, all_orders=True),
                               [expected], rtol=1e-14)
    for n in range(1, 5):
      np.testing.assert_allclose(bleu.sentence_bleu(hyp, ref, max_n=n), [expected[n - 1]],
                                 rtol=1e-14)
    # Brevity: a 2-token hypothesis against 4-token references, BP = exp(1 − 4/2).
    np.testing.assert_allclose(
        bleu.sentence_bleu(np.array([[5, 6]]), np.array([[5, 6, 7, 8]]), max_n=2),
        [math.exp(-1.0)], rtol=1e-14)
    self.assertEqual(bleu.brevity_penalty(5, 4), 1.0)
    self.assertEqual(bleu.brevity_penalty(0, 4), 0.0)

  def test_identical_sets_score_one(self):
    x = _tokens(3, (30, 20), 50)
    np.testing.assert_array_equal(bleu.sentence_bleu(x, x, max_n=4), np.ones(30))
    np.testing.assert_array_equal(bleu.sentence_bleu(x, x[::-1], max_n=5), np.ones(30))

  def test_self_bleu_excludes_the_sample_itself(self):
    # Disjoint vocabularies: no unigram shared with any other sentence, so 0 (Texygen: 1).
    disjoint = np.arange(40).reshape(5, 8)
    np.testing.assert_array_equal(bleu.self_bleu(disjoint, max_n=4), np.zeros(5))
    # The same tokens, no shared bigram: only smoothing, p = (1, 0.1/3, 0.1/2, 0.1/1).
    reversed_pair = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    np.testing.assert_allclose(bleu.self_bleu(reversed_pair, max_n=4),
                               np.full(2, (0.1 / 3 * 0.05 * 0.1) ** 0.25), rtol=1e-14)
    # An exact duplicate is a legitimate reference: rows 0 and 3 score 1, the others not.
    samples = np.concatenate([disjoint, disjoint[:1]])
    np.testing.assert_array_equal(bleu.self_bleu(samples, max_n=4), [1, 0, 0, 0, 0, 1])
    # Three copies (a tie for the top count, held by several sentences): all score 1.
    triple = np.array([[7, 7, 8, 7]] * 3 + [[9, 9, 9, 9]])
    np.testing.assert_allclose(bleu.self_bleu(triple, max_n=4)[:3], np.ones(3), rtol=1e-14)

  def test_bad_inputs_raise(self):
    x = np.zeros((3, 4), np.int32)
    with self.assertRaises(TypeError):
      bleu.sentence_bleu(x.astype(np.float32), x)
    with self.assertRaises(ValueError):
      bleu.sentence_bleu(x[0], x)
    with self.assertRaises(ValueError):
      bleu.sentence_bleu(x, x[:0])
    with self.assertRaises(ValueError):
      bleu.sentence_bleu(x, x, max_n=0)
    with self.assertRaises(ValueError):
      bleu.self_bleu(x[:1])
    with self.assertRaises(ValueError):
      bleu.self_bleu_jax(jnp.zeros((1, 4), jnp.int32))
    with self.assertRaises(TypeError):
      bleu.bleu_jax(jnp.zeros((3, 4)), x)


class BleuJaxTest(parameterized.TestCase):

  def test_jit_and_vmap_match_numpy(self):
    hyp = _tokens(5, (3, 16, 10), 6).astype(np.int32)  # 3 sets of 16 hypotheses
    ref = _tokens(6, (3, 12, 10), 6).astype(np.int32)
    fn = jax.jit(functools.partial(bleu.bleu_jax, max_n=3))
    expected = np.stack([bleu.sentence_bleu(h, r, max_n=3) for h, r in zip(hyp, ref)])
    np.testing.assert_allclose(fn(hyp[0], ref[0]), expected[0], rtol=1e-6)
    out = jax.jit(jax.vmap(fn))(hyp, ref)
    chex.assert_shape(out, (3, 16))
    chex.assert_type(out, jnp.float32)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    # References shared by every batch element (not batched).
    shared = jax.vmap(fn, in_axes=(0, None))(hyp, ref[0])
    np.testing.assert_allclose(
        shared, np.stack([bleu.sentence_bleu(h, ref[0], max_n=3) for h in hyp]), rtol=1e-6)
    orders = jax.jit(functools.partial(bleu.bleu_jax, max_n=4, all_orders=True))(hyp[0],
                                                                                ref[0])
    np.testing.assert_allclose(
        orders, bleu.sentence_bleu(hyp[0], ref[0], max_n=4, all_orders=True), rtol=1e-6)

  def test_self_bleu_jit_and_vmap_match_numpy(self):
    samples = _tokens(7, (2, 20, 8), 4).astype(np.int32)
    fn = jax.jit(jax.vmap(functools.partial(bleu.self_bleu_jax, max_n=4)))
    out = fn(samples)
    chex.assert_shape(out, (2, 20))
    np.testing.assert_allclose(
        out, np.stack([bleu.self_bleu(s, max_n=4) for s in samples]), rtol=1e-6)
    # Inside a larger jitted computation: the mean and its inputs are traced.
    mean = jax.jit(lambda s: jnp.mean(bleu.self_bleu_jax(s + 0, max_n=2)))(samples[0])
    np.testing.assert_allclose(mean, bleu.self_bleu(samples[0], max_n=2).mean(), rtol=1e-6)


if __name__ == '__main__':
  absltest.main()
