"""Checks a per-token distillation loss against the exact reference (benchmarks/measure/conformance.py).

    python -m benchmarks.conformance --adapter=trl_gkd
    python -m benchmarks.conformance --adapter=all --output=docs/runs/conformance.md
    python -m benchmarks.conformance --loss=my_lab.losses:gkd --divergence=jsd \
        --convention=gkd --reduction=token_mean --framework=torch

Prints one line per case (PASS, or FAIL with the measured error), then `N passed, M failed`;
exits 1 when a case fails, 2 on bad input (one line naming the flag). --output writes the
markdown table too.
"""

import sys

from absl import app
from absl import flags

from benchmarks.engine import cli
from benchmarks.engine import files
from benchmarks.measure import conformance


def define_flags(fv=flags.FLAGS):
  d = conformance.Spec('jsd')
  flags.DEFINE_string('adapter', None, 'A named loss with its claim: '
                      + ', '.join(conformance.ADAPTERS) + '; or all (those whose package is '
                      'installed; the others are listed as not run)', flag_values=fv)
  flags.DEFINE_string('loss', None, 'MODULE:FUNCTION of a loss (student logits, teacher '
                      'logits, mask, *, beta, temperature) -> scalar.', flag_values=fv)
  flags.DEFINE_string('divergence', None, 'What --loss claims: '
                      + ', '.join(conformance.DIVERGENCES), flag_values=fv)
  flags.DEFINE_string('convention', d.convention, 'jsd\'s β convention: '
                      + ', '.join(conformance.CONVENTIONS), flag_values=fv)
  flags.DEFINE_string('reduction', d.reduction, ', '.join(conformance.REDUCTIONS),
                      flag_values=fv)
  flags.DEFINE_string('temperature', d.temperature, ', '.join(conformance.TEMPERATURES),
                      flag_values=fv)
  flags.DEFINE_float('skew_alpha', d.skew_alpha, 'α of skl and srkl.', flag_values=fv)
  flags.DEFINE_string('framework', d.framework, ', '.join(conformance.FRAMEWORKS),
                      flag_values=fv)
  flags.DEFINE_string('output', None, 'Also write the markdown table here.', flag_values=fv)


def chosen(fv=flags.FLAGS):
  """(name, loss, Spec) of the flags; ValueError naming the flag on bad input. No compute
  beyond importing the loss."""
  if (fv.adapter is None) == (fv.loss is None):
    raise ValueError('--adapter, --loss: give exactly one')
  if fv.adapter is not None:
    return (fv.adapter,) + conformance.load_adapter(fv.adapter)
  if fv.divergence is None:
    raise ValueError('--divergence: say what --loss claims to compute')
  spec = conformance.Spec(fv.divergence, fv.convention, fv.reduction, fv.temperature,
                          fv.skew_alpha, fv.framework)
  conformance.check_spec(spec)
  return fv.loss, conformance.resolve_loss(fv.loss), spec


def run_all(output):
  """Every adapter whose package imports; the summary to `output`; the number failed."""
  reports, failed = [], 0
  for name, (_, spec) in conformance.ADAPTERS.items():
    try:
      loss, _ = conformance.load_adapter(name)
    except ValueError as e:
      print(f'SKIP {name}: {str(e).splitlines()[0]}', flush=True)
      reports.append((name, conformance.version(name), spec, None))
      continue
    results = conformance.run(loss, spec)
    failed += sum(not r.passed for r in results)
    print(f'{name}: {sum(r.passed for r in results)} of {len(results)} cases pass', flush=True)
    reports.append((name, conformance.version(name), spec, results))
  if output:
    files.atomic_write(output, conformance.summary(reports))
  return failed


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli.quiet_backend_probe()
  fv = flags.FLAGS
  if fv.adapter == 'all':
    with cli.exits_on_bad_input():
      if fv.loss is not None:
        raise ValueError('--adapter, --loss: give exactly one')
      failed = run_all(fv.output)
    sys.exit(1 if failed else 0)
  with cli.exits_on_bad_input():
    name, loss, spec = chosen()
    results = conformance.run(loss, spec)
    for r in results:
      print(conformance.line(r), flush=True)
    if fv.output:
      files.atomic_write(fv.output, conformance.markdown(name, spec, results))
  failed = sum(not r.passed for r in results)
  print(f'{len(results) - failed} passed, {failed} failed')
  sys.exit(1 if failed else 0)


if __name__ == '__main__':
  define_flags()
  app.run(main)
