"""Training schemes: each module has pure losses and `make(config, problem) -> Scheme`."""

from objectives import mle
from objectives.base import GeneratorState, Scheme

# name -> module with `make(config, problem) -> Scheme`. The runner's --schemes reads this.
REGISTRY = {
    'mle': mle,
}


def make(name: str, config, problem) -> Scheme:
  """Builds the scheme registered under `name`."""
  if name not in REGISTRY:
    raise ValueError(f'unknown scheme {name!r}; known: {", ".join(sorted(REGISTRY))}')
  return REGISTRY[name].make(config, problem)
