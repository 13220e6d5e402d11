"""Results on disk: atomic writes, the rows file, checkpoints, the saved config.

Layout of an output directory:
  config.json        the resolved config and its hash (a run resumes only into the same hash)
  results.jsonl      one JSON object per scheme x seed x π x evaluation step
  summary.md         mean ± 95% CI over seeds at the final step (benchmarks.report)
  plots/*.png        metrics against step (benchmarks.report)
  checkpoints/<scheme>.msgpack   stacked states of all runs after the last finished chunk
A damaged results.jsonl or checkpoint (Store, check_checkpoints, load_checkpoint) is a
ValueError naming the file, never rows or states silently dropped.
"""

import hashlib
import json
import math
import os
import tempfile

import flax.serialization
import numpy as np


def atomic_write(path: str, data: bytes | str) -> None:
  """Writes data to path via a temporary file and os.replace: readers never see half a file."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  mode = 'wb' if isinstance(data, bytes) else 'w'
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-' + os.path.basename(path))
  try:
    with os.fdopen(fd, mode) as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


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


def save_checkpoint(output_dir: str, scheme: str, step: int, states, diverged) -> None:
  """Saves the stacked states of all runs after `step` updates, atomically."""
  blob = flax.serialization.to_bytes(
      {'step': np.int64(step), 'states': states, 'diverged': np.asarray(diverged)})
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


def load_checkpoint(output_dir: str, scheme: str, states, diverged):
  """(step, states, diverged) from the scheme's checkpoint, or None; templates give structure.

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
  return int(restored['step']), restored['states'], np.array(restored['diverged'])
