"""The engine: from a config to a run directory full of rows.

configuration (build, validate), rundir (the one owner of a run directory), files (atomic
writes), train (the jitted loop), evaluate, distributed (devices and hosts), progress (ETA),
memory (the estimate before any compute), runner (`execute`), experiment (running an
experiment), cli (what the commands share). Imports objectives, models, divergences and
benchmarks.analysis; never a command.
"""
