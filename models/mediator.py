"""CoT's mediator M: a language model that estimates the mixture of data and generator.

Lu et al. (2019), "CoT: Cooperative Training for Generative Modeling of Discrete Data": the
mediator is an LSTM of twice the generator's width (64/64 against 32/32), trained by maximum
likelihood on a balanced mixture of data and generator samples (objectives/cot.py). Here the
mediator is of the generator's kind (`config.generator.kind`: an LSTM, or a transformer with
the generator's depth, heads and positions), `width_factor` times as wide: `from_config`.
"""

from models import generator
from models.autoregressive import AutoregressiveLM


def _check_width(width_factor) -> None:
  if not isinstance(width_factor, int) or width_factor < 1:
    raise ValueError(f'width_factor must be a positive integer; got {width_factor!r}.')


def from_config(problem, generator_config, width_factor: int = 2) -> AutoregressiveLM:
  """The mediator for `config.problem` (V, T): the generator of `config.generator` (its kind,
  init scale and, for a transformer, depth, heads and positions), `width_factor` times as wide
  in both of its widths."""
  _check_width(width_factor)
  return generator.from_config(problem, generator_config, width=width_factor)


def make_mediator(*, vocab_size: int, seq_len: int, embed_dim: int, hidden_dim: int,
                  width_factor: int = 2, init_scale: float = 0.1) -> AutoregressiveLM:
  """The mediator module, `width_factor` times as wide as a generator of (embed_dim, hidden_dim).

  Args:
    vocab_size: V, shared with the generator.
    seq_len: T, shared with the generator.
    embed_dim: the generator's embedding width E.
    hidden_dim: the generator's LSTM width H.
    width_factor: the mediator has E' = width_factor·E and H' = width_factor·H (CoT: 2).
    init_scale: standard deviation of the N(0, init_scale²) initialiser.

  Returns:
    An LSTMLM; its variables come from `model.init(key, tokens [B, T])`.
  """
  _check_width(width_factor)
  return generator.make_generator(vocab_size=vocab_size, embed_dim=width_factor * embed_dim,
                                  hidden_dim=width_factor * hidden_dim, seq_len=seq_len,
                                  init_scale=init_scale)
