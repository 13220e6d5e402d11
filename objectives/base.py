"""The interface every training scheme follows, and the pieces most schemes share."""

import functools
import math
from typing import Any, Callable, NamedTuple, Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import optax

from models import generator as generator_lib

PyTree = Any
# step(state, batch int32 [B, T], key, pi scalar) -> (state, {name: scalar})
StepFn = Callable[[PyTree, jax.Array, jax.Array, jax.Array], Tuple[PyTree, dict]]


class Scheme(NamedTuple):
  """A training scheme: pure functions the runner jits and maps over seeds (and π).

  Attributes:
    init: (key, generator_params=None) -> state, the scheme's whole training state for one
      seed. With generator_params (a warm start: config.train.warm_start_steps), the
      generator starts from exactly those variables with a fresh optimiser state; everything
      else (discriminator, mediator, ...) is drawn from key as usual.
    step: (state, batch [B, T], key, pi) -> (state, metrics); one update on one data batch.
      `pi` is a traced scalar; schemes with `uses_pi=False` ignore it.
    generator_params: state -> the generator's variables, for evaluation.
    generator: the generator module (an LSTMLM) those variables belong to.
    uses_pi: whether the scheme's objective depends on π (then the runner sweeps --pis).
    describe: None, or () -> one line about how the scheme's configuration plays out over
      this run, which the runner logs before training (e.g. scheduled sampling's ε schedule).
  """
  init: Callable[[jax.Array], PyTree]
  step: StepFn
  generator_params: Callable[[PyTree], PyTree]
  generator: Any
  uses_pi: bool = False
  describe: Optional[Callable[[], str]] = None


@flax.struct.dataclass
class GeneratorState:
  """Parameters and optimiser state of one network, plus the number of updates made."""
  params: PyTree
  opt_state: PyTree
  count: jax.Array


def generator_from_config(config):
  """The generator module for `config.problem` (V, T) and `config.generator` (its kind, widths,
  init and, for a transformer, depth, heads and positions)."""
  return generator_lib.from_config(config.problem, config.generator)


def optimizer_from_config(train_cfg) -> optax.GradientTransformation:
  """Adam with global-norm clipping (SeqGAN: lr 0.01, clip 5.0)."""
  return optax.chain(optax.clip_by_global_norm(train_cfg.grad_clip),
                     optax.adam(train_cfg.learning_rate))


def init_network(model, optimizer, key: jax.Array, params=None) -> GeneratorState:
  """A sequence model's variables (drawn with key, or the given `params`: a warm start)
  and a fresh optimiser state for them."""
  if params is None:
    params = model.init(key, jnp.zeros((1, model.seq_len), jnp.int32))
  return GeneratorState(params, optimizer.init(params), jnp.zeros((), jnp.int32))


def apply_gradients(optimizer, state: GeneratorState, grads) -> GeneratorState:
  """One optimiser update of `state` with `grads`."""
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  return GeneratorState(optax.apply_updates(state.params, updates), opt_state, state.count + 1)


# --- 'exact' estimators: a deterministic objective over every sequence (enumerable problems) ---

MAX_ENUMERATE = 10**6  # the exact estimators' limit on V^T (one [V^T] vector per level)
OPTIMIZERS = ('adam', 'lbfgs')


def compile_time_constant(fn: Callable[[], PyTree]) -> Callable[[], PyTree]:
  """() -> fn()'s value, computed once, concretely, at the first call (even inside a trace:
  under `jax.ensure_compile_time_eval`), then reused: e.g. the oracle's log-probabilities of
  every sequence, a constant of the exact estimators' step, built when the step is first
  traced rather than when the scheme is made."""
  @functools.cache
  def value():
    with jax.ensure_compile_time_eval():
      return jax.jit(fn)()
  return value


def exact_optimizer(section_cfg) -> optax.GradientTransformation:
  """Adam with clipping (`optimizer_from_config`), or optax's L-BFGS (its zoom line search,
  `lbfgs_memory` past updates) where section_cfg.optimizer == 'lbfgs' (deterministic exact
  objectives only)."""
  if section_cfg.optimizer == 'lbfgs':
    return optax.lbfgs(memory_size=section_cfg.lbfgs_memory)
  return optimizer_from_config(section_cfg)


def exact_step(optimizer, loss_fn: Callable, state: GeneratorState, *, lbfgs: bool,
               grad_tol: float) -> Tuple[GeneratorState, dict]:
  """One update on a deterministic objective `loss_fn(params) -> scalar`.

  Returns the new state and metrics {'loss', 'grad_norm' (the exact gradient's global norm),
  'converged' (1.0 where grad_norm ≤ grad_tol: the convergence rule)}.
  """
  if lbfgs:
    loss, grads = optax.value_and_grad_from_state(loss_fn)(state.params, state=state.opt_state)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params, value=loss,
                                          grad=grads, value_fn=loss_fn)
    new = GeneratorState(optax.apply_updates(state.params, updates), opt_state, state.count + 1)
  else:
    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    new = apply_gradients(optimizer, state, grads)
  norm = optax.tree.norm(grads)
  return new, {'loss': loss, 'grad_norm': norm,
               'converged': (norm <= grad_tol).astype(jnp.float32)}


# --- config checks (run by `check_config` of each scheme, before any compute) ------------------

def check_choice(section: str, field: str, value, known) -> None:
  """ValueError naming --config.<section>.<field> unless value is one of `known`."""
  if value not in known:
    raise ValueError(f'--config.{section}.{field}: unknown {value!r}; known: {", ".join(known)}')


def check_positive(section: str, field: str, value, *, integer: bool = False,
                   allow_zero: bool = False) -> None:
  """ValueError naming --config.<section>.<field> unless value > 0 (or >= 0), finite."""
  kinds = int if integer else (int, float)
  ok = (isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0))
  if not ok:
    what = ('an integer' if integer else 'a number') + (' >= 0' if allow_zero else ' > 0')
    raise ValueError(f'--config.{section}.{field}: must be {what}, got {value!r}')


def check_unit_interval(section: str, field: str, value) -> None:
  """ValueError naming --config.<section>.<field> unless value is a number in [0, 1]."""
  if not (isinstance(value, (int, float)) and not isinstance(value, bool)
          and 0 <= value <= 1):
    raise ValueError(f'--config.{section}.{field}: must be a number in [0, 1], got {value!r}')


def check_exact(section: str, config, *, hint: str) -> None:
  """ValueError naming --config.<section>.optimizer / .estimator / .grad_tol: L-BFGS needs the
  'exact' estimator, which needs V^T ≤ MAX_ENUMERATE (`hint`: what to use instead)."""
  sc = config[section]
  check_choice(section, 'optimizer', sc.optimizer, OPTIMIZERS)
  check_positive(section, 'grad_tol', sc.grad_tol)
  check_positive(section, 'lbfgs_memory', sc.lbfgs_memory, integer=True)
  if sc.optimizer == 'lbfgs' and sc.estimator != 'exact':
    raise ValueError(f"--config.{section}.optimizer: 'lbfgs' needs the deterministic "
                     f"estimator 'exact' (got --config.{section}.estimator={sc.estimator!r})")
  if sc.estimator == 'exact':
    v, t = config.problem.vocab_size, config.problem.seq_len
    if v ** t > MAX_ENUMERATE:
      raise ValueError(f"--config.{section}.estimator: 'exact' enumerates all V^T = {v}^{t} = "
                       f'{v ** t:,} sequences, more than {MAX_ENUMERATE:,}; {hint}, or an '
                       'enumerable problem (--preset=enumerable)')
