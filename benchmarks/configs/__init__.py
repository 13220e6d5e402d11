"""Presets: each module's `get_config()` returns a ConfigDict with base.py's fields; and the
config section a scheme module of the user's own brings (`add_scheme_sections`)."""

import importlib

import ml_collections

from benchmarks.configs import base
import objectives

PRESETS = ('smoke', 'small', 'enumerable', 'seqgan')
DEFAULT = 'small'
# The suite's own top-level config fields: a user's scheme section may not take their names.
_BUILT_IN_FIELDS = frozenset(base.get_config().keys())


def get_preset(name: str):
  """The preset's ConfigDict; ValueError naming --preset when unknown."""
  if name not in PRESETS:
    raise ValueError(f'--preset: unknown preset {name!r}; known: {", ".join(PRESETS)}')
  return importlib.import_module(f'benchmarks.configs.{name}').get_config()


def describe(name: str) -> str:
  """The first line of the preset module's docstring (for --help)."""
  doc = importlib.import_module(f'benchmarks.configs.{name}').__doc__ or ''
  return doc.strip().splitlines()[0] if doc.strip() else name





def add_scheme_sections(config, names) -> None:
  """Adds config.<section> = module.get_config() for each scheme of `names` given by import
  path (objectives.is_external) whose module has `get_config`, unless config already has that
  section (then its values stand). ValueError naming --schemes when the module cannot be
  imported, lacks the interface, or its section would be one of the suite's own fields."""
  for name in names:
    if name == 'all' or not objectives.is_external(name):
      continue
    try:
      module = objectives.module(name)
    except ValueError as e:
      raise ValueError(f'--schemes: {e}') from None
    section = objectives.section(name)
    if section in _BUILT_IN_FIELDS:
      raise ValueError(f'--schemes: {name}: its config section would be config.{section}, '
                       'one of the suite\'s own; rename the module')
    if not hasattr(module, 'get_config') or section in config:
      continue
    defaults = module.get_config()
    if not isinstance(defaults, ml_collections.ConfigDict):
      raise ValueError(f'--schemes: {name}: get_config() must return an '
                       f'ml_collections.ConfigDict, got {type(defaults).__name__}')
    with config.unlocked():
      config[section] = defaults

