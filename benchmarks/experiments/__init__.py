"""Experiments: each module turns one claim into runs, a figure and a table.

`REGISTRY = {e.name: e for e in (
    pi_sweep.EXPERIMENT,
    huszar_1d.EXPERIMENT,
    scheduled_sampling.EXPERIMENT,
    fedus.EXPERIMENT,
    gan_sweep.EXPERIMENT,
)}
