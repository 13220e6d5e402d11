"""Training schemes: each module has pure losses, `check_config(config)`,
`make(config, problem) -> Scheme` and `working_set_bytes(config)`.

A scheme is named either by its key in REGISTRY (the suite's own) or by the import path of a
module outside the repository that follows the same interface (`--schemes=my_lab.my_objective`,
docs/own_scheme.md): `module(name)` resolves both, and everything else goes through it.
"""

import importlib
import types

from objectives import bond
from objectives import cot
from objectives import direct
from objectives import distill
from objectives import gan_pi
from objectives import gumbel_gan
from objectives import kl_estimator
from objectives import mle
from objectives import professor_forcing
from objectives import scheduled_sampling
from objectives import seqgan
from objectives import tailr
from objectives.base import Scheme

# name -> module with `make(config, problem) -> Scheme` and `check_config(config)`. The
# runner's --schemes reads this.
REGISTRY = {
    'bond': bond,
    'cot': cot,
    'direct': direct,
    'distill': distill,
    'gan_pi': gan_pi,
    'gumbel_gan': gumbel_gan,
    'kl_estimator': kl_estimator,
    'mle': mle,
    'professor_forcing': professor_forcing,
    'scheduled_sampling': scheduled_sampling,
    'seqgan': seqgan,
    'tailr': tailr,
}

# What a scheme module must define (all callables), and what it may.
REQUIRED = ('check_config', 'make')
OPTIONAL = ('get_config', 'working_set_bytes')


def is_external(name: str) -> bool:
  """Whether `name` is an import path (a user's scheme) rather than a REGISTRY key."""
  return name not in REGISTRY and '.' in name


def section(name: str) -> str:
  """The config section of scheme `name`: its own name, or an import path's last part
  (`my_lab.my_objective` -> config.my_objective)."""
  return name.rsplit('.', 1)[-1]


def module(name: str) -> types.ModuleType:
  """The module of scheme `name`: REGISTRY's, or the importable module it names.

  Raises:
    ValueError: naming the scheme, when it is neither registered nor an importable module
      with the scheme interface (REQUIRED callables; OPTIONAL ones callable when present).
  """
  if name in REGISTRY:
    return REGISTRY[name]
  if not is_external(name):
    raise ValueError(f'unknown scheme {name!r}; known: {", ".join(sorted(REGISTRY))}, or '
                     'the import path of a module of your own (e.g. my_lab.my_objective)')
  try:
    mod = importlib.import_module(name)
  except Exception as e:  # noqa: BLE001  (anything a user's module raises on import)
    raise ValueError(f'{name!r} could not be imported ({type(e).__name__}: {e})') from None
  missing = [a for a in REQUIRED if not callable(getattr(mod, a, None))]
  missing += [a for a in OPTIONAL if hasattr(mod, a) and not callable(getattr(mod, a))]
  if missing:
    raise ValueError(f'{name!r} is not a scheme module: it lacks callable '
                     f'{", ".join(missing)} (the interface: docs/own_scheme.md)')
  return mod


def check_config(name: str, config) -> None:
  """Raises ValueError naming the first invalid --config.* field of scheme `name`; no compute.

  The runner calls this for every selected scheme before it touches the output directory.
  """
  module(name).check_config(config)


def make(name: str, config, problem) -> Scheme:
  """Builds scheme `name` (registered, or a module's import path)."""
  return module(name).make(config, problem)
