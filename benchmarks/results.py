"""Results on disk: atomic writes, the rows file, checkpoints, the saved config.

Layout of an output directory:
  config.json        the resolved config and its hash (a run resumes only into the same hash)
  results.jsonl      one JSON object per scheme x seed x π x evaluation step
  summary.md         mean ± 95% CI over seeds at the final step (benchmarks.report)
  plots/*.png        metrics against step (benchmarks.report)
  checkpoints/<scheme>.msgpack   stacked states of all runs after the last finished chunk
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


class Store:
  """The rows of results.jsonl kept in memory and rewritten atomically on each save."""

  def __init__(self, output_dir: str):
    self.output_dir = output_dir
    self.path = os.path.join(output_dir, 'results.jsonl')
    self.rows = []
    if os.path.exists(self.path):
      with open(self.path) as f:
        self.rows = [json.loads(line) for line in f if line.strip()]

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


def load_checkpoint(output_dir: str, scheme: str, states, diverged):
  """(step, states, diverged) from the scheme's checkpoint, or None; templates give structure."""
  path = checkpoint_path(output_dir, scheme)
  if not os.path.exists(path):
    return None
  with open(path, 'rb') as f:
    target = {'step': np.int64(0), 'states': states, 'diverged': np.asarray(diverged)}
    restored = flax.serialization.from_bytes(target, f.read())
  return int(restored['step']), restored['states'], np.array(restored['diverged'])
