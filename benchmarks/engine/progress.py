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
  """[(base scheme, run-steps still to train)] of schemes = [(label, base scheme, num_steps,
  runs)]: (num_steps minus the last step of the label's curve rows in rows) × runs (the rows
  run ahead of the checkpoint by at most one chunk; a finished scheme counts zero)."""
  done = {}
  for r in rows:
    if r.get('phase') != ALPHA:
      done[r['scheme']] = max(done.get(r['scheme'], 0), r['step'])
  return [(base, max(steps - done.get(label, 0), 0) * runs)
          for label, base, steps, runs in schemes]

