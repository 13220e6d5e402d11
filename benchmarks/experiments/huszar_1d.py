"""Huszár (2015)'s picture: one Gaussian Q fitted to a bimodal P under KL[P‖Q], KL[Q‖P], JS_π.

compute (no generator trained): P is a well-separated two-component 1-D Gaussian mixture,
Q = N(μ, σ²) is fitted on a fine grid (`models.toy`: quadrature divergences, Adam over
(μ, log σ)) by minimising KL[P‖Q], KL[Q‖P] and JS_π(P, Q)/(π(1−π)) for each π of `PIS`, all
in one vmapped compile. Each objective is minimised from the moment match of P and from every
component (`toy.mixture_inits`) and the lowest end point kept: the global minimiser provided
one start lies in its basin. That matters for KL[Q‖P] and large π, where each mode has its
own local minimum. Everything is deterministic: `options.num_seeds` is ignored.

Rows, in nats (1-D densities, not per-token values):
  'fit' (one per objective): {'run': 'fit', 'objective': 'kl_pq' | 'js_pi' | 'kl_qp', 'pi'
    (None for the two KLs), 'mu', 'sigma', 'kl_pq', 'kl_qp' (of the fitted Q), 'js_pi_scaled'
    (the minimised JS_π/(π(1−π)) at the row's π; None for the two KLs), 'grid_points',
    'steps'};
  'local' (one per objective and start): {'run': 'local', 'objective', 'pi', 'start', 'mu',
    'sigma', 'value' (the objective at the start's end point)}: the basins the best fit
    chooses between.
"""

import math
import os
from typing import List

import numpy as np

from benchmarks.analysis import figures
from benchmarks.analysis import verdicts
from benchmarks.engine import experiment as experiment_lib
from models import toy

NAME = 'huszar_1d'
RUN = 'fit'      # the 'run' label of the fits (the best start of each objective)
LOCAL = 'local'  # the 'run' label of each start's end point (the local minimum of its basin)
PIS = (0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99)

# P: modes 6 apart (7.5 and 6 component σ's): the mixture's density between them drops to
# ~0.6% of its higher peak, and a Gaussian on the heavier mode pays at most −log 0.7 in
# KL[Q‖P] (p ≥ 0.7 N(3, 1)).
TARGET = {'weights': (0.3, 0.7), 'mus': (-3.0, 3.0), 'sigmas': (0.8, 1.0)}

# The grid holds every density involved: the widest Q is the moment match (σ ≈ 2.9 around
# 1.2), whose mass outside [−20, 20] is 5e-11 (6.5σ). Spectral accuracy needs only
# dx ≤ σ/2 (dx = 0.08 quick, 0.02 default against the smallest σ = 0.8): the default's finer
# grid is for smooth curves, not for accuracy.
GRID_LO, GRID_HI = -20.0, 20.0
DEFAULT_POINTS, DEFAULT_STEPS = 2001, 1000
QUICK_POINTS, QUICK_STEPS = 501, 300
# Adam's peak step, cosine-decayed to 0: ~40 steps cross from the moment match (μ = 1.2) to
# the heavier mode (μ = 3); the quick (300 steps, 501 points) and default fits agreed to
# 5e-5 in μ and σ.
LEARNING_RATE = 0.05
# The fits' accuracy: what "equals" and "level" mean in the claims (the quick and default fits
# agree to 5e-5 in μ and σ).
FIT_TOLERANCE = 1e-3

OBJECTIVE_NAMES = {'kl_pq': 'KL[P‖Q]', 'kl_qp': 'KL[Q‖P]', 'js_pi': 'JS_π/(π(1−π))'}


def target_logpdf(x):
  """log p(x) of the target mixture P, x any shape (jax array)."""
  return toy.mixture_logpdf(x, *(np.asarray(TARGET[k], np.float32)
                                 for k in ('weights', 'mus', 'sigmas')))


def _start_labels() -> List[str]:
  """Names of the rows of `toy.mixture_inits(TARGET)`, in order."""
  return ['moment match'] + [f'component {k + 1}' for k in range(len(TARGET['weights']))]


def compute(options: experiment_lib.Options, runs_dir: str) -> List[dict]:
  """Rows 'fit' (the best start: KL[P‖Q], JS_π per π of PIS, KL[Q‖P]) and 'local' (each start).

  One jitted program: every fit minimises JS_π/(π(1−π)) for π ∈ {0} ∪ PIS ∪ {1}, whose
  values at π = 0 and π = 1 are exactly KL[P‖Q] and KL[Q‖P] (`divergences.js_pi_scaled`
  returns the limits there), so the two end points are the KL fits.
  """
  del runs_dir  # computed from the options alone
  import jax
  import jax.numpy as jnp

  points, steps = (QUICK_POINTS, QUICK_STEPS) if options.quick else (DEFAULT_POINTS,
                                                                     DEFAULT_STEPS)
  x, dx = toy.grid(GRID_LO, GRID_HI, points)
  log_p = target_logpdf(x)
  init = toy.mixture_inits(*(jnp.asarray(TARGET[k], jnp.float32)
                             for k in ('weights', 'mus', 'sigmas')))
  pis = jnp.asarray((0.0,) + PIS + (1.0,), jnp.float32)

  @jax.jit
  def fit_all(log_p, pis):
    starts = jax.vmap(lambda pi: toy.fit_gaussian_starts(
        log_p, x, 'js_pi', pi, steps=steps, learning_rate=LEARNING_RATE, init=init, dx=dx))(pis)
    best = jax.vmap(toy.best_fit)(starts)                      # fields [len(pis)]
    log_q = toy.normal_logpdf(x, best.mu[:, None], best.sigma[:, None])
    log_ps = jnp.broadcast_to(log_p, log_q.shape)
    return starts, best, toy.kl(log_ps, log_q, dx), toy.kl(log_q, log_ps, dx)

  starts, best, kl_pq, kl_qp = jax.tree.map(np.asarray, fit_all(log_p, pis))
  names = ['kl_pq'] + ['js_pi'] * len(PIS) + ['kl_qp']
  row_pis = [None] + [float(p) for p in PIS] + [None]
  rows = []
  for i, (objective, pi) in enumerate(zip(names, row_pis)):
    rows.append({
        'run': RUN, 'objective': objective, 'pi': pi,
        'mu': float(best.mu[i]), 'sigma': float(best.sigma[i]),
        'kl_pq': float(kl_pq[i]), 'kl_qp': float(kl_qp[i]),
        # The objective this fit minimised; the KL rows' objective is their own column.
        'js_pi_scaled': None if pi is None else float(best.objective[i]),
        'grid_points': points, 'steps': steps,
    })
  for i, (objective, pi) in enumerate(zip(names, row_pis)):
    for j, start in enumerate(_start_labels()):
      rows.append({
          'run': LOCAL, 'objective': objective, 'pi': pi, 'start': start,
          'mu': float(starts.mu[i, j]), 'sigma': float(starts.sigma[i, j]),
          'value': float(starts.objective[i, j]),
      })
  return rows


# --- drawing -------------------------------------------------------------------------------

def _split(rows):
  """(the KL[P‖Q] row or None, the JS_π rows sorted by π, the KL[Q‖P] row or None)."""
  fits = [r for r in rows if r.get('run') == RUN]
  by = lambda name: next((r for r in fits if r['objective'] == name), None)
  js = sorted((r for r in fits if r['objective'] == 'js_pi'), key=lambda r: r['pi'])
  return by('kl_pq'), js, by('kl_qp')


def _normal_pdf(x, mu, sigma):
  return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def _target_pdf(x):
  return sum(w * _normal_pdf(x, m, s)
             for w, m, s in zip(TARGET['weights'], TARGET['mus'], TARGET['sigmas']))


def _densities_panel(ax, kl_pq, js, kl_qp, fig):
  plt = figures.pyplot()
  fits = [r for r in (kl_pq, kl_qp) if r] + js
  lo = min([m - 3 * s for m, s in zip(TARGET['mus'], TARGET['sigmas'])]
           + [r['mu'] - 3 * r['sigma'] for r in fits])
  hi = max([m + 3 * s for m, s in zip(TARGET['mus'], TARGET['sigmas'])]
           + [r['mu'] + 3 * r['sigma'] for r in fits])
  x = np.linspace(lo, hi, 600)
  ax.fill_between(x, _target_pdf(x), color='0.85', lw=0)
  ax.plot(x, _target_pdf(x), color='k', lw=2, label='P (mixture)')
  cmap, norm = plt.get_cmap('viridis'), plt.Normalize(0.0, 1.0)
  # The KL fits wide and pale underneath, the π fits thin on top (they often coincide).
  if kl_pq:
    ax.plot(x, _normal_pdf(x, kl_pq['mu'], kl_pq['sigma']), color='C3', ls='--', lw=3,
            alpha=0.6, label='argmin KL[P‖Q]')
  if kl_qp:
    ax.plot(x, _normal_pdf(x, kl_qp['mu'], kl_qp['sigma']), color='C1', ls='--', lw=3,
            alpha=0.6, label='argmin KL[Q‖P]')
  for r in js:
    ax.plot(x, _normal_pdf(x, r['mu'], r['sigma']), color=cmap(norm(r['pi'])), lw=1)
  fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax,
               label='π of argmin JS_π/(π(1−π))')
  ax.set_xlabel('x')
  ax.set_ylabel('density')
  ax.set_title('P and the fitted Gaussians Q')
  figures.dedupe_legend(ax, fontsize=7)


def _parameters_panel(ax, kl_pq, js, kl_qp):
  pis = [r['pi'] for r in js]
  for key, color, name in (('mu', 'C0', 'μ'), ('sigma', 'C2', 'σ')):
    ax.plot(pis, [r[key] for r in js], marker='o', ms=4, color=color, label=f'{name}, JS_π fit')
    # The KL fits at the ends they are the limits of: π → 0 and π → 1.
    if kl_pq:
      ax.plot([0.0], [kl_pq[key]], marker='s', ls='', color=color, mfc='none',
              label='KL[P‖Q] fit (π → 0)')
    if kl_qp:
      ax.plot([1.0], [kl_qp[key]], marker='D', ls='', color=color, mfc='none',
              label='KL[Q‖P] fit (π → 1)')
  ax.set_xlabel('π')
  ax.set_ylabel('fitted μ, σ')
  ax.set_title('Parameters of the fits against π')
  figures.dedupe_legend(ax, fontsize=7)


def basin(row) -> str:
  """Which basin an end point (μ, σ) lies in: 'covers both modes' (σ above every component's
  by half again) or 'on component k' (the nearest component mean)."""
  if row['sigma'] > 1.5 * max(TARGET['sigmas']):
    return 'covers both modes'
  k = int(np.argmin([abs(row['mu'] - m) for m in TARGET['mus']]))
  return f'on component {k + 1}'


def _basins_panel(ax, rows, kl_pq, js, kl_qp):
  """The local minima against π, one line per basin (where they cross, the best fit jumps
  from one to the other), each start's end point a marker beside it (dodged: several starts
  often end at one minimum), the best one ringed."""
  position = lambda r: {'kl_pq': 0.0, 'kl_qp': 1.0}.get(r['objective'], r['pi'])
  local = [r for r in rows if r.get('run') == LOCAL]
  basins = sorted({basin(r) for r in local})
  for j, b in enumerate(basins):  # the basin's minimum at each π where some start reached it
    at = {}
    for r in local:
      if basin(r) == b:
        at[position(r)] = min(at.get(position(r), math.inf), r['value'])
    xs = sorted(at)
    ax.plot(xs, [at[x] for x in xs], '-', lw=1.2, color=f'C{j}', alpha=0.8, label=b)
  starts = list(dict.fromkeys(r['start'] for r in local))
  markers = ('^', 'v', '<', '>', 'x')
  for j, start in enumerate(starts):
    dodge = 0.015 * (j - (len(starts) - 1) / 2)
    rs = [r for r in local if r['start'] == start]
    ax.plot([position(r) + dodge for r in rs], [r['value'] for r in rs], ls='',
            marker=markers[j % len(markers)], ms=4, color='0.35', label=f'from {start}')
  best = ([kl_pq] if kl_pq else []) + js + ([kl_qp] if kl_qp else [])
  value = lambda r: r[r['objective']] if r['pi'] is None else r['js_pi_scaled']
  ax.plot([position(r) for r in best], [value(r) for r in best], 'o', mfc='none', color='k',
          ms=9, label='best (the fit)')
  ax.set_xlabel('π (0: KL[P‖Q], 1: KL[Q‖P])')
  ax.set_ylabel('JS_π/(π(1−π)) at the end point (nats)')
  ax.set_title('Local minima by basin (lines) and start (markers)', fontsize=9)
  figures.dedupe_legend(ax, fontsize=6)


def _sentence(kl_pq, js, kl_qp) -> str:
  """The numbers behind the verdicts: the JS_π fits' σ along π and its largest change."""
  if len(js) < 2:
    return 'Fewer than two JS_π fits: no trend in π to report.'
  sig = [r['sigma'] for r in js]
  k = int(np.argmax(np.abs(np.diff(sig))))
  ends = []
  if kl_pq:
    ends.append(f'KL[P‖Q] fit σ = {kl_pq["sigma"]:.4g}')
  if kl_qp:
    ends.append(f'KL[Q‖P] fit σ = {kl_qp["sigma"]:.4g}')
  return (f'As π grows from {js[0]["pi"]:g} to {js[-1]["pi"]:g}, the JS_π fit\'s σ goes from '
          f'{sig[0]:.4g} to {sig[-1]:.4g}' + (f' ({"; ".join(ends)})' if ends else '') +
          f'; its largest change between neighbouring π ({sig[k]:.4g} → {sig[k + 1]:.4g}, μ '
          f'{js[k]["mu"]:.4g} → {js[k + 1]["mu"]:.4g}) lies between π = {js[k]["pi"]:g} and '
          f'π = {js[k + 1]["pi"]:g}.')


def moment_match():
  """(μ, σ) of P's moments: the closed-form argmin of KL[P‖Q] over Gaussians Q."""
  w, m, s = (np.asarray(TARGET[k], float) for k in ('weights', 'mus', 'sigmas'))
  mu = float(w @ m)
  return mu, math.sqrt(float(w @ (s ** 2 + m ** 2)) - mu ** 2)


def claims(options):
  """Huszár's three statements as checks of the computed fits (no seeds: certain verdicts)."""
  del options
  mu, sigma = moment_match()
  heavy = int(np.argmax(TARGET['weights']))
  js = {'run': RUN, 'objective': 'js_pi'}
  return [
      verdicts.ClosedForm('kl_pq_moment_mu', 'argmin KL[P‖Q] is the moment match: its μ is '
                          f'Σ w_k μ_k = {mu:.4g}', {'run': RUN, 'objective': 'kl_pq'}, 'mu', mu,
                          FIT_TOLERANCE),
      verdicts.ClosedForm('kl_pq_moment_sigma', 'and its σ is P\'s standard deviation '
                          f'{sigma:.4g}', {'run': RUN, 'objective': 'kl_pq'}, 'sigma', sigma,
                          FIT_TOLERANCE),
      verdicts.ClosedForm('kl_qp_on_a_mode', 'argmin KL[Q‖P] sits on the heavier mode: its μ '
                          f'within one component σ ({TARGET["sigmas"][heavy]:g}) of '
                          f'{TARGET["mus"][heavy]:g}', {'run': RUN, 'objective': 'kl_qp'}, 'mu',
                          TARGET['mus'][heavy], TARGET['sigmas'][heavy]),
      verdicts.Ordered('js_sigma_falls', 'argmin JS_π/(π(1−π)) goes from the first to the '
                       'second as π grows: its σ never rises along the π grid', js, 'pi',
                       'sigma', -1, FIT_TOLERANCE),
      verdicts.Ordered('js_kl_pq_rises', 'its KL[P‖Q] never falls along the π grid', js, 'pi',
                       'kl_pq', +1, FIT_TOLERANCE),
      verdicts.Ordered('js_kl_qp_falls', 'its KL[Q‖P] never rises along the π grid', js, 'pi',
                       'kl_qp', -1, FIT_TOLERANCE),
  ]


def _table(kl_pq, js, kl_qp) -> List[str]:
  lines = ['| objective | π | μ | σ | KL[P‖Q] | KL[Q‖P] |', '|---|---|---|---|---|---|']
  for r in [x for x in (kl_pq,) if x] + js + [x for x in (kl_qp,) if x]:
    pi = '–' if r['pi'] is None else f'{r["pi"]:g}'
    lines.append(f'| {OBJECTIVE_NAMES[r["objective"]]} | {pi} | {r["mu"]:.4f} | '
                 f'{r["sigma"]:.4f} | {r["kl_pq"]:.5f} | {r["kl_qp"]:.5f} |')
  return lines


def draw(rows: List[dict], output_dir: str, options: experiment_lib.Options) -> str:
  """Writes huszar_1d.png (densities; μ, σ against π; local minima) and returns the table."""
  del options
  kl_pq, js, kl_qp = _split(rows)
  fig, axes = figures.subplots(1, 3, width=4.6, height=3.6)
  _densities_panel(axes[0, 0], kl_pq, js, kl_qp, fig)
  _parameters_panel(axes[0, 1], kl_pq, js, kl_qp)
  _basins_panel(axes[0, 2], rows, kl_pq, js, kl_qp)
  figures.save(fig, os.path.join(output_dir, f'{NAME}.png'))

  w, m, s = TARGET['weights'], TARGET['mus'], TARGET['sigmas']
  mixture = ' + '.join(f'{wi:g}·N({mi:g}, {si:g}²)' for wi, mi, si in zip(w, m, s))
  # The heading and the claim come from benchmarks.experiment's header.
  lines = [f'P = {mixture}; Q = N(μ, σ²) minimising each objective on a grid (quadrature, '
           'nats); deterministic (no seeds).', '']
  lines += _table(kl_pq, js, kl_qp)
  lines += ['', _sentence(kl_pq, js, kl_qp)]
  return '\n'.join(lines) + '\n'


EXPERIMENT = experiment_lib.Experiment(
    name=NAME,
    claim=('Fitting one Gaussian Q to a bimodal P (Huszár 2015): argmin KL[P‖Q] is the moment '
           'match (mode covering), argmin KL[Q‖P] sits on one mode (mode seeking), and argmin '
           'JS_π/(π(1−π)) goes from the first to the second as π goes from 0 to 1.'),
    runs=lambda options: {},
    compute=compute,
    draw=draw,
    claims=claims,
    explanation=(
        'How to read them. These are computations, not samples: quadrature on a grid and Adam '
        'from several starts per objective, keeping the lowest end point, so each verdict is '
        'certain given the fits (each claim states its tolerance: 1e-3, the fits\' accuracy, '
        'for a moment; a component\'s σ for "on a mode"). The ordering claims '
        'say nothing of how the fit moves: the sentence below the table gives its largest '
        'change between neighbouring π, and the right panel of the figure the basins it '
        'chooses between (covering both modes, or sitting on one).'),
)
