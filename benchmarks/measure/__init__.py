"""Standalone measurements, each a command: gradient_fidelity, throughput, rerank_effect."""
