"""A run directory: its saved config (hash, compatibility with older configs), lock, rows and
checkpoints. The one module that reads or writes them.

Layout of an output directory:
  config.json        the resolved config and its hash (a run resumes only into the same hash)
  results.jsonl      one JSON object per scheme x seed x π x evaluation step
  summary.md         mean ± 95% CI over seeds at the final step (analysis.report)
  plots/*.png        metrics against step (analysis.report)
  checkpoints/<scheme>.msgpack   stacked states of all runs after the last finished chunk
  .lock              {pid, host, boot, started} of the run writing it now (acquire_lock)
A damaged results.jsonl or checkpoint (Store, check_checkpoints, load_checkpoint) is a
ValueError naming the file, never rows or states silently dropped. Every file is replaced
whole (files.atomic_write): a run killed at any moment, or a write that fails (disk full), leaves
the previous version of each file; a rerun resumes from them.
"""

import collections
import datetime
import gzip
import hashlib
import json
import math
import os
import shutil
import socket
import time
from typing import Optional

import flax.serialization
import ml_collections
import numpy as np

from benchmarks import configs
from benchmarks.configs import base
from benchmarks.engine import files


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


def rows_file(path: str) -> Optional[str]:
  """A results.jsonl `path`, or its gzip-compressed copy path + '.gz' (committed experiment
  rows are stored compressed: docs/runs/), whichever exists; None if neither does."""
  for candidate in (path, path + '.gz'):
    if os.path.exists(candidate):
      return candidate
  return None


def open_rows(path: str, mode: str = 'rb'):
  """open() of a results.jsonl, or gzip.open() of a compressed one (a path ending '.gz')."""
  if path.endswith('.gz'):
    return gzip.open(path, mode, encoding=None if 'b' in mode else 'utf-8')
  return open(path, mode, encoding=None if 'b' in mode else 'utf-8')


def read_rows(path: str) -> list:
  """The rows of a results.jsonl, or of a gzip-compressed one (a path ending '.gz'); blank
  lines skipped; Unreadable naming the first bad line."""
  with open_rows(path) as f:
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
    files.atomic_write(self.path, ''.join(json.dumps(r) + '\n' for r in self.rows))


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
  files.atomic_write(checkpoint_path(output_dir, scheme), blob)


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
    files.WriteError when the lock cannot be written.
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
      raise files._write_error(path, e, previous=False) from e
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


# Fields that change how a run is chunked, not its numbers: kept out of config.json and the
# config's hash (a run resumes under other values).
OPERATIONAL = ('train.checkpoint_every',)


def _saved_hash(path: str):
  """The 'hash' of a config.json, or None when the file is not a JSON object."""
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError):  # ValueError: JSONDecodeError and UnicodeDecodeError
    return None
  return saved.get('hash') if isinstance(saved, dict) else None


def prepare_output_dir(output_dir: str, config, *, overwrite: bool, write: bool = True,
                       variants=None, log=print) -> str:
  """Creates output_dir, takes its lock and writes config.json; returns the config hash.

  The lock (output_dir/.lock, acquire_lock; a stale one of a killed run is taken
  over with a notice through log) is held on return: the caller releases it
  (release_lock; execute does). The temporary files of a killed run are removed.

  Raises ValueError naming --output_dir when it cannot be written, when another run holds
  it, or when it holds a run of a different config (unless overwrite), and naming
  config.json when it is unreadable (with overwrite: discarded like a different config's);
  then no file of the run in output_dir has changed and the lock is released. A run of the
  same config is resumed. With write=False (the other processes of a multi-host run) it
  only checks and takes no lock.
  """
  config_dict = config.to_dict()
  if not config_dict['train'].get('inject_nan'):  # testing only: kept out of a normal run's
    config_dict['train'].pop('inject_nan', None)  # hash, so directories from before resume
  for field in OPERATIONAL:
    section, name = field.split('.')
    config_dict[section].pop(name, None)
  saved = {'config': config_dict}
  if variants is not None:  # labelled scheme configurations: part of what the results are of
    saved['variants'] = {k: [n, {f: v for f, v in o.items() if f not in OPERATIONAL}]
                         for k, (n, o) in variants.items()}
  digest = config_hash(saved if variants is not None else config_dict)
  path = os.path.join(output_dir, 'config.json')
  try:
    os.makedirs(output_dir, exist_ok=True)
    probe = os.path.join(output_dir, f'.write-probe-{os.getpid()}')
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as e:
    raise ValueError(f'--output_dir: cannot write to {output_dir!r} ({e.strerror})') from None
  if write:  # process 0 holds output_dir from here on: no other run writes it
    acquire_lock(output_dir, log=log)
    files.remove_temps(output_dir)  # of a killed run: unused
  try:
    _check_saved_config(path, output_dir, digest, overwrite=overwrite, write=write,
                        saved=saved, log=log)
    if write:
      files.atomic_write(path, json.dumps(dict(saved, hash=digest),
                                   indent=2, sort_keys=True, default=str))
  except BaseException:
    release_lock(output_dir)
    raise
  return digest


def without_added_defaults(saved, current, default):
  """`current` less the fields that `saved` lacks and that hold `default`'s value.

  A field added to configs/base.py after a run was written must default to the behaviour
  from before it (a development rule), so a config that differs from the saved one only by
  such fields describes the same run. Nested dicts recurse; a field the saved config lacks
  but whose value is not the default stays (and so makes the configs differ).
  """
  if not (isinstance(saved, dict) and isinstance(current, dict)):
    return current
  default = default if isinstance(default, dict) else {}
  out = {}
  for k, v in current.items():
    if k not in saved:
      if k in default and _as_json(v) == _as_json(default[k]):
        continue
      out[k] = v
    else:
      out[k] = without_added_defaults(saved[k], v, default.get(k))
  return out


def _as_json(value):
  """value as config.json holds it (tuples as lists, other objects as str)."""
  return json.loads(json.dumps(value, sort_keys=True, default=str))


def _same_run_before_new_fields(path: str, saved: dict) -> list:
  """When config.json differs from `saved` (the config now) only by fields added since at
  their defaults: those fields' dotted names; else []."""
  try:
    with open(path) as f:
      old = json.load(f)
  except (OSError, ValueError):
    return []
  if not isinstance(old, dict) or not isinstance(old.get('config'), dict):
    return []
  old = {k: v for k, v in old.items() if k != 'hash'}
  old.setdefault('variants', None)
  now = _as_json(dict(saved, variants=saved.get('variants')))
  default = _as_json({'config': base.get_config().to_dict()})
  pruned = without_added_defaults(old, now, default)
  if pruned != old:
    return []
  added = []
  def walk(a, b, prefix):
    for k, v in b.items():
      if k not in a:
        added.append(prefix + k)
      elif isinstance(v, dict) and isinstance(a[k], dict):
        walk(a[k], v, prefix + k + '.')
  walk(old['config'], now['config'], '')
  return added


def _check_saved_config(path: str, output_dir: str, config_hash: str, *, overwrite: bool,
                        write: bool, saved=None, log=print) -> None:
  """Refuses (ValueError) a config.json that is unreadable or of another config, unless
  overwrite: then, with write, removes that run's results, summary, checkpoints and plots.
  A config.json written before fields were added, equal to `saved` once those fields are at
  their defaults, is the same run: it resumes (and config.json is rewritten by the caller)."""
  if os.path.exists(path):
    old = _saved_hash(path)
    if old is None and not overwrite:
      raise ValueError(f'{path}: not valid JSON (truncated write?); pass --overwrite to '
                       f'discard the results in {output_dir}, or choose another --output_dir')
    added = (_same_run_before_new_fields(path, saved)
             if old is not None and old != config_hash and saved is not None else [])
    if added:
      if write:
        log(f'divbench: {path} was written before {", ".join(sorted(added))} existed; '
            'at their defaults they describe the same run: resuming')
      return
    if old != config_hash:
      if not overwrite:
        raise ValueError(f'--output_dir: {output_dir!r} holds results of a different config '
                         f'(hash {old}, now {config_hash}); pass --overwrite or choose '
                         'another directory')
      if not write:
        return
      for name in ('results.jsonl', 'summary.md'):
        if os.path.exists(os.path.join(output_dir, name)):
          os.remove(os.path.join(output_dir, name))
      shutil.rmtree(os.path.join(output_dir, 'checkpoints'), ignore_errors=True)
      shutil.rmtree(os.path.join(output_dir, 'plots'), ignore_errors=True)


class RunDir(collections.namedtuple('RunDir', 'path saved rows')):
  """One input: its path as given, its config.json ({hash, config[, ...]}) and its rows."""

  @property
  def name(self) -> str:
    return os.path.basename(os.path.normpath(self.path))


def _read_json(path: str, what: str):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f'--input_dir: cannot read {what} {path!r} ({e})') from None


def read_run(path: str) -> RunDir:
  """The config.json and results.jsonl rows of an input directory.

  Raises:
    ValueError: naming --input_dir when the directory, either file, or a line of
      results.jsonl (file and line number) is missing or unreadable.
  """
  if not os.path.isdir(path):
    raise ValueError(f'--input_dir: {path!r} is not a directory')
  paths = {n: os.path.join(path, n) for n in ('config.json', 'results.jsonl')}
  for name, file in paths.items():
    if not os.path.isfile(file):
      raise ValueError(f'--input_dir: {path!r} has no {name} (not an --output_dir of '
                       'benchmarks.run)')
  saved = _read_json(paths['config.json'], 'config')
  if not isinstance((saved.get('config') if isinstance(saved, dict) else None), dict):
    raise ValueError(f'--input_dir: {paths["config.json"]!r} has no config')
  try:
    rows = read_rows(paths['results.jsonl'])
  except OSError as e:
    raise ValueError(f'--input_dir: cannot read {paths["results.jsonl"]!r} ({e})') from None
  except Unreadable as e:
    raise ValueError(f'--input_dir: {paths["results.jsonl"]!r} {e} ({e.detail})') from None
  return RunDir(path, saved, rows)


def _overlay(config, saved: dict, prefix: str = '') -> None:
  """Sets every field of the saved (JSON) config on config, in place; lists become tuples.

  Fields config.json lacks (added to base.py after the run) keep their defaults; fields the
  current config lacks (since removed) are ignored.
  """
  for key, value in saved.items():
    if key not in config:
      continue
    if isinstance(config[key], ml_collections.ConfigDict) and isinstance(value, dict):
      _overlay(config[key], value, f'{prefix}{key}.')
      continue
    if isinstance(value, list):
      value = tuple(value)
    try:
      config[key] = value
    except (TypeError, ValueError) as e:
      raise ValueError(f'config.json field {prefix}{key}: {e}') from None


def config_from_saved(saved_config: dict, scheme_names=None):
  """The ConfigDict a config.json's 'config' describes: base.py's defaults (a field added
  since the run keeps its default, which by the development rule is the behaviour from before
  it), with the config sections of the schemes of `scheme_names` given by import path, then
  every saved field on top (lists become tuples; fields since removed are ignored).

  The one place an older config.json is read into today's config (`benchmarks.sample`,
  `benchmarks.compare`); `without_added_defaults` decides whether it is the same run.
  ValueError naming the field or the scheme when it cannot be.
  """
  config = base.get_config()  # presets change values, never the structure
  if scheme_names:
    configs.add_scheme_sections(config, scheme_names)
  _overlay(config, saved_config)
  return config

