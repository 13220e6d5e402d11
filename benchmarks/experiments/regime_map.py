"""regime_map — which objective wins in which regime: data size, capacity, length, vocabulary.

A *point* is one problem and generator size: the training-set size n (problem.num_train), the
generator's width w (generator.embed_dim = hidden_dim; the oracle's is 32), the sequence
length T and the vocabulary V, everything else `small`'s (its random N(0, 1) LSTM oracle).
A *slice* varies two of these and fixes the others (SLICES): not the full product of the
axes, which the CPU could not train. Each point is one run of the runner: every objective of
every slice through it is a variant of that run, so they share the problem, the data and the
seeds (paired comparisons), and a point two slices share is trained once.

Every objective trains for STEPS steps (8 seeds) and is selected by the same rule: the
evaluation with the lowest nll on a validation set of its own (problem.num_valid, apart from
the fresh test samples that score it; eval.select = 'nll_valid'), then evaluated at the
inverse temperatures ALPHAS. The objectives (OBJECTIVES): MLE (at the learning rate
gan_sweep picked, base.TUNED), CoT (likewise), scheduled sampling (ε linearly from 1 to 0.25
over the run), and distillation from the oracle (jsd at β = ½ on data prefixes and on the
student's own, forward KL on teacher prefixes: density-aware references). The GAN measured
best so far (gan_pi at gan_sweep's defaults from an MLE warm start, as the temperature
experiment trains it) has a run of its own at the data slice's points at the oracle's width
(GAN_SLICE): the warm start is MLE for STEPS steps, then GAN_STEPS GAN steps, selected by
the same rule.

What is computed from the rows (`derive`): each objective's selected generator under the
label of every point it answers for (phase 'at_point'; 'best_at_point' at its best α: the α of
ALPHAS with its lowest mean over seeds of that KL, picked on the same fresh test samples that
score it, for every objective alike), whether it was still improving at its last evaluation,
each objective's per-seed difference from MLE at its point (phase 'vs_mle') and the gain of
student over data prefixes (phase 'prefix_gain'). Per slice, KL and view (VIEWS: with or
without the objectives that read the oracle's density, at α = 1 or each at its best α), the
map names each point's leader by `verdicts.leader`: the best mean, resolved only when its
paired differences with every other candidate pass Holm's levels.
"""

import math
from typing import Dict, Mapping, NamedTuple, Tuple

import numpy as np

from benchmarks.analysis import figures
from benchmarks.analysis import stats
from benchmarks.analysis import verdicts
from benchmarks.engine import experiment as experiment_lib
from benchmarks.experiments import base

STEPS, EVAL_EVERY, SEEDS = 1_000, 100, 8
GAN_STEPS = 600           # gan_pi's steps after the warm start (as the temperature experiment)
ALPHAS = (0.8, 0.9, 1.0, 1.1, 1.25)
NUM_VALID = 2_000         # the validation set that selects every objective's generator
KLS = ('kl_pq', 'kl_qp')
MLE, GAN = 'mle', 'gan_pi'

# Axis name -> the config fields its value sets (flattened).
AXES = {'data': ('problem.num_train',), 'width': ('generator.embed_dim', 'generator.hidden_dim'),
        'length': ('problem.seq_len',), 'vocab': ('problem.vocab_size',)}
SYMBOL = {'data': 'n', 'width': 'w', 'length': 't', 'vocab': 'v'}  # run labels: n1000_w32_...
TITLE = {'data': 'training sequences n', 'width': 'generator width (E = H)',
         'length': 'sequence length T', 'vocab': 'vocabulary V'}
# `small`'s point (the oracle is 32 wide), and the --quick problem's (base.tiny_sizes).
DEFAULT = {'data': 16_000, 'width': 32, 'length': 20, 'vocab': 500}
QUICK_DEFAULT = {'data': 256, 'width': 8, 'length': 8, 'vocab': 16}


def objectives(num_steps: int) -> Dict[str, Tuple[str, Dict[str, object]]]:
  """{label: (scheme, overrides)} of every objective a slice may name."""
  return {
      MLE: ('mle', base.TUNED['mle']),
      'cot': ('cot', base.TUNED['cot']),
      'scheduled_sampling': ('scheduled_sampling', base.linear_ss_schedule(num_steps, 0.25)),
      'distill_data': ('distill', {'distill.divergence': 'jsd', 'distill.prefix': 'data',
                                   'distill.lmbda': 0.0}),
      'distill_student': ('distill', {'distill.divergence': 'jsd',
                                      'distill.prefix': 'student'}),
      'fkl_teacher': ('distill', {'distill.divergence': 'fkl', 'distill.prefix': 'teacher',
                                  'distill.lmbda': 0.0}),
  }


COLORS = {MLE: 'k', 'cot': 'tab:green',
          'scheduled_sampling': 'tab:orange', 'distill_data': 'tab:cyan',
          'distill_student': 'tab:blue', 'fkl_teacher': 'tab:purple', GAN: 'tab:red'}


class Slice(NamedTuple):
  """Two axes varied (x, then y), the others at `fixed` or the default point.

  axes: two names of AXES; values: the values of each (positive integers, increasing);
  objectives: labels of `objectives()` trained at every point; fixed: {axis: value} of the
  axes not varied that differ from the default point.
  """
  axes: Tuple[str, str]
  values: Tuple[Tuple[int, ...], Tuple[int, ...]]
  objectives: Tuple[str, ...]
  fixed: Mapping[str, int] = {}


ALL = (MLE, 'cot', 'scheduled_sampling', 'distill_data', 'distill_student', 'fkl_teacher')
SLICES = {
    # (a), (c): every objective over data size and capacity at T = 20, V = 500.
    'data_capacity': Slice(('data', 'width'), ((1_000, 4_000, 16_000, 64_000), (16, 32, 64)),
                           ALL),
    # (b): exposure bias over length and capacity, at 16,000 sequences.
    'length_capacity': Slice(('length', 'width'), ((10, 20, 40, 80), (16, 32, 64)),
                             (MLE, 'scheduled_sampling', 'distill_student')),
    # (d): vocabulary (SeqGAN's oracle has 5,000 words) against data size, at width 32.
    'vocab_data': Slice(('vocab', 'data'), ((100, 500, 2_000), (1_000, 16_000)),
                        (MLE, 'cot', 'scheduled_sampling')),
}
# --quick: two tiny runs through the whole pipeline (CI time, issue 25; a line of one point
# has no trend claim); the claims' and maps' arithmetic is pinned on constructed rows by
# tests/test_experiment_regime_map.py.
QUICK_OBJECTIVES = (MLE, 'distill_student')
QUICK_SLICES = {
    'data_capacity': Slice(('data', 'width'), ((128, 256), (8,)), QUICK_OBJECTIVES),
    'length_capacity': Slice(('length', 'width'), ((8,), (8,)), QUICK_OBJECTIVES),
    'vocab_data': Slice(('vocab', 'data'), ((16,), (128,)), QUICK_OBJECTIVES),
}
GAN_SLICE = 'data_capacity'  # gan_pi's runs: this slice's points at the oracle's width
GAN_PREFIX = 'gan_'         # a GAN run's label: GAN_PREFIX + its point's
# Objectives that never read the training set (the teacher's density on student or teacher
# prefixes): the same rows at every data size.
DATA_FREE = ('distill_student', 'fkl_teacher')
# The objectives that read the oracle's density (a teacher): references a user with samples
# alone cannot train. The maps are drawn without them ('samples') and with them ('all'), and
# each with the generators as trained (α = 1) and each at its own best inverse temperature
# (the α of ALPHAS with its lowest mean over seeds of that KL, picked on the same fresh test
# samples that score it, for every candidate alike: Caccia et al.'s temperature tuning).
DENSITY_AWARE = ('distill_data', 'distill_student', 'fkl_teacher')
# view -> (its title, whether DENSITY_AWARE candidates enter, the rows: α = 1 or best α).
VIEWS = {
    'samples': ('trained on samples alone, at α = 1', False, 'at_point'),
    'samples_best_alpha': ('trained on samples alone, each at its best α', False,
                           'best_at_point'),
    'all': ('with the density-aware references, at α = 1', True, 'at_point'),
    'all_best_alpha': ('with the density-aware references, each at its best α', True,
                       'best_at_point'),
}


def slices(options) -> Dict[str, Slice]:
  return QUICK_SLICES if options.quick else SLICES


def default_point(options) -> Dict[str, int]:
  return QUICK_DEFAULT if options.quick else DEFAULT


def validate_slices(slices_: Mapping[str, Slice], num_steps: int) -> None:
  """ValueError naming the slice and field when a slice definition cannot run (no compute)."""
  known = objectives(num_steps)
  for name, s in slices_.items():
    where = f'regime_map slice {name!r}'
    if len(s.axes) != 2 or len(s.values) != 2 or len(set(s.axes)) != 2:
      raise ValueError(f'{where}: axes must name two different axes, with the values of each; '
                       f'got axes {s.axes!r}')
    for axis, vals in list(zip(s.axes, s.values)) + [(a, (v,)) for a, v in s.fixed.items()]:
      if axis not in AXES:
        raise ValueError(f'{where}: axis {axis!r} is not one of {", ".join(AXES)}')
      if not vals or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                             for v in vals):
        raise ValueError(f'{where}: axis {axis!r} ({", ".join(AXES[axis])}) takes positive '
                         f'integers, got {vals!r}')
      if list(vals) != sorted(set(vals)):
        raise ValueError(f'{where}: axis {axis!r} values must increase, without repeats; got '
                         f'{vals!r}')
    if set(s.fixed) & set(s.axes):
      raise ValueError(f'{where}: fixed {sorted(set(s.fixed) & set(s.axes))} are its own axes')
    unknown = [o for o in s.objectives if o not in known]
    if unknown or MLE not in s.objectives:
      raise ValueError(f'{where}: objectives must include {MLE!r} and come from '
                       f'{", ".join(known)}; got {s.objectives!r}')


def coordinates(s: Slice, x: int, y: int, options) -> Dict[str, int]:
  """The full point (every axis) of the slice's cell (x, y)."""
  return dict(default_point(options), **s.fixed, **{s.axes[0]: x, s.axes[1]: y})


def label(point: Mapping[str, int]) -> str:
  """The run label of a point, e.g. 'n16000_w32_t20_v500'."""
  return '_'.join(f'{SYMBOL[a]}{point[a]}' for a in AXES)


def cells(s: Slice, options):
  """[(x, y, run label)] of the slice's cells, x fastest."""
  return [(x, y, label(coordinates(s, x, y, options))) for y in s.values[1]
          for x in s.values[0]]


def point_overrides(point: Mapping[str, int]) -> Dict[str, object]:
  return {field: point[axis] for axis, fields in AXES.items() for field in fields}


def _point_runs(options) -> Dict[str, Tuple[Dict[str, int], list]]:
  """{run label: (point, objectives it trains)} in the order of the slices' cells. A
  data-free objective (DATA_FREE) is trained once per (width, T, V), in the run at the
  default data size, and read from there at every data size (`derive`)."""
  n0 = default_point(options)['data']
  points = {}
  for s in slices(options).values():
    for x, y, run_label in cells(s, options):
      point = coordinates(s, x, y, options)
      _, labels = points.setdefault(run_label, (point, []))
      labels += [o for o in s.objectives if o not in labels and o not in DATA_FREE]
      free = [o for o in s.objectives if o in DATA_FREE]
      if free:
        home = dict(point, data=n0)
        _, labels = points.setdefault(label(home), (home, [MLE]))
        labels += [o for o in free if o not in labels]
  return points


def runs(options):
  """One run per point (the union of its slices' objectives), then the GAN's warm runs."""
  slices_ = slices(options)
  steps = 10 if options.quick else STEPS
  validate_slices(slices_, steps)
  if options.quick:
    common = base.tiny_sizes(**{'problem.num_valid': 128, 'eval.alphas': (0.9, 1.0)})
  else:
    common = {'train.num_steps': STEPS, 'train.eval_every': EVAL_EVERY, 'num_seeds': SEEDS,
              'problem.num_valid': NUM_VALID, 'eval.alphas': ALPHAS,
              'train.seed_strategy': 'map'}
  common.update({'pis': (0.5,), 'eval.select': 'nll_valid', 'eval.fresh_test': True})
  every = objectives(steps)
  points = _point_runs(options)
  # The points the claims read first (a resumed or partial run answers them soonest), then
  # the rest of the maps.
  first = [run for lines in claim_lines(options).values() for _, run in lines]
  order = sorted(points, key=lambda r: first.index(r) if r in first else len(first))
  out = {}
  for run_label in order:
    point, labels = points[run_label]
    out[run_label] = experiment_lib.Run('small', dict(common, **point_overrides(point)),
                                        {o: every[o] for o in ALL if o in labels})
  if not options.quick:  # (quick: a GAN's compile would double this experiment's CI time)
    gan = dict(common, **{'train.warm_start_steps': STEPS, 'train.num_steps': GAN_STEPS})
    for run_label in gan_points(options):
      out[GAN_PREFIX + run_label] = experiment_lib.Run(
          'small', dict(gan, **point_overrides(points[run_label][0])), {GAN: (GAN, {})})
  return out


def gan_points(options):
  """The run labels of the points with a GAN run (GAN_SLICE at the oracle's width; none
  with --quick)."""
  if options.quick:
    return []
  s = slices(options)[GAN_SLICE]
  width = default_point(options)['width']
  return [run_label for x, y, run_label in cells(s, options)
          if coordinates(s, x, y, options)['width'] == width]


# --- derived rows ---------------------------------------------------------------------------

def _selected(rows):
  """{(run, scheme): {seed: the α = 1 row}} (each run's selected generator, not diverged)."""
  out = {}
  for r in rows:
    if r.get('phase') == 'alpha' and r.get('alpha') == 1.0 and not r.get('diverged'):
      out.setdefault((r['run'], r['scheme']), {})[r['seed']] = r
  return out


def _without_data(run_label: str) -> str:
  """'n16000_w32_t20_v500' -> 'w32_t20_v500' (a point but for its data size)."""
  return run_label.split('_', 1)[1]


def _best_alpha_rows(rows):
  """Per (run, scheme) and seed, each KL at the α with the lowest mean over seeds."""
  curves, out = {}, []
  for r in rows:
    if r.get('phase') == 'alpha' and not r.get('diverged'):
      curves.setdefault((r['run'], r['scheme']), []).append(r)
  for (run, scheme), rs in sorted(curves.items()):
    best = {}
    for m in KLS:
      means = {}
      for r in rs:
        if r.get(m) is not None and math.isfinite(r[m]):
          means.setdefault(r['alpha'], []).append(r[m])
      if means:
        best[m] = min(sorted(means), key=lambda a: np.mean(means[a]))
    for seed in sorted({r['seed'] for r in rs}):
      row = {'run': run, 'scheme': scheme, 'seed': seed, 'phase': 'best_alpha'}
      for m, a in best.items():
        at = [r for r in rs if r['seed'] == seed and r['alpha'] == a]
        if at:
          row.update({m: at[0][m], f'alpha_{m}': a, 'step': at[0]['step']})
      if 'step' in row:
        out.append(row)
  return out


def _last_steps(rows):
  """{(run, scheme): the last evaluation step of its training rows}."""
  out = {}
  for r in rows:
    if r.get('phase') == 'train':
      key = (r['run'], r['scheme'])
      out[key] = max(out.get(key, 0), r['step'])
  return out


def derive(rows):
  """Rows computed from the α rows.

  'at_point': every objective's selected generator at α = 1 under the label of each point
    it answers for (its own run's; a data-free objective's at every data size of its
    (width, T, V); the GAN's from its warm run), with 'source' = the run it came from and
    'at_last' = whether the selection fell on the run's last evaluation (the objective was
    still improving when its step budget ran out);
  'best_at_point': the same for each objective at its best α (`_best_alpha_rows`);
  'vs_mle': objective − MLE at the point (α = 1), per seed (kl_pq, kl_qp, exacc_err);
  'prefix_gain': distill_data − distill_student at the point (α = 1), per seed;
  'best_alpha': each KL at the α of its lowest mean over seeds, per run and scheme.
  """
  sel = _selected(rows)
  best_rows = _best_alpha_rows(rows)
  best = {}
  for r in best_rows:
    best.setdefault((r['run'], r['scheme']), {})[r['seed']] = r
  last = _last_steps(rows)
  points = sorted(run for run, scheme in sel if scheme == MLE)
  schemes = sorted({scheme for _, scheme in sel})
  at = {}
  out = []
  for table, phase in ((sel, 'at_point'), (best, 'best_at_point')):
    free = {(_without_data(run), o): (run, by_seed) for (run, o), by_seed in table.items()
            if o in DATA_FREE}
    for p in points:
      for o in schemes:
        source = next(((run, table[(run, o)]) for run in (p, GAN_PREFIX + p)
                       if (run, o) in table), free.get((_without_data(p), o)))
        if source is None:
          continue
        end = last.get((source[0], o))
        if phase == 'at_point':
          at[(p, o)] = source[1]
        out += [dict(r, run=p, phase=phase, source=source[0],
                     at_last=end is not None and r['step'] >= end)
                for _, r in sorted(source[1].items())]

  metrics = KLS + ('exacc_err',)

  def diff(p, a, b, scheme, phase):
    for seed, ra in sorted(at[(p, a)].items()):
      rb = at[(p, b)].get(seed)
      if rb is not None:
        d = {m: ra[m] - rb[m] for m in metrics
             if ra.get(m) is not None and rb.get(m) is not None}
        out.append(dict(d, run=p, scheme=scheme, seed=seed, step=ra['step'], phase=phase))

  for p, o in sorted(at):
    if o != MLE:
      diff(p, o, MLE, o, 'vs_mle')
    if o == 'distill_data' and (p, 'distill_student') in at:
      diff(p, 'distill_data', 'distill_student', 'distill_student', 'prefix_gain')
  return out + best_rows


# --- maps ------------------------------------------------------------------------------------

def candidates(s: Slice, run_label: str, options, phase: str = 'at_point'):
  """{candidate: metric -> Select} at one point: the slice's objectives, and the GAN where
  the point has a GAN run, from `derive`'s rows of `phase` ('at_point': at α = 1;
  'best_at_point': each at its best α)."""
  at = lambda o: (lambda m: verdicts.Select({'run': run_label, 'scheme': o, 'phase': phase},
                                            m, step=None))
  out = {o: at(o) for o in s.objectives}
  if s is slices(options).get(GAN_SLICE) and run_label in gan_points(options):
    out[GAN] = at(GAN)
  return out


def _at_point(rows, phase: str = 'at_point'):
  """{(point, scheme): {seed: row}} of `derive`'s rows of `phase`."""
  out = {}
  for r in rows:
    if r.get('phase') == phase:
      out.setdefault((r['run'], r['scheme']), {})[r['seed']] = r
  return out


def still_improving(by_seed) -> bool:
  """Whether most seeds' selected generator is the run's last evaluation: the objective was
  still improving on the validation set when its step budget ran out."""
  flags_ = [bool(r.get('at_last')) for r in by_seed.values()]
  return bool(flags_) and 2 * sum(flags_) > len(flags_)


def leaders(rows, options):
  """{(slice, metric, view): {(x, y): Leader}} over every cell with rows of two candidates,
  for each view of VIEWS."""
  # Every candidate's Select names its point and phase: each cell reads only the rows of
  # those (one pass over the rows, not one per candidate, cell, view and KL).
  by_cell = {}
  for r in rows:
    by_cell.setdefault((r.get('phase'), r.get('run')), []).append(r)
  out = {}
  for name, s in slices(options).items():
    for m in KLS:
      for view, (_, with_density, phase) in VIEWS.items():
        grid = {}
        for x, y, run_label in cells(s, options):
          cell_rows = by_cell.get((phase, run_label), [])
          present = {c: make(m)
                     for c, make in candidates(s, run_label, options, phase).items()
                     if with_density or c not in DENSITY_AWARE}
          present = {c: sel for c, sel in present.items() if verdicts.values(cell_rows, sel)}
          if len(present) < 2:  # (a partial drawing: not yet trained)
            continue
          lead = verdicts.leader(cell_rows, present)
          if lead.label is not None:
            grid[(x, y)] = lead
        out[(name, m, view)] = grid
  return out


def _heat_maps(grids, rows, s: Slice, name: str, path: str, options) -> None:
  """A panel per KL (columns) and view (rows): each cell coloured by its leader (faded,
  hatched and '?' when unresolved), the margin to the runner-up written in it, '†' when the
  leader was still improving at its last evaluation."""
  labels = {(x, y): run_label for x, y, run_label in cells(s, options)}
  plt = figures.pyplot()
  fig, axes = figures.subplots(len(VIEWS), len(KLS), width=1.35 * len(s.values[0]) + 2.2,
                               height=0.75 * len(s.values[1]) + 1.7)
  xs, ys = s.values
  for row, view in enumerate(VIEWS):
    at = _at_point(rows, VIEWS[view][2])
    for ax, m in zip(axes[row], KLS):
      for (x, y), lead in grids[(name, m, view)].items():
        i, j = xs.index(x), ys.index(y)
        dagger = ' †' if still_improving(at.get((labels[(x, y)], lead.label), {})) else ''
        ax.add_patch(plt.Rectangle((i - 0.5, j - 0.5), 1, 1,
                                   color=COLORS.get(lead.label, 'tab:gray'),
                                   alpha=0.8 if lead.resolved else 0.25,
                                   hatch=None if lead.resolved else '//'))
        ax.text(i, j, f'{lead.label}{"" if lead.resolved else " ?"}{dagger}'
                f'\n+{lead.margin:.2g}',
                ha='center', va='center', fontsize=6)
      ax.set_xlim(-0.5, len(xs) - 0.5)
      ax.set_ylim(-0.5, len(ys) - 0.5)
      ax.set_xticks(range(len(xs)), [f'{v:g}' for v in xs])
      ax.set_yticks(range(len(ys)), [f'{v:g}' for v in ys])
      ax.set_xlabel(TITLE[s.axes[0]])
      ax.set_ylabel(TITLE[s.axes[1]])
      ax.set_title(f'lowest {m}: {VIEWS[view][0]}\n(? unresolved; † still improving at its '
                   'last evaluation; +margin to the runner-up)',
                   fontsize=7)
  figures.save(fig, path)


def _trajectories(rows, s: Slice, options, path: str) -> None:
  """Each objective's mean (KL[Q‖P], KL[P‖Q]) at α = 1 along the slice's x axis (data size),
  one panel per y value (width), from the smallest x (small marker) to the largest."""
  sel = _at_point(rows)
  fig, axes = figures.subplots(1, len(s.values[1]), width=4.2, height=3.6)
  for ax, y in zip(axes.flat, s.values[1]):
    names = list(s.objectives) + ([GAN] if s is slices(options).get(GAN_SLICE) else [])
    for o in names:
      pts = []
      for k, x in enumerate(s.values[0]):
        run_label = label(coordinates(s, x, y, options))
        by_seed = sel.get((run_label, o), {})
        kq = stats.mean_ci([r.get('kl_qp') for r in by_seed.values()])[0]
        kp = stats.mean_ci([r.get('kl_pq') for r in by_seed.values()])[0]
        if math.isfinite(kq) and math.isfinite(kp):
          pts.append((kq, kp, 2 + 2 * k))
      if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], '-', color=COLORS.get(o), lw=1,
                label=o)
        for kq, kp, size in pts:
          ax.plot(kq, kp, 'o', color=COLORS.get(o), ms=size)
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('KL[Q‖P] per token')
    ax.set_ylabel('KL[P‖Q] per token')
    ax.set_title(f'{TITLE[s.axes[1]]} = {y}; markers grow with {TITLE[s.axes[0]]}',
                 fontsize=8)
    figures.dedupe_legend(ax, fontsize=6)
  figures.save(fig, path)


def draw(rows, output_dir, options):
  grids = leaders(rows, options)
  sel = _at_point(rows)
  lines = ['## The map\'s answer', '',
           'Counted from the maps below: per slice, view and KL, the cells each candidate '
           'leads (resolved: it beats every other candidate by the paired tests; unresolved: '
           'the best mean only). A leader still improving at its last evaluation (selected '
           'there in most seeds) was bounded by the step budget, not by the data.', '']
  lines += answer(grids, rows, options) + ['']
  for name, s in slices(options).items():
    _heat_maps(grids, rows, s, name, f'{output_dir}/regime_{name}.png', options)
    if s.axes[0] == 'data':
      _trajectories(rows, s, options, f'{output_dir}/regime_{name}_kl_plane.png')
    fixed = dict(default_point(options), **s.fixed)
    lines += [f'## Slice `{name}`: {TITLE[s.axes[0]]} × {TITLE[s.axes[1]]}', '',
              'Fixed: ' + ', '.join(f'{TITLE[a]} {v}' for a, v in fixed.items()
                                    if a not in s.axes) + '.', '']
    for view in VIEWS:
      lines += [f'Leaders, {VIEWS[view][0]}:', ''] + _leader_table(
          grids, _at_point(rows, VIEWS[view][2]), s, name, view, options)
    lines += ['Each objective\'s selected generator at α = 1 (mean ± 95% CI over seeds):', '']
    lines += _metric_table(sel, s, options)
  return '\n'.join(lines) + '\n'


def answer(grids, rows, options):
  """Markdown bullets: per slice, KL and view, how many cells each candidate leads, and in
  how many the leader was still improving at its last evaluation (a step budget, not the
  data, bounded it there)."""
  out = []
  for name, s in slices(options).items():
    total = len(s.values[0]) * len(s.values[1])
    labels = {(x, y): run_label for x, y, run_label in cells(s, options)}
    for view, (title, _, phase) in VIEWS.items():
      at = _at_point(rows, phase)
      for m in KLS:
        grid = grids[(name, m, view)]
        counts = {}
        for lead in grid.values():
          won = counts.setdefault(lead.label, [0, 0])
          won[0 if lead.resolved else 1] += 1
        parts = [f'`{c}` {r} resolved' + (f' + {u} unresolved' if u else '')
                 for c, (r, u) in sorted(counts.items(), key=lambda kv: (-sum(kv[1]), kv[0]))]
        going = sum(still_improving(at.get((labels[xy], lead.label), {}))
                    for xy, lead in grid.items())
        out.append(f'- `{name}`, {m}, {title} ({len(grid)} of {total} cells with rows): '
                   + ('; '.join(parts) if parts else 'no cells yet')
                   + (f'; in {going} of them the leader was still improving at its last '
                      'evaluation' if going else '') + '.')
  return out


def _leader_table(grids, at, s: Slice, name: str, view: str, options):
  """Markdown rows of one view's leaders per cell and KL; `at`: `_at_point` of the view's
  phase, for the candidates still improving at their last evaluation."""
  lines = [f'| {s.axes[0]} | {s.axes[1]} | ' + ' | '.join(
      f'leader of {m} (margin to runner-up [95% CI], n)' for m in KLS)
      + ' | still improving at the end |', '|---|---|' + '---|' * (len(KLS) + 1)]
  for x, y, run_label in cells(s, options):
    cellv = []
    for m in KLS:
      lead = grids[(name, m, view)].get((x, y))
      if lead is None:
        cellv.append('no rows')
        continue
      lo, hi = lead.margin_ci
      who = f'**{lead.label}**' if lead.resolved else f'{lead.label} (unresolved)'
      cellv.append(f'{who} by {lead.margin:.3g} [{lo:.3g}, {hi:.3g}] over '
                   f'{lead.runner_up}, n = {lead.n}')
    going = sorted(o for (p, o), by_seed in at.items() if p == run_label
                   and still_improving(by_seed))
    lines.append(f'| {x} | {y} | ' + ' | '.join(cellv) + f' | {", ".join(going) or "–"} |')
  return lines + ['']


def _metric_table(sel, s: Slice, options):
  """Each objective's selected generator at α = 1 (mean ± 95% CI over seeds), per cell."""
  metrics = KLS + ('exacc_err', 'entropy_q')
  lines = [f'| {s.axes[0]} | {s.axes[1]} | objective | seeds | selected step (seeds at the '
           'last evaluation) | ' + ' | '.join(metrics) + ' |',
           '|---|---|---|---|---|' + '---|' * len(metrics)]
  for x, y, run_label in cells(s, options):
    for o in list(s.objectives) + [GAN]:
      by_seed = sel.get((run_label, o))
      if not by_seed:
        continue
      rs = list(by_seed.values())
      ends = sum(bool(r.get('at_last')) for r in rs)
      lines.append(f'| {x} | {y} | {o} | {len(rs)} | {stats.fmt_ci([r["step"] for r in rs])} '
                   f'({ends}) | '
                   + ' | '.join(stats.fmt_ci([r.get(m) for r in rs]) for m in metrics) + ' |')
  return lines + ['']


# --- claims ------------------------------------------------------------------------------------

def _line(s: Slice, options, *, along: int):
  """[(value, run label)] along the slice's axis `along` (0 or 1), the other axis at the
  default point's value (or its first value when the slice lacks that)."""
  other = 1 - along
  fixed = default_point(options)[s.axes[other]]
  if fixed not in s.values[other]:
    fixed = s.values[other][0]
  return [(v, label(coordinates(s, *((v, fixed) if along == 0 else (fixed, v)), options)))
          for v in s.values[along]]


def claim_lines(options) -> Dict[str, list]:
  """The lines the claims read, [(axis value, run label)] each: 'data' (the data slice at
  the oracle's width), 'length' (the length slice at it), 'capacity' (the data slice's widths
  at the default data size) and 'vocab' (the vocabulary slice at its smallest data size)."""
  sl = slices(options)
  vocab = sl['vocab_data']
  return {'data': _line(sl['data_capacity'], options, along=0),
          'length': _line(sl['length_capacity'], options, along=0),
          'capacity': _line(sl['data_capacity'], options, along=1),
          'vocab': [(v, label(coordinates(vocab, v, vocab.values[1][0], options)))
                    for v in vocab.values[0]]}


def claims(options):
  """(a) the advantage of each objective over MLE shrinks as data grows; (b) MLE's exposure
  bias grows with T and the objectives trained on their own prefixes cut it more at larger T;
  (c) the gain of student over data prefixes shrinks as the generator widens; (d) the
  advantage over MLE grows with the vocabulary (towards SeqGAN's 5,000 words). Each along
  its line of `claim_lines`."""
  sl, lines = slices(options), claim_lines(options)
  vs = lambda run, o, m: verdicts.Select({'run': run, 'scheme': o, 'phase': 'vs_mle'}, m,
                                         step=None)
  out = []
  for o in sl['data_capacity'].objectives:
    if o in (MLE, 'distill_data'):
      continue
    for m in KLS:
      out.append(verdicts.Trend(
          f'data_{o}_{m}', f'(a) `{o}` − MLE in {m} rises with log10 of the training-set size '
          '(any advantage over early-stopped MLE shrinks as data grows)',
          [(math.log10(n), vs(run, o, m)) for n, run in lines['data']], +1))
  out.append(verdicts.Trend(
      'length_mle_exacc', '(b) MLE\'s exposure bias (exacc_err) rises with T',
      [(t, verdicts.Select({'run': run, 'scheme': MLE, 'phase': 'at_point'}, 'exacc_err',
                           step=None)) for t, run in lines['length']], +1))
  for o in sl['length_capacity'].objectives:
    if o != MLE:
      out.append(verdicts.Trend(
          f'length_{o}_exacc', f'(b) `{o}` − MLE in exacc_err falls as T grows (training on '
          'its own prefixes cuts exposure bias more at larger T)',
          [(t, vs(run, o, 'exacc_err')) for t, run in lines['length']], -1))
  if {'distill_data', 'distill_student'} <= set(sl['data_capacity'].objectives):
    gain = lambda run, m: verdicts.Select(
        {'run': run, 'scheme': 'distill_student', 'phase': 'prefix_gain'}, m, step=None)
    for m in KLS:
      out.append(verdicts.Trend(
          f'capacity_prefix_gain_{m}', f'(c) data − student prefixes (distill jsd) in {m} '
          'falls as the generator widens (on-policy prefixes help the misspecified student '
          'more)', [(math.log2(w), gain(run, m)) for w, run in lines['capacity']], -1))
  vocab = sl['vocab_data']
  if len(vocab.values[0]) > 1:
    for o in vocab.objectives:
      if o != MLE:
        out.append(verdicts.Trend(
            f'vocab_{o}_kl_pq', f'(d) `{o}` − MLE in kl_pq falls as the vocabulary grows, at '
            f'{vocab.values[1][0]} training sequences (its advantage grows towards SeqGAN\'s '
            '5,000 words)', [(math.log10(v), vs(run, o, 'kl_pq')) for v, run in lines['vocab']],
            -1))
  return [c for c in out if len({x for x, _ in c.points}) > 1]  # (--quick: lines of one)


EXPERIMENT = experiment_lib.Experiment(
    name='regime_map',
    claim=('Which objective should a generator of discrete sequences use, given its data, '
           'model and length: the ranking of objectives under each KL changes with the '
           'training-set size, the generator\'s capacity, the sequence length and the '
           'vocabulary (issue 27\'s claims (a)–(d)).'),
    runs=runs, draw=draw, claims=claims, derive=derive,
    explanation=(
        'How to read them. Each trend is the mean over seeds of each seed\'s least-squares '
        'slope along the slice\'s line through the default point ('
        + ', '.join(f'{TITLE[a]} {v:,}' for a, v in DEFAULT.items())
        + '): "X − MLE" is the per-seed difference of the two generators '
        'selected on the validation set, at α = 1. The maps below name, per point and KL, '
        'the candidate with the lowest mean and whether it beats every other candidate by '
        'the paired tests with Holm\'s levels over those comparisons ("?": it does not; a '
        'tie is no winner).'))
