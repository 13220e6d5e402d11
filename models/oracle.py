"""The oracle P: a fixed LSTM whose samples are the training data and whose density is known."""

import collections
import json
import math
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from models.lstm import LSTMLM
from models.ngram import AutomatonLM
from models.ngram import NGramLM

SEQGAN_ORACLE_FILE = os.path.join(os.path.dirname(__file__), 'data', 'seqgan_oracle.npz')
SEQGAN_SIZES = dict(vocab_size=5000, embed_dim=32, hidden_dim=32, seq_len=20)


class Problem(NamedTuple):
  """Everything a scheme and the evaluator share across seeds.

  Attributes:
    model: the oracle's module (an LSTMLM; an NGramLM or AutomatonLM: sources 'ngram',
      'automaton').
    params: the oracle's variables ({'params': ...}).
    train: int32 [N, T] oracle samples, the training data.
    test: int32 [M, T] held-out oracle samples.
    test_logp: [M] log P of each test sequence (computed once).
    valid: int32 [K, T] held-out oracle samples for model selection, apart from the test set
      (config.problem.num_valid; None when 0).
  """
  model: Any  # LSTMLM | NGramLM | AutomatonLM
  params: Any
  train: jax.Array
  test: jax.Array
  test_logp: jax.Array
  valid: Any = None


def random_oracle(key: jax.Array, *, vocab_size: int, seq_len: int, embed_dim: int,
                  hidden_dim: int, init_scale: float = 1.0):
  """An N(0, init_scale²) LSTM oracle as in SeqGAN: returns (model, variables)."""
  model = LSTMLM(vocab_size=vocab_size, embed_dim=embed_dim, hidden_dim=hidden_dim,
                 seq_len=seq_len, init_scale=init_scale)
  params = model.init(key, jnp.zeros((1, seq_len), jnp.int32))
  return model, params


def seqgan_oracle(path: str = SEQGAN_ORACLE_FILE):
  """The SeqGAN oracle (V=5000, T=20, E=H=32) from its parameter file: (model, variables)."""
  with np.load(path) as f:
    params = {k: jnp.asarray(f[k]) for k in f.files}
  model = LSTMLM(**SEQGAN_SIZES, init_scale=1.0)
  return model, {'params': params}


SOURCES = ('random', 'seqgan', 'ngram', 'automaton')
NGRAM_MAX_ENTRIES = 2 * 10**7  # (V+1)^k · V table entries: 80 MB of float32


def ngram_oracle(key: jax.Array, *, vocab_size: int, seq_len: int, order: int,
                 concentration: float):
  """A random order-k n-gram oracle (models/ngram.py): returns (model, variables)."""
  model = NGramLM(vocab_size=vocab_size, seq_len=seq_len, order=order,
                  concentration=concentration)
  return model, model.init(key, jnp.zeros((1, seq_len), jnp.int32))


def automaton_oracle(key: jax.Array, *, vocab_size: int, seq_len: int, num_states: int,
                     concentration: float, out_degree: int = 0):
  """A random probabilistic deterministic finite automaton oracle (models/ngram.py), each
  state with at most `out_degree` successors (0: any state): returns (model, variables)."""
  model = AutomatonLM(vocab_size=vocab_size, seq_len=seq_len, num_states=num_states,
                      concentration=concentration, out_degree=out_degree)
  return model, model.init(key, jnp.zeros((1, seq_len), jnp.int32))


def check_config(cfg) -> None:
  """ValueError naming --config.problem.<field> when the oracle cannot be built: an unknown
  source, sizes other than SeqGAN's for its oracle, an n-gram order or concentration out of
  range or a table too large; no compute."""
  if cfg.source == 'seqgan':
    for field, value in SEQGAN_SIZES.items():
      if cfg[field] != value:
        raise ValueError(f'--config.problem.{field}: the SeqGAN oracle has {field}={value}, '
                         f'got {cfg[field]}')
  elif cfg.source in ('ngram', 'automaton'):
    alpha = cfg.state_concentration
    if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool)
            and math.isfinite(alpha) and alpha > 0):
      raise ValueError(f'--config.problem.state_concentration: must be a number > 0, got '
                       f'{alpha!r}')
    field = 'ngram_order' if cfg.source == 'ngram' else 'automaton_states'
    size = cfg[field]
    if not (isinstance(size, int) and not isinstance(size, bool) and size >= 1):
      raise ValueError(f'--config.problem.{field}: must be an integer ≥ 1, got {size!r}')
    degree = cfg.get('automaton_out_degree', 0)
    if cfg.source == 'automaton' and not (isinstance(degree, int) and not isinstance(degree, bool)
                                          and 0 <= degree <= size):
      raise ValueError(f'--config.problem.automaton_out_degree: must be an integer in 0..'
                       f'--config.problem.automaton_states ({size}), got {degree!r}')
    entries = ((cfg.vocab_size + 1) ** size if cfg.source == 'ngram' else size) * cfg.vocab_size
    if entries > NGRAM_MAX_ENTRIES:
      raise ValueError(f'--config.problem.{field}: {field} = {size} over V = '
                       f'{cfg.vocab_size} makes a table of {entries:,} entries, more than '
                       f'{NGRAM_MAX_ENTRIES:,}; lower it or the vocabulary')
  elif cfg.source not in SOURCES:
    raise ValueError(f'--config.problem.source: {cfg.source!r} is not one of '
                     f'{", ".join(SOURCES)}')


VALID_SALT = 3  # the validation set's key: fold_in(PRNGKey(problem.seed), VALID_SALT)


KEPT_PROBLEMS = 4  # make_problem keeps the last problems it built (a few MB each at most)
_problems = collections.OrderedDict()  # {config JSON: Problem}, most recently used last


def make_problem(cfg) -> Problem:
  """The Problem of `config.problem` (build_problem), built once per configuration: a call
  with an equal configuration returns the same Problem, so the runs of an experiment on one
  problem draw its oracle and data once (and share the evaluation programs built for it,
  benchmarks/engine/train.py). The last KEPT_PROBLEMS are kept. A Problem is immutable, and
  a pure function of its configuration."""
  key = json.dumps(cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg), sort_keys=True)
  if key in _problems:
    _problems.move_to_end(key)
    return _problems[key]
  problem = build_problem(cfg)
  _problems[key] = problem
  while len(_problems) > KEPT_PROBLEMS:
    _problems.popitem(last=False)
  return problem


def build_problem(cfg) -> Problem:
  """Builds the oracle, the train set, the test set and the validation set from
  `config.problem` (make_problem keeps what it builds).

  Args:
    cfg: a ConfigDict with fields source (SOURCES), vocab_size, seq_len,
      embed_dim, hidden_dim, init_scale (the LSTM oracles), ngram_order / automaton_states
      and state_concentration (the finite-state oracles), seed, num_train, num_test,
      num_valid (0: none).
  """
  key = jax.random.PRNGKey(cfg.seed)
  k_init, k_train, k_test = jax.random.split(key, 3)
  if cfg.source == 'seqgan':
    model, params = seqgan_oracle()
  elif cfg.source == 'random':
    model, params = random_oracle(k_init, vocab_size=cfg.vocab_size, seq_len=cfg.seq_len,
                                  embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim,
                                  init_scale=cfg.init_scale)
  elif cfg.source == 'ngram':
    model, params = ngram_oracle(k_init, vocab_size=cfg.vocab_size, seq_len=cfg.seq_len,
                                 order=cfg.ngram_order, concentration=cfg.state_concentration)
  elif cfg.source == 'automaton':
    model, params = automaton_oracle(k_init, vocab_size=cfg.vocab_size, seq_len=cfg.seq_len,
                                     num_states=cfg.automaton_states,
                                     concentration=cfg.state_concentration,
                                     out_degree=cfg.get('automaton_out_degree', 0))
  else:
    raise ValueError(f'config.problem.source: unknown oracle source {cfg.source!r}')

  @jax.jit
  def draw(k_tr, k_te):
    train = model.apply(params, k_tr, cfg.num_train, method='sample')
    test = model.apply(params, k_te, cfg.num_test, method='sample')
    return train, test, model.apply(params, test, method='log_prob')

  train, test, test_logp = draw(k_train, k_test)
  valid = None
  num_valid = cfg.get('num_valid', 0)
  if num_valid:  # its own key: the train and test sets are those drawn without it
    valid = jax.jit(lambda k: model.apply(params, k, num_valid, method='sample'))(
        jax.random.fold_in(key, VALID_SALT))
  return Problem(model, params, train, test, test_logp, valid)
