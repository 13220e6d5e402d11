"""The generator Q: an LSTM language model initialised N(0, 0.1²) as in SeqGAN."""

from models import output_layer
from models.lstm import LSTMLM


def make_generator(*, vocab_size: int, seq_len: int, embed_dim: int, hidden_dim: int,
                   init_scale: float = 0.1,
                   logits_chunk_bytes: int = output_layer.CHUNK_BYTES) -> LSTMLM:
  """The generator module; its variables come from `model.init(key, tokens [B, T])`."""
  return LSTMLM(vocab_size=vocab_size, embed_dim=embed_dim, hidden_dim=hidden_dim,
                seq_len=seq_len, init_scale=init_scale, logits_chunk_bytes=logits_chunk_bytes)
