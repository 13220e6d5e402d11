"""Runs spread over devices and hosts: the run axis sharded over all hosts' devices, results
gathered to every process, only process 0 writing; the agreement before any compute."""

import jax
from jax.experimental import multihost_utils
from jax.sharding import PartitionSpec as P
import numpy as np


def agree_or_raise(refused: bool) -> None:
  """Multi-host: every process says whether it refused the output directory (a collective).

  The processes that did not refuse raise ValueError naming the first one that did, so no
  process waits forever at a later collective for a process that has already exited.
  """
  flags = np.asarray(multihost_utils.process_allgather(np.int32(refused))).reshape(-1)
  if not refused and flags.any():
    raise ValueError(f'--output_dir: refused by process {int(np.argmax(flags))} (see its '
                     'error); this process wrote nothing')


def over_devices(fn, num_mapped: int, num_shared: int, devices=None):
  """Shards fn's run axis over devices: fn(*mapped [R, ...], *shared) with R % len(devices) == 0.

  Each device runs its R / len(devices) runs with fn (itself a map over runs); shared
  arguments are replicated. With one device fn is returned unchanged.
  """
  devices = jax.devices() if devices is None else devices
  if len(devices) == 1:
    return fn
  mesh = jax.sharding.Mesh(np.asarray(devices), ('seeds',))
  specs = (P('seeds'),) * num_mapped + (P(),) * num_shared
  return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P('seeds'), check_vma=False)



def padded_runs(runs, multiple: int):
  """Pads the run list (repeating its last run) to a multiple of the device count."""
  return list(runs) + [runs[-1]] * (-len(runs) % multiple)



def num_shards(config) -> int:
  """How many devices the run axis is split over (config.train.shard)."""
  return jax.device_count() if config.train.shard else 1



def shard_devices(config):
  """The devices the run axis is split over: the first num_shards(config) of jax.devices()."""
  return jax.devices()[:num_shards(config)]



def is_main_process() -> bool:
  """Whether this process writes files and logs (process 0 of a multi-host run)."""
  return jax.process_index() == 0



def to_host(tree):
  """Numpy copies of arrays sharded over the run axis, all runs on every process.

  In a multi-host run (after jax.distributed.initialize) the arrays span other hosts'
  devices, so this is a collective (process_allgather): every process must call it.
  """
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)



def to_global(tree, devices):
  """Host arrays with a leading run axis, identical on every process, as arrays sharded on
  that axis over `devices` (each process places only its own devices' rows). With one
  process the tree is returned unchanged: jit places it.
  """
  if jax.process_count() == 1:
    return tree
  sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.asarray(devices), ('seeds',)),
                                        P('seeds'))

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree_util.tree_map(put, tree)

