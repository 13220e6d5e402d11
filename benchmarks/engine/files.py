"""Atomic file writes: a file is replaced whole or not at all, even when the process is
killed at any moment or the disk fills up. The engine, the analysis and the measurements all
write through `atomic_write`; this module imports nothing of the project.
"""

import collections
import os
import signal
import tempfile


TEMP_PREFIX = '.tmp-'  # atomic_write's temporary files (a killed run's: remove_temps)



# Testing only (tests/test_kill.py): DIVBENCH_KILL_AT=STAGE@NAME:N makes the process SIGKILL
# itself the Nth time atomic_write reaches STAGE for a file named NAME, e.g.
# 'mid_write@mle.msgpack:1'. STAGEs: before_write (empty temporary file), mid_write (half
# the bytes written and synced), before_replace (temporary file complete), after_replace.
KILL_AT = os.environ.get('DIVBENCH_KILL_AT')



_reached = collections.Counter()



def _kill_point(stage: str, path: str, before=lambda: None) -> None:
  """Testing only: SIGKILL here when DIVBENCH_KILL_AT names this point (see KILL_AT)."""
  point = f'{stage}@{os.path.basename(path)}'
  _reached[point] += 1
  if KILL_AT == f'{point}:{_reached[point]}':
    before()
    os.kill(os.getpid(), signal.SIGKILL)



class WriteError(OSError):
  """A file could not be written (disk full, ...); its previous version is intact. str()
  names the file; errno is the failed call's."""



def _write_error(path: str, e: OSError, previous: bool = True) -> WriteError:
  error = WriteError(f'{path}: could not be written ({e.strerror or e})' +
                     ('; its previous version, if any, is intact' if previous else ''))
  error.errno = e.errno
  return error



def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


# What open() would give a new file: 0666 less the process's umask (read once, at import:
# os.umask can only be read by setting it).
_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: str, data: bytes | str) -> None:
  """Writes data to path via a synced temporary file and os.replace.

  Readers, and a rerun after the process is killed at any moment, see the previous or the new
  file whole, never a part. A failed write (disk full, ...) removes the temporary file and
  raises WriteError naming path; the previous file is untouched. The file gets the mode
  open() would give it (0666 less the umask), not the temporary file's 0600.
  """
  directory = os.path.dirname(os.path.abspath(path))
  mode = 'wb' if isinstance(data, bytes) else 'w'
  try:
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX + os.path.basename(path))
  except OSError as e:
    raise _write_error(path, e) from e
  try:
    os.fchmod(fd, _FILE_MODE)  # mkstemp's 0600 would hide results from everyone else
    with os.fdopen(fd, mode) as f:
      if KILL_AT:
        _kill_point('before_write', path)
        _kill_point('mid_write', path, lambda: (f.write(data[:len(data) // 2]), f.flush(),
                                                os.fsync(f.fileno())))
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    if KILL_AT:
      _kill_point('before_replace', path)
    os.replace(tmp, path)
  except BaseException as e:
    try:
      os.remove(tmp)
    except OSError:
      pass
    if isinstance(e, OSError):
      raise _write_error(path, e) from e
    raise
  if KILL_AT:
    _kill_point('after_replace', path)
  _sync_directory(directory)



def _sync_directory(directory: str) -> None:
  """fsync of a directory, so a rename in it survives a power cut (POSIX; best effort)."""
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:  # e.g. Windows: directories cannot be opened
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)



def remove_temps(output_dir: str) -> None:
  """Removes the temporary files of atomic_write left under output_dir by a killed run."""
  for directory, _, names in os.walk(output_dir):
    for name in names:
      if name.startswith(TEMP_PREFIX):
        try:
          os.remove(os.path.join(directory, name))
        except FileNotFoundError:
          pass

