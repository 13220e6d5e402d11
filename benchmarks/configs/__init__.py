"""Presets: each module's `get_config()` returns a ConfigDict with base.py's fields."""

import importlib

PRESETS = ('smoke', 'small', 'enumerable', 'seqgan')
DEFAULT = 'small'


def get_preset(name: str):
  """The preset's ConfigDict; ValueError naming --preset when unknown."""
  if name not in PRESETS:
    raise ValueError(f'--preset: unknown preset {name!r}; known: {", ".join(PRESETS)}')
  return importlib.import_module(f'benchmarks.configs.{name}').get_config()


def describe(name: str) -> str:
  """The first line of the preset module's docstring (for --help)."""
  doc = importlib.import_module(f'benchmarks.configs.{name}').__doc__ or ''
  return doc.strip().splitlines()[0] if doc.strip() else name
