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
  c.problem.source = 'random'     # 'random': N(0, init_scale²) LSTM; 'seqgan': the SeqGAN oracle;
                                  # 'ngram': a random order-k Markov chain; 'automaton': a random
                                  # probabilistic deterministic finite automaton (models/ngram.py)
  c.problem.ngram_order = 2         # 'ngram': k, the tokens of context
  c.problem.automaton_states = 8    # 'automaton': its number of states
  c.problem.automaton_out_degree = 0  # 'automaton': successors per state (0: any state)
  c.problem.state_concentration = 1.0  # 'ngram', 'automaton': each state's row ~ Dirichlet(α · 1)
  c.problem.vocab_size = 500      # V
  c.problem.seq_len = 20          # T
  c.problem.embed_dim = 32        # oracle E
  c.problem.hidden_dim = 32       # oracle H
  c.problem.init_scale = 1.0      # oracle parameters ~ N(0, 1) as SeqGAN
  c.problem.seed = 1234           # the oracle and its data are fixed across seeds
  c.problem.num_train = 10_000    # oracle samples used as training data
  c.problem.num_test = 2_000      # held-out oracle samples (nll_test, kl_pq, entropy_p)
  c.problem.num_valid = 0         # held-out oracle samples for model selection (nll_valid;
                                  # eval.select='nll_valid'), apart from the test set; 0 = none

  c.generator = ml_collections.ConfigDict()
  c.generator.kind = 'lstm'       # 'lstm' (SeqGAN's equations) | 'transformer' (causal decoder)
  c.generator.embed_dim = 32      # embedding width (the transformer's residual width D)
  c.generator.hidden_dim = 32     # LSTM state width (the transformer's MLP width)
  c.generator.num_layers = 2      # transformer blocks (kind='transformer' only)
  c.generator.num_heads = 2       # attention heads per block; divides embed_dim (transformer)
  c.generator.positions = 'learned'  # 'learned' | 'sinusoidal' position vectors (transformer)
  c.generator.init_scale = 0.1    # SeqGAN's N(0, 0.1²) generator init
  # Most bytes of float32 logits the teacher-forced log-probs hold at once (per run): 4 MiB
  # is fastest on a 2-core CPU; on accelerators larger chunks may be faster. Same values.
  c.generator.logits_chunk_bytes = 4 * 2 ** 20

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64
  c.train.num_steps = 2_000       # updates per seed; a multiple of eval_every
  c.train.eval_every = 200        # steps per jitted chunk; evaluation, checkpoint, progress after each
  # Steps per jitted chunk when chunks between evaluations are wanted: a checkpoint and a
  # progress line after each (a stop loses less of a slow run). A divisor of eval_every;
  # 0 = eval_every. Changes no number, so it is not part of the config's hash.
  c.train.checkpoint_every = 0
  c.train.learning_rate = 0.01    # Adam, as SeqGAN's generator
  c.train.grad_clip = 5.0         # global-norm clipping, as SeqGAN
  c.train.seed_strategy = 'auto'  # 'auto' (map on CPU, vmap on GPU/TPU), 'map' (lax.map), 'vmap', 'batched'
  c.train.map_batch_size = 2      # seeds per vmapped group under 'batched'
  c.train.shard = True            # split the run axis over all local devices (when > 1)
  # TensorBoard event files of every evaluation under OUTPUT_DIR/tensorboard/ (one run per
  # scheme × seed × π; `tensorboard --logdir OUTPUT_DIR`). Viewing only: numbers unchanged.
  c.train.tensorboard = True
  # MLE steps trained once per seed before any scheme; every scheme's runs of that seed start
  # from that generator (paired comparisons). 0 = every scheme starts from a fresh init.
  # A multiple of eval_every.
  c.train.warm_start_steps = 0
  # Testing only (fault injection): 'SEED:STEP' sets every float of seed SEED's runs (its
  # generator, optimiser and any discriminator) to NaN after STEP updates, inside the jitted
  # chunk, so that seed must come out diverged and the others untouched. '' = off (default).
  c.train.inject_nan = ''

  c.eval = ml_collections.ConfigDict()
  c.eval.num_samples = 2_000      # generator samples per evaluation (nll_oracle, entropy_q, kl_qp)
  c.eval.batch_size = 500         # sequences per chunk when sampling and scoring (bounds memory)
  c.eval.temperature = 1.0        # sampling temperature of the evaluated generator
  c.eval.sampler = 'icdf'         # 'icdf' (inverse CDF, fast) | 'gumbel', see models.sampling
  # Every evaluation draws num_test fresh oracle samples for the P side (nll_test, kl_pq,
  # entropy_p, js_pi), keyed like the evaluation, instead of reusing the fixed test set.
  c.eval.fresh_test = False
  # Inverse temperatures α (logits × α; Caccia et al. 2018) at which the selected generator
  # of every run is evaluated after training (rows with phase 'alpha'); () = none. One
  # compile for the whole grid.
  c.eval.alphas = ()
  # The generator the α sweep evaluates: 'last' (after training) | 'nll_valid' (per run, the
  # evaluation with the lowest nll on the validation set problem.num_valid, apart from the
  # test set that scores it: Caccia's model selection, checkpointed for resume) | 'nll_test'
  # (the same on the test set itself, as Caccia et al. did: selection and score share it).
  c.eval.select = 'last'
  # BLEU-n of the generator's samples against fresh oracle samples and Self-BLEU-n among
  # them (benchmarks/analysis/bleu.py: exact, leave-one-out; a host callback), reported as bleu and
  # self_bleu with standard errors over the samples.
  c.eval.bleu = False
  c.eval.bleu_n = 4
  # Exposure-bias diagnostic (Arora et al. 2022): per-step KL(P_t ‖ Q_t) over the full
  # vocabulary summed along the generator's own samples (exposure_model, R) and along the P
  # side (exposure_oracle, ε = kl_pq in expectation), and exacc_err = (R − ε)/ε; exact too with
  # eval.exact. Logits held per chunk: generator.logits_chunk_bytes.
  c.eval.exposure_bias = True
  # Sequences of each side the diagnostic scores: the first min(this, num_samples) Q samples
  # and min(this, num_test) of the P side; 0 = all. It costs about as much as the rest of the
  # evaluation per sequence (full-vocabulary logits of both models), hence the cap.
  c.eval.exposure_samples = 1_000
  c.eval.exact = False            # also enumerate all V^T sequences for exact divergences
  c.eval.max_enumerate = 1_000_000
  c.eval.enumerate_chunk = 4_096

  # Scheduled sampling (objectives/scheduled_sampling.py): ε_i = P(input is the data token)
  # at step i; the defaults take every schedule from ~1 to ~0.25 over small's 2,000 steps.
  c.scheduled_sampling = ml_collections.ConfigDict()
  c.scheduled_sampling.schedule = 'inverse_sigmoid'  # 'linear'|'exponential'|'inverse_sigmoid'
  c.scheduled_sampling.linear_slope = 5e-4        # ε = max(linear_min, 1 − slope·i): floor at 1,500
  c.scheduled_sampling.linear_min = 0.25          # the linear schedule's floor ε_min, in [0, 1]
  c.scheduled_sampling.exponential_base = 0.9993  # ε = base^i, base in (0, 1]: 0.25 at step ~2,000
  c.scheduled_sampling.inverse_sigmoid_k = 300.0  # ε = k/(k + e^(i/k)), k ≥ 1: .997 → .28

  # Professor forcing (objectives/professor_forcing.py, Lamb et al. 2016): per sequence,
  # −log Q(x) + g·λ·C_f, divided by T, with C_f = −log D(free-running behaviour); behaviour =
  # concat(LSTM cell state, softmax output) per step; gates g, d from D's batch accuracy.
  c.professor_forcing = ml_collections.ConfigDict()
  c.professor_forcing.weight = 1.0                 # λ ≥ 0; 1 = the paper's plain sum, 0 = MLE
  c.professor_forcing.teacher_forced_term = False  # add the optional −log(1 − D(teacher-forced))
  c.professor_forcing.disc_hidden_dim = 64         # discriminator GRU width (per direction)
  c.professor_forcing.disc_mlp_dim = 64            # width of each hidden layer of D's MLP head
  c.professor_forcing.disc_mlp_layers = 2          # hidden ReLU layers of D's MLP head (0 = linear)
  c.professor_forcing.disc_bidirectional = True    # bidirectional GRU, as in the paper
  c.professor_forcing.disc_learning_rate = 1e-3    # discriminator Adam, clipped at train.grad_clip
  c.professor_forcing.g_accuracy_threshold = 0.75  # adversarial term only when D's accuracy ≥ this
  c.professor_forcing.d_accuracy_ceiling = 0.99    # D trained only while its accuracy < this

  # CoT (objectives/cot.py, Lu et al. 2019): mediator trained on π·NLL(data) + (1−π)·NLL(G);
  # each step updates the generator, then the mediator on fresh samples of the new generator.
  c.cot = ml_collections.ConfigDict()
  c.cot.generator_learning_rate = 1e-3  # generator Adam, as CoT
  c.cot.generator_b1 = 0.9              # generator Adam β1, as CoT
  c.cot.generator_b2 = 0.95             # generator Adam β2, as CoT
  c.cot.mediator_learning_rate = 3e-3   # mediator Adam, as CoT
  c.cot.mediator_b1 = 0.9               # mediator Adam β1, as CoT
  c.cot.mediator_b2 = 0.95              # mediator Adam β2, as CoT
  c.cot.mediator_width_factor = 2       # mediator E, H = factor × the generator's (CoT: 2)
  c.cot.grad_clip = 5.0                 # global-norm clip of each network's gradient

  # Direct (objectives/direct.py): minimise a divergence using the oracle's density.
  c.direct = ml_collections.ConfigDict()
  c.direct.divergence = 'kl_qp'     # 'kl_qp' = KL(Q ‖ P) | 'js_pi' (π from the run's grid)
                                    # | 'kl_pq' = KL(P ‖ Q) (estimator 'exact' only)
  c.direct.estimator = 'per_step'   # 'per_step' (exact next-token KLs + cost-to-go) | 'score'
                                   # | 'exact' (enumerate all V^T sequences: the exact gradient)
  c.direct.baseline = 'loo'         # 'loo' (leave-one-out batch mean) | 'none'
  c.direct.learning_rate = 0.01     # Adam
  c.direct.grad_clip = 5.0          # global-norm clipping
  c.direct.optimizer = 'adam'       # 'adam' | 'lbfgs' (optax's L-BFGS; estimator 'exact' only)
  c.direct.grad_tol = 1e-3          # convergence rule: exact gradient norm ≤ this ('exact'; float32's floor is ~1e-4)
  c.direct.lbfgs_memory = 10        # L-BFGS: past updates kept (optax's default)

  # Distillation from the oracle as teacher (objectives/distill.py): per-token D(P_t, Q_t)
  # over the full vocabulary on prefixes of data, teacher or student rows. Defaults: TRL's GKD
  # (β = ½ from --pis, λ = ½, data prefixes), except the sampling temperature (TRL: 0.9).
  c.distill = ml_collections.ConfigDict()
  # 'fkl' KL(P‖Q) | 'rkl' KL(Q‖P) | 'jsd' JS_β/(β(1−β)) with β = the run's π (swept by --pis;
  # β = 0, 1 give fkl, rkl exactly) | 'skl' KL(P‖αP+(1−α)Q) | 'srkl' KL(Q‖(1−α)P+αQ) |
  # 'tvd' ½‖P−Q‖₁ | 'abkd' ABKD's α-β divergence (ab_alpha, ab_beta) | 'akl' AKL's adaptive
  # mix of fkl (head weight) and rkl (tail weight) | 'eopd' rkl + fkl where H(P_t) > τ |
  # 'taid' KL(P_t^(t)‖Q) towards TAID's interpolation of sg(Q) and P
  c.distill.divergence = 'jsd'
  # Source of the rows that are not the student's own: 'data' (the training batch) |
  # 'teacher' (fresh oracle samples, sequence-level KD) | 'student' (every row is the
  # student's sample; lmbda is then ignored).
  c.distill.prefix = 'data'
  c.distill.lmbda = 0.5             # P(a row is the student's own sample), a Bernoulli per row
  c.distill.skew_alpha = 0.1        # α of skl / srkl (DistiLLM)
  c.distill.ab_alpha = 0.5          # α of abkd (ABKD's α-β divergence; (1, 0) = fkl, (0, 1) = rkl)
  c.distill.ab_beta = 0.5           # β of abkd ((½, ½): 4× the squared Hellinger distance)
  c.distill.akl_mu = 0.5            # akl: the teacher's head mass μ (AKL's default)
  c.distill.eopd_threshold = 0.8    # eopd: teacher entropy τ in nats above which fkl is added
  c.distill.eopd_coef = 1.0         # eopd: the added fkl's coefficient
  c.distill.taid_t_start = 0.4      # taid: t at the first update (TAID's default) ...
  c.distill.taid_t_end = 1.0        # ... rising linearly to this at the last
  # 'none': per-token surrogate, no gradient through the prefixes (the papers, TRL) |
  # 'full': + the score-function term of the student rows' own law (cost-to-go Σ_{s>t} D_s),
  # so the expected update is ∇E_Q[Σ_t D_t] (rkl: exactly ∇KL(Q‖P), as `direct`).
  c.distill.cost_to_go = 'none'
  c.distill.baseline = 'loo'        # 'full' only: 'loo' (other student rows' mean) | 'none'
  # Student samples are drawn from softmax(logits / temperature), no top-k / top-p: 1.0 draws
  # from exactly Q. The loss always scores Q at temperature 1, so another value trains on
  # prefixes of a law other than the one scored (TRL's GKD samples at 0.9); refused with
  # cost_to_go='full', whose score term is that of Q's own law.
  c.distill.temperature = 1.0
  c.distill.learning_rate = 0.01    # Adam
  c.distill.grad_clip = 5.0         # global-norm clipping
  # 'sampled' (a batch of prefixes per step) | 'exact' (the expectation over every prefix,
  # enumerable problems; prefix 'teacher' or 'student')
  c.distill.estimator = 'sampled'
  c.distill.optimizer = 'adam'      # 'adam' | 'lbfgs' (optax's L-BFGS; estimator 'exact' only)
  c.distill.grad_tol = 1e-3         # convergence rule: exact gradient norm ≤ this ('exact')
  c.distill.lbfgs_memory = 10       # L-BFGS: past updates kept (optax's default)

  # KL penalties on the student's own samples (objectives/kl_estimator.py): an estimate of
  # KL(Q_t ‖ P_t) per token (the oracle as teacher) used as a loss, a reward, or both.
  # Defaults: GRPO's KL term (k3 differentiated as a loss).
  c.kl_estimator = ml_collections.ConfigDict()
  c.kl_estimator.estimator = 'k3'      # 'k1' | 'k2' | 'k3' (at the sampled token) | 'analytic'
                                       # (full vocabulary) | 'top_k' (Q_t's top_k tokens)
  c.kl_estimator.top_k = 5             # K of 'top_k'
  c.kl_estimator.renormalise = False   # 'top_k': renormalise both over the K tokens
  c.kl_estimator.use = 'loss'          # 'loss' (∇k) | 'reward' (score function) | 'both'
  c.kl_estimator.returns = 'to_go'     # the reward's return: 'to_go' Σ_{s≥t} k_s | 'total' Σ_s k_s
  c.kl_estimator.baseline = 'loo'      # 'loo' (the other rows' mean return) | 'none'
  c.kl_estimator.learning_rate = 0.01  # Adam
  c.kl_estimator.grad_clip = 5.0       # global-norm clipping

  # BOND (objectives/bond.py): Q towards the best of num_candidates samples of the frozen
  # reference (the generator where training starts) by log P, by the Jeffreys divergence
  # (1−β) KL(π_BoN‖Q) + β KL(Q‖π_BoN).
  c.bond = ml_collections.ConfigDict()
  c.bond.num_candidates = 4         # N of best-of-N
  c.bond.beta = 0.5                 # β: the backward KL's weight (J-BOND's ½)
  c.bond.estimator = 'sampled'      # 'sampled' (BOND's Monte-Carlo form) | 'exact' (enumerable)
  c.bond.quantile_samples = 64      # 'sampled': reference samples of the reward quantile p̂_≤
  c.bond.baseline = 'loo'           # 'sampled': the backward term's baseline, 'loo' | 'none'
  c.bond.learning_rate = 0.01       # Adam
  c.bond.grad_clip = 5.0            # global-norm clipping
  c.bond.optimizer = 'adam'         # 'adam' | 'lbfgs' (estimator 'exact' only)
  c.bond.grad_tol = 1e-3            # 'exact': convergence rule on the exact gradient norm
  c.bond.lbfgs_memory = 10          # L-BFGS: past updates kept

  # TaiLr (objectives/tailr.py): data NLL weighted by sg[clamp(q/(γ + (1−γ) q), min_weight, 1)]
  # of the model's own q of each data token; config.train's optimiser. γ = 0 is MLE.
  c.tailr = ml_collections.ConfigDict()
  c.tailr.gamma = 0.1               # γ (the paper's IWSLT setting; synthetic data: 1e-7)
  c.tailr.min_weight = 0.3          # lower clamp of the weight (IWSLT: 0.3; synthetic: 0.2)

  # Discriminator sizes shared by gan_pi, gumbel_gan and seqgan (models/discriminator.py).
  c.discriminator = ml_collections.ConfigDict()
  c.discriminator.embed_dim = 16               # D's own token embedding (SeqGAN: 64)
  c.discriminator.filter_widths = (1, 2, 3, 4, 5)  # CNN widths; those > T are dropped
  c.discriminator.num_filters = (16, 32, 32, 32, 16)  # filters per width (same length)
  c.discriminator.hidden_dim = 32              # LSTM discriminator width
  c.discriminator.dropout_rate = 0.25          # before the output layer (SeqGAN: keep 0.75)
  c.discriminator.learning_rate = 1e-3         # Adam, no clipping (SeqGAN: 1e-4)
  c.discriminator.l2 = 0.0                     # L2 weight on the output layer (SeqGAN: 0.2)

  # GAN with class balance π (objectives/gan_pi.py, Huszár 2015): D* = πP/(πP + (1−π)Q).
  c.gan_pi = ml_collections.ConfigDict()
  # Defaults from `python -m benchmarks.experiment gan_sweep` (docs/findings/gan_sweep.md): no
  # seed collapses on `small`. From scratch, --config.gan_pi.learning_rate=0.01
  # --config.gan_pi.d_steps=1 collapsed 1 of the sweep's 2 seeds.
  c.gan_pi.learning_rate = 1e-3          # generator Adam (clipped at train.grad_clip)
  c.gan_pi.d_learning_rate = 1e-3        # discriminator Adam
  # 'cnn' | 'lstm' | 'oracle': the exact best response l* = log πP − log (1−π)Q (untrained;
  # needs estimator 'reinforce' and no penalty)
  c.gan_pi.discriminator = 'cnn'
  c.gan_pi.generator_loss = 'minimax'    # 'minimax' (1−π)log(1−D) | 'non_saturating' −(1−π)log D
  c.gan_pi.estimator = 'reinforce'       # 'reinforce' (score function) | 'gumbel' (relaxed)
  c.gan_pi.baseline = 'mean'             # REINFORCE baseline: 'mean' (leave-one-out) | 'none'
  c.gan_pi.gumbel_tau = 1.0              # Gumbel-softmax temperature of the 'gumbel' estimator
  c.gan_pi.straight_through = False      # 'gumbel': hard one-hots forward, soft gradients
  c.gan_pi.d_steps = 5                   # discriminator updates per generator update
  c.gan_pi.penalty = 'none'              # 'none' | 'wgan_gp' | 'dragan' (Fedus et al. 2017)
  c.gan_pi.penalty_weight = 10.0         # λ on (‖∇ logit‖ − 1)²
  c.gan_pi.dragan_noise = 0.5            # DRAGAN perturbation c: x + c·std(x)·U[0, 1)

  # Gumbel-softmax GAN (objectives/gumbel_gan.py, Kusner & Hernández-Lobato 2016).
  c.gumbel_gan = ml_collections.ConfigDict()
  # From gan_sweep as gan_pi's (its rule picks lr 1e-4 with 5 discriminator updates per step);
  # collapses with --config.gumbel_gan.learning_rate=0.01.
  c.gumbel_gan.learning_rate = 1e-4      # generator Adam (clipped at train.grad_clip)
  c.gumbel_gan.d_learning_rate = 1e-3    # discriminator Adam
  c.gumbel_gan.discriminator = 'lstm'    # 'lstm' (as the paper) | 'cnn'
  c.gumbel_gan.generator_loss = 'non_saturating'  # 'non_saturating' | 'minimax' (π = 1/2)
  c.gumbel_gan.tau_schedule = 'exponential'  # 'constant' | 'exponential' | 'linear'
  c.gumbel_gan.tau_init = 1.0            # τ at generator update 0
  c.gumbel_gan.tau_min = 0.1             # floor of the annealed τ
  c.gumbel_gan.tau_decay = 1e-3          # exponential: τ = max(tau_min, tau_init·e^(−decay·i))
  c.gumbel_gan.tau_anneal_steps = 2_000  # linear: τ reaches tau_min after this many updates
  c.gumbel_gan.straight_through = False  # hard one-hots forward, soft gradients
  c.gumbel_gan.d_steps = 5               # discriminator updates per generator update
  c.gumbel_gan.penalty = 'none'          # 'none' | 'wgan_gp' | 'dragan'
  c.gumbel_gan.penalty_weight = 10.0
  c.gumbel_gan.dragan_noise = 0.5

  # SeqGAN (objectives/seqgan.py, Yu et al. 2017); phases by step: MLE, D pre-training,
  # adversarial: train.num_steps − pretrain_steps − d_pretrain_steps adversarial steps
  # (150 on small). D's budget on small: 1,000 pre-training updates (SeqGAN: ~46,800
  # minibatches of 64; ours are 64 data + 64 samples), after which D (no dropout) classifies
  # ~60% of held-out data and fresh samples right (~64% of its training batches; 150 updates
  # gave 55%, 2,000 gave 61%: more mostly memorises the 10,000 training sequences), and 20 per
  # adversarial step (SeqGAN: ~4,680). The whole run takes ~2.5 min on a 2-core CPU.
  c.seqgan = ml_collections.ConfigDict()
  c.seqgan.discriminator = 'cnn'         # 'cnn' (as the paper) | 'lstm'
  c.seqgan.pretrain_steps = 1_800        # MLE steps (SeqGAN: 120 epochs)
  c.seqgan.d_pretrain_steps = 50         # steps of discriminator pre-training
  c.seqgan.d_steps = 20                  # D updates per D-pre-training / adversarial step
  c.seqgan.num_rollouts = 4              # Monte-Carlo rollouts per prefix (SeqGAN: 16)
  # Rollout policy: 'generator' (the current generator: the paper, and what SeqGAN's code
  # computes) | 'delayed' (θ_roll ← rate·θ_roll + (1 − rate)·θ after each generator update).
  c.seqgan.rollout = 'generator'
  c.seqgan.rollout_update_rate = 0.8     # 'delayed' only (SeqGAN's intended 0.8)
  # Adam of the policy-gradient phase, separate from the MLE phase's (as SeqGAN's two
  # optimisers, both lr 0.01 and clipped at train.grad_clip); None = train.learning_rate.
  c.seqgan.pg_learning_rate = ml_collections.config_dict.placeholder(float)
  return c
