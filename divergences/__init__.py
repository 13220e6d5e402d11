"""Divergences between categorical and autoregressive sequence distributions."""

from divergences.categorical import entropy
from divergences.categorical import js_pi
from divergences.categorical import js_pi_scaled
from divergences.categorical import kl
from divergences.sequence import enumerate_sequences
from divergences.sequence import exact
from divergences.sequence import mean_and_se
from divergences.sequence import monte_carlo
