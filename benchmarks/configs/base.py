"""Fields every preset has; presets change values, never the structure.

Any field can be overridden from the command line, e.g. `--config.train.num_steps=100`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = 'base'
  c.seed = 0                      # master key: seed s of a run uses fold_in(PRNGKey(seed), s)
  c.num_seeds = 4                 # independent generator inits and training randomness
  c.schemes = 'mle'               # comma-separated names from objectives.REGISTRY, or 'all'
  c.pis = (0.1, 0.5, 0.9)         # π grid: js_pi metrics, and the sweep of π-dependent schemes

  c.problem = ml_collections.ConfigDict()
  c.problem.source = 'random'     # 'random': N(0, init_scale²) LSTM; 'seqgan': the SeqGAN oracle
  c.problem.vocab_size = 500      # V
  c.problem.seq_len = 20          # T
  c.problem.embed_dim = 32        # oracle E
  c.problem.hidden_dim = 32       # oracle H
  c.problem.init_scale = 1.0      # oracle parameters ~ N(0, 1) as SeqGAN
  c.problem.seed = 1234           # the oracle and its data are fixed across seeds
  c.problem.num_train = 10_000    # oracle samples used as training data
  c.problem.num_test = 2_000      # held-out oracle samples (nll_test, kl_pq, entropy_p)

  c.generator = ml_collections.ConfigDict()
  c.generator.embed_dim = 32
  c.generator.hidden_dim = 32
  c.generator.init_scale = 0.1    # SeqGAN's N(0, 0.1²) generator init

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64
  c.train.num_steps = 2_000       # updates per seed; a multiple of eval_every
  c.train.eval_every = 200        # steps per jitted chunk; evaluation, checkpoint, progress after each
  c.train.learning_rate = 0.01    # Adam, as SeqGAN's generator
  c.train.grad_clip = 5.0         # global-norm clipping, as SeqGAN
  c.train.seed_strategy = 'map'   # 'map' (lax.map, CPU), 'vmap' (accelerators), 'batched'
  c.train.map_batch_size = 2      # seeds per vmapped group under 'batched'

  c.eval = ml_collections.ConfigDict()
  c.eval.num_samples = 2_000      # generator samples per evaluation (nll_oracle, entropy_q, kl_qp)
  c.eval.batch_size = 500         # sequences per chunk when sampling and scoring (bounds memory)
  c.eval.temperature = 1.0        # sampling temperature of the evaluated generator
  c.eval.sampler = 'icdf'         # 'icdf' (inverse CDF, fast) | 'gumbel', see models.sampling
  c.eval.exact = False            # also enumerate all V^T sequences for exact divergences
  c.eval.max_enumerate = 1_000_000
  c.eval.enumerate_chunk = 4_096
  return c
