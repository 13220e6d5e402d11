"""distill — which divergence should a student minimise, on which prefixes, when the teacher's
density is known (the language-model distillation family: GKD, SKD, SeqKD, MiniLLM,
on-policy distillation, DistiLLM, TaiLr's target)?

The oracle is the teacher P, the generator the student Q. Every objective is the `distill`
scheme (objectives/distill.py): a per-token divergence D(P_t, Q_t) over the full vocabulary
summed along prefixes that are data rows, teacher samples or the student's own samples (a
Bernoulli(λ) per row), with or without the score-function term of the student rows' own law
(`cost_to_go`). The grid: every divergence × {data (λ=0), teacher (λ=0), λ=0.5 mixture,
student (λ=1)} × cost_to_go ∈ {none, full} where it differs (with λ=0 no row is the student's,
so `full` adds nothing and is not run); jsd at every β of the π grid (one compile). The
references `mle` (KL[P‖Q]) and `direct` KL[Q‖P] train beside them; every variant starts from
the same MLE warm start of its seed.

Runs:
  enumerable    the misspecified enumerable problem of pi_sweep (E = H = 4 student against
                an E = H = 16 teacher, V = 6, T = 6): exact divergences by enumeration;
  capacity_h8,  the same problem with a student of E = H = 8 and 16 (the capacity axis;
  capacity_h16  H = 4 is the `enumerable` run), for a subset of the objectives;
  small         the `small` preset (V = 500, T = 20): Monte-Carlo divergences;
  exact         the enumerable problem's objectives at convergence: every divergence on
                teacher prefixes, on the student's own (with and without the score term),
                the estimator 'exact' (the sampled loss's expectation over every prefix)
                descended by L-BFGS from EXACT_SEEDS initialisations (no warm start; Adam
                for student prefixes without the score term, a surrogate field no function
                has as gradient), jsd at β = ½. fkl on teacher prefixes is then argmin
                KL[P‖Q] and rkl on student prefixes with the score term argmin KL[Q‖P]: the
                others are placed against those two minimisers, with convergence reported per
                run. Its claims judge the best of each objective's initialisations in the
                divergence it is named after (`best_inits`), as pi_sweep's exact run does: an
                initialisation stuck in a poor local minimum says nothing about the
                objective's minimiser.
The sequence-level skew KLs and TV are not evaluation metrics; the gradient-fidelity rows
(`python -m benchmarks.measure.gradient_fidelity`) answer whether those surrogates descend them.
"""

import math

import numpy as np

from benchmarks import configs
from benchmarks.analysis import figures
from benchmarks.analysis import stats
from benchmarks.analysis import verdicts
from benchmarks.engine import experiment as experiment_lib
from benchmarks.experiments import base

DIVERGENCES = ('fkl', 'rkl', 'jsd', 'skl', 'srkl', 'tvd')
# setting -> distill overrides (the prefixes and the gradient through them)
SETTINGS = {
    'data': {'prefix': 'data', 'lmbda': 0.0},
    'teacher': {'prefix': 'teacher', 'lmbda': 0.0},
    'mix': {'prefix': 'data', 'lmbda': 0.5},
    'mix_full': {'prefix': 'data', 'lmbda': 0.5, 'cost_to_go': 'full'},
    'student': {'prefix': 'student'},
    'student_full': {'prefix': 'student', 'cost_to_go': 'full'},
}
MARKERS = {'data': 'o', 'teacher': 's', 'mix': '^', 'mix_full': 'v', 'student': 'D',
           'student_full': 'P'}
COLORS = {'fkl': 'tab:red', 'rkl': 'tab:purple', 'jsd': 'tab:blue', 'skl': 'tab:orange',
          'srkl': 'tab:green', 'tvd': 'tab:brown', 'mle': 'k', 'direct_kl_qp': 'k',
          'warm start': 'tab:gray'}
REFERENCES = {'mle': ('mle', {}), 'direct_kl_qp': ('direct', {'direct.divergence': 'kl_qp'})}
# The sequence-level divergence each objective is named after, as evaluation metrics.
NAMED = {'fkl': 'kl_pq', 'rkl': 'kl_qp', 'jsd': 'js_scaled'}
PIS = (0.1, 0.25, 0.5, 0.75, 0.9)
WIDTH, QUICK_WIDTH = 4, 2  # the `enumerable` run's student E = H (teacher: 16; --quick: 8)
CAPACITY = ('mle', 'direct_kl_qp', 'fkl_teacher', 'rkl_student', 'rkl_student_full', 'jsd_mix')
# The 'exact' run's prefix settings (objectives/distill.py estimator 'exact': no 'data').
EXACT_SETTINGS = ('teacher', 'student', 'student_full')
# One compile each: every prefix setting, the score term and three divergences (skl and srkl
# are pinned against the sampled loss by tests/test_distill.py instead).
QUICK = ('mle', 'fkl_data', 'rkl_student_full', 'jsd_mix', 'tvd_student')

_SMALL = configs.get_preset('small')  # the learning rates the page states


def variant(divergence: str, setting: str):
  """(scheme, overrides) of one objective."""
  return 'distill', {'distill.divergence': divergence,
                     **{f'distill.{k}': v for k, v in SETTINGS[setting].items()}}


def all_variants():
  """{label: (scheme, overrides)}: the references, then every divergence × setting."""
  out = dict(REFERENCES)
  for d in DIVERGENCES:
    for s in SETTINGS:
      out[f'{d}_{s}'] = variant(d, s)
  return out


def exact_variants(settings=EXACT_SETTINGS, divergences=DIVERGENCES):
  """{label: (scheme, overrides)} of the 'exact' run: each divergence × setting, L-BFGS
  where the update is the loss's gradient, Adam on the surrogate field of the student's
  prefixes without the score term (objectives/distill.py refuses L-BFGS there)."""
  out = {}
  for d in divergences:
    for s in settings:
      o = dict(variant(d, s)[1], **base.exact_lbfgs('distill'))
      if s == 'student':
        o['distill.optimizer'] = 'adam'
      out[f'{d}_{s}'] = ('distill', o)
  return out


def split_label(label: str):
  """'rkl_student_full' -> ('rkl', 'student_full'); references -> (label, None)."""
  head, _, tail = label.partition('_')
  return (head, tail) if head in DIVERGENCES else (label, None)


def runs(options):
  """The enumerable run, the capacity runs and the `small` run (see the module docstring)."""
  every = all_variants()
  if options.quick:
    tiny = base.tiny_enumerable(QUICK_WIDTH, pis=(0.1, 0.9))
    exact = dict(tiny, **{'train.warm_start_steps': 0, 'pis': (0.5,)})
    return {
        'enumerable': experiment_lib.Run('enumerable', tiny, {k: every[k] for k in QUICK}),
        'exact': experiment_lib.Run('enumerable', exact, exact_variants(('teacher',), ('fkl',))),
        'small': experiment_lib.Run('small', base.tiny_sizes(**{'train.warm_start_steps': 10,
                                                     'pis': (0.5,)}),
                          {k: every[k] for k in ('jsd_student',)}),
    }
  enum = {'generator.embed_dim': WIDTH, 'generator.hidden_dim': WIDTH,
          'train.num_steps': 1_000,
          'train.eval_every': 250, 'train.warm_start_steps': 500, 'eval.num_samples': 2_000,
          'pis': PIS, 'num_seeds': 16}
  # The exact run first: the question about minimisers, in about a third of the time.
  out = {'exact': experiment_lib.Run('enumerable', {
      'generator.embed_dim': WIDTH, 'generator.hidden_dim': WIDTH, 'pis': (0.5,),
      'train.num_steps': base.EXACT_STEPS, 'train.eval_every': 500,
      'eval.num_samples': 2_000, 'num_seeds': base.EXACT_SEEDS}, exact_variants()),
      'enumerable': experiment_lib.Run('enumerable', enum, every)}
  for h in (8, 16):
    out[f'capacity_h{h}'] = experiment_lib.Run(
        'enumerable', dict(enum, **{'generator.embed_dim': h, 'generator.hidden_dim': h}),
        {k: every[k] for k in CAPACITY})
  out['small'] = experiment_lib.Run('small', {'train.num_steps': 1_000, 'train.eval_every': 500,
                                    'train.warm_start_steps': 1_000,
                                    'pis': (0.1, 0.5, 0.9), 'num_seeds': 8}, every)
  return out


# --------------------------------------------------------------------------- rows -> numbers

def final_rows(rows):
  """{(run, label, π): [rows of the last training step, not diverged]} (phase 'train')."""
  out = {}
  for (run, label, pi), steps in stats.groups(
      [r for r in rows if r.get('phase') == 'train'], by=('run', 'scheme', 'pi')).items():
    out[(run, label, pi)] = [r for r in steps[max(steps)] if not r['diverged']]
  return out


def value(row, metric: str, pi=None, prefix: str = ''):
  """A row's metric; 'js_scaled' = JS_π / (π(1−π)) at π (the scaled jsd's sequence level)."""
  if metric == 'js_scaled':
    js = (row.get(prefix + 'js_pi') or {}).get(f'{pi:g}')
    return None if js is None else js / (pi * (1 - pi))
  return row.get(prefix + metric)


def values(rows, metric, pi=None, prefix=''):
  return [value(r, metric, pi, prefix) for r in rows]


def paired(a_rows, b_rows, metric, pi=None, prefix=''):
  """Per seed present in both: value(a) − value(b)."""
  return stats.paired(a_rows, b_rows, lambda r: value(r, metric, pi, prefix))


def objectives(final, run):
  """[(label, π, rows)] of one run: every variant (jsd at each π) in first-seen order."""
  return [(label, pi, rs) for (r, label, pi), rs in final.items() if r == run and rs]


def frontier(points):
  """Labels of the points (label, kl_qp, kl_pq) that no other point beats in both KLs."""
  out = []
  for label, x, y in points:
    if not any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for _, x2, y2 in points):
      out.append(label)
  return out


def _name(label, pi):
  return label if pi is None else f'{label} β={pi:g}'


def findings(rows, final, run):
  """Sentences computed from the rows of one run (never a hard-coded conclusion)."""
  pre = base.exact_prefix([r for r in rows if r.get('run') == run])
  kind = 'exact' if pre else 'Monte-Carlo'
  objs = objectives(final, run)
  if not objs:
    return [f'- `{run}`: no finished variant yet.']
  means = [(_name(label, pi), stats.mean_ci(values(rs, 'kl_qp', prefix=pre))[0],
            stats.mean_ci(values(rs, 'kl_pq', prefix=pre))[0]) for label, pi, rs in objs]
  means = [m for m in means if math.isfinite(m[1]) and math.isfinite(m[2])]
  lines = []
  if means:
    best_pq = min(means, key=lambda m: m[2])
    best_qp = min(means, key=lambda m: m[1])
    front = frontier(means)
    lines.append(
        f'- `{run}` ({kind}): the lowest KL[P‖Q] is reached by `{best_pq[0]}` '
        f'({best_pq[2]:.4f}, its KL[Q‖P] {best_pq[1]:.4f}), the lowest KL[Q‖P] by '
        f'`{best_qp[0]}` ({best_qp[1]:.4f}, its KL[P‖Q] {best_qp[2]:.4f}). '
        f'{len(front)} of {len(means)} objectives are on the trade-off front (no other '
        f'beats them in both KLs): {", ".join(f"`{f}`" for f in front)}.')
  # Does on-policy sampling matter? student (λ=1) against data prefixes, paired by seed.
  on_policy = []
  for d in DIVERGENCES:
    metric = 'kl_qp' if d in ('rkl', 'srkl') else 'kl_pq'
    for pi in _pis(final, run, f'{d}_data'):
      diff = paired(final.get((run, f'{d}_student', pi), []),
                    final.get((run, f'{d}_data', pi), []), metric, prefix=pre)
      m, h, n = stats.mean_ci(diff)
      if n >= 2 and math.isfinite(h):
        on_policy.append(f'{_name(d, pi)}: {m:+.4f} ± {h:.2g} on {metric}')
  if on_policy:
    lines.append(f'- `{run}`: student prefixes minus data prefixes, paired by seed (95% CI): '
                 + '; '.join(on_policy) + '.')
  # Do the surrogates descend the divergences they are named after?
  warm = base.warm_rows(rows, run)
  descent = []
  for label, pi, rs in objs:
    d, setting = split_label(label)
    if d not in NAMED or not warm:
      continue
    diff = paired(rs, warm, NAMED[d], pi, pre)
    m, h, n = stats.mean_ci(diff)
    if n:
      down = sum(x < 0 for x in diff)
      descent.append((_name(label, pi), m, h, down, n))
  if descent:
    fell = [x for x in descent if x[3] == x[4]]
    rose = [x for x in descent if x[3] == 0]
    lines.append(
        f'- `{run}`: from the warm start, the sequence-level divergence an objective is named '
        f'after (fkl: KL[P‖Q], rkl: KL[Q‖P], jsd: JS_β/(β(1−β))) fell in every seed for '
        f'{len(fell)} of {len(descent)} objectives and rose in every seed for {len(rose)}'
        + (': ' + ', '.join(f'`{x[0]}` ({x[1]:+.4f})' for x in rose) if rose else '') + '.')
  # Exposure bias: on-policy vs off-policy ExAccErr.
  ex = {}
  for label, pi, rs in objs:
    _, setting = split_label(label)
    if setting is not None:
      ex.setdefault(setting, []).extend(values(rs, 'exacc_err', prefix=pre))
  if ex:
    lines.append(f'- `{run}`: ExAccErr (R − ε)/ε by prefix setting, pooled over divergences: '
                 + '; '.join(f'{s} {stats.fmt_ci(v)}' for s, v in ex.items()) + '.')
  return lines


def _pis(final, run, label):
  return [pi for (r, l, pi) in final if r == run and l == label] or [None]


# --------------------------------------------------------------------------- drawings

def _point(label, pi, rs, pre, **kw):
  d, setting = split_label(label)
  return dict({'label': label if setting is None else f'{d}', 'color': COLORS.get(d, 'k'),
               'marker': MARKERS.get(setting, 'x' if label == 'mle' else '+'),
               'kl_qp': values(rs, 'kl_qp', prefix=pre),
               'kl_pq': values(rs, 'kl_pq', prefix=pre)}, **kw)


def draw_plane(ax, rows, final, run):
  """Every objective of `run` on the KL[Q‖P]–KL[P‖Q] plane (jsd at β = ½ and its β curve)."""
  pre = base.exact_prefix([r for r in rows if r.get('run') == run])
  warm = base.warm_rows(rows, run)
  points = []
  if warm:
    points.append({'label': 'warm start', 'color': COLORS['warm start'], 'marker': '*',
                   'kl_qp': values(warm, 'kl_qp', prefix=pre),
                   'kl_pq': values(warm, 'kl_pq', prefix=pre)})
  for label, pi, rs in objectives(final, run):
    if pi is None or abs(pi - 0.5) < 1e-9:
      points.append(_point(label, pi, rs, pre))
  figures.kl_plane(ax, points, annotate=False)
  for label in {l for (r, l, pi) in final if r == run and pi is not None}:
    xy = sorted((pi, stats.mean_ci(values(rs, 'kl_qp', prefix=pre))[0],
                 stats.mean_ci(values(rs, 'kl_pq', prefix=pre))[0])
                for (r, l, pi), rs in final.items() if r == run and l == label and rs)
    ax.plot([x for _, x, _ in xy], [y for _, _, y in xy], color=COLORS['jsd'], lw=0.6,
            alpha=0.5, marker=MARKERS[split_label(label)[1]], ms=2)
  ax.set_xscale('log')  # the warm start sits an order of magnitude above the trained points
  ax.set_yscale('log')
  ax.set_title(f'{run}: {"exact" if pre else "Monte-Carlo"}; jsd at β=½ (line: β grid); '
               'log axes', fontsize=8)
  for s, m in MARKERS.items():  # a legend of the markers (prefix settings)
    ax.plot([], [], m, color='gray', label=f'[{s}]', ls='')
  figures.dedupe_legend(ax, fontsize=6, ncol=2)


# Each run's references for the paired differences (KL[P‖Q]'s, KL[Q‖P]'s): the trained
# references, or in the exact run the two minimisers (fkl on teacher prefixes is argmin
# KL[P‖Q]; rkl on the student's own with the score term argmin KL[Q‖P]).
PAIRED_REFERENCES = {'exact': ('fkl_teacher', 'rkl_student_full')}
DEFAULT_REFERENCES = ('mle', 'direct_kl_qp')


def draw_paired(axes, rows, final, run):
  """Two panels for `run`: each objective's paired difference (per seed, mean ± 95% CI) from
  the KL[P‖Q] reference in KL[P‖Q] and from the KL[Q‖P] reference in KL[Q‖P] — what the
  verdicts compare — jsd at β = ½; one row per objective, a zero line."""
  pre = base.exact_prefix([r for r in rows if r.get('run') == run])
  refs = PAIRED_REFERENCES.get(run, DEFAULT_REFERENCES)
  items = [(label, pi, rs) for label, pi, rs in objectives(final, run)
           if pi is None or abs(pi - 0.5) < 1e-9]
  for ax, ref, metric, name in zip(axes, refs, ('kl_pq', 'kl_qp'), ('KL[P‖Q]', 'KL[Q‖P]')):
    base_rows = final.get((run, ref, None), [])
    if not base_rows:
      ax.text(0.5, 0.5, f'no rows of `{ref}` in this run', ha='center', fontsize=7,
              transform=ax.transAxes)
    for i, (label, pi, rs) in enumerate(items):
      m, h, n = stats.mean_ci(paired(rs, base_rows, metric, prefix=pre))
      if n and math.isfinite(m):
        d, setting = split_label(label)
        ax.errorbar(m, i, xerr=np.nan_to_num(h), fmt=MARKERS.get(setting, 'x'), ms=4,
                    color=COLORS.get(d, 'k'), capsize=2, lw=0.8)
    ax.axvline(0, color='k', lw=0.6)
    ax.set_yticks(range(len(items)), [_name(l, p) for l, p, _ in items], fontsize=5)
    ax.invert_yaxis()
    ax.set_xscale('symlog', linthresh=1e-3)
    ax.set_xlabel(f'{name} − {name} of `{ref}` (paired by seed)', fontsize=7)
    ax.set_title(f'{run} ({"exact" if pre else "Monte-Carlo"}): {name}', fontsize=8)


def draw(rows, output_dir, options):
  """Figures: paired differences, the KL plane of `small`, the jsd β sweep, exposure bias,
  capacity; the tables."""
  final = final_rows(rows)
  runs_present = list(dict.fromkeys(r['run'] for r in rows if 'run' in r))
  plane_runs = [r for r in ('enumerable', 'small') if r in runs_present]
  paired_runs = [r for r in ('exact', 'enumerable', 'small') if r in runs_present]
  fig, axes = figures.subplots(1, 2 * max(1, len(paired_runs)), width=3.4, height=6.0)
  for j, run in enumerate(paired_runs):
    draw_paired(axes[0, 2 * j:2 * j + 2], rows, final, run)
  figures.save(fig, f'{output_dir}/distill_paired.png')
  if 'small' in runs_present:  # the enumerable runs' planes are dozens of overlapping crosses
    fig, axes = figures.subplots(1, 1, width=6.0, height=5.0)
    draw_plane(axes[0, 0], rows, final, 'small')
    figures.save(fig, f'{output_dir}/distill_plane.png')

  # The β sweep of jsd (each prefix setting), on the enumerable run (or the first present).
  run = plane_runs[0] if plane_runs else (runs_present[0] if runs_present else None)
  pre = base.exact_prefix([r for r in rows if r.get('run') == run])
  fig, axes = figures.subplots(1, 2, width=4.6, height=3.6)
  for ax, metric, title in zip(axes.flat, ('kl_pq', 'kl_qp'), ('KL[P‖Q]', 'KL[Q‖P]')):
    for s in SETTINGS:
      pis = sorted(pi for (r, l, pi) in final if r == run and l == f'jsd_{s}' and pi is not None)
      if pis:
        figures.band(ax, pis, [values(final[(run, f'jsd_{s}', p)], metric, prefix=pre)
                               for p in pis], label=f'jsd [{s}]', marker=MARKERS[s])
    for ref, ls in (('mle', '--'), ('direct_kl_qp', ':')):
      m = stats.mean_ci(values(final.get((run, ref, None), []), metric, prefix=pre))[0]
      if math.isfinite(m):
        ax.axhline(m, color='k', ls=ls, lw=1, label=ref)
    ax.set_xlabel('β (the run\'s π)')
    ax.set_title(f'{title} per token after jsd ({run})', fontsize=8)
  figures.dedupe_legend(axes[0, 0], fontsize=6)
  figures.save(fig, f'{output_dir}/distill_beta.png')

  # Exposure bias by objective (ExAccErr; jsd at β = ½).
  fig, axes = figures.subplots(1, max(1, len(plane_runs)), width=5.5, height=7.0)
  for ax, run in zip(axes.flat, plane_runs):
    pre = base.exact_prefix([r for r in rows if r.get('run') == run])
    items = [('warm start', base.warm_rows(rows, run))] + [
        (label, rs) for label, pi, rs in objectives(final, run)
        if pi is None or abs(pi - 0.5) < 1e-9]
    m, h, _ = figures.mean_ci_arrays([values(rs, 'exacc_err', prefix=pre) for _, rs in items])
    ypos = np.arange(len(items))
    colors = [COLORS.get(split_label(l)[0], 'k') if l != 'warm start' else 'gray'
              for l, _ in items]
    ax.barh(ypos, np.nan_to_num(m), xerr=np.nan_to_num(h), color=colors, alpha=0.7)
    ax.set_yticks(ypos, [l for l, _ in items], fontsize=6)
    ax.axvline(0, color='k', lw=0.6)
    ax.set_xlabel('ExAccErr = (R − ε)/ε')
    ax.set_title(f'{run}: exposure bias ({"exact" if pre else "MC"})', fontsize=8)
  figures.save(fig, f'{output_dir}/distill_exposure.png')

  # Capacity: KLs against the student's width.
  cap_runs = sorted((int(r.split('_h')[1]), r) for r in runs_present if r.startswith('capacity_h'))
  if 'enumerable' in runs_present:
    cap_runs = sorted(cap_runs + [(QUICK_WIDTH if options.quick else WIDTH, 'enumerable')])
  if cap_runs:
    fig, axes = figures.subplots(1, 2, width=4.6, height=3.6)
    hs = [h for h, _ in cap_runs]
    for ax, metric, title in zip(axes.flat, ('kl_pq', 'kl_qp'), ('KL[P‖Q]', 'KL[Q‖P]')):
      for label in CAPACITY:
        pi = 0.5 if label.startswith('jsd') else None
        groups = [values(final.get((r, label, pi), []), metric,
                         prefix=base.exact_prefix([x for x in rows if x.get('run') == r]))
                  for _, r in cap_runs]
        if any(groups):
          d, s = split_label(label)
          figures.band(ax, hs, groups, label=_name(label, pi), color=COLORS.get(d, 'k'),
                       marker=MARKERS.get(s, 'x'))
      ax.set_xscale('log', base=2)
      ax.set_xlabel('student E = H (teacher: 16)')
      ax.set_title(f'{title} per token', fontsize=8)
    figures.dedupe_legend(axes[0, 0], fontsize=6)
    figures.save(fig, f'{output_dir}/distill_capacity.png')

  lines = []
  for run in runs_present:
    lines += table(rows, final, run) + ['']
  lines += ['**What was measured.**'] + [x for run in runs_present
                                        for x in findings(rows, final, run)]
  return '\n'.join(lines) + '\n'


def table(rows, final, run):
  """The markdown table of one run: every objective's KLs, entropy and ExAccErr."""
  pre = base.exact_prefix([r for r in rows if r.get('run') == run])
  warm = base.warm_rows(rows, run)
  lbfgs = any('train_converged' in r for r in rows if r.get('run') == run)
  last = ('converged (L-BFGS) |' if lbfgs else 'named divergence Δ from warm start |')
  lines = [f'### {run} ({"exact, by enumeration" if pre else "Monte-Carlo"}; per token, '
           'mean ± 95% CI over ' + ('initialisations' if lbfgs else 'seeds') + ')', '',
           '| objective | β | seeds | KL[P‖Q] | KL[Q‖P] | H(Q) | ExAccErr | ' + last,
           '|---|---|---|---|---|---|---|---|']
  items = ([('warm start', None, warm)] if warm else []) + objectives(final, run)
  for label, pi, rs in items:
    d, _ = split_label(label)
    if lbfgs:  # every step of the last evaluation interval within grad_tol
      end = f'{sum(1 for r in rs if r.get("train_converged") == 1.0)}/{len(rs)}'
    else:
      end = (stats.fmt_ci(paired(rs, warm, NAMED[d], pi, pre))
             if d in NAMED and label != 'warm start' else '–')
    lines.append(f'| {label} | {"–" if pi is None else f"{pi:g}"} | {len(rs)} | '
                 + ' | '.join(stats.fmt_ci(values(rs, m, prefix=pre))
                              for m in ('kl_pq', 'kl_qp', 'entropy_q', 'exacc_err'))
                 + f' | {end} |')
  return lines


NAMED_AFTER = {'fkl': 'exact_kl_pq', 'rkl': 'exact_kl_qp'}  # the divergence each is named after


def best_inits(rows):
  """Derived rows (phase 'best_init') of the `exact` run: per fkl or rkl objective, the final
  row of the initialisation with the lowest value of the divergence it is named after (for
  fkl on teacher prefixes and rkl on student prefixes with the score term, that is the
  objective L-BFGS minimised: the best minimiser found; for the others the same rule, the
  best that objective reached from its initialisations), with `inits`, `on_policy` (student
  prefixes) and `score_term` (student_full) for the claims' comparisons."""
  out = []
  for (run, label, _), rs in sorted(final_rows(rows).items(), key=lambda kv: kv[0][:2]):
    divergence, setting = split_label(label)
    metric = NAMED_AFTER.get(divergence)
    if run != 'exact' or metric is None:
      continue
    scored = [r for r in rs if r.get(metric) is not None and math.isfinite(r[metric])]
    if scored:
      out.append(dict(min(scored, key=lambda r: r[metric]), phase='best_init', inits=len(rs),
                      on_policy=int(setting != 'teacher'),
                      score_term=int(setting == 'student_full')))
  return out


def claims(options):
  """Two predictions of the distillation literature, for fkl (named after KL[P‖Q]) and rkl
  (KL[Q‖P]) in the runs `enumerable` (exact divergences) and `small` (Monte-Carlo):
  on-policy prefixes (the student's own samples, GKD / on-policy distillation) end lower in
  the divergence the objective is named after than data prefixes (supervised KD), and the
  objective on data prefixes lowers that divergence from the shared MLE warm start. In the
  `exact` run, on the best initialisation of each objective (`best_inits`; computed rows, so
  certain either way): on-policy against teacher prefixes, and rkl's per-token surrogate on
  the student's prefixes against the same objective with its score term (argmin KL[Q‖P])."""
  rs = runs(options)
  out = []
  for run, exact in (('enumerable', True), ('small', False)):
    if run not in rs:
      continue
    labels = set(rs[run].variants)
    for d, named in (('fkl', 'kl_pq'), ('rkl', 'kl_qp')):
      metric = ('exact_' if exact else '') + named
      name = 'KL[P‖Q]' if named == 'kl_pq' else 'KL[Q‖P]'
      def final(label, run=run, metric=metric):
        return verdicts.Select({'run': run, 'scheme': label, 'phase': 'train'}, metric)
      if {f'{d}_student', f'{d}_data'} <= labels:
        out.append(verdicts.Difference(
            f'{run}_{d}_on_policy', f'`{run}`: {d} on the student\'s own prefixes ends lower '
            f'in {name} than on data prefixes', final(f'{d}_student'), final(f'{d}_data'), -1))
      if f'{d}_data' in labels:
        warm = verdicts.Select({'run': run, 'phase': 'warm_start'}, metric)
        out.append(verdicts.Difference(
            f'{run}_{d}_descends', f'`{run}`: {d} on data prefixes lowers {name} from the '
            'MLE warm start', final(f'{d}_data'), warm, -1))
  labels = set(rs['exact'].variants)
  best = {'run': 'exact', 'phase': 'best_init'}
  for d, named in (('fkl', 'kl_pq'), ('rkl', 'kl_qp')):
    name = 'KL[P‖Q]' if named == 'kl_pq' else 'KL[Q‖P]'
    pair = (f'{d}_teacher', f'{d}_student')
    if set(pair) <= labels:
      out.append(verdicts.ComputedTrend(
          f'exact_{d}_on_policy', f'`exact` (the best of each objective\'s initialisations in '
          f"{name}): {d} on the student's own prefixes ends lower in {name} than on teacher "
          'prefixes', dict(best, scheme=pair), 'on_policy', 'exact_' + named, -1))
  pair = ('rkl_student', 'rkl_student_full')
  if set(pair) <= labels:
    out.append(verdicts.ComputedTrend(
        'exact_rkl_surrogate', "`exact` (the best of each objective's initialisations in "
        "KL[Q‖P]): rkl on the student's own prefixes without the score term ends higher in "
        'KL[Q‖P] than with it (then it is argmin KL[Q‖P]): the per-token surrogate\'s fixed '
        'point is not the minimiser', dict(best, scheme=pair), 'score_term', 'exact_kl_qp', -1))
  return out


EXPERIMENT = experiment_lib.Experiment(
    name='distill',
    claim=('Distillation objectives (GKD, SKD, SeqKD, on-policy distillation, MiniLLM, '
           'DistiLLM, TaiLr) each choose a per-token divergence and a prefix source; with a '
           'teacher of known density we measure which sequence-level trade-off each reaches, '
           'whether on-policy prefixes matter, and whether the token-level surrogates descend '
           'the sequence-level divergences they are named after.'),
    runs=runs, draw=draw, claims=claims, derive=best_inits,
    explanation=(
        'How to read them. Every objective starts from the same MLE warm start of its seed '
        'and trains as many steps, so each difference pairs runs of one seed. fkl is named '
        'after KL[P‖Q] and rkl after KL[Q‖P]: each is judged on its own divergence, exact on '
        '`enumerable`, Monte-Carlo on `small`. The tables below give every objective and '
        'both KLs; the trade-off front is a description of the means, not a verdict. The '
        '`exact` run\'s claims compare computed best initialisations (see the table of the '
        'exact run for convergence). Tuning budget: every distillation objective trains with '
        f'Adam at distill.learning_rate ({_SMALL.distill.learning_rate:g}), the references '
        f'MLE and direct at {_SMALL.train.learning_rate:g} and '
        f'{_SMALL.direct.learning_rate:g}: one learning rate, tuned for none of them.'))
