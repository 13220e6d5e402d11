"""A discriminator on sequences of feature vectors (professor forcing's behaviour critic).

Lamb et al. (2016) train a discriminator to tell the generator's teacher-forced "behaviour"
(on data) from its free-running behaviour (on its own samples); the behaviour of a step is
the generator's pre-tanh hidden activations and its softmax output
(`LSTMLM.behaviour` / `free_running_behaviour`). Their discriminator is a bidirectional GRU
with an MLP on top. This one reads a sequence of vectors [B, T, F] with a GRU (bidirectional by
default), concatenates the final state of each direction, and maps it through an MLP of
`mlp_layers` ReLU layers to one logit per sequence. Token-level discriminators live in
models/discriminator.py.

The GRU is flax's `nn.GRUCell` (Cho et al. 2014, the reset gate applied after the recurrent
matmul, as cuDNN), per direction d with inputs x_t [F] and state h [H]:
  r = σ(x_t W_r + b_r + h U_r),  z = σ(x_t W_z + b_z + h U_z),
  n = tanh(x_t W_n + b_n + r ⊙ (h U_n + b_hn)),  h ← (1 − z) ⊙ n + z ⊙ h,
from h = 0. Unlike `nn.RNN(nn.GRUCell)`, the input projections of all steps and both
directions are one [B·T, F] × [F, 2·3H] matmul before the scan (the features are wide: H + V,
with V up to 5,000), and both directions run in the same scan (the backward one reads the
time-reversed projections).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


def _blockwise_orthogonal(key, shape, dtype=jnp.float32):
  """[D, H, 3H] recurrent kernels: each [H, H] block (direction, gate) orthogonal, as GRUCell's."""
  num_dirs, hidden, width = shape
  blocks = jax.vmap(lambda k: nn.initializers.orthogonal()(k, (hidden, hidden), dtype))(
      jax.random.split(key, num_dirs * (width // hidden)))
  blocks = blocks.reshape(num_dirs, width // hidden, hidden, hidden)
  return jnp.swapaxes(blocks, 1, 2).reshape(shape)


class SequenceDiscriminator(nn.Module):
  """GRU (bi- or unidirectional) over [B, T, F] feature sequences, then an MLP to a logit.

  Attributes:
    hidden_dim: H, the GRU width (per direction).
    mlp_dim: the width of each hidden layer of the MLP head.
    mlp_layers: the number of hidden (ReLU) layers of the MLP head; 0 = a linear head.
    bidirectional: also run a GRU backwards in time and concatenate its final state.

  Call as `disc.apply(variables, features)` with features [B, T, F] (float); returns [B]
  logits, the log-odds that each sequence is teacher-forced (label 1) rather than
  free-running (label 0). `method='final_states'` returns the GRU summary [B, D·H] instead.
  Initialise with `disc.init(key, jnp.zeros((1, T, F)))`.
  """
  hidden_dim: int
  mlp_dim: int
  mlp_layers: int = 1
  bidirectional: bool = True

  def setup(self):
    H, D = self.hidden_dim, 2 if self.bidirectional else 1
    # Gate order (r, z, n) along the last axis, directions (forward, backward) before it;
    # initialisers as nn.GRUCell's (input kernels lecun-normal, recurrent ones orthogonal).
    self.input = nn.Dense(D * 3 * H, name='input')      # W and b of all gates and directions
    self.recurrent_kernel = self.param('recurrent_kernel', _blockwise_orthogonal, (D, H, 3 * H))
    self.recurrent_bias = self.param('recurrent_bias', nn.initializers.zeros, (D, H))  # b_hn
    self.hidden = [nn.Dense(self.mlp_dim, name=f'mlp_{i}') for i in range(self.mlp_layers)]
    self.out = nn.Dense(1, name='out')

  def final_states(self, features: jax.Array) -> jax.Array:
    """The GRU summary: features [B, T, F] -> [B, D·H], the final state of each direction
    (forward after x_{T-1}, backward after x_0), concatenated."""
    B, T, _ = features.shape
    H, D = self.hidden_dim, 2 if self.bidirectional else 1
    x_proj = self.input(features).reshape(B, T, D, 3 * H)
    if self.bidirectional:
      # The backward GRU reads x_{T-1}, ..., x_0: reverse its projections in time.
      x_proj = jnp.concatenate([x_proj[:, :, :1], x_proj[:, ::-1, 1:]], axis=2)
    U, b_hn = self.recurrent_kernel, self.recurrent_bias

    def body(h, xp):                                         # h [B, D, H], xp [B, D, 3H]
      hu = jnp.einsum('bdh,dhk->bdk', h, U)
      xr, xz, xn = jnp.split(xp, 3, axis=-1)
      hr, hz, hn = jnp.split(hu, 3, axis=-1)
      r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
      n = jnp.tanh(xn + r * (hn + b_hn))
      return (1.0 - z) * n + z * h, None

    h0 = jnp.zeros((B, D, H), x_proj.dtype)
    h, _ = jax.lax.scan(body, h0, jnp.swapaxes(x_proj, 0, 1))
    return h.reshape(B, D * H)

  def __call__(self, features: jax.Array) -> jax.Array:
    x = self.final_states(features)
    for layer in self.hidden:
      x = nn.relu(layer(x))
    return self.out(x)[..., 0]
