"""Results on disk: atomic writes, the rows file, checkpoints, the saved config.

Layout of an output directory:
  config.json        the resolved config and its hash (a run resumes only into the same hash)
  results.jsonl      one JSON object per scheme x seed x π x evaluation step
  summary.md         mean ± 95% CI over seeds at the final step (benchmarks.report)
  plots/*.png        metrics against step (benchmarks.report)
  checkpoints/<scheme>.msgpack   stacked states of all runs after the last finished chunk
  .lock              {pid, host, boot, started} of the run writing it now (acquire_lock)
A damaged results.jsonl or checkpoint (Store, check_checkpoints, load_checkpoint) is a
ValueError naming the file, never rows or states silently dropped. Every file is replaced
whole (atomic_write): a run killed at any moment, or a write that fails (disk full), leaves
the previous version of each file; a rerun resumes from them.
"""

import collections
import datetime
import hashlib
import json
import math
import os
import signal
import socket
import tempfile
import time

import flax.serialization
import numpy as np


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


def atomic_write(path: str, data: bytes | str) -> None:
  """Writes data to path via a synced temporary file and os.replace.

  Readers, and a rerun after the process is killed at any moment, see the previous or the new
  file whole, never a part. A failed write (disk full, ...) removes the temporary file and
  raises WriteError naming path; the previous file is untouched.
  """
  directory = os.path.dirname(os.path.abspath(path))
  mode = 'wb' if isinstance(data, bytes) else 'w'
  try:
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX + os.path.basename(path))
  except OSError as e:
    raise _write_error(path, e) from e
  try:
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


def config_hash(config_dict: dict) -> str:
  """A short stable hash of a config (its sorted JSON)."""
  text = json.dumps(config_dict, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:12]


def _clean(value):
  """JSON-safe values: numpy scalars/arrays to Python, non-finite floats to None."""
  if isinstance(value, dict):
    return {k: _clean(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_clean(v) for v in value]
  if isinstance(value, np.ndarray):
    return _clean(value.tolist())
  if isinstance(value, (np.floating, float)):
    value = float(value)
    return value if math.isfinite(value) else None
  if isinstance(value, np.integer):
    return int(value)
  if isinstance(value, np.bool_):
    return bool(value)
  return value


class Unreadable(ValueError):
  """A damaged results.jsonl line or checkpoint: str() says what is wrong ('line 7 is not
  valid JSON', 'not a readable checkpoint'), `detail` the parser's own words. Each reader's
  caller names the file and what to do in its own terms."""

  def __init__(self, what: str, detail: str = ''):
    super().__init__(what)
    self.detail = detail


def _unreadable(path: str, what, output_dir: str) -> ValueError:
  """The error for a damaged file of an output directory: the file, what, what to do."""
  return ValueError(f'{path}: {what} (truncated write?); remove {output_dir} or choose '
                    'another --output_dir')


def read_rows(path: str) -> list:
  """The rows of a results.jsonl (blank lines skipped); Unreadable naming the first bad line."""
  with open(path, 'rb') as f:
    lines = f.read().split(b'\n')
  rows = []
  for n, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      row = json.loads(line)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
      raise Unreadable(f'line {n} is not valid JSON', str(e)) from None
    if not (isinstance(row, dict) and 'scheme' in row and 'step' in row):
      raise Unreadable(f'line {n} is not a results row', 'no scheme or step')
    rows.append(row)
  return rows


class Store:
  """The rows of results.jsonl kept in memory and rewritten atomically on each save."""

  def __init__(self, output_dir: str):
    self.output_dir = output_dir
    self.path = os.path.join(output_dir, 'results.jsonl')
    self.rows = []
    if os.path.exists(self.path):
      try:
        self.rows = read_rows(self.path)
      except Unreadable as e:
        raise _unreadable(self.path, e, output_dir) from None

  def truncate(self, scheme: str, last_step: int) -> None:
    """Drops the scheme's rows after last_step (they will be recomputed identically)."""
    self.rows = [r for r in self.rows if r['scheme'] != scheme or r['step'] <= last_step]

  def add(self, rows) -> None:
    self.rows.extend(_clean(r) for r in rows)

  def save(self) -> None:
    atomic_write(self.path, ''.join(json.dumps(r) + '\n' for r in self.rows))


def checkpoint_path(output_dir: str, scheme: str) -> str:
  return os.path.join(output_dir, 'checkpoints', f'{scheme}.msgpack')


def save_checkpoint(output_dir: str, scheme: str, step: int, states, diverged,
                    pending=None, seconds=None) -> None:
  """Saves the stacked states of all runs after `step` updates, atomically; with `pending`
  ({metric: [R, k]}), also the training metrics of the evaluation interval so far (a
  checkpoint between evaluations, config.train.checkpoint_every); with `seconds`, the
  wall-clock seconds of training these states cost over all invocations (the rows'
  train_seconds)."""
  blob = {'step': np.int64(step), 'states': states, 'diverged': np.asarray(diverged),
          'pending': {k: np.asarray(v) for k, v in (pending or {}).items()}}
  if seconds is not None:
    blob['seconds'] = np.float64(seconds)
  blob = flax.serialization.to_bytes(blob)
  atomic_write(checkpoint_path(output_dir, scheme), blob)


def read_checkpoint(path: str) -> dict:
  """A checkpoint's state dict {step, states, diverged} read without a template (no model
  needed); Unreadable when the file is truncated or not a checkpoint."""
  with open(path, 'rb') as f:
    blob = f.read()
  try:
    restored = flax.serialization.msgpack_restore(blob)
  except Exception as e:  # msgpack's errors for truncated or foreign bytes share no base class
    raise Unreadable('not a readable checkpoint', str(e)) from None
  if not (isinstance(restored, dict) and {'step', 'states', 'diverged'} <= set(restored)):
    raise Unreadable('not a readable checkpoint', 'no step, states or diverged')
  return restored


def _read_checkpoint(path: str, output_dir: str) -> dict:
  """read_checkpoint, its error naming the file and what to do with the output directory."""
  try:
    return read_checkpoint(path)
  except Unreadable as e:
    raise _unreadable(path, e, output_dir) from None


def check_checkpoints(output_dir: str) -> None:
  """Reads every checkpoint of output_dir: ValueError naming the first unreadable one."""
  directory = os.path.dirname(checkpoint_path(output_dir, 'x'))
  if os.path.isdir(directory):
    for name in sorted(os.listdir(directory)):
      if name.endswith('.msgpack'):
        _read_checkpoint(os.path.join(directory, name), output_dir)


def load_checkpoint(output_dir: str, scheme: str, states, diverged, *, pending=False):
  """(step, states, diverged) from the scheme's checkpoint, or None; templates give structure.
  With pending=True, (step, states, diverged, pending, seconds): the training metrics
  {metric: [R, k]} of the evaluation interval the checkpoint was written in ({} at an
  evaluation) and its `seconds` (None when written before they were saved).

  Raises ValueError naming the file when it is unreadable or does not fit the templates.
  """
  path = checkpoint_path(output_dir, scheme)
  if not os.path.exists(path):
    return None
  state_dict = _read_checkpoint(path, output_dir)
  target = {'step': np.int64(0), 'states': states, 'diverged': np.asarray(diverged)}
  try:
    restored = flax.serialization.from_state_dict(target, state_dict)
  except ValueError as e:  # flax: the keys differ (a checkpoint of other code or config)
    raise ValueError(f'{path}: does not fit the states of this run ({e}); remove '
                     f'{output_dir} or choose another --output_dir') from None
  out = int(restored['step']), restored['states'], np.array(restored['diverged'])
  if pending:
    metrics = state_dict.get('pending') or {}
    seconds = state_dict.get('seconds')
    out += ({k: np.asarray(v) for k, v in metrics.items()},
            None if seconds is None else float(seconds))
  return out


# Row fields that differ between two invocations of the same run (everything else of a
# resumed run's rows equals an uninterrupted run's): the invocation's clock and the seconds
# of training over all invocations.
PER_INVOCATION = ('wall_time', 'train_seconds')


def cumulative_seconds(rows) -> dict:
  """{step: seconds of training up to that step, over all invocations} of one scheme's
  curve rows: their train_seconds; for rows written before train_seconds existed, a sum of
  wall_time differences between consecutive rows, a row whose wall_time went down (a resumed
  invocation's clock restarted) counting its own. That sum is a lower bound: it misses what
  an invocation spent after its last evaluation when it was interrupted after a checkpoint,
  or before its first one when it ran longer than the one before.
  """
  by_step = sorted({r['step']: r for r in rows if r.get('phase') != 'alpha'
                    and ('train_seconds' in r or 'wall_time' in r)}.values(),
                   key=lambda r: r['step'])
  out, total, prev = {}, 0.0, None
  for cur in by_step:
    if 'train_seconds' in cur:
      total = cur['train_seconds']
    elif prev is not None:
      dt = cur['wall_time'] - prev.get('wall_time', 0.0)
      total += dt if dt >= 0 else cur['wall_time']
    out[cur['step']] = total
    prev = cur
  return out


# The lock of an output directory: DIR/.lock, created atomically (O_CREAT | O_EXCL) and
# holding {pid, host, boot, started} of the run writing DIR. A second run into DIR is refused.
LOCK = '.lock'
STALE_UNREADABLE_S = 10  # an unreadable lock older than this: killed between create and write
_held = {}  # {absolute lock path: its content} of the locks this process holds


def _boot_id() -> str:
  """This machine's boot id ('' where unknown): a lock of an earlier boot is stale."""
  try:
    with open('/proc/sys/kernel/random/boot_id') as f:
      return f.read().strip()
  except OSError:
    return ''


def _alive(pid: int) -> bool:
  """Whether a process with this pid runs on this host."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's process
    return True
  return True


def _read_lock(path: str):
  """The lock's {pid, host, ...}, or None when it is not such a JSON object."""
  try:
    with open(path) as f:
      holder = json.load(f)
  except ValueError:  # JSONDecodeError and UnicodeDecodeError: empty or cut short
    return None
  ok = (isinstance(holder, dict) and isinstance(holder.get('pid'), int)
        and not isinstance(holder['pid'], bool) and holder['pid'] > 0)
  return holder if ok else None


def _stale(path: str, holder):
  """Why the lock at path is stale (its run is gone), or None when it may still run.

  Stale: its host is this one (same host name and boot) and its pid no longer runs (a killed
  run), or is this process's own (the pid reused after a restart); a lock of an earlier boot
  of this host; an unreadable lock older than STALE_UNREADABLE_S. A lock of another host
  is held: this host cannot tell whether that run is alive.
  """
  if holder is None:
    age = time.time() - os.stat(path).st_mtime
    return f'unreadable, {age:.0f} s old' if age > STALE_UNREADABLE_S else None
  if holder.get('host') != socket.gethostname():
    return None
  if holder.get('boot') and _boot_id() and holder['boot'] != _boot_id():
    return 'this host has restarted since'
  if holder['pid'] == os.getpid() or not _alive(holder['pid']):
    return 'that process no longer runs'
  return None


def _holder_text(holder) -> str:
  """Who holds a lock, in words."""
  if holder is None:
    return 'a run not identified: the lock is empty or cut short'
  return (f'pid {holder["pid"]} on host {holder.get("host")!r} since '
          f'{holder.get("started", "?")}')


def acquire_lock(output_dir: str, *, log=print) -> None:
  """Takes output_dir/.lock for this process (release_lock gives it back).

  A stale lock (see _stale: a run killed with SIGKILL, or the machine restarted) is taken
  over with a one-line notice through log. Taking a lock this process already holds does
  nothing.

  Raises:
    ValueError naming --output_dir and the holder when another run holds the lock;
    WriteError when the lock cannot be written.
  """
  path = os.path.join(output_dir, LOCK)
  if _holds(path):
    return
  mine = {'pid': os.getpid(), 'host': socket.gethostname(), 'boot': _boot_id(),
          'started': datetime.datetime.now().isoformat(timespec='seconds')}
  for _ in range(3):  # again after removing a stale lock; a lost race is checked again
    try:
      fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
      try:
        holder = _read_lock(path)
        why = _stale(path, holder)
      except FileNotFoundError:  # released meanwhile
        continue
      if why is None:
        raise ValueError(
            f'--output_dir: {output_dir!r} is in use by another run ({_holder_text(holder)}); '
            f'wait for it to end or choose another --output_dir; if no run uses it, remove '
            f'{path}') from None
      log(f'divbench: taking over {path}, the lock of {_holder_text(holder)} ({why})')
      grave = f'{path}.{os.getpid()}.stale'
      try:
        os.rename(path, grave)  # of two runs taking over at once, one moves the stale lock
      except FileNotFoundError:
        continue
      if _read_lock(grave) != holder:  # moved the lock the other had just taken: give it back
        try:
          os.link(grave, path)
        except OSError:
          pass
      os.remove(grave)
      continue
    try:
      with os.fdopen(fd, 'w') as f:
        json.dump(mine, f)
        f.flush()
        os.fsync(f.fileno())
    except OSError as e:
      os.remove(path)
      raise _write_error(path, e, previous=False) from e
    _held[os.path.abspath(path)] = mine
    return
  raise ValueError(f'--output_dir: {output_dir!r}: another run keeps taking {path}; '
                   'choose another --output_dir')


def _holds(path: str) -> bool:
  """Whether this process holds the lock at path (and it is still there)."""
  mine = _held.get(os.path.abspath(path))
  try:
    return mine is not None and _read_lock(path) == mine
  except FileNotFoundError:  # removed by hand
    return False


def release_lock(output_dir: str) -> None:
  """Removes output_dir/.lock if this process holds it (else does nothing)."""
  path = os.path.join(output_dir, LOCK)
  if _holds(path):
    os.remove(path)
  _held.pop(os.path.abspath(path), None)
