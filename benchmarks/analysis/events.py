"""TensorBoard event files of the evaluation rows, so `tensorboard --logdir DIR` shows a run.

Layout: DIR/tensorboard/<scheme>/seed<k>[_pi<p>]/events.out.tfevents.* — one TensorBoard
run per (scheme, seed, π), so each metric's chart overlays every seed and π of every scheme.
Tags are the rows' metric names (`nll_test`, `kl_pq`, `train_loss`, ...; a per-π vector
such as `js_pi` becomes `js_pi/<π>`), the step is the training step, the value the row's.
Standard errors (`*_se`) and the α sweep's rows stay in results.jsonl only; a diverged run's
null (or any non-finite) values are not written.

Written with tensorboardX's synchronous `EventsWriter` (the file writer under its
`SummaryWriter`, without the latter's queue and thread per directory), one event per row, so
`flush` leaves every row given so far in the files, synced. Each
writer opens a new file per run directory (unique name; TensorBoard reads them all, in name
order), so a resumed run adds a file and never truncates one.
"""

import functools
import math
import os
import shutil
import struct
import time

DIRECTORY = 'tensorboard'  # under a run's output directory
# Row fields that are not metrics (results.jsonl's bookkeeping).
NOT_METRICS = frozenset({'scheme', 'base_scheme', 'phase', 'seed', 'pi', 'step', 'diverged',
                         'wall_time', 'train_seconds', 'config_hash', 'device', 'alpha',
                         'run'})
CURVE_PHASES = ('train', 'warm_start')  # phases whose rows are curves over the step


def run_name(row) -> str:
  """'<scheme>/seed<k>' or '<scheme>/seed<k>_pi<π>': the TensorBoard run of a row."""
  name = f'{row["scheme"]}/seed{row["seed"]}'
  return name if row.get('pi') is None else f'{name}_pi{row["pi"]:g}'


def scalars(row) -> dict:
  """{tag: float} of a row's finite metric values (see the module docstring)."""
  out = {}
  for key, value in row.items():
    if key in NOT_METRICS or key.endswith('_se'):
      continue
    items = value.items() if isinstance(value, dict) else [(None, value)]
    for sub, v in items:
      if isinstance(v, bool) or v is None:
        continue
      try:
        v = float(v)
      except (TypeError, ValueError):  # strings and other non-numbers
        continue
      if math.isfinite(v):
        out[key if sub is None else f'{key}/{sub}'] = v
  return out


@functools.lru_cache(maxsize=None)
def _tensorboardx():
  """(EventsWriter, event_pb2, summary_pb2), imported on first use, not at start-up: importing
  any tensorboardX module runs its package __init__, which imports PyTorch when it is
  installed (the `[compare]` extra): 3.9 s added to every command's start (measured,
  `python -X importtime -c 'import benchmarks.run'`, 2-core CPU, 2026-12-07)."""
  # pylint: disable=import-outside-toplevel
  from tensorboardX.event_file_writer import EventsWriter
  from tensorboardX.proto import event_pb2
  from tensorboardX.proto import summary_pb2
  return EventsWriter, event_pb2, summary_pb2


class Writer:
  """Event files under `logdir`, one per run directory, opened on its first row."""

  def __init__(self, logdir: str):
    self.logdir = logdir
    self._files = {}
    # Unique among writers of this directory: a resumed run adds files, never truncates one.
    self._suffix = f'.{os.getpid()}.{time.time_ns()}'

  def clear(self, scheme: str) -> None:
    """Removes the scheme's event files (stale: its training starts afresh)."""
    for run in [r for r in self._files if r.startswith(scheme + '/')]:
      self._files.pop(run).close()
    shutil.rmtree(os.path.join(self.logdir, scheme), ignore_errors=True)

  def write(self, rows) -> None:
    """Adds one event per curve row (phase train or warm_start) with finite metrics."""
    for row in rows:
      if row.get('phase', 'train') not in CURVE_PHASES:
        continue
      values = scalars(row)
      if not values:
        continue
      run = run_name(row)
      events_writer, event_pb2, summary_pb2 = _tensorboardx()
      if run not in self._files:
        directory = os.path.join(self.logdir, run)
        os.makedirs(directory, exist_ok=True)
        self._files[run] = events_writer(os.path.join(directory, 'events'), self._suffix)
      summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v)
                                           for t, v in values.items()])
      self._files[run].write_event(event_pb2.Event(wall_time=time.time(), step=int(row['step']),
                                                   summary=summary))

  def flush(self) -> None:
    """Writes every row given so far to disk (EventsWriter.flush, which also syncs: 7 ms
    per chunk for 15 run directories, measured; a chunk takes seconds): TensorBoard sees
    them, a killed process loses none."""
    for f in self._files.values():
      f.flush()

  def close(self) -> None:
    for f in self._files.values():
      f.close()
    self._files = {}


def read_records(path: str):
  """The data of each TFRecord of one event file (stops at a truncated last record)."""
  with open(path, 'rb') as f:
    blob = f.read()
  at = 0
  while at + 12 <= len(blob):
    (length,) = struct.unpack('<Q', blob[at:at + 8])
    end = at + 12 + length + 4
    if end > len(blob):
      return
    yield blob[at + 12:at + 12 + length]
    at = end


def read_scalars(logdir: str) -> dict:
  """{run: {tag: [(step, value), ...]}} of every event file under logdir, files in name order.

  For tests and quick looks without TensorBoard; values are float32, as stored.
  """
  _, event_pb2, _ = _tensorboardx()
  out = {}
  for root, _, names in sorted(os.walk(logdir)):
    for name in sorted(n for n in names if '.tfevents.' in n):
      run = os.path.relpath(root, logdir).replace(os.sep, '/')
      for record in read_records(os.path.join(root, name)):
        event = event_pb2.Event.FromString(record)
        for value in event.summary.value:
          out.setdefault(run, {}).setdefault(value.tag, []).append((event.step,
                                                                    value.simple_value))
  return out
