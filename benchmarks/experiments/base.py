"""Sizes and schedules several experiments share (the types are in `benchmarks.engine.experiment`)."""

from typing import Dict, List, Optional

from benchmarks import configs


# L-BFGS on an exact objective of the enumerable problem (pi_sweep's and distill's 'exact'
# runs; seeds are initialisations). Measured on pi_sweep's problem (one init, KL[P‖Q]): after
# 3,000 steps the objective still falls, by 27% more with 50 past updates than with optax's
# default 10; 500 steps left every init short of the convergence rule. Convergence is reported
# per run (train_converged), not assumed.
EXACT_SEEDS, EXACT_STEPS, EXACT_MEMORY = 16, 2_000, 50


# The learning rates gan_sweep's rule picked on `small` (docs/findings/gan_sweep.md) for the
# likelihood-trained schemes the temperature experiment compares with the GANs: every swept
# scheme got the same generator learning-rate grid (1e-2, 1e-3, 1e-4) and the same rule, and
# the GANs' picks are their config defaults. tests/test_findings.py checks these against the
# rule over gan_sweep's committed rows.
TUNED = {'mle': {'train.learning_rate': 0.01}, 'cot': {'cot.generator_learning_rate': 0.01}}


def tuning_note() -> str:
  """One sentence for a findings page: the learning rates TUNED and the GANs' defaults."""
  c = configs.get_preset('small')
  for field, value in (kv for o in TUNED.values() for kv in o.items()):
    section, name = field.split('.')
    c[section][name] = value
  return ('Tuning budget: the generator learning rate of MLE, CoT, gan_pi and gumbel_gan was '
          'picked from the same grid (1e-2, 1e-3, 1e-4) by the same rule on `small` '
          f'([gan_sweep](gan_sweep.md)): MLE {c.train.learning_rate:g}, CoT '
          f'{c.cot.generator_learning_rate:g}, gan_pi {c.gan_pi.learning_rate:g} '
          f'({c.gan_pi.d_steps} discriminator updates per step), gumbel_gan '
          f'{c.gumbel_gan.learning_rate:g} ({c.gumbel_gan.d_steps}); direct and SeqGAN run at '
          'their defaults, untuned.')


def exact_lbfgs(section: str) -> Dict[str, object]:
  """Overrides (flattened fields) of `section` ('direct' or 'distill'): the exact estimator
  descended by L-BFGS with EXACT_MEMORY past updates."""
  return {f'{section}.estimator': 'exact', f'{section}.optimizer': 'lbfgs',
          f'{section}.lbfgs_memory': EXACT_MEMORY}


def linear_ss_schedule(num_steps: int, final_eps: float) -> Dict[str, object]:
  """Overrides (flattened fields) taking scheduled sampling's ε linearly from 1 to final_eps
  over num_steps (the config's defaults are sized for `small`'s 2,000 steps)."""
  return {'scheduled_sampling.schedule': 'linear',
          'scheduled_sampling.linear_slope': (1.0 - final_eps) / num_steps,
          'scheduled_sampling.linear_min': final_eps}


def tiny_sizes(**changes) -> Dict[str, object]:
  """The `--quick` problem most experiments shrink to (V=16, T=8, 8-unit networks, 2 seeds,
  10 steps), with `changes` (flattened fields) on top."""
  sizes = {'problem.vocab_size': 16, 'problem.seq_len': 8, 'problem.embed_dim': 8,
           'problem.hidden_dim': 8, 'problem.num_train': 256, 'problem.num_test': 128,
           'generator.embed_dim': 8, 'generator.hidden_dim': 8, 'train.batch_size': 16,
           'train.num_steps': 10, 'train.eval_every': 10, 'eval.num_samples': 64,
           'eval.batch_size': 64, 'discriminator.embed_dim': 4,
           'discriminator.filter_widths': (1, 2), 'discriminator.num_filters': (4, 4),
           'discriminator.hidden_dim': 4, 'num_seeds': 2}
  sizes.update(changes)
  return sizes


def tiny_enumerable(width: int, **changes) -> Dict[str, object]:
  """The `--quick` problem of the experiments on `enumerable` (V = 3, T = 3: 27 sequences, an
  8-unit oracle, a student `width` wide, 2 seeds, 10 steps after a 10-step warm start), with
  `changes` (flattened fields) on top."""
  sizes = {'problem.vocab_size': 3, 'problem.seq_len': 3, 'problem.embed_dim': 8,
           'problem.hidden_dim': 8, 'problem.num_train': 256, 'problem.num_test': 128,
           'generator.embed_dim': width, 'generator.hidden_dim': width,
           'train.batch_size': 16, 'train.num_steps': 10, 'train.eval_every': 10,
           'train.warm_start_steps': 10, 'eval.num_samples': 64, 'eval.batch_size': 64,
           'pis': (0.5,), 'num_seeds': 2}
  sizes.update(changes)
  return sizes


def _last_step(rs: List[dict]) -> List[dict]:
  """The rows of the largest step among `rs` that did not diverge ([] for none)."""
  if not rs:
    return []
  last = max(r['step'] for r in rs)
  return [r for r in rs if r['step'] == last and not r.get('diverged')]


def warm_rows(rows, run: Optional[str] = None) -> List[dict]:
  """The last warm-start evaluation (phase 'warm_start'; of `run` when given), one row per
  seed that did not diverge."""
  return _last_step([r for r in rows if r.get('phase') == 'warm_start'
                     and (run is None or r.get('run') == run)])


def final_rows(rows, scheme: str, run: Optional[str] = None) -> List[dict]:
  """`scheme`'s last training evaluation (phase 'train'; of `run` when given), one row per
  seed that did not diverge."""
  return _last_step([r for r in rows if r.get('phase') == 'train' and r.get('scheme') == scheme
                     and (run is None or r.get('run') == run)])


def last_row_per_seed(rows, schemes=None) -> Dict[tuple, dict]:
  """{(scheme, seed): that seed's training row (phase 'train', not diverged) of the largest
  step}, over the schemes in `schemes` (all when None)."""
  last = {}
  for r in rows:
    if (r.get('phase') == 'train' and not r.get('diverged')
        and (schemes is None or r.get('scheme') in schemes)):
      key = (r['scheme'], r['seed'])
      if key not in last or r['step'] > last[key]['step']:
        last[key] = r
  return last


def exact_prefix(rows) -> str:
  """'exact_' when the rows have enumeration-exact divergences, else ''."""
  return 'exact_' if any('exact_kl_pq' in r for r in rows) else ''
