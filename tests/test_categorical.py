"""Tests for divergences/categorical.py against scipy and definitions in numpy."""

from absl.testing import absltest
from absl.testing import parameterized
from hypothesis import strategies as st
import hypothesis
from hypothesis.extra import numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import scipy.special
import scipy.stats

from divergences import categorical

_PIS = (0.0, 0.1, 0.5, 0.9, 1.0)
_SETTINGS = hypothesis.settings(
    max_examples=40, deadline=None, derandomize=True, database=None
)

# Jitted once at import and shared by every test (pi is traced: no recompiles).
_kl = jax.jit(categorical.kl)
_entropy = jax.jit(categorical.entropy)
_js = jax.jit(categorical.js_pi)
_scaled = jax.jit(categorical.js_pi_scaled)


def _log(p):
  """Log of a numpy probability array, float32, with log 0 = -inf."""
  with np.errstate(divide='ignore'):
    return np.log(np.asarray(p, np.float64)).astype(np.float32)


def _entropy_pi(pi):
  """H(π) = −π log π − (1−π) log(1−π) in float64, 0 log 0 = 0."""
  return scipy.special.entr(pi) + scipy.special.entr(1.0 - pi)


def _js_reference(p, q, pi):
  """JS_π(P, Q) straight from the definition, float64; zero-weight terms are 0."""
  p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
  m = pi * p + (1.0 - pi) * q
  value = 0.0
  if pi > 0:
    value += pi * scipy.special.rel_entr(p, m).sum(-1)
  if pi < 1:
    value += (1.0 - pi) * scipy.special.rel_entr(q, m).sum(-1)
  return value


@st.composite
def _log_simplex_pairs(draw):
  """Two float32 log-probability vectors over one support, possibly with zeros."""
  dim = draw(st.integers(2, 6))
  logits = hnp.arrays(np.float64, dim, elements=st.floats(-5.0, 5.0))
  masks = hnp.arrays(bool, dim, elements=st.booleans())
  out = []
  for _ in range(2):
    z, zero = draw(logits), draw(masks)
    zero[draw(st.integers(0, dim - 1))] = False  # Keep at least one atom.
    z = np.where(zero, -np.inf, z)
    out.append(scipy.special.log_softmax(z).astype(np.float32))
  return tuple(out)


_PI = st.floats(0.0, 1.0, width=32)


class CategoricalTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    # A batch of 4 distributions over 5 atoms; p_zero has zeros (also in row 0 of q_zero).
    self.p = rng.dirichlet(np.ones(5), size=4)
    self.q = rng.dirichlet(np.ones(5), size=4)
    self.p_zero = self.p.copy()
    self.p_zero[:, [1, 3]] = 0.0
    self.p_zero /= self.p_zero.sum(-1, keepdims=True)
    self.q_zero = self.q.copy()
    self.q_zero[0, 1] = 0.0
    self.q_zero /= self.q_zero.sum(-1, keepdims=True)

  @parameterized.named_parameters(
      ('full_support', 'p', 'q'),
      ('p_has_zeros', 'p_zero', 'q'),
      ('both_have_zeros', 'p_zero', 'q_zero'),
  )
  def test_kl_matches_scipy(self, p_name, q_name):
    p, q = getattr(self, p_name), getattr(self, q_name)
    expected = scipy.special.rel_entr(p, q).sum(-1)
    np.testing.assert_allclose(_kl(_log(p), _log(q)), expected, rtol=1e-5)

  def test_kl_axis(self):
    got = jax.jit(categorical.kl, static_argnames='axis')(
        _log(self.p.T), _log(self.q.T), axis=0
    )
    np.testing.assert_allclose(got, _kl(_log(self.p), _log(self.q)), rtol=1e-6)

  @parameterized.named_parameters(('full_support', 'p'), ('with_zeros', 'p_zero'))
  def test_entropy_matches_scipy(self, p_name):
    p = getattr(self, p_name)
    expected = scipy.stats.entropy(p, axis=-1)
    np.testing.assert_allclose(_entropy(_log(p)), expected, rtol=1e-5)

  @parameterized.product(pi=_PIS, case=(('p', 'q'), ('p_zero', 'q'), ('p_zero', 'q_zero')))
  def test_js_pi_matches_reference(self, pi, case):
    p, q = getattr(self, case[0]), getattr(self, case[1])
    np.testing.assert_allclose(
        _js(_log(p), _log(q), pi), _js_reference(p, q, pi), rtol=1e-5, atol=1e-7
    )

  def test_js_pi_vmaps_and_broadcasts_over_pi(self):
    log_p, log_q = _log(self.p), _log(self.q)
    pis = jnp.asarray(_PIS, jnp.float32)
    expected = np.stack([_js_reference(self.p, self.q, pi) for pi in _PIS])  # [K, 4]
    vmapped = jax.jit(jax.vmap(categorical.js_pi, in_axes=(None, None, 0)))
    np.testing.assert_allclose(vmapped(log_p, log_q, pis), expected, rtol=1e-5)
    # A [K, 1] pi against batch [4] broadcasts to [K, 4].
    np.testing.assert_allclose(_js(log_p, log_q, pis[:, None]), expected, rtol=1e-5)
    # One pi per batch row.
    row_pis = pis[1:]
    np.testing.assert_allclose(
        _js(log_p, log_q, row_pis), np.diag(expected[1:]), rtol=1e-5
    )

  @parameterized.parameters(*_PIS)
  def test_js_pi_symmetry(self, pi):
    log_p, log_q = _log(self.p_zero), _log(self.q)
    np.testing.assert_allclose(
        _js(log_p, log_q, pi), _js(log_q, log_p, 1.0 - pi), rtol=1e-6, atol=1e-7
    )

  @parameterized.parameters(0.0, 1e-3, 0.1, 0.5, 0.7, 1.0)
  def test_js_pi_disjoint_supports_equals_entropy_of_pi(self, pi):
    log_p = _log([0.3, 0.7, 0.0, 0.0])
    log_q = _log([0.0, 0.0, 0.4, 0.6])
    np.testing.assert_allclose(_js(log_p, log_q, pi), _entropy_pi(pi), rtol=1e-6)

  @parameterized.parameters(*_PIS)
  def test_p_equals_q_gives_zero(self, pi):
    log_p = _log(self.p_zero)
    np.testing.assert_array_equal(_kl(log_p, log_p), 0.0)
    np.testing.assert_allclose(_js(log_p, log_p, pi), 0.0, atol=1e-7)
    np.testing.assert_allclose(_scaled(log_p, log_p, pi), 0.0, atol=1e-6)

  def test_support_mismatch_is_inf_not_nan(self):
    log_p = _log([0.5, 0.5, 0.0])
    log_q = _log([0.0, 0.5, 0.5])
    self.assertEqual(_kl(log_p, log_q), np.inf)
    self.assertEqual(_kl(log_q, log_p), np.inf)
    self.assertEqual(_scaled(log_p, log_q, 0.0), np.inf)
    self.assertEqual(_scaled(log_p, log_q, 1.0), np.inf)
    for pi in _PIS:
      js = _js(log_p, log_q, pi)
      self.assertTrue(np.isfinite(js), msg=f'pi={pi}: {js}')
      np.testing.assert_allclose(js, _js_reference([.5, .5, 0], [0, .5, .5], pi), atol=1e-7)
      self.assertTrue(np.isfinite(_scaled(log_p, log_q, pi)) or pi in (0.0, 1.0))

  @parameterized.parameters(('p', 'q'), ('p_zero', 'q'), ('p_zero', 'q_zero'))
  def test_js_pi_scaled_limits(self, p_name, q_name):
    log_p, log_q = _log(getattr(self, p_name)), _log(getattr(self, q_name))
    kl_pq, kl_qp = _kl(log_p, log_q), _kl(log_q, log_p)
    np.testing.assert_array_equal(_scaled(log_p, log_q, 0.0), kl_pq)
    np.testing.assert_array_equal(_scaled(log_p, log_q, 1.0), kl_qp)
    if p_name != 'p':
      return
    # Both limits finite: near the end points the value approaches them (the gap is
    # O(π χ²), ~1% at π = 1e-4 here as p and q have atoms near 1e-4) ...
    for pi, limit in ((1e-4, kl_pq), (1e-6, kl_pq), (1 - 1e-4, kl_qp)):
      np.testing.assert_allclose(_scaled(log_p, log_q, pi), limit, rtol=1e-2)
    np.testing.assert_allclose(_scaled(log_p, log_q, 1e-6), kl_pq, rtol=1e-4)
    # ... and float32 keeps full relative accuracy there (no cancellation in M/P).
    for pi in (1e-4, 1e-6, 1 - 1e-4):
      pi32 = float(np.float32(pi))
      expected = _js_reference(self.p, self.q, pi32) / (pi32 * (1 - pi32))
      np.testing.assert_allclose(_scaled(log_p, log_q, pi), expected, rtol=1e-5)

  def test_js_pi_scaled_interior_is_js_over_pi_one_minus_pi(self):
    for pi in (0.1, 0.5, 0.9):
      np.testing.assert_allclose(
          _scaled(_log(self.p), _log(self.q), pi),
          _js_reference(self.p, self.q, pi) / (pi * (1 - pi)),
          rtol=1e-5,
      )

  def test_grad_of_kl_is_finite_where_p_has_zeros(self):
    log_p = _log(self.p_zero)
    logits = jnp.asarray(np.log(self.q), jnp.float32)
    grad = jax.jit(jax.grad(lambda z: _kl(log_p, jax.nn.log_softmax(z)).sum()))(logits)
    # d KL(P || softmax(z)) / dz = softmax(z) − p.
    np.testing.assert_allclose(grad, self.q - self.p_zero, atol=1e-6)

  @parameterized.named_parameters(
      ('pi_0', 0.0, False),
      ('pi_half', 0.5, False),
      ('pi_0_q_zeros', 0.0, True),
      ('pi_half_q_zeros', 0.5, True),
      ('pi_1_q_zeros', 1.0, True),
  )
  def test_grad_of_js_pi_scaled_is_finite_where_p_has_zeros(self, pi, q_zeros):
    # At π = 1 the value is KL(Q || P): finite only if Q shares P's zeros (-inf logits).
    log_p = _log(self.p_zero)
    logits = np.log(self.q)
    if q_zeros:
      logits[:, [1, 3]] = -np.inf
    logits = jnp.asarray(logits, jnp.float32)
    loss = lambda z, pi: _scaled(log_p, jax.nn.log_softmax(z), pi).sum()
    value, grad = jax.jit(jax.value_and_grad(loss))(logits, pi)
    self.assertTrue(np.isfinite(value))
    self.assertTrue(np.all(np.isfinite(grad)), msg=str(grad))
    q = np.asarray(jax.nn.softmax(logits), np.float64)
    if pi == 0.0:  # d KL(P || Q) / dz = q − p.
      np.testing.assert_allclose(grad, q - self.p_zero, atol=1e-6)
    if pi == 1.0:  # d KL(Q || P) / dz_j = q_j (log q_j / p_j − KL(Q || P)).
      kl_qp = scipy.special.rel_entr(q, self.p_zero).sum(-1, keepdims=True)
      with np.errstate(divide='ignore', invalid='ignore'):
        expected = np.where(q > 0, q * (np.log(q / self.p_zero) - kl_qp), 0.0)
      np.testing.assert_allclose(grad, expected, atol=1e-5)

  @parameterized.parameters(*_PIS)
  def test_grad_of_js_pi_is_finite_under_support_mismatch(self, pi):
    # Q(0) = 0 < P(0) and P(1) = 0 < Q(1): at π ∈ {0, 1} the discarded side has m = 0 < a.
    log_p = _log(self.p_zero)
    logits = np.log(self.q)
    logits[:, 0] = -np.inf
    loss = lambda z, pi: _js(log_p, jax.nn.log_softmax(z), pi).sum()
    value, grad = jax.jit(jax.value_and_grad(loss))(jnp.asarray(logits, jnp.float32), pi)
    self.assertTrue(np.isfinite(value))
    self.assertTrue(np.all(np.isfinite(grad)), msg=str(grad))

  def test_grad_of_js_pi_wrt_pi_matches_finite_differences(self):
    log_p, log_q = _log(self.p[0]), _log(self.q[0])
    grad = jax.jit(jax.grad(categorical.js_pi, argnums=2))
    for pi, h in ((0.3, 1e-3), (0.8, 1e-3)):
      slope = (_js_reference(self.p[0], self.q[0], pi + h)
               - _js_reference(self.p[0], self.q[0], pi - h)) / (2 * h)
      np.testing.assert_allclose(grad(log_p, log_q, pi), slope, rtol=1e-3)
    g = grad(log_p, log_q, jnp.float32(0.0)), grad(log_p, log_q, jnp.float32(1.0))
    self.assertTrue(np.all(np.isfinite(g)), msg=str(g))

  def test_mismatched_shapes_raise_value_error_naming_both(self):
    log_p, log_q = jnp.zeros((2, 3)), jnp.zeros((2, 4))
    for fn in (categorical.kl, lambda a, b: categorical.js_pi(a, b, 0.5)):
      with self.assertRaisesRegex(ValueError, r'\(2, 3\).*\(2, 4\)'):
        jax.jit(fn)(log_p, log_q)
    with self.assertRaisesRegex(ValueError, r'\(3,\).*\(4,\)'):
      categorical._check(jnp.zeros(3), jnp.zeros(4))

  def test_non_float_raises_type_error(self):
    with self.assertRaises(TypeError):
      categorical._check(jnp.zeros(3, jnp.int32), jnp.zeros(3))
    with self.assertRaises(TypeError):
      categorical.entropy(jnp.zeros(3, jnp.int32))
    with self.assertRaises(TypeError):
      jax.jit(categorical.js_pi_scaled)(jnp.zeros(3), jnp.zeros(3, jnp.int32), 0.5)

  @hypothesis.given(_log_simplex_pairs(), _PI)
  @_SETTINGS
  def test_property_js_pi_symmetry(self, pq, pi):
    log_p, log_q = pq
    np.testing.assert_allclose(
        _js(log_p, log_q, pi), _js(log_q, log_p, 1.0 - pi), rtol=1e-4, atol=1e-6
    )

  @hypothesis.given(_log_simplex_pairs(), _PI)
  @_SETTINGS
  def test_property_js_pi_bounds(self, pq, pi):
    log_p, log_q = pq
    js = float(_js(log_p, log_q, pi))
    self.assertGreaterEqual(js, -1e-6)
    self.assertLessEqual(js, _entropy_pi(float(np.float32(pi))) + 1e-5)
    np.testing.assert_allclose(
        js, _js_reference(np.exp(log_p), np.exp(log_q), float(np.float32(pi))),
        rtol=1e-4, atol=1e-6,
    )

  @hypothesis.given(_log_simplex_pairs())
  @_SETTINGS
  def test_property_non_negative(self, pq):
    log_p, log_q = pq
    self.assertGreaterEqual(float(_kl(log_p, log_q)), -1e-6)
    self.assertGreaterEqual(float(_entropy(log_p)), -1e-6)
    np.testing.assert_allclose(
        _kl(log_p, log_q),
        scipy.special.rel_entr(np.exp(log_p), np.exp(log_q)).sum(),
        rtol=1e-4, atol=1e-6,
    )

  @hypothesis.given(_log_simplex_pairs())
  @_SETTINGS
  def test_property_scaled_limits(self, pq):
    log_p, log_q = pq
    np.testing.assert_array_equal(_scaled(log_p, log_q, 0.0), _kl(log_p, log_q))
    np.testing.assert_array_equal(_scaled(log_p, log_q, 1.0), _kl(log_q, log_p))
    self.assertFalse(np.isnan(_scaled(log_p, log_q, 0.5)))


class AlphaBetaTest(absltest.TestCase):
  """categorical.alpha_beta: the general formula against numpy, its limits against the
  closed-form branches (the general formula near each limit) and the KLs they give."""

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.lp = jax.nn.log_softmax(jnp.asarray(rng.normal(size=6) * 2, jnp.float32))
    self.lq = jax.nn.log_softmax(jnp.asarray(rng.normal(size=6) * 2, jnp.float32))
    self.p = np.exp(np.asarray(self.lp, np.float64))
    self.q = np.exp(np.asarray(self.lq, np.float64))

  def ab(self, a, b):
    return float(categorical.alpha_beta(self.lp, self.lq, a, b))

  def test_general_formula_against_numpy(self):
    p, q = self.p, self.q
    for a, b in ((0.5, 0.5), (0.3, 0.9), (2.0, -0.5), (-0.4, 1.2)):
      want = -np.sum(p ** a * q ** b - a / (a + b) * p ** (a + b)
                     - b / (a + b) * q ** (a + b)) / (a * b)
      self.assertAlmostEqual(self.ab(a, b), want, delta=1e-4 * max(1.0, abs(want)))
    self.assertAlmostEqual(self.ab(0.5, 0.5), 2 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2),
                           places=5)  # 4× the squared Hellinger distance

  def test_limits_are_the_kls_and_the_branches_are_the_limits(self):
    kl = lambda a, b: float(np.sum(a * np.log(a / b)))
    self.assertAlmostEqual(self.ab(1.0, 0.0), kl(self.p, self.q), places=5)
    self.assertAlmostEqual(self.ab(0.0, 1.0), kl(self.q, self.p), places=5)
    p, q = self.p, self.q

    def general(a, b):  # the general formula in float64, near a limit
      return -np.sum(p ** a * q ** b - a / (a + b) * p ** (a + b)
                     - b / (a + b) * q ** (a + b)) / (a * b)
    eps = 1e-5
    for (a, b), near in (((1.0, 0.0), (1.0, eps)), ((0.0, 1.0), (eps, 1.0)),
                         ((0.5, 0.0), (0.5, eps)), ((0.0, 0.5), (eps, 0.5)),
                         ((0.5, -0.5), (0.5, -0.5 + eps)), ((0.0, 0.0), (eps, 2 * eps))):
      branch = self.ab(a, b)
      self.assertAlmostEqual(branch, general(*near), delta=1e-3 * max(1.0, abs(branch)),
                             msg=(a, b))
    for a, b in ((0.5, 0.5), (1.0, 0.0), (0.0, 0.0), (0.5, -0.5)):
      self.assertAlmostEqual(float(categorical.alpha_beta(self.lp, self.lp, a, b)), 0.0,
                             places=5)
      self.assertGreater(self.ab(a, b), 0.0)


if __name__ == '__main__':
  absltest.main()
