"""Presets, the runner, the training loop, evaluation, reports and plots."""
