"""Bytes of the arrays a training step or an evaluation holds, from the config's sizes alone.

Each scheme module's `working_set_bytes(config)` adds these up for its own step; the engine's
memory estimate (benchmarks/engine/memory.py) adds states, evaluation and data. float32 and
int32 take F32 bytes.
"""

F32 = 4                         # bytes of a float32 or int32



def logits_bytes(config, rows: int) -> int:
  """Bytes of float32 logits held at once for `rows` teacher-forced positions (chunked)."""
  return min(config.generator.logits_chunk_bytes, F32 * rows * config.problem.vocab_size)



def teacher_forced_bytes(config, num: int, *, width: int = 1, backward: bool = True) -> int:
  """Log-probs of num sequences: LSTM states [num, T, ·] and chunked logits (3 buffers with
  the backward pass: logits, softmax, their cotangent)."""
  T = config.problem.seq_len
  E, H = width * config.generator.embed_dim, width * config.generator.hidden_dim
  states = F32 * num * T * (E + (10 if backward else 6) * H)
  return states + (3 if backward else 2) * logits_bytes(config, num * T)



def sampling_bytes(config, num: int) -> int:
  """Ancestral sampling of num sequences: per-step logits [num, V] and their CDF, tokens."""
  V, T, H = config.problem.vocab_size, config.problem.seq_len, config.generator.hidden_dim
  return F32 * num * (2 * V + 8 * H + 2 * T)



def full_bytes(config, num: int) -> int:
  """One float32 [num, T, V] array (unchunked next-token distributions or relaxed one-hots)."""
  return F32 * num * config.problem.seq_len * config.problem.vocab_size



def prefix_tree_bytes(config, hidden_dim: int, *, backward: bool = True) -> int:
  """One model over the prefix tree (`LSTMLM.prefix_tree_logits`): per level t of V^t prefixes,
  the LSTM's gates and state (~12 H floats) and the children's log-probs (~4 V), twice when
  kept for the backward pass."""
  v = config.problem.vocab_size
  prefixes = sum(v ** t for t in range(config.problem.seq_len))
  return (2 if backward else 1) * prefixes * F32 * (12 * hidden_dim + 4 * v)
