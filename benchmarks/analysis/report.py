"""A run's report from its rows: summary.md (mean ± 95% CI over seeds) and plots/metrics.png.

`benchmarks.compare` writes the same report for merged runs.
"""

import math
import os

import numpy as np

from benchmarks.analysis import figures
from benchmarks.analysis import stats
from benchmarks.engine import files

TABLE_METRICS = ('nll_oracle', 'nll_test', 'entropy_q', 'kl_pq', 'kl_qp', 'exposure_model',
                 'exposure_oracle', 'exacc_err')
MAX_COLUMNS = 8  # metric columns per summary table (an enumerable π sweep has 24)
PLOT_METRICS = ('nll_test', 'kl_pq', 'nll_oracle', 'entropy_q', 'kl_qp', 'js_pi')


def metric_families(rows):
  """[(caption, metric names)]: the MC metrics present, JS_π per π, exact_* metrics, exact
  JS_π per π (the empty ones left out)."""
  def present(name):
    return any(stats.metric_value(r, name) is not None for r in rows)
  # Over all rows, in first-seen order: merged runs may have different π grids.
  pis = list(dict.fromkeys(p for r in rows for p in (r.get('js_pi') or {})))
  exact_pis = list(dict.fromkeys(p for r in rows for p in (r.get('exact_js_pi') or {})))
  families = [('Monte-Carlo', [m for m in TABLE_METRICS if present(m)]),
              ('JS_π per π, Monte-Carlo', [f'js_pi@{p}' for p in pis]),
              ('exact, by enumeration', [f'exact_{m}' for m in TABLE_METRICS
                                         if present(f'exact_{m}')]),
              ('exact JS_π per π, by enumeration', [f'exact_js_pi@{p}' for p in exact_pis])]
  return [(caption, names) for caption, names in families if names]


def tables_of(families, max_columns: int = MAX_COLUMNS):
  """Packs metric families, in order, into tables of at most max_columns metrics (a family
  wider than that gets a table of its own, unsplit): [(captions, names)]."""
  tables = []
  for caption, names in families:
    if tables and len(tables[-1][1]) + len(names) <= max_columns:
      tables[-1][0].append(caption)
      tables[-1][1].extend(names)
    else:
      tables.append(([caption], list(names)))
  return tables


def training_seconds(rows) -> dict:
  """{scheme: train_seconds at its last step} of the schemes whose last row has them, in
  first-seen order ({} for rows of older code)."""
  out = {}
  for (scheme, _), steps in stats.groups([r for r in rows if r.get('phase') != 'alpha'],
                                   by=('scheme', 'phase')).items():
    last = [r.get('train_seconds') for r in steps[max(steps)]]
    if last and all(t is not None for t in last):
      out[scheme] = max(last)
  return out


def summary_markdown(rows, *, title: str = 'divbench results') -> str:
  """Markdown tables: one line per (scheme, π) at its final step, plus the initial model;
  the metrics in tables of at most MAX_COLUMNS columns (`tables_of`)."""
  if not rows:
    return f'# {title}\n\nNo results yet.\n'
  lines = [f'# {title}', '',
           'Per-token values; mean ± 95% CI (t) over seeds that did not diverge. '
           'MC = Monte-Carlo estimates; exact_* by enumeration.']
  g = stats.groups(rows)
  (scheme0, pi0), steps0 = next(iter(g.items()))
  entries = [(f'initial generator ({scheme0})', pi0, 0, steps0[0])] if 0 in steps0 else []
  for (scheme, pi), steps in g.items():
    last = max(steps)
    label = f'warm start (MLE, {last} steps)' if scheme == 'warm_start' else scheme
    entries.append((label, pi, last, steps[last]))
  tables = tables_of(metric_families(rows))
  for captions, names in tables:
    header = ['scheme', 'π', 'step', 'seeds ok'] + names
    lines += [''] + ([f'**{"; ".join(captions)}**', ''] if len(tables) > 1 else [])
    lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for label, pi, step, rs in entries:
      ok = [r for r in rs if not r.get('diverged')]
      cells = [label, '–' if pi is None else f'{pi:g}', str(step), f'{len(ok)}/{len(rs)}']
      cells += [stats.fmt_ci([stats.metric_value(r, n) for r in ok]) for n in names]
      lines.append('| ' + ' | '.join(cells) + ' |')
  times = training_seconds(rows)
  if times:
    lines += ['', 'Training time over all invocations (all runs of a scheme together, '
              'evaluations and compilation included): '
              + ', '.join(f'{k} {v:.0f} s' for k, v in times.items()) + '.']
  h_p = stats.mean_ci([r.get('entropy_p') for r in rows if r['step'] == 0])
  if h_p[2]:
    lines += ['', f'Oracle entropy H(P) per token (MC on the test set): {h_p[0]:.4g}.']
  if 'js_pi' in stats.first_row(rows):
    lines += ['JS_π is bounded by H(π) per sequence, i.e. H(π)/T per token '
              '(0.6931/T at π = 0.5): values at that bound mean P and Q are nearly disjoint.']
  return '\n'.join(lines) + '\n'


def draw(rows, path: str) -> None:
  """Metrics against training step: one panel per metric, one line per (scheme, π)."""

  names = [n for n in PLOT_METRICS if n != 'js_pi']
  pis = list((rows[0].get('js_pi') or {}).keys())
  if pis:
    names.append(f'js_pi@{pis[len(pis) // 2]}')
  cols = 3
  nrows = math.ceil(len(names) / cols)
  fig, axes = figures.subplots(nrows, cols, width=4.2, height=3.2)
  for ax, name in zip(axes.flat, names):
    for (scheme, pi), steps in stats.groups(rows).items():
      xs = sorted(steps)
      cis = [stats.mean_ci([stats.metric_value(r, name) for r in steps[s]
                            if not r.get('diverged')]) for s in xs]
      m = np.array([c[0] for c in cis])
      h = np.nan_to_num(np.array([c[1] for c in cis]))
      label = scheme if pi is None else f'{scheme} π={pi:g}'
      ax.plot(xs, m, label=label)
      ax.fill_between(xs, m - h, m + h, alpha=0.2)
    if name == 'entropy_q':  # the data's entropy: where an exact fit would end
      h_p = stats.mean_ci([r.get('entropy_p') for r in rows if r['step'] == 0])[0]
      if math.isfinite(h_p):
        ax.axhline(h_p, color='k', ls='--', lw=0.8, label='H(P)')
        ax.legend(fontsize=7)
    ax.set_title(name + ' (per token)')
    ax.set_xlabel('step')
  for ax in axes.flat[len(names):]:
    ax.axis('off')
  axes.flat[0].legend(fontsize=7)
  figures.save(fig, path)


ALPHA_METRICS = ('nll_oracle', 'nll_test', 'entropy_q', 'kl_pq', 'kl_qp')


def alpha_markdown(rows) -> str:
  """The α sweep (rows of phase 'alpha'): one line per (scheme, π, α), mean ± 95% CI."""
  header = ['scheme', 'π', 'α', 'seeds ok'] + list(ALPHA_METRICS)
  lines = ['## α sweep (logits × α)', '',
           'Each run\'s selected generator (config.eval.select) at inverse temperature α.', '',
           '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for (scheme, pi, alpha), steps in stats.groups(rows, by=('scheme', 'pi', 'alpha')).items():
    rs = [r for step_rows in steps.values() for r in step_rows]
    ok = [r for r in rs if not r.get('diverged')]
    cells = [scheme, '–' if pi is None else f'{pi:g}', f'{alpha:g}', f'{len(ok)}/{len(rs)}']
    cells += [stats.fmt_ci([r.get(m) for r in ok]) for m in ALPHA_METRICS]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def write_report(output_dir: str, rows, *, title: str, plot: bool = True) -> None:
  """Writes summary.md and (plot=True) plots/metrics.png for the rows (atomically)."""
  alpha = [r for r in rows if r.get('phase') == 'alpha']
  rows = [r for r in rows if r.get('phase') != 'alpha']
  text = summary_markdown(rows, title=title)
  if alpha:
    text += '\n' + alpha_markdown(alpha)
  files.atomic_write(os.path.join(output_dir, 'summary.md'), text)
  if rows and plot:
    draw(rows, os.path.join(output_dir, 'plots', 'metrics.png'))

