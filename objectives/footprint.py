"""Bytes of the arrays a training step or an evaluation holds, from the config's sizes alone.

Each scheme module's `working_set_bytes(config)` adds these up for its own step; the engine's
memory estimate (benchmarks/engine/memory.py) adds states, evaluation and data. float32 and
int32 take F32 bytes.
"""

F32 = 4                         # bytes of a float32 or int32



def logits_bytes(config, rows: int) -> int:
  """Bytes of float32 logits held at once for `rows` teacher-forced positions (chunked)."""
  return min(config.generator.logits_chunk_bytes, F32 * rows * config.problem.vocab_size)



def _is_transformer(config) -> bool:
  return config.generator.get('kind', 'lstm') == 'transformer'


def state_dim(config) -> int:
  """The width of the states the generator's output layer reads (`model.state_dim`): an
  LSTM's hidden_dim, a transformer's embed_dim."""
  return config.generator.embed_dim if _is_transformer(config) else config.generator.hidden_dim


def _prefixes(config) -> int:
  """Σ_{t<T} V^t: the prefixes of the prefix tree."""
  return sum(config.problem.vocab_size ** t for t in range(config.problem.seq_len))


def _transformer_position_floats(config, width: int, backward: bool) -> int:
  """Floats one position of a transformer generator keeps per pass: per block the normed
  input, queries, keys, values, attention weights over T positions per head, the attention
  output, the MLP's hidden units and the residual stream (about twice as many kept for the
  backward pass)."""
  gc = config.generator
  D, M = width * gc.embed_dim, width * gc.hidden_dim
  per_block = 6 * D + gc.num_heads * config.problem.seq_len + M
  return (2 if backward else 1) * gc.num_layers * per_block + D


def teacher_forced_bytes(config, num: int, *, width: int = 1, backward: bool = True) -> int:
  """Log-probs of num sequences: the generator's states [num, T, ·] (an LSTM's gates and
  states, or a transformer's blocks) and chunked logits (3 buffers with the backward pass:
  logits, softmax, their cotangent)."""
  T = config.problem.seq_len
  E, H = width * config.generator.embed_dim, width * config.generator.hidden_dim
  if _is_transformer(config):
    states = F32 * num * T * _transformer_position_floats(config, width, backward)
  else:
    states = F32 * num * T * (E + (10 if backward else 6) * H)
  return states + (3 if backward else 2) * logits_bytes(config, num * T)


def _cache_floats(config) -> int:
  """A transformer generator's key-value cache per sequence: keys and values of every block
  at every position (0 for the LSTM, whose state is its hidden units)."""
  if not _is_transformer(config):
    return 0
  gc = config.generator
  return 2 * gc.num_layers * config.problem.seq_len * gc.embed_dim


def sampling_bytes(config, num: int) -> int:
  """Ancestral sampling of num sequences: per-step logits [num, V] and their CDF, the state
  (an LSTM's units, or a transformer's key-value cache and one position's blocks), tokens."""
  V, T, H = config.problem.vocab_size, config.problem.seq_len, config.generator.hidden_dim
  if _is_transformer(config):
    state = _cache_floats(config) + _transformer_position_floats(config, 1, backward=False)
  else:
    state = 8 * H
  return F32 * num * (2 * V + state + 2 * T)


def full_bytes(config, num: int) -> int:
  """One float32 [num, T, V] array (unchunked next-token distributions or relaxed one-hots)."""
  return F32 * num * config.problem.seq_len * config.problem.vocab_size



def prefix_tree_bytes(config, hidden_dim: int, *, backward: bool = True) -> int:
  """One LSTM over the prefix tree (`prefix_tree_logits`): per level t of V^t prefixes, the
  LSTM's gates and state (~12 H floats) and the children's log-probs (~4 V), twice when kept
  for the backward pass."""
  v = config.problem.vocab_size
  return (2 if backward else 1) * _prefixes(config) * F32 * (12 * hidden_dim + 4 * v)


def generator_tree_bytes(config, *, backward: bool = True) -> int:
  """The generator over the prefix tree: `prefix_tree_bytes` of an LSTM of its width, or per
  prefix a transformer's key-value cache and one position's blocks and the children's
  log-probs."""
  if not _is_transformer(config):
    return prefix_tree_bytes(config, config.generator.hidden_dim, backward=backward)
  per_prefix = (_cache_floats(config) + _transformer_position_floats(config, 1, backward)
                + 4 * config.problem.vocab_size)
  return (2 if backward else 1) * _prefixes(config) * F32 * per_prefix
