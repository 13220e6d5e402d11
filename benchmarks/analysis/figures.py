"""Shared drawings of the experiments: curves with CI bands, the KL[Q‖P]–KL[P‖Q] plane.

Every experiment draws with these (DESIGN.md: shared plots live in one place). Figures are
written atomically (files.atomic_write).
"""

import io
import math
from typing import Sequence

import numpy as np

from benchmarks.analysis import stats
from benchmarks.engine import files


def pyplot():
  """matplotlib.pyplot on the non-interactive Agg backend."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  return plt


def subplots(nrows: int = 1, ncols: int = 1, *, width: float = 4.4, height: float = 3.4):
  """(fig, axes [nrows, ncols]) of the given panel size in inches."""
  plt = pyplot()
  return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)


def save(fig, path: str, dpi: int = 110) -> str:
  """Writes fig to path (PNG) with files.atomic_write and closes it; returns path.

  A rerun after a kill sees the previous figure or the new one, never a part; a failed write
  raises files.WriteError naming path.
  """
  plt = pyplot()
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=dpi)
  plt.close(fig)
  files.atomic_write(path, buffer.getvalue())
  return path


def mean_ci_arrays(groups: Sequence[Sequence[float]]):
  """(means [n], CI half-widths [n], counts [n]) of each group (stats.mean_ci each)."""
  cis = [stats.mean_ci(g) for g in groups]
  return (np.array([c[0] for c in cis]), np.array([c[1] for c in cis]),
          np.array([c[2] for c in cis]))


def band(ax, x, groups: Sequence[Sequence[float]], *, label=None, color=None, marker=None,
         ls='-', ci: bool = True, log: bool = False):
  """A mean curve over x with its 95% CI band; groups[i] = the seeds' values at x[i].

  ci=False draws the mean alone (e.g. 2 seeds, whose t-interval is ±12.7 standard errors).
  log=True (positive values, a log axis): the geometric mean and the CI of the mean log,
  exponentiated, so the band stays above zero where an arithmetic one would reach it.
  """
  if log:
    groups = [[math.log(v) for v in g if v is not None and v > 0] for g in groups]
  m, h, _ = mean_ci_arrays(groups)
  if log:
    lo, hi = np.exp(m - np.nan_to_num(h)), np.exp(m + np.nan_to_num(h))
    m = np.exp(m)
  else:
    lo, hi = m - np.nan_to_num(h), m + np.nan_to_num(h)
  line, = ax.plot(x, m, label=label, color=color, marker=marker, ls=ls, ms=4)
  if ci:
    ax.fill_between(x, lo, hi, alpha=0.2, color=line.get_color(), lw=0)
  return line


def kl_plane(ax, points, *, annotate: bool = True):
  """The KL[Q‖P] (x) – KL[P‖Q] (y) plane: one point per entry with CI bars.

  Args:
    ax: a matplotlib Axes.
    points: sequence of dicts {label, kl_qp: [seeds], kl_pq: [seeds], color?, marker?,
      text?}: each drawn at the means with 95% CI error bars in both directions; `text`
      (e.g. 'π=0.1') is written beside the point when annotate.
  """
  for p in points:
    (mx, hx, _), (my, hy, _) = stats.mean_ci(p['kl_qp']), stats.mean_ci(p['kl_pq'])
    if not (math.isfinite(mx) and math.isfinite(my)):
      continue
    ax.errorbar(mx, my, xerr=np.nan_to_num(hx), yerr=np.nan_to_num(hy), fmt=p.get('marker', 'o'),
                color=p.get('color'), label=p.get('label'), ms=5, capsize=2, lw=0.8)
    if annotate and p.get('text'):
      ax.annotate(p['text'], (mx, my), fontsize=6, xytext=(3, 3), textcoords='offset points')
  ax.set_xlabel('KL[Q‖P] per token')
  ax.set_ylabel('KL[P‖Q] per token')


def dedupe_legend(ax, **kwargs):
  """A legend with one entry per label."""
  handles, labels = ax.get_legend_handles_labels()
  seen = {}
  for h, l in zip(handles, labels):
    seen.setdefault(l, h)
  if seen:
    ax.legend(list(seen.values()), list(seen), **kwargs)
