"""GAN with discriminator class balance π (Huszár 2015): the adversarial JS_π objective.

The discriminator D(x) = σ(l(x)) sees data with weight π and generator samples with weight
1 − π; it minimises
  L_D = −π E_P[log D] − (1 − π) E_Q[log(1 − D)],
whose minimiser is D* = πP / (πP + (1 − π)Q), i.e. the logit l* = log πP − log (1 − π)Q
(`optimal_logits`). At D* the minimax value is
  V(Q, D*) = π E_P[log D*] + (1 − π) E_Q[log(1 − D*)] = JS_π(P, Q) − H(π),
and, D* being a stationary point in D, the gradient of V(Q, D*) with respect to the generator
is that of JS_π(P, Q): (1 − π) E_Q[∇ log Q(x) · log(1 − D*(x))]. At π = 1/2 this is the
original GAN (Goodfellow et al. 2014, up to a factor 2); Huszár shows that JS_π interpolates
between KL(P || Q) (π -> 0) and KL(Q || P) (π -> 1) once divided by π(1 − π).

Generator losses (per generated sequence x, to be minimised; `generator_loss_terms`):
  'minimax':        (1 − π) log(1 − D(x))        (exactly the generator's part of V)
  'non_saturating': −(1 − π) log D(x)            (Goodfellow's heuristic, same fixed point,
                                                 scaled by the same 1 − π so π sweeps compare)
Gradient estimators for the discrete samples:
  'reinforce': the score function E_Q[(f(x) − b) ∇ log Q(x)] with a leave-one-out batch-mean
               baseline b (unbiased: b does not depend on x);
  'gumbel':    Gumbel-softmax relaxed one-hots fed to D (reparameterised, biased), optionally
               straight-through (`LSTMLM.sample_relaxed`).
Optional gradient penalties on the discriminator's logit, as in Fedus et al. 2017 ("Many paths
to equilibrium"): 'wgan_gp' (Gulrajani et al. 2017) at random interpolates between data
one-hots and generator (relaxed) one-hots, and 'dragan' (Kodali et al. 2017) around perturbed
data one-hots; both penalise (‖∇_x l(x̂)‖₂ − 1)², weight `penalty_weight`.

The oracle discriminator (`discriminator='oracle'`): D's logit is exactly
l*(x) = log πP(x) − log (1 − π)Q(x) from the oracle's density and the current generator's
(held constant in the generator's gradient, as a discriminator is), so there is no D to train
(d_steps, the D learning rate and penalties do not apply). It is the best response every GAN
analysis assumes, separating what the divergence's gradient does from what a learned
discriminator adds. It needs the 'reinforce' estimator: l* is defined on token sequences,
not on relaxed one-hots (a relaxed input has no density under P), so 'gumbel' and hence
gumbel_gan cannot use it.

All generator losses are per token (the sequence-level value / T), as `mle.nll`, so the
expected REINFORCE gradient of the minimax loss with the exact D* is ∇ JS_π(P, Q) / T, the
gradient of `divergences.exact(...)['js_pi']`. The code lives in `objectives/adversarial.py`
(shared with `gumbel_gan` and `seqgan`); this module makes the scheme.
"""

import jax.numpy as jnp

from objectives import adversarial
from objectives import base


def check_config(config) -> None:
  """ValueError naming the first invalid --config.gan_pi.* or --config.discriminator.* field."""
  adversarial.check_options(adversarial.options_from_config(config.gan_pi), 'gan_pi')
  base.check_positive('gan_pi', 'gumbel_tau', config.gan_pi.gumbel_tau)
  adversarial.check_discriminator_config(config)


def make(config, problem) -> base.Scheme:
  """gan_pi: the π-weighted GAN (config.gan_pi), π swept by the runner (uses_pi=True)."""
  check_config(config)
  gc = config.gan_pi
  tau = float(gc.gumbel_tau)
  return adversarial.make_adversarial(config, problem, adversarial.options_from_config(gc),
                                      section='gan_pi',
                                      temperature=lambda count: jnp.float32(tau), uses_pi=True)


def working_set_bytes(config) -> int:
  """Activations of one step (`adversarial.working_set_bytes`)."""
  return adversarial.working_set_bytes(config, config.gan_pi.discriminator,
                                       gumbel=config.gan_pi.estimator == 'gumbel')
