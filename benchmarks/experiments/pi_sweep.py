"""pi_sweep — Huszár's central claim: JS_π interpolates between KL[P‖Q] (π → 0) and KL[Q‖P]
(π → 1).

The generator is misspecified (E = H = 4 against an E = H = 16 oracle on V = 6, T = 6, all
46,656 sequences enumerable): otherwise every divergence is minimised at Q = P and there is no
trade-off to interpolate. From one MLE warm start per seed, it trains
  `direct` on JS_π with the oracle's density (the reference), `gan_pi` with the oracle
  discriminator (minimax and non-saturating losses) and `gan_pi` with a learned discriminator,
for every π of the grid (π and seeds in one compile per variant), plus the end points `mle`
(KL[P‖Q]) and `direct` KL[Q‖P]. Every divergence is exact (enumeration). The oracle GANs use
direct's learning rate (ORACLE_LR), the learned one gan_pi's defaults.

The 'exact' run asks the question about minimisers: `direct` with the exact estimator (every
sequence enumerated over the prefix tree) and L-BFGS descends KL[P‖Q], KL[Q‖P] and JS_π on a
fine π grid (EXACT_PIS) to the convergence rule (direct.grad_tol on the exact gradient norm);
its seeds are different initialisations of the same deterministic problem (no sampling, no
data), so the spread over seeds shows local minima and the best seed is the best end point
found (a minimiser as far as the convergence rule and the other end points show). Then the
polish stage (`polish`, the experiment's computation once the runs have finished): each
objective is descended again by L-BFGS from the best of all the exact run's end points scored
on it, so every objective starts at least as low as any point found for any objective. Each row reports train_converged (the share of its last interval's steps within
tolerance).
"""

import math
import os

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import configs
from benchmarks.analysis import figures
from benchmarks.analysis import stats
from benchmarks.analysis import verdicts
from benchmarks.engine import configuration
from benchmarks.engine import evaluate as train_evaluate
from benchmarks.engine import experiment as experiment_lib
from benchmarks.engine import rundir
from benchmarks.engine import train
from benchmarks.experiments import base
from models import oracle
import objectives
from objectives import direct

PIS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
# The oracle-discriminator GANs step like `direct` (Adam lr 0.01): with the minimax loss their
# expected gradient is direct's, so what differs is the estimator (sequence-level REINFORCE
# against direct's per-step one). The learned-discriminator GAN uses gan_pi's defaults.
ORACLE_LR = 0.01
_ENUM = configs.get_preset('enumerable')  # the learning rates the page states
# label -> (scheme, overrides)
VARIANTS = {
    'mle': ('mle', {}),
    'direct_kl_qp': ('direct', {'direct.divergence': 'kl_qp'}),
    'direct_js': ('direct', {'direct.divergence': 'js_pi'}),
    'gan_oracle_minimax': ('gan_pi', {'gan_pi.discriminator': 'oracle',
                                      'gan_pi.learning_rate': ORACLE_LR,
                                      'gan_pi.generator_loss': 'minimax'}),
    'gan_oracle_ns': ('gan_pi', {'gan_pi.discriminator': 'oracle',
                                 'gan_pi.learning_rate': ORACLE_LR,
                                 'gan_pi.generator_loss': 'non_saturating'}),
    'gan_learned': ('gan_pi', {'gan_pi.discriminator': 'cnn'}),
}
SWEPT = ('direct_js', 'gan_oracle_minimax', 'gan_oracle_ns', 'gan_learned')
# The 'exact' run: L-BFGS on the exact objectives, from EXACT_SEEDS initialisations.
EXACT_PIS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)


def _exact_variant(divergence):
  return ('direct', dict(base.exact_lbfgs('direct'), **{'direct.divergence': divergence}))


EXACT = {'exact_kl_pq': _exact_variant('kl_pq'), 'exact_kl_qp': _exact_variant('kl_qp'),
         'exact_js': _exact_variant('js_pi')}
COLORS = {'direct_js': 'k', 'gan_oracle_minimax': 'tab:blue', 'gan_oracle_ns': 'tab:orange',
          'gan_learned': 'tab:green', 'mle': 'tab:red', 'direct_kl_qp': 'tab:purple',
          'warm_start': 'tab:gray', 'exact_js': 'tab:brown', 'exact_kl_pq': 'tab:red',
          'exact_kl_qp': 'tab:purple'}


def runs(options):
  """One run: the misspecified enumerable problem, every variant sharing the warm start."""
  if options.quick:
    o = {'problem.vocab_size': 3, 'problem.seq_len': 3, 'problem.embed_dim': 8,
         'problem.hidden_dim': 8, 'problem.num_train': 256, 'problem.num_test': 128,
         'generator.embed_dim': 2, 'generator.hidden_dim': 2,
         'train.batch_size': 16, 'train.num_steps': 10, 'train.eval_every': 10,
         'train.warm_start_steps': 10, 'eval.num_samples': 64, 'eval.batch_size': 64,
         'discriminator.embed_dim': 4, 'discriminator.filter_widths': (1, 2),
         'discriminator.num_filters': (4, 4), 'pis': (0.1, 0.5, 0.9), 'num_seeds': 2}
  else:
    o = {'generator.embed_dim': 4, 'generator.hidden_dim': 4,
         'train.num_steps': 1_000, 'train.eval_every': 100, 'train.warm_start_steps': 500,
         'eval.num_samples': 2_000, 'pis': PIS, 'num_seeds': 16}
  variants = VARIANTS
  if options.quick:  # fewer compiles: the end points, the reference and one GAN of each kind
    variants = {k: VARIANTS[k] for k in ('mle', 'direct_kl_qp', 'direct_js',
                                         'gan_oracle_minimax', 'gan_learned')}
    exact = {k: v for k, v in o.items() if k.startswith('problem.') or k.startswith('eval.')}
    exact.update({'generator.embed_dim': 2, 'generator.hidden_dim': 2, 'pis': (0.1, 0.5, 0.9),
                  'train.num_steps': 10, 'train.eval_every': 10, 'num_seeds': 2})
    exact_variants = {'exact_js': EXACT['exact_js']}  # one compile: what the claims judge
  else:
    exact = {'generator.embed_dim': 4, 'generator.hidden_dim': 4, 'pis': EXACT_PIS,
             'train.num_steps': base.EXACT_STEPS, 'train.eval_every': 500,
             'eval.num_samples': 2_000, 'num_seeds': base.EXACT_SEEDS}
    exact_variants = EXACT
  # The exact run first: it answers the question about minimisers, in a third of the time.
  return {'exact': experiment_lib.Run('enumerable', exact, exact_variants),
          'enumerable': experiment_lib.Run('enumerable', o, variants)}


def _final(rows):
  """{(variant, π): [rows of the last step]} of the training rows (phase 'train')."""
  training = stats.groups([r for r in rows if r.get('phase') == 'train'])
  return {k: [r for r in steps[max(steps)] if not r['diverged']]
          for k, steps in training.items()}


def _js_scaled(row, pi):
  js = (row.get('exact_js_pi') or {}).get(f'{pi:g}')
  return None if js is None else js / (pi * (1 - pi))


def _values(rs, metric, pi=None):
  if metric == 'js_scaled':
    return [_js_scaled(r, pi) for r in rs]
  return [r.get(metric) for r in rs]


def _paired_distances(rows, reference):
  """Per seed present in both: the distance between the two (KL[Q‖P], KL[P‖Q]) points."""
  ref = {r['seed']: r for r in reference}
  return [math.hypot(r['exact_kl_qp'] - ref[r['seed']]['exact_kl_qp'],
                     r['exact_kl_pq'] - ref[r['seed']]['exact_kl_pq'])
          for r in rows if r['seed'] in ref]


def findings(final, pis, swept=SWEPT):
  """Numbers behind the verdicts: the ends of each curve and departures from direct."""
  if not pis:
    return ['- No swept variant has rows yet.']
  lines = []
  for v in swept:
    means = [stats.mean_ci(_values(final.get((v, p), []), 'exact_kl_qp'))[0] for p in pis]
    means_pq = [stats.mean_ci(_values(final.get((v, p), []), 'exact_kl_pq'))[0] for p in pis]
    if not all(math.isfinite(m) for m in means + means_pq):
      lines.append(f'- `{v}`: some π has no finished seed.')
      continue
    dec_qp = sum(b > a for a, b in zip(means, means[1:]))
    inc_pq = sum(b < a for a, b in zip(means_pq, means_pq[1:]))
    lines.append(
        f'- `{v}`: from π={pis[0]:g} to π={pis[-1]:g}, mean KL[Q‖P] {means[0]:.4f} → '
        f'{means[-1]:.4f} (up at {dec_qp} of the {len(pis) - 1} steps of the π grid) and mean '
        f'KL[P‖Q] {means_pq[0]:.4f} → {means_pq[-1]:.4f} (down at {inc_pq}).')
    if v in SWEPT and v != 'direct_js':
      gaps = {p: _paired_distances(final.get((v, p), []), final.get(('direct_js', p), []))
              for p in pis}
      every = [g for p in pis for g in gaps[p]]
      if every:
        worst = max((p for p in pis if gaps[p]), key=lambda p: np.mean(gaps[p]))
        lines.append(f'  Paired distance from `direct_js` in the (KL[Q‖P], KL[P‖Q]) plane: '
                     f'mean {np.mean(every):.4f}, largest at π={worst:g}.')
  return lines


def _run_final(rows, run):
  """{(variant, π): [rows of the last step]} of one run's training rows."""
  return _final([r for r in rows if r.get('run') == run])


def _along(rows):
  """The derived best-end-point rows of the exact run (`best_inits`), in order of position
  (0: KL[P‖Q]'s, then JS_π's by π, 1: KL[Q‖P]'s)."""
  return sorted((r for r in rows if r.get('phase') == 'best_init' and r.get('run') == 'exact'),
                key=lambda r: r['position'])


def exact_lines(rows, output_dir):
  """The 'exact' run: figure pi_sweep_exact.png and its table (numbers only)."""
  final = _run_final(rows, 'exact')
  if not final:
    return ['No rows of the exact run.']
  pis = sorted({p for (v, p) in final if v == 'exact_js' and p is not None})
  fig, axes = figures.subplots(1, 2, width=4.6, height=3.6)
  along = _along(rows)
  for ax, (metric, title) in zip(axes.flat, (('exact_kl_pq', 'KL[P‖Q]'),
                                             ('exact_kl_qp', 'KL[Q‖P]'))):
    # Every initialisation's end point (log axis: a degenerate one sits orders of magnitude
    # above), the best end point found along π, the two KLs' at its ends.
    best = [r[metric] for r in along]
    top = 10 * max(best) if best else math.inf  # the axis shows a decade above the best
    for v, at in (('exact_kl_pq', lambda p: 0.0), ('exact_js', lambda p: p),
                  ('exact_kl_qp', lambda p: 1.0)):
      for p in ([None] if v != 'exact_js' else pis):
        ys = [y for y in _values(final.get((v, p), []), metric) if y and math.isfinite(y)]
        ax.plot([at(p)] * len(ys), [min(y, top) for y in ys], '.', color='0.6', ms=3,
                label='each initialisation' if ys else None)
        above = sum(y > top for y in ys)
        if above:
          ax.plot([at(p)], [top], '^', color='0.3', ms=5,
                  label='inits above the axis (count beside)')
          ax.annotate(str(above), (at(p), top), fontsize=6, xytext=(3, -8),
                      textcoords='offset points')
    ax.plot([r['position'] for r in along], [r[metric] for r in along], '-', color='k', lw=1,
            label='best end point (lowest objective)')
    for r in along:
      if r['end_point']:
        v = 'exact_kl_pq' if r['position'] == 0.0 else 'exact_kl_qp'
        ax.plot(r['position'], r[metric], '*' if v == 'exact_kl_pq' else 'P', ms=9,
                color=COLORS[v], mec='k', mew=0.5, ls='',
                label=f'{"KL[P‖Q]" if v == "exact_kl_pq" else "KL[Q‖P]"}\'s best end point')
      else:
        ax.plot(r['position'], r[metric], 'o', ms=3, color=COLORS['exact_js'],
                label='JS_π\'s best end point')
    ax.set_yscale('log')
    if best:
      ax.set_ylim(top=top * 1.5)
    ax.set_xlabel('π (0: L-BFGS on KL[P‖Q], 1: on KL[Q‖P])')
    ax.set_title(f'{title} per token after L-BFGS (log axis)', fontsize=9)
  figures.dedupe_legend(axes[0, 0], fontsize=6)
  figures.save(fig, f'{output_dir}/pi_sweep_exact.png')
  lines = ['The exact run (L-BFGS on the exact objectives; seeds are initialisations):', '',
           '| variant | π | inits | converged | scaled gradient norm | KL[P‖Q] | KL[Q‖P] | H(Q) | '
           'best init: KL[P‖Q] | best init: KL[Q‖P] |', '|---|---|---|---|---|---|---|---|---|---|']
  keys = [(v, None) for v in ('exact_kl_pq', 'exact_kl_qp') if (v, None) in final]
  keys += [('exact_js', p) for p in pis]
  for v, p in keys:
    rs = final.get((v, p), [])
    best = _best(rs, v, p)  # of the exact run's initialisations (before any polish)
    conv = sum(1 for r in rs if r.get('train_converged') == 1.0)
    scale = 1.0 if p is None else p * (1 - p)  # JS_π / (π(1−π)): the KLs at its limits
    norms = [r['train_grad_norm'] / scale for r in rs if r.get('train_grad_norm') is not None]
    lines.append(f'| {v} | {"–" if p is None else f"{p:g}"} | {len(rs)} | {conv}/{len(rs)} | '
                 + (f'{np.median(norms):.2g}' if norms else 'n/a') + ' | '
                 + ' | '.join(stats.fmt_ci(_values(rs, c)) for c in
                              ('exact_kl_pq', 'exact_kl_qp', 'exact_entropy_q'))
                 + ' | ' + ' | '.join(f'{best[c]:.4f}' if best else 'n/a'
                                      for c in ('exact_kl_pq', 'exact_kl_qp')) + ' |')
  lines += ['', '"converged": the run\'s exact gradient norm was within direct.grad_tol at '
            'every step of its last evaluation interval. That tolerance is absolute, on each '
            'objective\'s own scale, and JS_π is of order π(1−π): on JS_π/(π(1−π)) it is '
            '1/(π(1−π)) times looser'
            + (f' ({1 / (pis[0] * (1 - pis[0])):.0f} times at π = {pis[0]:g})' if pis else '')
            + ', so "converged" compares runs within a π only. "Scaled gradient norm": the '
            'median over initialisations of the mean exact '
            'gradient norm over the last evaluation interval, divided by π(1−π) for JS_π (the '
            'gradient of JS_π/(π(1−π)), whose limits are the two KLs): it compares across π. '
            'Best init: the seed with the lowest exact objective at the last evaluation.', '']
  polished = _polished(rows)
  shown = {(r['scheme'], r['pi']): r for r in rows if r.get('run') == 'polish'}  # diverged too
  if shown:
    lines += ['The polish stage (L-BFGS on each objective again, as many steps, from the best '
              'of every end point above scored on that objective):', '',
              '| variant | π | started from | objective there | objective after | converged | '
              'scaled gradient norm | KL[P‖Q] | KL[Q‖P] |', '|---|---|---|---|---|---|---|---|---|']
    for v, p in keys:
      r = shown.get((v, p))
      if r is None or r['diverged']:
        if r is not None:
          lines.append(f'| {v} | {"–" if p is None else f"{p:g}"} | diverged | | | | | | |')
        continue
      start = r['start_scheme'] + (f' π={r["start_pi"]:g}' if r['start_pi'] is not None
                                   else '') + f' init {r["start_seed"]}'
      scale = 1.0 if p is None else p * (1 - p)
      lines.append(f'| {v} | {"–" if p is None else f"{p:g}"} | {start} | '
                   f'{r["start_objective"]:.5g} | {_objective(r, v, p):.5g} | '
                   f'{r["train_converged"]:.2f} | {r["train_grad_norm"] / scale:.2g} | '
                   f'{r["exact_kl_pq"]:.5g} | {r["exact_kl_qp"]:.5g} |')
    lines += ['', '"converged" here: the share of the last evaluation interval\'s steps within '
              'direct.grad_tol.', '']
  for metric, sign, name in (('exact_kl_pq', +1, 'KL[P‖Q]'), ('exact_kl_qp', -1, 'KL[Q‖P]')):
    vs = [r[metric] for r in along]
    if len(vs) < 2:
      continue
    steps = [b - a for a, b in zip(vs, vs[1:])]
    k = int(np.argmax(np.abs(steps)))
    lines.append(
        f'- The best end point\'s {name} along π (KL[P‖Q]\'s at 0, KL[Q‖P]\'s at 1): '
        f'{vs[0]:.4f} → {vs[-1]:.4f}; {sum(sign * d < 0 for d in steps)} of {len(steps)} '
        f'steps go the other way; the largest change between neighbours, {vs[k]:.4f} → '
        f'{vs[k + 1]:.4f}, lies between π = {along[k]["position"]:g} and '
        f'{along[k + 1]["position"]:g}.')
  # Whether each best end point is the lowest value of its own objective found: every end
  # point (any objective's, any initialisation's, the polish stage's) scored on that objective.
  ends = [r for rs in final.values() for r in rs] + list(polished.values())
  js = [r for r in along if not r['end_point']]
  below = [r for r in js
           if _lowest(ends, 'exact_js', r['pi'])[0] < _objective(r, 'exact_js', r['pi'])]
  if js:
    listed = ', '.join(f'{r["pi"]:g}' for r in below)
    lines.append(
        f'- For {len(below)} of the {len(js)} π another end point has a lower JS_π than the '
        'best end point found for that π'
        + (f' (π = {listed})' if below else '')
        + ': there the best end point found is not the global minimiser of JS_π.')
  for r in (r for r in along if r['end_point']):
    v = r['scheme']
    name, at = ('KL[P‖Q]', '0') if v == 'exact_kl_pq' else ('KL[Q‖P]', '1')
    x, o = _lowest(ends, v, None)
    where = o['scheme'] + (f' at π = {o["pi"]:g}' if o['scheme'] == 'exact_js' else '')
    lines.append(
        f'- L-BFGS on {name} ends at best at {r[v]:.5g}; the lowest {name} of any end point '
        f'is {x:.5g} ({where}' + (', polish stage' if o.get('run') == 'polish' else
                                   f', initialisation {o["seed"]}') + ')'
        + (f': the end point at π = {at} is not the minimiser of its own objective.'
           if x < r[v] else '.'))
  return lines


def _lowest(rows, variant, pi):
  """(value, row): the lowest exact objective of (variant, pi) over `rows` (any rows with the
  field: end points of other objectives too); (inf, {}) if none."""
  scored = [(_objective(r, variant, pi), r) for r in rows]
  scored = [(x, r) for x, r in scored if x is not None and math.isfinite(x)]
  return min(scored, key=lambda t: t[0]) if scored else (math.inf, {})


def _objective(row, variant, pi):
  """The exact objective an 'exact' variant minimised, from its evaluation row."""
  if variant == 'exact_js':
    return (row.get('exact_js_pi') or {}).get(f'{pi:g}')
  return row.get(variant)  # 'exact_kl_pq' / 'exact_kl_qp' are also the metrics' names


def _best(rs, variant, pi):
  """The row of the seed with the lowest final exact objective, or None."""
  return _lowest(rs, variant, pi)[1] or None


def _restore(scheme, state_dict):
  """A stored run state (nested dicts of a checkpoint) in the structure of scheme.init."""
  template = jax.eval_shape(scheme.init, jax.random.PRNGKey(0))
  return flax.serialization.from_state_dict(template, state_dict)


def _end_points(resolved, problem, exact_dir):
  """[(label, π, seed, generator params)] of every run of the exact run that did not diverge,
  from its final checkpoints; None if a checkpoint is missing (the run has not finished)."""
  out = []
  for label, (name, cfg) in resolved.items():
    path = rundir.checkpoint_path(exact_dir, label)
    if not os.path.exists(path):
      return None
    saved = rundir.read_checkpoint(path)
    if int(saved['step']) != cfg.train.num_steps:
      return None
    scheme = objectives.make(name, cfg, problem)
    grid = train.run_grid(scheme, range(cfg.num_seeds), cfg.pis)
    for r, (seed, pi) in enumerate(grid):
      if not np.asarray(saved['diverged'])[r]:
        state = jax.tree_util.tree_map(lambda x, r=r: np.asarray(x)[r], saved['states'])
        out.append((label, pi, seed, scheme.generator_params(_restore(scheme, state))))
  return out


def polish(options, runs_dir):
  """Rows of the 'polish' stage (phase 'polish'), computed once the exact run has finished.

  Every exact objective (KL[P‖Q], KL[Q‖P], JS_π at each π of the grid) is scored at every end
  point of the exact run (any objective's, any initialisation's), and L-BFGS descends it again,
  as many steps as the exact run took, from the best of them: a continuation that starts each
  objective at least as low as any point the run found (the JS_π at a neighbouring π is often
  the better start). The row reports where it started (`start_scheme`, `start_pi`,
  `start_seed`, `start_objective`), the exact run's metrics at the end, and train_loss /
  train_grad_norm / train_converged over the last evaluation interval as the runs do.
  """
  config, variants = experiment_lib.resolve(EXPERIMENT, options)['exact']
  resolved = configuration.resolve_variants(config, variants)
  problem = oracle.make_problem(config.problem)
  ends = _end_points(resolved, problem, os.path.join(runs_dir, 'exact'))
  if not ends:
    return []
  stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *[e[3] for e in ends])
  key = jax.random.PRNGKey(config.seed)
  generator = objectives.make(*next(iter(resolved.values())), problem).generator
  log_p_all = problem.model.apply(problem.params, method='all_log_probs')
  # Every variant shares the generator and the evaluation settings: one evaluation program.
  evaluate = jax.jit(train_evaluate.make_evaluate(problem, generator, config.eval, config.pis))
  rows = []
  for label, (name, cfg) in resolved.items():
    scheme = objectives.make(name, cfg, problem)
    batch = problem.train[:cfg.train.batch_size]  # unused by the exact estimator
    steps, every = cfg.train.num_steps, cfg.train.eval_every

    def objective(params, pi, cfg=cfg):  # the exact objective `direct` descends (per token)
      return direct.exact_objective(generator.apply(params, method='all_log_probs'),
                                    log_p_all, pi, divergence=cfg.direct.divergence,
                                    seq_len=cfg.problem.seq_len)
    score = jax.jit(jax.vmap(objective, in_axes=(0, None)))

    @jax.jit
    def descend(params, pi, scheme=scheme, batch=batch, steps=steps, every=every):
      def body(state, i):
        return scheme.step(state, batch, jax.random.fold_in(key, i), pi)
      state, metrics = jax.lax.scan(body, scheme.init(key, params), jnp.arange(steps))
      return scheme.generator_params(state), jax.tree_util.tree_map(
          lambda m: m[steps - every:], metrics)
    for pi in (cfg.pis if scheme.uses_pi else (None,)):
      at = jnp.float32(np.nan if pi is None else pi)
      values = np.asarray(score(stacked, at))
      if not np.isfinite(values).any():
        continue
      i = int(np.nanargmin(np.where(np.isfinite(values), values, np.nan)))
      start = jax.tree_util.tree_map(lambda x, i=i: x[i], stacked)
      params, metrics = descend(start, at)
      finite = all(bool(np.isfinite(np.asarray(x)).all())
                   for x in jax.tree_util.tree_leaves(params))
      evals = jax.tree_util.tree_map(lambda x: np.asarray(x)[None],
                                     evaluate(params, jax.random.fold_in(key, steps)))
      s_label, s_pi, s_seed, _ = ends[i]
      rows += train.rows_of(
          label, [(s_seed, pi)], steps, evals,
          {k: np.asarray(v)[None] for k, v in metrics.items()}, np.array([not finite]),
          dict(pis_grid=cfg.pis, run='polish', phase='polish', start_scheme=s_label,
               start_pi=s_pi, start_seed=s_seed, start_objective=float(values[i])))
  return rows


def _polished(rows):
  """{(variant, π): the 'polish' row} (compute rows of `polish`)."""
  return {(r['scheme'], r['pi']): r for r in rows
          if r.get('run') == 'polish' and r.get('phase') == 'polish' and not r['diverged']}


def best_inits(rows):
  """Derived rows (phase 'best_init'): per exact objective and π, the row with the lowest
  final objective among the exact run's initialisations and the polish stage's descent (which
  starts at least as low) — the best end point found — with `position` = π for JS_π, 0 for
  KL[P‖Q] and 1 for KL[Q‖P] (JS_π/(π(1−π))'s limits), `end_point` for the two KLs, `inits`
  the initialisations of the exact run and `polished` whether the polish stage's row won."""
  out = []
  polished = _polished(rows)
  for (v, p), rs in _run_final(rows, 'exact').items():
    extra = [polished[(v, p)]] if (v, p) in polished else []
    best = _best(rs + extra, v, p)
    if best is not None:
      out.append(dict(best, phase='best_init', run='exact', inits=len(rs),
                      polished=best.get('run') == 'polish', end_point=v != 'exact_js',
                      position={'exact_kl_pq': 0.0, 'exact_kl_qp': 1.0}.get(v, p)))
  return out


def claims(options):
  """The exact run, on the best end point found per objective (`best_inits`): the end points
  trade off (misspecification), and along π from KL[P‖Q]'s through JS_π's to KL[Q‖P]'s the
  best end point's KL[P‖Q] rises and its KL[Q‖P] falls overall (the sign of
  the least-squares slope; certain either way). The enumerable run: Huszár's prediction as
  trends in π of each swept variant's end point, per seed."""
  rs = runs(options)
  out = []
  best = {'run': 'exact', 'phase': 'best_init'}
  exact = set(rs['exact'].variants)
  for metric, sign, name, text in (('exact_kl_pq', +1, 'KL[P‖Q]', 'rises'),
                                   ('exact_kl_qp', -1, 'KL[Q‖P]', 'falls')):
    if {'exact_kl_pq', 'exact_kl_qp'} <= exact:
      lower, other = (('KL[P‖Q]', 'KL[Q‖P]') if metric == 'exact_kl_pq' else
                      ('KL[Q‖P]', 'KL[P‖Q]'))
      out.append(verdicts.ComputedTrend(
          f'tradeoff_{metric[6:]}', f'misspecified: the best end point found for {lower} has '
          f'a lower {name} than that of {other}', dict(best, end_point=True), 'position',
          metric, sign))
    if 'exact_js' in exact:
      out.append(verdicts.ComputedTrend(
          f'exact_js_{metric[6:]}', f'from the best end point for KL[P‖Q] (π → 0) through '
          f'those for JS_π to that for KL[Q‖P] (π → 1), the {name} {text} overall', best,
          'position', metric, sign))
  for label in SWEPT:
    if label not in rs['enumerable'].variants:
      continue
    pis = rs['enumerable'].overrides.get('pis') or ()
    for metric, sign, text in (('exact_kl_pq', +1, 'rises'), ('exact_kl_qp', -1, 'falls')):
      where = lambda p: {'run': 'enumerable', 'scheme': label, 'pi': p, 'phase': 'train'}
      out.append(verdicts.Trend(
          f'{label}_{metric[6:]}', f'`{label}` (enumerable run): the end point\'s '
          f'KL[{"P‖Q" if metric == "exact_kl_pq" else "Q‖P"}] {text} as π grows',
          [(p, verdicts.Select(where(p), metric)) for p in pis], sign))
  return out


def draw(rows, output_dir, options):
  """Figure 1: the KL plane; figure 2: divergences against π; the table."""
  del options
  final = _final(rows)
  pis = sorted({p for (v, p) in final if p is not None and v in SWEPT})
  warm = base.warm_rows(rows)

  fig, axes = figures.subplots(1, 1, width=6.4, height=5.0)
  ax = axes[0, 0]
  points = []
  if warm:
    points.append({'label': 'warm start', 'kl_qp': _values(warm, 'exact_kl_qp'),
                   'kl_pq': _values(warm, 'exact_kl_pq'), 'color': COLORS['warm_start'],
                   'marker': 'x'})
  for v, marker in (('mle', 's'), ('direct_kl_qp', 'D')):
    rs = final.get((v, None), [])
    if rs:
      points.append({'label': f'{v} (end point)', 'kl_qp': _values(rs, 'exact_kl_qp'),
                     'kl_pq': _values(rs, 'exact_kl_pq'), 'color': COLORS[v],
                     'marker': marker})
  figures.kl_plane(ax, points)
  for v in SWEPT:  # each scheme's mean over seeds along π; only the ends are labelled
    xy = [(stats.mean_ci(_values(final.get((v, p), []), 'exact_kl_qp')),
           stats.mean_ci(_values(final.get((v, p), []), 'exact_kl_pq'))) for p in pis]
    xs, ys = [x[0] for x, _ in xy], [y[0] for _, y in xy]
    ax.errorbar(xs, ys, xerr=[np.nan_to_num(x[1]) for x, _ in xy],
                yerr=[np.nan_to_num(y[1]) for _, y in xy], color=COLORS[v], marker='o', ms=3,
                lw=1, elinewidth=0.5, alpha=0.8, capsize=0, label=v)
    for i in (0, len(pis) - 1) if pis else ():
      if math.isfinite(xs[i]) and math.isfinite(ys[i]):
        ax.annotate(f'π={pis[i]:g}', (xs[i], ys[i]), fontsize=6, color=COLORS[v],
                    xytext=(4, -8 if i == 0 else 4), textcoords='offset points')
  along = _along(rows)  # the best end points found (best initialisation)
  best = [b for b in along if not b['end_point']]
  if best:
    ax.plot([b['exact_kl_qp'] for b in best], [b['exact_kl_pq'] for b in best], '--', marker='.',
            color=COLORS['exact_js'], lw=1, label='JS_π (exact run, best end point)')
  for v, marker in (('exact_kl_pq', '*'), ('exact_kl_qp', 'P')):
    for b in (b for b in along if b['scheme'] == v):
      name = 'KL[P‖Q]' if v == 'exact_kl_pq' else 'KL[Q‖P]'
      ax.plot(b['exact_kl_qp'], b['exact_kl_pq'], marker, ms=9, color=COLORS[v], mec='k',
              mew=0.5, ls='', label=f'{name} (exact run, best end point)')
  ax.set_title('Exact divergences after training (mean ± 95% CI over seeds)', fontsize=9)
  figures.dedupe_legend(ax, fontsize=6)
  figures.save(fig, f'{output_dir}/pi_sweep_plane.png')

  metrics = (('exact_kl_pq', 'KL[P‖Q]'), ('exact_kl_qp', 'KL[Q‖P]'),
             ('exact_entropy_q', 'entropy of Q'), ('js_scaled', 'JS_π / (π(1−π))'))
  fig, axes = figures.subplots(1, 4, width=4.0, height=3.3)
  for ax, (metric, title) in zip(axes.flat, metrics):
    for v in SWEPT:
      figures.band(ax, pis, [_values(final.get((v, p), []), metric, p) for p in pis],
                   label=v, color=COLORS[v], marker='o')
    if metric != 'js_scaled':
      for v, ls in (('mle', '--'), ('direct_kl_qp', ':')):
        m = stats.mean_ci(_values(final.get((v, None), []), metric))[0]
        if math.isfinite(m):
          ax.axhline(m, color=COLORS[v], ls=ls, lw=1, label=v)
    ax.set_xlabel('π')
    ax.set_title(f'{title} per token')
  figures.dedupe_legend(axes[0, 0], fontsize=7)
  figures.save(fig, f'{output_dir}/pi_sweep_curves.png')

  cols = ['exact_kl_pq', 'exact_kl_qp', 'exact_entropy_q']
  lines = ['| variant | π | seeds | KL[P‖Q] | KL[Q‖P] | H(Q) | JS_π/(π(1−π)) |',
           '|---|---|---|---|---|---|---|']
  order = [('warm start', None, warm)] + [(v, None, final.get((v, None), []))
                                          for v in ('mle', 'direct_kl_qp')]
  order += [(v, p, final.get((v, p), [])) for v in SWEPT for p in pis]
  for v, p, rs in order:
    js = stats.fmt_ci(_values(rs, 'js_scaled', p)) if p is not None else '–'
    lines.append(f'| {v} | {"–" if p is None else f"{p:g}"} | {len(rs)} | '
                 + ' | '.join(stats.fmt_ci(_values(rs, c)) for c in cols) + f' | {js} |')
  h_p = stats.mean_ci([r.get('exact_entropy_p') for r in rows if r.get('step') == 0])[0]
  lines += ['', f'Per token, exact (enumeration); mean ± 95% CI over seeds. H(P) = {h_p:.4f}.',
            '', '**What was measured.**'] + findings(final, pis)
  mle = final.get(('mle', None), [])
  if mle:
    m, h, _ = stats.mean_ci(_values(mle, 'exact_kl_pq'))
    lines.append(f'- Misspecification: MLE\'s exact KL[P‖Q] = {stats.fmt(m, h)} per token '
                 '(0 only if the generator could match P).')
  lines += [''] + exact_lines(rows, output_dir)
  return '\n'.join(lines) + '\n'


EXPERIMENT = experiment_lib.Experiment(
    name='pi_sweep',
    claim=('JS_π interpolates between KL[P‖Q] (π → 0) and KL[Q‖P] (π → 1) for a '
           'misspecified generator (Huszár 2015); GANs with the oracle or a learned '
           'discriminator should then trade the two KLs the same way along π.'),
    runs=runs, draw=draw, claims=claims, derive=best_inits, compute=polish,
    partial_compute=False,  # it needs the exact run's final checkpoints
    explanation=(
        'How to read them. The `exact` run\'s claims are about the end points of L-BFGS: '
        'each objective was descended from 16 initialisations of one deterministic problem, '
        'and the claims judge the best end point found for each (the lowest value of it '
        'among the end points the tables below list), with '
        'KL[P‖Q]\'s at π = 0 and KL[Q‖P]\'s at π = 1 (the limits of '
        'JS_π/(π(1−π))); "overall" is the sign of the least-squares slope along π, computed, '
        'not sampled, so certain for these end points and no more. They are minimisers only '
        'as far as the table and the lines under it show: how many runs met the convergence '
        'rule, how many steps along π go the other way, and where another end point scores '
        'lower on an objective than that objective\'s own best. The `enumerable` run\'s '
        'trends are the mean over seeds of each seed\'s least-squares slope of the end '
        'point\'s divergence on π (seeds pair across π: the same warm start and keys) after '
        'a fixed number of Adam steps, so they are about where training got. Tuning budget: '
        f'`direct` and the oracle-discriminator GANs train with Adam at one learning rate '
        f'({_ENUM.direct.learning_rate:g}; ORACLE_LR = {ORACLE_LR:g}), after a warm start of '
        f'MLE at {_ENUM.train.learning_rate:g}; the learned-discriminator GAN at gan_pi\'s '
        f'defaults (lr {_ENUM.gan_pi.learning_rate:g}, {_ENUM.gan_pi.d_steps} discriminator '
        'updates per step: gan_sweep\'s picks on `small`); none is tuned on this problem. The '
        'exact run has no learning rate (L-BFGS with a line search).'))
