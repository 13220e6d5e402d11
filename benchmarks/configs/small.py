"""small (default): `python -m benchmarks.run` in a few minutes on a 2-core CPU."""

from benchmarks.configs import base


def get_config():
  c = base.get_config()
  c.preset = 'small'
  return c
