"""Training schemes: each module has pure losses, `check_config(config)` and
`make(config, problem) -> Scheme`."""

from objectives import cot
from objectives import direct
from objectives import distill
from objectives import gan_pi
from objectives import gumbel_gan
from objectives import mle
from objectives import professor_forcing
from objectives import scheduled_sampling
from objectives import seqgan
from objectives.base import GeneratorState, Scheme

# name -> module with `make(config, problem) -> Scheme` and `check_config(config)`. The
# runner's --schemes reads this.
REGISTRY = {
    'cot': cot,
    'direct': direct,
    'distill': distill,
    'gan_pi': gan_pi,
    'gumbel_gan': gumbel_gan,
    'mle': mle,
    'professor_forcing': professor_forcing,
    'scheduled_sampling': scheduled_sampling,
    'seqgan': seqgan,
}


def check_config(name: str, config) -> None:
  """Raises ValueError naming the first invalid --config.* field of scheme `name`; no compute.

  The runner calls this for every selected scheme before it touches the output directory.
  """
  if name not in REGISTRY:
    raise ValueError(f'unknown scheme {name!r}; known: {", ".join(sorted(REGISTRY))}')
  REGISTRY[name].check_config(config)


def make(name: str, config, problem) -> Scheme:
  """Builds the scheme registered under `name`."""
  if name not in REGISTRY:
    raise ValueError(f'unknown scheme {name!r}; known: {", ".join(sorted(REGISTRY))}')
  return REGISTRY[name].make(config, problem)
