"""Summaries (mean ± 95% CI over seeds) and plots from the rows of results.jsonl."""

import collections
import math
import os

import numpy as np
import scipy.stats

from benchmarks import results

TABLE_METRICS = ('nll_oracle', 'nll_test', 'entropy_q', 'kl_pq', 'kl_qp')
PLOT_METRICS = ('nll_test', 'kl_pq', 'nll_oracle', 'entropy_q', 'kl_qp', 'js_pi')


def mean_ci(values, confidence: float = 0.95):
  """(mean, half-width of the t confidence interval, n) of the finite values."""
  v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
  if v.size == 0:
    return math.nan, math.nan, 0
  if v.size == 1:
    return float(v[0]), math.nan, 1
  half = scipy.stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
  return float(v.mean()), float(half), int(v.size)


def fmt(mean, half) -> str:
  """mean ± CI half-width in 4 significant digits (n/a when not finite)."""
  if not math.isfinite(mean):
    return 'n/a'
  # Significant digits, not decimals: per-token JS_π is small (at most H(π)/T).
  return f'{mean:.4g}' if not math.isfinite(half) else f'{mean:.4g} ± {half:.2g}'


def fmt_ci(values) -> str:
  """'mean ± CI' of a list of per-seed values (None and non-finite skipped)."""
  return fmt(*mean_ci(values)[:2])


def metric_value(row, name):
  """The value of metric `name` in a row; 'js_pi@0.5' reads row['js_pi']['0.5']."""
  if '@' in name:
    base, pi = name.split('@')
    return (row.get(base) or {}).get(pi)
  return row.get(name)


def groups(rows, by=('scheme', 'pi')):
  """{(row[f] for f in by): {step: [rows]}}, in first-seen order (default key (scheme, pi))."""
  out = collections.OrderedDict()
  for r in rows:
    key = tuple(r.get(f) for f in by)
    out.setdefault(key, collections.defaultdict(list))[r['step']].append(r)
  return out


def first_row(rows):
  return rows[0] if rows else {}


def metric_names(rows):
  """The table's metric columns: the MC metrics, js_pi per π, and exact_* when present."""
  names = list(TABLE_METRICS)
  first = rows[0]
  names += [f'js_pi@{p}' for p in (first.get('js_pi') or {})]
  names += [f'exact_{m}' for m in TABLE_METRICS if f'exact_{m}' in first]
  names += [f'exact_js_pi@{p}' for p in (first.get('exact_js_pi') or {})]
  return names


def summary_markdown(rows, *, title: str = 'divbench results') -> str:
  """A markdown table: one line per (scheme, π) at its final step, plus the initial model."""
  if not rows:
    return f'# {title}\n\nNo results yet.\n'
  names = metric_names(rows)
  header = ['scheme', 'π', 'step', 'seeds ok'] + names
  lines = [f'# {title}', '',
           'Per-token values; mean ± 95% CI (t) over seeds that did not diverge. '
           'MC = Monte-Carlo estimates; exact_* by enumeration.', '',
           '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]

  def line(label, pi, step, rs):
    ok = [r for r in rs if not r.get('diverged')]
    cells = [label, '–' if pi is None else f'{pi:g}', str(step), f'{len(ok)}/{len(rs)}']
    cells += [fmt_ci([metric_value(r, n) for r in ok]) for n in names]
    lines.append('| ' + ' | '.join(cells) + ' |')

  g = groups(rows)
  (scheme0, pi0), steps0 = next(iter(g.items()))
  if 0 in steps0:
    line(f'initial generator ({scheme0})', pi0, 0, steps0[0])
  for (scheme, pi), steps in g.items():
    last = max(steps)
    label = f'warm start (MLE, {last} steps)' if scheme == 'warm_start' else scheme
    line(label, pi, last, steps[last])
  h_p = mean_ci([r.get('entropy_p') for r in rows if r['step'] == 0])
  if h_p[2]:
    lines += ['', f'Oracle entropy H(P) per token (MC on the test set): {h_p[0]:.4g}.']
  if 'js_pi' in first_row(rows):
    lines += ['JS_π is bounded by H(π) per sequence, i.e. H(π)/T per token '
              '(0.6931/T at π = 0.5): values at that bound mean P and Q are nearly disjoint.']
  return '\n'.join(lines) + '\n'


def plot(rows, path: str) -> None:
  """Metrics against training step: one panel per metric, one line per (scheme, π)."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  names = [n for n in PLOT_METRICS if n != 'js_pi']
  pis = list((rows[0].get('js_pi') or {}).keys())
  if pis:
    names.append(f'js_pi@{pis[len(pis) // 2]}')
  cols = 3
  nrows = math.ceil(len(names) / cols)
  fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
  for ax, name in zip(axes.flat, names):
    for (scheme, pi), steps in groups(rows).items():
      xs = sorted(steps)
      stats = [mean_ci([metric_value(r, name) for r in steps[s] if not r.get('diverged')])
               for s in xs]
      m = np.array([s[0] for s in stats])
      h = np.nan_to_num(np.array([s[1] for s in stats]))
      label = scheme if pi is None else f'{scheme} π={pi:g}'
      ax.plot(xs, m, label=label)
      ax.fill_between(xs, m - h, m + h, alpha=0.2)
    if name == 'entropy_q':  # the data's entropy: where an exact fit would end
      h_p = mean_ci([r.get('entropy_p') for r in rows if r['step'] == 0])[0]
      if math.isfinite(h_p):
        ax.axhline(h_p, color='k', ls='--', lw=0.8, label='H(P)')
        ax.legend(fontsize=7)
    ax.set_title(name + ' (per token)')
    ax.set_xlabel('step')
  for ax in axes.flat[len(names):]:
    ax.axis('off')
  axes.flat[0].legend(fontsize=7)
  fig.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + '.tmp.png'
  fig.savefig(tmp, dpi=110)
  plt.close(fig)
  os.replace(tmp, path)


ALPHA_METRICS = ('nll_oracle', 'nll_test', 'entropy_q', 'kl_pq', 'kl_qp')


def alpha_markdown(rows) -> str:
  """The α sweep (rows of phase 'alpha'): one line per (scheme, π, α), mean ± 95% CI."""
  header = ['scheme', 'π', 'α', 'seeds ok'] + list(ALPHA_METRICS)
  lines = ['## α sweep (logits × α)', '',
           'Each run\'s selected generator (config.eval.select) at inverse temperature α.', '',
           '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for (scheme, pi, alpha), steps in groups(rows, by=('scheme', 'pi', 'alpha')).items():
    rs = [r for step_rows in steps.values() for r in step_rows]
    ok = [r for r in rs if not r.get('diverged')]
    cells = [scheme, '–' if pi is None else f'{pi:g}', f'{alpha:g}', f'{len(ok)}/{len(rs)}']
    cells += [fmt_ci([r.get(m) for r in ok]) for m in ALPHA_METRICS]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def write_report(output_dir: str, rows, *, title: str) -> None:
  """Writes summary.md and plots/metrics.png for the rows (atomically)."""
  alpha = [r for r in rows if r.get('phase') == 'alpha']
  rows = [r for r in rows if r.get('phase') != 'alpha']
  text = summary_markdown(rows, title=title)
  if alpha:
    text += '\n' + alpha_markdown(alpha)
  results.atomic_write(os.path.join(output_dir, 'summary.md'), text)
  if rows:
    plot(rows, os.path.join(output_dir, 'plots', 'metrics.png'))
