"""Shared by the scheme tests: a tiny `smoke` config and one end-to-end training run."""

import contextlib
import logging
import os
import tempfile

from absl import flags
import jax

from benchmarks import configs
from benchmarks import run
from benchmarks.engine import rundir
from benchmarks.engine import runner
from benchmarks.engine import train
from models import oracle as oracle_lib
import objectives


def smoke_config():
  """The smoke preset cut to 2 chunks of 5 steps and small evaluations."""
  config = configs.get_preset('smoke')
  config.train.update(eval_every=5, num_steps=10)
  config.eval.update(num_samples=64, batch_size=32)
  return config


def final_rows(name, config):
  """Trains scheme `name` through train.train_scheme; returns (scheme, rows of the last step)."""
  problem = oracle_lib.make_problem(config.problem)
  scheme = objectives.make(name, config, problem)
  out = tempfile.mkdtemp()
  store = rundir.Store(out)
  train.train_scheme(name, scheme, problem, config, store, config_hash='x',
                     log=lambda s: None)
  last = max(r['step'] for r in store.rows)
  return scheme, [r for r in store.rows if r['step'] == last]


def traced_once_run(name, scheme, problem, config):
  """train_scheme with a runner whose chunk may trace only once, recording every chunk call.

  Returns (calls, rows): calls is a list of (chunk arguments, chunk outputs on the host).
  """
  import chex
  import jax
  from unittest import mock
  calls, original = [], train.make_runner

  def make_runner(*args, **kwargs):
    runner = original(*args, max_traces=1, **kwargs)

    def chunk(*a):
      out = runner.chunk(*a)
      calls.append((a, jax.device_get(out)))
      return out
    return runner._replace(chunk=chunk)

  chex.clear_trace_counter()
  out = tempfile.mkdtemp()
  store = rundir.Store(out)
  with mock.patch.object(train, 'make_runner', make_runner):
    train.train_scheme(name, scheme, problem, config, store, config_hash='x',
                       log=lambda s: None)
  return calls, store.rows


def enumerable_setup(scheme_name, vocab_size=3, seq_len=3):
  """(config, problem, generator, params): a V^T-enumerable problem (27 sequences by default)
  and `scheme_name`'s generator initialised N(0, 1), far from the oracle."""
  import jax
  config = configs.get_preset('smoke')
  config.problem.update(vocab_size=vocab_size, seq_len=seq_len, embed_dim=4, hidden_dim=4,
                        num_train=64, num_test=32)
  config.generator.update(embed_dim=4, hidden_dim=4, init_scale=1.0)
  problem = oracle_lib.make_problem(config.problem)
  scheme = objectives.make(scheme_name, config, problem)
  params = scheme.init(jax.random.PRNGKey(1)).params
  return config, problem, scheme.generator, params


def exact_step_metrics(scheme, problem, state, num_steps):
  """(grad_norm, loss, converged), each a numpy [num_steps], of `num_steps` jitted steps of a
  scheme with an exact estimator (no data, no key, no π: fixed placeholders) from `state`."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  @jax.jit
  def run(state):
    def body(s, _):
      s, m = scheme.step(s, problem.train[:4], jax.random.PRNGKey(0), jnp.float32(jnp.nan))
      return s, (m['grad_norm'], m['loss'], m['converged'])
    return jax.lax.scan(body, state, jnp.arange(num_steps))[1]
  return tuple(np.asarray(x) for x in run(state))


def run_command_in_process(argv):
  """What `python -m benchmarks.run ARGV` does, in this process: run.define_flags, parsing,
  run.config_from_flags, runner.execute (quietly). A bad input raises its ValueError (the
  command prints it as one line and exits 2)."""
  fv = flags.FlagValues()
  run.define_flags(argv, fv)
  fv(argv)
  config, output_dir = run.config_from_flags(fv)
  return runner.execute(config, output_dir, log=lambda s: None)


class _Compiles(logging.Handler):
  """Counts JAX's 'Compiling ...' log records (with jax.log_compiles on)."""

  def __init__(self):
    super().__init__(logging.DEBUG)
    self.count = 0

  def emit(self, record):
    self.count += record.getMessage().startswith('Compiling')


@contextlib.contextmanager
def counting_compiles():
  """Yields a counter whose .count is the number of XLA compilations in the block."""
  compiles = _Compiles()
  logging.getLogger('jax').addHandler(compiles)
  try:
    with jax.log_compiles(True):
      yield compiles
  finally:
    logging.getLogger('jax').removeHandler(compiles)


def files_under(directory):
  """{relative path: bytes} of every file under directory ({} when it does not exist)."""
  found = {}
  for parent, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(parent, name)
      with open(path, 'rb') as f:
        found[os.path.relpath(path, directory)] = f.read()
  return found


def refusal_env(extra=None) -> dict:
  """The environment of a run that must be refused: no cluster variables (--distributed must
  find no cluster), none of JAX's or divbench's own, every compilation logged
  (JAX_LOG_COMPILES: a compile adds a line to stderr), and extra."""
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(('SLURM_', 'OMPI_', 'JAX_', 'DIVBENCH_'))}
  return dict(env, JAX_LOG_COMPILES='1', **(extra or {}))


def with_xla_flag(env, flag: str) -> dict:
  """A copy of env with `flag` added to XLA_FLAGS (the session's own flags kept)."""
  return dict(env, XLA_FLAGS=f"{env.get('XLA_FLAGS', '')} {flag}".strip())


def users_compiler(env=None) -> dict:
  """A copy of env (default os.environ) compiling as users' runs do: without the session's
  -O0 and loop emitters (tests/conftest.py), for subprocesses whose rows are compared bit for
  bit with another program's (a seed's neighbours with and without a NaN injected)."""
  env = dict(os.environ if env is None else env)
  env.pop('JAX_DISABLE_MOST_OPTIMIZATIONS', None)
  flags = [f for f in env.get('XLA_FLAGS', '').split()
           if not f.startswith('--xla_cpu_use_fusion_emitters')]
  if flags:
    env['XLA_FLAGS'] = ' '.join(flags)
  else:
    env.pop('XLA_FLAGS', None)
  return env


@contextlib.contextmanager
def optimized():
  """JAX's default compiler optimisations inside (the session compiles at -O0: tests/conftest.py).

  For the few tests whose time is execution rather than compilation (200,000 draws, the
  V = 5,000 oracle); a context manager or a decorator. The compilation cache keys on the
  options, so a program compiled one way is never reused the other way.
  """
  import jax
  previous = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', False)
  try:
    yield
  finally:
    jax.config.update('jax_disable_most_optimizations', previous)
