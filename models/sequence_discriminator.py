"""A discriminator on sequences of feature vectors (professor forcing's hidden-state critic).

Lamb et al. (2016) train a discriminator to tell the generator's teacher-forced "behaviour"
(its hidden states on data) from its free-running behaviour (hidden states on its own
samples). This one reads a sequence of vectors [B, T, F] with a GRU (bidirectional by
default), concatenates the final state of each direction, and maps it through a one-hidden-
layer MLP to one logit per sequence. Token-level discriminators live in models/discriminator.py.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class SequenceDiscriminator(nn.Module):
  """GRU (bi- or unidirectional) over [B, T, F] feature sequences, then an MLP to a logit.

  Attributes:
    hidden_dim: the GRU width (per direction).
    mlp_dim: the hidden width of the MLP head.
    bidirectional: also run a GRU backwards in time and concatenate its final state.

  Call as `disc.apply(variables, features)` with features [B, T, F] (float); returns [B]
  logits, the log-odds that each sequence is teacher-forced (label 1) rather than
  free-running (label 0). Initialise with `disc.init(key, jnp.zeros((1, T, F)))`.
  """
  hidden_dim: int
  mlp_dim: int
  bidirectional: bool = True

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    forward = nn.RNN(nn.GRUCell(self.hidden_dim), return_carry=True)
    if self.bidirectional:
      backward = nn.RNN(nn.GRUCell(self.hidden_dim), reverse=True, keep_order=True)
      (last_fwd, last_bwd), _ = nn.Bidirectional(forward, backward, return_carry=True)(features)
      summary = jnp.concatenate([last_fwd, last_bwd], axis=-1)  # [B, 2 * hidden_dim]
    else:
      summary, _ = forward(features)                              # [B, hidden_dim]
    x = nn.relu(nn.Dense(self.mlp_dim)(summary))
    return nn.Dense(1)(x)[..., 0]
