"""Shared by the scheme tests: a tiny `smoke` config and one end-to-end training run."""

import tempfile

import objectives
from benchmarks import configs
from benchmarks import results
from benchmarks import train
from models import oracle as oracle_lib


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
  store = results.Store(out)
  train.train_scheme(name, scheme, problem, config, store, output_dir=out, config_hash='x',
                     log=lambda s: None)
  last = max(r['step'] for r in store.rows)
  return scheme, [r for r in store.rows if r['step'] == last]
