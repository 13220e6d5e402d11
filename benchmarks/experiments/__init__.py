"""Experiments: each module turns one claim into runs, a figure and a table.

`REGISTRY` maps a name to its `Experiment` (benchmarks/engine/experiment.py); `python -m
benchmarks.experiment NAME` runs it. To add one: a module with
`EXPERIMENT = experiment.Experiment(...)` (see benchmarks/engine/experiment.py), listed here.
"""

from benchmarks.experiments import architectures
from benchmarks.experiments import distill
from benchmarks.experiments import distill_objectives
from benchmarks.experiments import fedus
from benchmarks.experiments import gan_sweep
from benchmarks.experiments import huszar_1d
from benchmarks.experiments import kl_estimators
from benchmarks.experiments import pi_sweep
from benchmarks.experiments import regime_map
from benchmarks.experiments import scheduled_sampling
from benchmarks.experiments import seqgan_table
from benchmarks.experiments import temperature

REGISTRY = {e.name: e for e in (
    pi_sweep.EXPERIMENT,
    huszar_1d.EXPERIMENT,
    scheduled_sampling.EXPERIMENT,
    fedus.EXPERIMENT,
    gan_sweep.EXPERIMENT,
    temperature.EXPERIMENT,
    seqgan_table.EXPERIMENT,
    distill.EXPERIMENT,
    regime_map.EXPERIMENT,
    kl_estimators.EXPERIMENT,
    distill_objectives.EXPERIMENT,
    architectures.EXPERIMENT,
)}
