"""The generator Q: an LSTM language model initialised N(0, 0.1²) as in SeqGAN, or a small causal
transformer with the same interface (`config.generator.kind`)."""

from models import output_layer
from models import transformer
from models.autoregressive import AutoregressiveLM
from models.lstm import LSTMLM

KINDS = ('lstm', 'transformer')


def make_generator(*, vocab_size: int, seq_len: int, embed_dim: int, hidden_dim: int,
                   init_scale: float = 0.1,
                   logits_chunk_bytes: int = output_layer.CHUNK_BYTES,
                   kind: str = 'lstm', num_layers: int = 2, num_heads: int = 2,
                   positions: str = 'learned') -> AutoregressiveLM:
  """The generator module; its variables come from `model.init(key, tokens [B, T])`.

  `kind` 'lstm': an LSTMLM of embedding width embed_dim and state width hidden_dim.
  'transformer': a TransformerLM of width embed_dim, MLP width hidden_dim, `num_layers` blocks
  of `num_heads` heads and 'learned' or 'sinusoidal' `positions` (ignored by the LSTM).
  """
  if kind == 'lstm':
    return LSTMLM(vocab_size=vocab_size, embed_dim=embed_dim, hidden_dim=hidden_dim,
                  seq_len=seq_len, init_scale=init_scale, logits_chunk_bytes=logits_chunk_bytes)
  if kind == 'transformer':
    return transformer.TransformerLM(
        vocab_size=vocab_size, embed_dim=embed_dim, hidden_dim=hidden_dim, seq_len=seq_len,
        num_layers=num_layers, num_heads=num_heads, positions=positions, init_scale=init_scale,
        logits_chunk_bytes=logits_chunk_bytes)
  raise ValueError(f'unknown generator kind {kind!r}; expected one of {KINDS}')


def from_config(problem, generator, *, width: int = 1) -> AutoregressiveLM:
  """The generator of `config.generator` for `config.problem` (V, T), `width` times as wide
  (CoT's mediator: 2)."""
  return make_generator(vocab_size=problem.vocab_size, seq_len=problem.seq_len,
                        embed_dim=width * generator.embed_dim,
                        hidden_dim=width * generator.hidden_dim,
                        init_scale=generator.init_scale,
                        logits_chunk_bytes=generator.logits_chunk_bytes,
                        kind=generator.get('kind', 'lstm'),
                        num_layers=generator.get('num_layers', 2),
                        num_heads=generator.get('num_heads', 2),
                        positions=generator.get('positions', 'learned'))


def check_config(gc) -> None:
  """ValueError naming --config.generator.<field> for a kind, depth, head count or position
  scheme the generator cannot be built with; no compute."""
  kind = gc.get('kind', 'lstm')
  if kind not in KINDS:
    raise ValueError(f'--config.generator.kind: {kind!r} is not one of {", ".join(KINDS)}')
  if kind != 'transformer':
    return
  for field in ('num_layers', 'num_heads'):
    value = gc[field]
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
      raise ValueError(f'--config.generator.{field}: must be a positive integer, got {value!r}')
  if gc.embed_dim % gc.num_heads:
    raise ValueError(f'--config.generator.num_heads: {gc.num_heads} does not divide '
                     f'--config.generator.embed_dim ({gc.embed_dim})')
  if gc.positions not in transformer.POSITIONS:
    raise ValueError(f'--config.generator.positions: {gc.positions!r} is not one of '
                     f'{", ".join(transformer.POSITIONS)}')
