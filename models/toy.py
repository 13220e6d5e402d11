"""1-D Gaussian mixtures, quadrature divergences on a grid, and single-Gaussian fits.

The setting of Huszár (2015)'s picture: P a mixture of 1-D Gaussians, Q one Gaussian
fitted by minimising KL[P‖Q], KL[Q‖P] or JS_π(P, Q) / (π (1−π)).

Densities are discretised on a fine uniform grid: x_i with quadrature weight dx, grid
log-masses log p(x_i) + log dx normalised by logsumexp to sum to 1. Divergences are then the
categorical ones of `divergences.categorical` on those vectors, which brings their
conventions (0 · log 0 = 0, NaN-free gradients) and the exact end points of
`js_pi_scaled` (KL[P‖Q] at π = 0, KL[Q‖P] at π = 1). For the smooth, fast-decaying
densities here the rectangle rule on a uniform grid is spectrally accurate: with spacing
dx ≤ σ / 2 the relative discretisation error of a Gaussian's mass (Poisson summation:
2 Σ_k e^{−2π²k²σ²/dx²}) is about 1e-34, so the only errors are float32 rounding and
truncation at the grid's ends (choose the grid wide enough that every density involved has
negligible mass outside it).

All functions are pure jax, jit-able; shapes are in the docstrings.

References:
  Huszár, How (not) to train your generative model: scheduled sampling, likelihood,
  adversary?, https://arxiv.org/abs/1511.05101, 2015.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from divergences import categorical

OBJECTIVES = ('kl_pq', 'kl_qp', 'js_pi')
# Adam's second-moment decay in `fit_gaussian_starts`. The objectives are exact (no gradient
# noise to average), and a start far from P sees huge gradients at first (KL[P‖Q] of a narrow
# Q far from P is ~10² nats): with the default 0.999, Adam remembers them for ~1,000 steps,
# its steps stay tiny, and from N(−3, 0.8²) against the experiment's mixture it ended 0.15
# off the moment match after 1,000 steps; at 0.9 every start tried converged.
ADAM_B2 = 0.9
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def grid(lo: float, hi: float, n: int) -> tuple[jax.Array, jax.Array]:
  """A uniform grid on [lo, hi] and its quadrature weight.

  Args:
    lo: left end (included).
    hi: right end (included), > lo.
    n: number of points (static), ≥ 2.

  Returns:
    (x [n] float32, dx scalar float32) with x_i = lo + i dx, dx = (hi − lo) / (n − 1).
  """
  if n < 2 or not hi > lo:
    raise ValueError(f'grid needs n >= 2 and hi > lo; got lo={lo}, hi={hi}, n={n}.')
  x = jnp.linspace(lo, hi, n, dtype=jnp.float32)
  return x, jnp.asarray((hi - lo) / (n - 1), jnp.float32)


def normal_logpdf(
    x: jax.typing.ArrayLike, mu: jax.typing.ArrayLike, sigma: jax.typing.ArrayLike
) -> jax.Array:
  """log N(x; μ, σ²), broadcasting.

  Args:
    x: points, any shape.
    mu: means, broadcastable against `x`.
    sigma: standard deviations (> 0), broadcastable against `x`.

  Returns:
    Log-densities, shape `broadcast(x, mu, sigma)`.
  """
  z = (jnp.asarray(x) - mu) / sigma
  return -0.5 * z * z - jnp.log(sigma) - _HALF_LOG_2PI


def _check_mixture(weights, mus, sigmas):
  """Raises ValueError at trace time unless the three parameter arrays are [K]."""
  shapes = tuple(jnp.shape(a) for a in (weights, mus, sigmas))
  if len(shapes[0]) != 1 or len(set(shapes)) != 1:
    raise ValueError(
        'weights, mus and sigmas must all have shape [K]; got '
        f'weights.shape={shapes[0]}, mus.shape={shapes[1]}, sigmas.shape={shapes[2]}.'
    )


def mixture_logpdf(
    x: jax.typing.ArrayLike,
    weights: jax.typing.ArrayLike,
    mus: jax.typing.ArrayLike,
    sigmas: jax.typing.ArrayLike,
) -> jax.Array:
  """log Σ_k w_k N(x; μ_k, σ_k²), in log-space (logsumexp over components).

  Args:
    x: points, shape `[...]`.
    weights: mixture weights w, shape `[K]`, non-negative, summing to 1.
    mus: component means, shape `[K]`.
    sigmas: component standard deviations (> 0), shape `[K]`.

  Returns:
    Log-densities, shape `[...]`.

  Raises:
    ValueError: if the parameter shapes are not all `[K]`.
  """
  _check_mixture(weights, mus, sigmas)
  weights, mus, sigmas = (jnp.asarray(a, jnp.float32) for a in (weights, mus, sigmas))
  log_w = jnp.log(weights)
  per_component = normal_logpdf(jnp.asarray(x)[..., None], mus, sigmas)
  return jax.nn.logsumexp(log_w + per_component, axis=-1)


def moment_match(
    weights: jax.typing.ArrayLike, mus: jax.typing.ArrayLike, sigmas: jax.typing.ArrayLike
) -> tuple[jax.Array, jax.Array]:
  """Mean and standard deviation of a Gaussian mixture (closed form).

  The Gaussian with these moments is the minimiser of KL[P‖Q] over Gaussians Q (the
  M-projection onto an exponential family matches its sufficient statistics x, x²).

  Args:
    weights: mixture weights, shape `[K]` (normalised here).
    mus: component means, shape `[K]`.
    sigmas: component standard deviations, shape `[K]`.

  Returns:
    (mean, std), two scalars.
  """
  _check_mixture(weights, mus, sigmas)
  weights, mus, sigmas = (jnp.asarray(a, jnp.float32) for a in (weights, mus, sigmas))
  weights = weights / jnp.sum(weights)
  mean = jnp.sum(weights * mus)
  # Σ w (σ² + (μ − mean)²) rather than E[x²] − mean²: no cancellation.
  var = jnp.sum(weights * (sigmas**2 + (mus - mean) ** 2))
  return mean, jnp.sqrt(var)


def log_masses(log_density: jax.typing.ArrayLike, dx: jax.typing.ArrayLike) -> jax.Array:
  """Normalised grid log-masses log(p(x_i) dx_i) − log Σ_j p(x_j) dx_j.

  A constant dx cancels; it is an argument so that a non-uniform grid (weights [n]) works.

  Args:
    log_density: log p on the grid (log-space), shape `[..., n]`.
    dx: quadrature weight, a scalar or shape `[n]`.

  Returns:
    Log-probabilities summing to 1 over the last axis, shape `[..., n]`.
  """
  log_mass = jnp.asarray(log_density) + jnp.log(dx)
  return log_mass - jax.nn.logsumexp(log_mass, axis=-1, keepdims=True)


def kl(
    log_p: jax.typing.ArrayLike, log_q: jax.typing.ArrayLike, dx: jax.typing.ArrayLike
) -> jax.Array:
  """KL[P‖Q] = ∫ p log(p / q) by quadrature on a grid.

  Args:
    log_p: log-density of P on the grid (log-space), shape `[..., n]`.
    log_q: log-density of Q on the same grid, shape `[..., n]`.
    dx: quadrature weight, a scalar or shape `[n]`.

  Returns:
    KL[P‖Q] in nats, shape `[...]`.
  """
  return categorical.kl(log_masses(log_p, dx), log_masses(log_q, dx))


def js_pi_scaled(
    log_p: jax.typing.ArrayLike,
    log_q: jax.typing.ArrayLike,
    dx: jax.typing.ArrayLike,
    pi: jax.typing.ArrayLike,
) -> jax.Array:
  """JS_π(P, Q) / (π (1−π)) by quadrature, JS_π = π KL[P‖M] + (1−π) KL[Q‖M], M = πP + (1−π)Q.

  Exact limits at the end points: KL[P‖Q] at π = 0 and KL[Q‖P] at π = 1.

  Args:
    log_p: log-density of P on the grid (log-space), shape `[..., n]`.
    log_q: log-density of Q on the same grid, shape `[..., n]`.
    dx: quadrature weight, a scalar or shape `[n]`.
    pi: weight of P in [0, 1], scalar or broadcastable against `[...]` (may be traced).

  Returns:
    The scaled divergence in nats, shape `broadcast([...], pi.shape)`.
  """
  return categorical.js_pi_scaled(log_masses(log_p, dx), log_masses(log_q, dx), pi)


def divergence(
    log_p: jax.typing.ArrayLike,
    log_q: jax.typing.ArrayLike,
    dx: jax.typing.ArrayLike,
    objective: str,
    pi: jax.typing.ArrayLike = 0.5,
) -> jax.Array:
  """The divergence between P and Q on a grid that `objective` names.

  'kl_pq' = KL[P‖Q], 'kl_qp' = KL[Q‖P], 'js_pi' = JS_π(P, Q)/(π(1−π)) (π used only there).

  Args:
    log_p: log-density of P on the grid (log-space), shape `[..., n]`.
    log_q: log-density of Q on the same grid, shape `[..., n]`.
    dx: quadrature weight, a scalar or shape `[n]`.
    objective: one of `OBJECTIVES` (static).
    pi: weight of P for 'js_pi'.

  Returns:
    Shape `[...]` (broadcast with `pi` for 'js_pi').
  """
  if objective == 'kl_pq':
    return kl(log_p, log_q, dx)
  if objective == 'kl_qp':
    return kl(log_q, log_p, dx)
  if objective == 'js_pi':
    return js_pi_scaled(log_p, log_q, dx, pi)
  raise ValueError(f'objective must be one of {OBJECTIVES}; got {objective!r}.')


def mixture_inits(
    weights: jax.typing.ArrayLike, mus: jax.typing.ArrayLike, sigmas: jax.typing.ArrayLike
) -> jax.Array:
  """Starting points for `fit_gaussian`: the moment match of P, then each component.

  Args:
    weights: mixture weights, shape `[K]`.
    mus: component means, shape `[K]`.
    sigmas: component standard deviations, shape `[K]`.

  Returns:
    (μ, σ) rows, shape `[K + 1, 2]`: row 0 the moment match, row k the component k − 1.
  """
  mean, std = moment_match(weights, mus, sigmas)
  first = jnp.stack([mean, std])[None]
  rest = jnp.stack([jnp.asarray(mus, jnp.float32), jnp.asarray(sigmas, jnp.float32)], -1)
  return jnp.concatenate([first, rest], 0)


class Fit(NamedTuple):
  """A fitted Gaussian: mean, standard deviation, final objective value (scalars)."""
  mu: jax.Array
  sigma: jax.Array
  objective: jax.Array


def fit_gaussian_starts(
    log_p_grid: jax.typing.ArrayLike,
    x: jax.typing.ArrayLike,
    objective: str,
    pi: jax.typing.ArrayLike = 0.5,
    *,
    steps: int,
    learning_rate: float,
    init: jax.typing.ArrayLike,
    dx: jax.typing.ArrayLike = 1.0,
) -> Fit:
  """Fits Q = N(μ, σ²) to P on a grid from each start: the local minimum each basin holds.

  Adam over (μ, log σ) minimising `divergence(P, Q, objective)` from every row of `init` (all
  at once, vmapped), its learning rate cosine-decayed to 0 over `steps` so that the last
  iterates settle (with a constant rate Adam keeps moving by ~rate near the optimum), its
  second-moment decay `ADAM_B2` (0.9, not 0.999: see there). Pure and jit-able with
  `objective`, `steps`, `learning_rate` static; `pi` and `init` may be traced (vmap over π
  for a π grid: one compile).

  Args:
    log_p_grid: log-density of P on the grid (log-space), shape `[n]`.
    x: the grid, shape `[n]`; must hold nearly all of P's and the fitted Q's mass.
    objective: 'kl_pq' (KL[P‖Q], mode covering), 'kl_qp' (KL[Q‖P], mode seeking) or
      'js_pi' (JS_π(P, Q) / (π(1−π)), between the two; KL[P‖Q] exactly at π = 0 and
      KL[Q‖P] at π = 1); static.
    pi: weight of P in [0, 1] for 'js_pi' (ignored otherwise), a scalar (may be traced).
    steps: Adam steps (static).
    learning_rate: Adam's initial learning rate (in units of x for μ, of log σ for σ).
    init: starting (μ, σ), shape `[M, 2]` (e.g. `mixture_inits`) or `[2]` (M = 1).
    dx: quadrature weight, a scalar (cancels) or shape `[n]`.

  Returns:
    Fit(mu [M], sigma [M], objective [M]): the end point of each start and the divergence
    there.
  """
  if objective not in OBJECTIVES:
    raise ValueError(f'objective must be one of {OBJECTIVES}; got {objective!r}.')
  log_p_grid, x = jnp.asarray(log_p_grid, jnp.float32), jnp.asarray(x, jnp.float32)
  if log_p_grid.shape != x.shape or log_p_grid.ndim != 1:
    raise ValueError('log_p_grid and x must both have shape [n]; got '
                     f'log_p_grid.shape={log_p_grid.shape} and x.shape={x.shape}.')
  init = jnp.reshape(jnp.asarray(init, jnp.float32), (-1, 2))
  pi = jnp.asarray(pi, jnp.float32)

  def loss(params):
    log_q = normal_logpdf(x, params[0], jnp.exp(params[1]))
    return divergence(log_p_grid, log_q, dx, objective, pi)

  optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps), b2=ADAM_B2)

  def run(start):
    params = jnp.stack([start[0], jnp.log(start[1])])

    def step(carry, _):
      params, opt_state = carry
      updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), None, steps)
    return Fit(params[0], jnp.exp(params[1]), loss(params))

  return jax.vmap(run)(init)


def best_fit(fits: Fit) -> Fit:
  """The fit with the lowest objective along the leading axis (a NaN one is never chosen).

  Args:
    fits: Fit with fields of shape `[M]`.

  Returns:
    Fit with scalar fields.
  """
  best = jnp.argmin(jnp.where(jnp.isnan(fits.objective), jnp.inf, fits.objective))
  return jax.tree.map(lambda a: a[best], fits)


def fit_gaussian(
    log_p_grid: jax.typing.ArrayLike,
    x: jax.typing.ArrayLike,
    objective: str,
    pi: jax.typing.ArrayLike = 0.5,
    *,
    steps: int,
    learning_rate: float,
    init: jax.typing.ArrayLike,
    dx: jax.typing.ArrayLike = 1.0,
) -> Fit:
  """Q = N(μ, σ²) minimising `divergence(P, Q, objective)`: the best of several starts.

  `fit_gaussian_starts` from every row of `init`, then the lowest final objective
  (`best_fit`). KL[P‖Q] has a single stationary point in (μ, log σ), the moment match of P,
  reached from any start. KL[Q‖P], and JS_π unless π is near 0, have a local minimum per
  mode (plus possibly a covering one), and a start ends in the basin it starts in (from
  the moment match of a symmetric mixture it cannot even leave: ∂/∂μ = 0 there by
  symmetry), so the result depends on the starts. We take the best of several: with
  `mixture_inits` (the moment match and every component) the modes and the covering
  solution each get a start, and the result is the global minimum whenever one of the
  starts lies in its basin. Arguments as `fit_gaussian_starts`; pure and jit-able, `pi` may
  be traced.

  Returns:
    Fit(mu, sigma, objective), scalars; `objective` is the divergence at (mu, sigma).
  """
  return best_fit(fit_gaussian_starts(log_p_grid, x, objective, pi, steps=steps,
                                      learning_rate=learning_rate, init=init, dx=dx))
