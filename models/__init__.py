"""Models: the LSTM shared by oracle and generator, the transformer generator, the finite-state
oracles, the oracle problem, samplers."""

from models import sampling
from models.generator import make_generator
from models.lstm import LSTMLM
from models.oracle import Problem, make_problem, random_oracle, seqgan_oracle
from models.sampling import categorical, categorical_icdf
from models.transformer import TransformerLM
