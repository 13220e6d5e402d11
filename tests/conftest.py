"""One persistent XLA compilation cache for a test session.

Most of the suite's time is XLA compiling the same smoke-sized functions again in every test
process and CLI subprocess. The controller creates a fresh, empty cache directory per session
and exports it as JAX_COMPILATION_CACHE_DIR before jax is imported, so the xdist workers and
every subprocess they start (which inherit the environment) share it; it is removed at the
end. A session never reads a cache left by an earlier one, so a test run stays independent of
the machine's history. A cache hit returns the executable compiled from the same HLO and
options, so results are unchanged (the resume and reproducibility tests compare rows exactly).
Tests that need their own cache (tests/test_kill.py) set the variable in their subprocesses.
A user's own JAX_COMPILATION_CACHE_DIR is left alone.
"""

import os
import shutil
import tempfile


def pytest_configure(config):
  if 'JAX_COMPILATION_CACHE_DIR' in os.environ:  # a worker (inherited) or the user's own
    return
  path = tempfile.mkdtemp(prefix='divbench-test-jax-cache-')
  os.environ['JAX_COMPILATION_CACHE_DIR'] = path
  # Cache every compile, not only those over the default 1 s: most of ours are shorter.
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
  config._divbench_cache = path  # pylint: disable=protected-access


def pytest_unconfigure(config):
  path = getattr(config, '_divbench_cache', None)
  if path:
    shutil.rmtree(path, ignore_errors=True)
