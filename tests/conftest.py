"""One temporary root, one persistent XLA compilation cache and one compiler setting for a test
session.

Most of the suite's time is XLA compiling the same smoke-sized functions again in every test
process and CLI subprocess. The controller creates a fresh, empty cache directory per session
and exports it as JAX_COMPILATION_CACHE_DIR before jax is imported, so the xdist workers and
every subprocess they start (which inherit the environment) share it; it is removed at the
end. A session never reads a cache left by an earlier one, so a test run stays independent of
the machine's history. A cache hit returns the executable compiled from the same HLO and
options, so results are unchanged (the resume and reproducibility tests compare rows exactly).
Tests that need their own cache (tests/test_kill.py) set the variable in their subprocesses.
A user's own JAX_COMPILATION_CACHE_DIR is left alone. The session's temporary files
(tempfile.mkdtemp() of every test and subprocess, through TMPDIR) go under one root that is
removed at the end too, so a test run leaves nothing in the machine's /tmp.

The session also compiles with fewer optimisations: LLVM at -O0 without its expensive passes
(JAX's own `jax_disable_most_optimizations`, exported as JAX_DISABLE_MOST_OPTIMIZATIONS, so the
workers and subprocesses inherit it). Measured on the 2-core CPU (2026-12-02): XLA's compile
time for `benchmarks.run --preset=smoke --schemes=mle,gan_pi` (2 seeds, 10 steps) 40.3 s →
26.0 s. It changes how a program is compiled, not what it computes: tests that pin a value do
so with a tolerance, and the tests that compare two runs exactly (resume, chunking, a diverging
seed) compare runs compiled the same way. Users'
runs keep JAX's defaults. The few tests whose time is execution rather than compilation
(sampling at scale, the V = 5,000 oracle) turn the optimisations back on for themselves
(`_smoke.optimized`).

It also compiles with XLA:CPU's loop emitters (XLA_FLAGS=--xla_cpu_use_fusion_emitters=false):
measured the same way, XLA's compile time 26.0 s → 16.4 s on top of -O0. The two emitters may
fuse two different programs differently, so results can differ in the last bit between
programs that differ elsewhere (a run with and without a NaN injected into another seed). The
tests that check such a guarantee bit for bit (tests/test_faults.py, tests/test_kill.py) run
their subprocesses with users' compiler settings (`_smoke.users_compiler`).
"""

import collections
import os
import shutil
import tempfile

# XLA:CPU's loop emitters instead of its MLIR fusion emitters: they compile about a third
# faster. Tests that compare two different programs bit for bit run without it
# (_smoke.users_compiler).
LOOP_EMITTERS = '--xla_cpu_use_fusion_emitters=false'


def pytest_configure(config):
  if os.environ.get('PYTEST_XDIST_WORKER'):  # inherits the controller's environment
    return
  # One temporary root per session: every tempfile.mkdtemp() of the tests (workers and CLI
  # subprocesses inherit TMPDIR) lands under it, and it is removed at the end.
  root = tempfile.mkdtemp(prefix='divbench-tests-')
  os.environ['TMPDIR'] = root
  tempfile.tempdir = root
  config._divbench_tmp = root  # pylint: disable=protected-access
  os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')  # a user's own setting wins
  flags = os.environ.get('XLA_FLAGS', '')
  if 'xla_cpu_use_fusion_emitters' not in flags:  # a user's own setting wins
    os.environ['XLA_FLAGS'] = f'{flags} {LOOP_EMITTERS}'.strip()
  if 'JAX_COMPILATION_CACHE_DIR' in os.environ:  # the user's own cache
    return
  path = os.path.join(root, 'jax-cache')
  os.makedirs(path)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = path
  # Cache the compiles over 0.1 s, not only those over the default 1 s: most of ours are
  # shorter. Measured on the 2-core CPU (2026-12-07, the whole suite, summed test time):
  # threshold 0 (every compile) 730 s, 0.1 s 710 s, 1 s 805 s, no cache 893 s. Below 0.1 s a
  # cache read and write cost about what compiling again does.
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.1')


# The order the two workers take the test files in (setup.cfg's --no-loadscope-reorder keeps
# it): xdist's own order, the files with the most tests first, except that the two long
# single-test files start right after the first two. Each file runs on one worker (--dist
# loadfile), and a worker takes its next file when two of its tests are left, so in xdist's
# order test_kill and test_multihost (one test each, 40 s and 25-35 s) ran last, on one
# worker, while the other sat idle for 50-55 s at the end (two runs on the 2-core CPU,
# 2026-12-07); in this order the two workers ended 4 s apart. (Identical runs differ by up
# to 10% in total time on that machine.)
EARLY = ('test_kill.py', 'test_multihost.py')


def pytest_collection_modifyitems(config, items):
  del config
  counts = collections.Counter(item.path.name for item in items)
  files = sorted(counts, key=lambda name: -counts[name])  # stable: collection order on ties
  files = [f for f in files if f not in EARLY]
  files[2:2] = [f for f in EARLY if f in counts]
  rank = {name: i for i, name in enumerate(files)}
  items.sort(key=lambda item: rank[item.path.name])  # stable: files stay whole


def pytest_unconfigure(config):
  root = getattr(config, '_divbench_tmp', None)
  if root:
    shutil.rmtree(root, ignore_errors=True)
