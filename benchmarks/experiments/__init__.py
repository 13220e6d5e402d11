"""Experiments: each module turns one claim into runs, a figure and a table.

`REGISTRY` maps a name to its `base.Experiment`; `python -m benchmarks.experiment NAME` runs
it. To add one: a module with `EXPERIMENT = base.Experiment(...)` (see base.py), listed here.
"""

from benchmarks.experiments import pi_sweep
from benchmarks.experiments import scheduled_sampling

REGISTRY = {e.name: e for e in (
    pi_sweep.EXPERIMENT,
    scheduled_sampling.EXPERIMENT,
)}
