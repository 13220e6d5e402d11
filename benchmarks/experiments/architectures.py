"""architectures — do the core findings transfer from the LSTM to a transformer generator, and
from the random-LSTM oracle to a random automaton?

The grid: generator ∈ {LSTM, transformer} × oracle ∈ {random LSTM, automaton}, one run per
cell on the enumerable problem (V = 6, T = 6: every divergence exact, by enumeration). The two
generators have matched parameter counts (the page gives them): an LSTM with E = H = 12 and a
transformer of width 8, 2 blocks of 2 heads, MLP width 16, learned positions. The random
oracle is `enumerable`'s LSTM (E = H = 16, N(0, 1) weights); the automaton has
AUTOMATON_STATES states with Dirichlet(AUTOMATON_CONCENTRATION) rows, chosen so that its
entropy per token is close to the random oracle's (both on the page, from the rows).

In each cell every objective starts from the same per-seed MLE warm start and trains
STEPS Adam steps; the α sweep evaluates each generator selected on a validation set of its
own (nll_valid: MLE's early stopping, applied to every objective alike). The objectives:
  mle, cot and gan_pi (π = ½, its measured defaults): the temperature frontier (Caccia et
    al.'s claim, judged as in `temperature`);
  distill's fkl and rkl on data prefixes and on the student's own (on-policy distillation),
    and jsd (β = ½) on the student's: the distillation front (as in `distill`);
  and every row's exact exposure-bias diagnostic (ExAccErr).
Each earlier claim is judged in every cell with the verdict protocol (one Holm family over
all cells); the transfer table reads each cell's verdict against the reference cell's (LSTM
on the random oracle): holds, flips (supported there, contradicted here or the converse) or
neither is resolved.
"""

from typing import Dict

from benchmarks.analysis import figures
from benchmarks.analysis import stats
from benchmarks.analysis import verdicts
from benchmarks.engine import configuration
from benchmarks.engine import experiment as experiment_lib
from benchmarks.engine import memory
from benchmarks.experiments import base

GENERATORS = {
    'lstm': {'generator.kind': 'lstm', 'generator.embed_dim': 12, 'generator.hidden_dim': 12},
    'transformer': {'generator.kind': 'transformer', 'generator.embed_dim': 8,
                    'generator.hidden_dim': 16, 'generator.num_layers': 2,
                    'generator.num_heads': 2, 'generator.positions': 'learned'},
}
AUTOMATON_STATES, AUTOMATON_CONCENTRATION = 32, 0.2
ORACLES = {
    'random': {'problem.source': 'random'},
    'automaton': {'problem.source': 'automaton', 'problem.automaton_states': AUTOMATON_STATES,
                  'problem.state_concentration': AUTOMATON_CONCENTRATION},
}
REFERENCE = 'lstm_random'
STEPS, EVAL_EVERY, WARM_STEPS, SEEDS = 1_000, 100, 300, 8
ALPHAS = (0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0)
QUICK_ALPHAS = (0.5, 1.0, 2.0)
MLE = 'mle'
FRONTIER = ('cot', 'gan_pi')  # the schemes MLE's temperature curve is claimed to dominate
VARIANTS = {
    MLE: ('mle', {}),
    'cot': ('cot', {}),
    'gan_pi': ('gan_pi', {}),
    **{f'{d}_{p}': ('distill', {'distill.divergence': d, 'distill.prefix': p,
                                **({'distill.lmbda': 0.0} if p == 'data' else {})})
       for d in ('fkl', 'rkl') for p in ('data', 'student')},
    'jsd_student': ('distill', {'distill.divergence': 'jsd', 'distill.prefix': 'student'}),
}
QUICK = (MLE, 'cot', 'fkl_data')
QUICK_CELLS = ('transformer_automaton',)
METRICS = ('kl_pq', 'kl_qp', 'entropy_q', 'exacc_err')
NAMED = {'fkl': 'kl_pq', 'rkl': 'kl_qp'}  # the divergence each objective is named after
COLORS = {MLE: 'k', 'cot': 'tab:green', 'gan_pi': 'tab:blue', 'fkl_data': 'tab:red',
          'fkl_student': 'tab:orange', 'rkl_data': 'tab:purple', 'rkl_student': 'tab:pink',
          'jsd_student': 'tab:cyan'}


def cells(options):
  """{cell: overrides}: the generator × oracle grid (--quick: QUICK_CELLS)."""
  out = {f'{g}_{o}': dict(gen, **orc) for g, gen in GENERATORS.items()
         for o, orc in ORACLES.items()}
  return {c: out[c] for c in QUICK_CELLS} if options.quick else out


def runs(options):
  """One run per cell (module docstring); --quick: one tiny cell (a transformer learning an
  automaton), QUICK's objectives."""
  out = {}
  for cell, overrides in cells(options).items():
    if options.quick:
      sizes = base.tiny_enumerable(4, **{'eval.alphas': QUICK_ALPHAS,
                                         'problem.num_valid': 64,
                                         'problem.automaton_states': 4})
      sizes.update({k: v for k, v in overrides.items()
                    if not k.endswith(('_dim', 'automaton_states'))})
      sizes.update({'generator.embed_dim': 4, 'generator.hidden_dim': 4})
      variants = {k: VARIANTS[k] for k in QUICK}
    else:
      sizes = dict(overrides, **{
          'train.num_steps': STEPS, 'train.eval_every': EVAL_EVERY,
          'train.warm_start_steps': WARM_STEPS, 'eval.num_samples': 2_000,
          'eval.alphas': ALPHAS, 'problem.num_valid': 2_000, 'pis': (0.5,),
          'num_seeds': SEEDS})
      variants = dict(VARIANTS)
    out[cell] = experiment_lib.Run('enumerable', dict(sizes, **{'eval.select': 'nll_valid'}),
                                   variants)
  return out


def parameter_counts(options) -> Dict[str, int]:
  """{cell: the generator's number of parameters}, from its init's shapes (no compute)."""
  return {cell: memory.generator_params(configuration.build_config(run.preset, run.overrides))
          for cell, run in runs(options).items()}


# --- rows -> numbers ----------------------------------------------------------------------------

def _final(rows, cell, label, metric):
  return [r.get(metric) for r in base.final_rows(rows, label, cell)]


def _curve(rows, cell, label, metric):
  """[(α, [seeds' values])] of `label`'s α sweep in `cell`."""
  by_alpha = {}
  for r in rows:
    if (r.get('phase') == 'alpha' and r.get('run') == cell and r.get('scheme') == label
        and not r.get('diverged')):
      by_alpha.setdefault(r['alpha'], []).append(r.get(metric))
  return sorted(by_alpha.items())


def draw(rows, output_dir, options):
  """Per cell, the quality–coverage α curves (mle, cot, gan_pi) and the KL plane of every
  objective's last evaluation; a table per cell; the transfer table of the verdicts."""
  names = [c for c in cells(options) if any(r.get('run') == c for r in rows)]
  if not names:
    return ''
  counts = parameter_counts(options)
  fig, axes = figures.subplots(2, len(names), width=4.6, height=4.0)
  lines = ['### The cells', '',
           '| cell | generator parameters | H(P) per token | seeds |', '|---|---|---|---|']
  for i, cell in enumerate(names):
    cell_rows = [r for r in rows if r.get('run') == cell]
    px = base.exact_prefix(cell_rows)
    warm = base.warm_rows(rows, cell)
    lines.append(f'| {cell} | {counts.get(cell, "?"):,} | '
                 f'{stats.fmt_ci([r.get(px + "entropy_p") for r in warm])} | {len(warm)} |')
    ax = axes[0, i]
    for label in (MLE,) + FRONTIER:
      x = _curve(rows, cell, label, px + 'kl_pq')
      y = _curve(rows, cell, label, px + 'nll_oracle')
      if x:
        xm, _, _ = figures.mean_ci_arrays([v for _, v in x])
        ym, _, _ = figures.mean_ci_arrays([v for _, v in y])
        ax.plot(xm, ym, marker='o', ms=3, color=COLORS[label], label=label)
    ax.set_xlabel('KL[P‖Q] (coverage)')
    ax.set_ylabel('NLL_oracle (quality)')
    ax.set_title(f'{cell}: α sweep (selected on nll_valid)', fontsize=8)
    figures.dedupe_legend(ax, fontsize=6)
    points = [{'label': 'warm start', 'kl_qp': [r.get(px + 'kl_qp') for r in warm],
               'kl_pq': [r.get(px + 'kl_pq') for r in warm], 'color': 'tab:gray',
               'marker': 's', 'text': 'warm'}]
    labels = [l for l in VARIANTS if any(r.get('scheme') == l for r in cell_rows)]
    for label in labels:
      points.append({'label': label, 'kl_qp': _final(rows, cell, label, px + 'kl_qp'),
                     'kl_pq': _final(rows, cell, label, px + 'kl_pq'),
                     'color': COLORS.get(label, 'k'), 'text': label})
    figures.kl_plane(axes[1, i], points)
    axes[1, i].set_title(f'{cell}: last evaluation', fontsize=8)
  figures.save(fig, f'{output_dir}/architectures.png')
  lines.append('')
  for cell in names:
    px = base.exact_prefix([r for r in rows if r.get('run') == cell])
    lines += [f'### {cell} (per token, mean ± 95% CI over seeds, last evaluation)', '',
              '| objective | seeds | KL[P‖Q] | KL[Q‖P] | H(Q) | ExAccErr |',
              '|---|---|---|---|---|---|']
    for label in [l for l in VARIANTS if _final(rows, cell, l, px + 'kl_pq')]:
      lines.append(f'| {label} | {len(_final(rows, cell, label, px + "kl_pq"))} | '
                   + ' | '.join(stats.fmt_ci(_final(rows, cell, label, px + m))
                                for m in METRICS) + ' |')
    lines.append('')
  return '\n'.join(lines + transfer_table(rows, options, names)) + '\n'


def transfer_table(rows, options, names):
  """Markdown lines: each claim's verdict word per cell, and against the reference cell's."""
  found = {v.claim.name: v for v in verdicts.judge(claims(options), rows)}
  kinds = list(dict.fromkeys(n.split('__', 1)[1] for n in found))
  ref = REFERENCE if REFERENCE in names else names[0]
  out = ['### Transfer', '',
         f'Each claim\'s verdict per cell (Holm over every cell\'s claims), and beside it how '
         f'it reads against `{ref}`: **holds** (both supported, or both contradicted), '
         '**flips** (one supported, the other contradicted), or "reference unresolved" (resolved '
         'here, not there); an unresolved cell reads against nothing.', '',
         '| claim | ' + ' | '.join(names) + ' |', '|---|' + '---|' * len(names)]
  for kind in kinds:
    base_word = found.get(f'{ref}__{kind}')
    cells_text = []
    for cell in names:
      v = found.get(f'{cell}__{kind}')
      if v is None:
        cells_text.append('–')
        continue
      text = v.word
      if cell != ref and base_word is not None and v.word != 'unresolved':
        if base_word.word == 'unresolved':
          text += ' (reference unresolved)'
        else:
          text += ' (holds)' if v.word == base_word.word else ' (flips)'
      cells_text.append(text)
    out.append(f'| {kind} | ' + ' | '.join(cells_text) + ' |')
  return out + ['']


# --- claims -------------------------------------------------------------------------------------

def claims(options):
  """Per cell (names '<cell>__<claim>'): MLE's temperature curve dominates CoT's and the GAN's
  (the `temperature` claim); fkl and rkl on the student's own prefixes end lower in the
  divergence each is named after than on data prefixes, and on data prefixes lower it from the
  warm start (the `distill` claims); MLE's ExAccErr is above 0 (exposure bias exists), and
  rkl on the student's prefixes ends with a lower ExAccErr than on data prefixes."""
  alphas = QUICK_ALPHAS if options.quick else ALPHAS
  out = []
  for cell, run in runs(options).items():
    labels = set(run.variants)
    px = 'exact_'  # the enumerable problem: every divergence by enumeration

    def final(label, metric, cell=cell):
      return verdicts.Select({'run': cell, 'scheme': label, 'phase': 'train'}, px + metric)

    def curve(label, cell=cell):
      where = lambda a: {'run': cell, 'phase': 'alpha', 'scheme': label, 'alpha': a}
      return [(verdicts.Select(where(a), px + 'kl_pq', step=None),
               verdicts.Select(where(a), px + 'nll_oracle', step=None)) for a in alphas]

    for other in FRONTIER:
      if {MLE, other} <= labels:
        out.append(verdicts.Frontier(
            f'{cell}__mle_dominates_{other}', f'`{cell}`: MLE\'s temperature curve dominates '
            f'`{other}`\'s in the quality (NLL_oracle) – coverage (KL[P‖Q]) plane',
            curve(MLE), curve(other)))
    for d, named in NAMED.items():
      name = 'KL[P‖Q]' if named == 'kl_pq' else 'KL[Q‖P]'
      if {f'{d}_student', f'{d}_data'} <= labels:
        out.append(verdicts.Difference(
            f'{cell}__{d}_on_policy', f'`{cell}`: {d} on the student\'s own prefixes ends lower '
            f'in {name} than on data prefixes', final(f'{d}_student', named),
            final(f'{d}_data', named), -1))
      if f'{d}_data' in labels:
        out.append(verdicts.Difference(
            f'{cell}__{d}_descends', f'`{cell}`: {d} on data prefixes lowers {name} from the '
            'MLE warm start', final(f'{d}_data', named),
            verdicts.Select({'run': cell, 'phase': 'warm_start'}, px + named), -1))
    if MLE in labels:
      out.append(verdicts.Bound(
          f'{cell}__mle_exposure_bias', f'`{cell}`: MLE\'s ExAccErr (exposure bias) is above 0',
          final(MLE, 'exacc_err'), 0.0, +1))
    if {'rkl_student', 'rkl_data'} <= labels:
      out.append(verdicts.Difference(
          f'{cell}__on_policy_less_exposure', f'`{cell}`: rkl on the student\'s own prefixes '
          'ends with a lower ExAccErr than on data prefixes', final('rkl_student', 'exacc_err'),
          final('rkl_data', 'exacc_err'), -1))
  return out


EXPERIMENT = experiment_lib.Experiment(
    name='architectures',
    claim=('The core findings (MLE with temperature against CoT and a GAN, the distillation '
           'front, exposure bias) were measured with an LSTM learning a random LSTM; do they '
           'hold for a transformer generator of the same size, and for an automaton oracle?'),
    runs=runs, draw=draw, claims=claims,
    explanation=(
        'How to read them. A cell is one generator learning one oracle; within a cell every '
        'objective starts from the same MLE warm start of its seed and trains as many steps, '
        'so differences pair runs of one seed. Divergences are exact (by enumeration) at the '
        'last evaluation, the α sweep at the generator selected on the validation set: where '
        'the optimisers got, not minimisers. The transfer table reads each claim\'s verdict in '
        'a cell against the reference cell\'s; "holds" needs both resolved. Every objective '
        'runs at its defaults (gan_pi at the learning rate gan_sweep picked on `small`), '
        'tuned for neither architecture.'))
