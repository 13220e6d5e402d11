"""Progress lines and the ETA of a scheme and of the whole run (pure functions of counts and
seconds)."""

ALPHA = 'alpha'  # the rows' phase of the α sweep: not part of a curve


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  if seconds < 60:
    return f'{seconds}s'
  if seconds < 3600:
    return f'{seconds // 60}m{seconds % 60:02d}s'
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'



def run_eta(remaining: float, rate: float, upcoming=(), rates=None) -> float:
  """Seconds left in the whole run, in run-steps (one training step of one (seed, π) run):
  this scheme's `remaining` run-steps at its `rate` (run-steps/s), plus each upcoming
  (base scheme, run-steps to go) at the rate measured for that base scheme in this
  invocation when known (`rates`: {base scheme: run-steps/s}), else at this scheme's rate.

  Counting run-steps, not steps, keeps a 15-run π sweep from pricing the 5-run schemes after
  it at its own slow steps. Deliberately simple otherwise: the α sweep and compilation of
  schemes to come are not counted. NaN when rate is unknown.
  """
  rates = rates or {}
  if not (rate == rate and rate > 0):
    return float('nan')
  return remaining / rate + sum(work / rates.get(base, rate) for base, work in upcoming)



def progress(done: int, remaining: int, elapsed: float, upcoming=None, rates=None,
             runs: int = 1) -> str:
  """'12.3s, 45.6 steps/s, ETA 1m05s' for one scheme of `runs` runs: steps done in `elapsed`
  seconds of this invocation (compilation included, so early rates are low) and steps still
  to go; with `upcoming` (the schemes still to train after this one, see `run_eta`), also
  ', run ETA 12m30s' for the whole run, written '~12m30s' when a scheme still to train has
  no measured rate and is priced at this one's (a guess: SeqGAN's steps cost ~10x gan_pi's)."""
  rate = done / elapsed if elapsed > 0 and done > 0 else float('nan')
  eta = remaining / rate if rate == rate and rate > 0 else float('nan')
  text = f'{elapsed:.1f}s, {rate:.3g} steps/s, ETA {_duration(eta) if eta == eta else "?"}'
  if upcoming is not None:
    total = run_eta(remaining * runs, rate * runs, upcoming, rates)
    guess = '~' if any(work and base not in (rates or {}) for base, work in upcoming) else ''
    text += f', run ETA {guess + _duration(total) if total == total else "?"}'
  return text



def steps_to_go(rows, schemes) -> list:
  """[(label, base scheme, run-steps still to train)] of schemes = [(label, base scheme,
  num_steps, runs)]: (num_steps minus the last step of the label's curve rows in rows) × runs
  (the rows run ahead of the checkpoint by at most one chunk; a finished scheme counts zero)."""
  done = {}
  for r in rows:
    if r.get('phase') != ALPHA:
      done[r['scheme']] = max(done.get(r['scheme'], 0), r['step'])
  return [(label, base, max(steps - done.get(label, 0), 0) * runs)
          for label, base, steps, runs in schemes]



class Clock:
  """The run's ETA across its phases (warm start, then each scheme or variant): the run-steps
  each phase still has to train when the invocation starts, and the rates measured so far.

  `runner.execute` makes one per run; `train.train_scheme` asks it for each progress line.
  """

  def __init__(self, phases):
    """phases: [(label, base scheme, run-steps to go)] in training order (`steps_to_go`)."""
    self.phases = list(phases)
    self.rates = {}  # {base scheme: run-steps/s measured in this invocation}

  def line(self, base: str, label: str, done: int, remaining: int, elapsed: float,
           runs: int = 1) -> str:
    """`progress` of phase `label` (base scheme `base`, `runs` runs): `done` steps in
    `elapsed` s, `remaining` to go; records the phase's rate, and with phases known adds the
    run ETA over the phases after this one."""
    if elapsed > 0:
      self.rates[base] = done * runs / elapsed
    labels = [p[0] for p in self.phases]
    if label not in labels:
      return progress(done, remaining, elapsed, runs=runs)
    upcoming = [(b, work) for _, b, work in self.phases[labels.index(label) + 1:]]
    return progress(done, remaining, elapsed, upcoming, self.rates, runs=runs)
