"""Statistics over seeds: mean ± t confidence intervals, paired differences, row grouping."""

import collections
import math

import numpy as np
# The t quantile from scipy.special (stdtrit is what scipy.stats.t.ppf evaluates, bit for bit):
# importing scipy.stats costs every command ~1.2 s of start-up on the 2-core CPU.
import scipy.special


def mean_ci(values, confidence: float = 0.95):
  """(mean, half-width of the t confidence interval, n) of the finite values."""
  v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
  if v.size == 0:
    return math.nan, math.nan, 0
  if v.size == 1:
    return float(v[0]), math.nan, 1
  half = scipy.special.stdtrit(v.size - 1, 0.5 + confidence / 2) * v.std(ddof=1) / math.sqrt(v.size)
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



def paired(a_rows, b_rows, value):
  """Per-seed differences value(a) − value(b) over the seeds present in both (a's order).

  Rows of two schemes (or settings) that share a seed share its keys, and warm-started ones
  its MLE start, so these differences are sharper than the two marginal CIs. `value` maps a
  row to a float or None; pairs with a None or non-finite side are skipped, so diverged seeds
  drop out.
  """
  by_seed = {r['seed']: r for r in b_rows}
  out = []
  for r in a_rows:
    if r['seed'] in by_seed:
      x, y = value(r), value(by_seed[r['seed']])
      if x is not None and y is not None and math.isfinite(x - y):
        out.append(x - y)
  return out



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

