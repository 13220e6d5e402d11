"""What the command-line programs share around the engine: one way out of bad input, the
invocation's compilation cache and a quiet backend probe. Defines no flags."""

import contextlib
import logging
import os
import shutil
import sys
import tempfile

import jax


@contextlib.contextmanager
def exits_on_bad_input():
  """The command lines' one way out of bad input: a ValueError (a bad flag, a foreign output
  directory) or an OSError (a failed write: disk full, ...) prints one line `error: ...` to
  stderr and exits 2. The files written before a failed write are whole: rerunning the same
  command resumes from them."""
  try:
    yield
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except OSError as e:
    print(f'error: {e}; fix the cause and rerun the same command: it resumes from the '
          'files written so far', file=sys.stderr)
    sys.exit(2)



@contextlib.contextmanager
def invocation_compilation_cache():
  """A JAX persistent compilation cache in a fresh temporary directory for one invocation.

  The runner builds each scheme's (and each variant's) jitted init, evaluation and step anew,
  and XLA compiles them again even when their HLO is identical: variants of one scheme that
  differ only in traced values, schemes with the same state (MLE and scheduled sampling). A
  cache hit loads the executable compiled from the same HLO and options, so results are
  unchanged. The directory is removed on the way out; nothing outlives the invocation, so a
  run never depends on the machine's history. A user's own cache (JAX_COMPILATION_CACHE_DIR,
  or jax_compilation_cache_dir already set) is left alone and used instead. Enter it before
  the first compilation. Yields the directory, or None when the user's cache is used.
  """
  if os.environ.get('JAX_COMPILATION_CACHE_DIR') or jax.config.jax_compilation_cache_dir:
    yield None
    return
  min_time = jax.config.jax_persistent_cache_min_compile_time_secs
  path = tempfile.mkdtemp(prefix='divbench-jax-cache-')
  jax.config.update('jax_compilation_cache_dir', path)
  # Every compile, not only those over the default 1 s: the evaluations on `small` are shorter.
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  try:
    yield path
  finally:
    jax.config.update('jax_compilation_cache_dir', None)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', min_time)
    shutil.rmtree(path, ignore_errors=True)



def quiet_backend_probe() -> None:
  """Hides JAX's INFO line about backends it could not load ('Unable to initialize backend
  tpu'): on a CPU or GPU machine it is noise. Warnings and errors still show."""
  logging.getLogger('jax._src.xla_bridge').setLevel(logging.WARNING)

