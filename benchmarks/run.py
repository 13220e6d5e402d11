"""Runs the benchmark: `python -m benchmarks.run [--preset=small] [--schemes=mle] ...`.

Thin on purpose: parse and validate flags (before any compute), then hand the config to the
engine (`engine.runner.execute`: the output directory, the problem, each scheme's training and
evaluation, the report). Any preset field can be overridden: `--config.train.num_steps=400`.
`--schemes` also takes the import path of a scheme module of your own (docs/own_scheme.md).
"""

import os
import sys
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from benchmarks import configs
from benchmarks.engine import cli
from benchmarks.engine import configuration
from benchmarks.engine import distributed
from benchmarks.engine import runner
import objectives


def _listing(lines) -> str:
  return ''.join(f'\n  {line}' for line in lines)


def _scheme_lines():
  return [f'{name}: {(mod.__doc__ or "").strip().splitlines()[0]}'
          for name, mod in objectives.REGISTRY.items()]


def define_flags(argv, flag_values=flags.FLAGS) -> None:
  """Defines the command's flags on flag_values, for parsing argv.

  Before the config flag exists (ml_collections resolves its overrides while parsing): a
  scheme given by import path in argv brings its config section, and an unknown
  --config.<field> of argv is a ValueError naming it (not a raw AttributeError).
  """
  default = configs.get_preset(configs.DEFAULT)
  schemes = configuration.schemes_in_argv(argv)
  if schemes is not None:  # the config sections of schemes of the user's own
    configs.add_scheme_sections(default, configuration.split_names(schemes))
  configuration.check_override_fields(argv, default)
  fv = flag_values
  flags.DEFINE_string('preset', configs.DEFAULT, 'One of:' + _listing(
      configs.describe(p) for p in configs.PRESETS), flag_values=fv)
  flags.DEFINE_string('schemes', None, "Comma-separated schemes, or 'all', or the import path "
                      "of a scheme module of your own (default: the preset's). Schemes:"
                      + _listing(_scheme_lines()), flag_values=fv)
  flags.DEFINE_integer('num_seeds', None, "Seeds per scheme (default: the preset's).",
                       flag_values=fv)
  flags.DEFINE_string('pis', None, 'Comma-separated π grid in [0, 1] for the js_pi metrics '
                      "and π-dependent schemes (default: the preset's).", flag_values=fv)
  flags.DEFINE_string('output_dir', None, 'Where results go (default: results/<preset>). A '
                      'rerun with the same config resumes there.', flag_values=fv)
  flags.DEFINE_bool('overwrite', False, 'Discard results of a different config found in '
                    '--output_dir instead of refusing.', flag_values=fv)
  flags.DEFINE_bool('distributed', False, 'Call jax.distributed.initialize() first '
                    '(multi-host: run the same command on every host with a shared '
                    '--output_dir). Without the three flags below JAX detects them (SLURM, '
                    'Open MPI, Kubernetes, TPU).', flag_values=fv)
  flags.DEFINE_string('coordinator_address', None, 'With --distributed: host:port of process '
                      '0 (else JAX_COORDINATOR_ADDRESS or auto-detection).', flag_values=fv)
  flags.DEFINE_integer('num_processes', None, 'With --distributed: how many processes '
                       '(hosts) take part.', flag_values=fv)
  flags.DEFINE_integer('process_id', None, "With --distributed: this process's index in "
                       '[0, --num_processes).', flag_values=fv)
  config_flags.DEFINE_config_dict('config', default, 'Overrides of preset fields, e.g. '
                                  '--config.train.num_steps=400.', flag_values=fv,
                                  sys_argv=list(argv))


def config_from_flags(fv=flags.FLAGS):
  """(config, output_dir) of the parsed flags: built and validated, no compute. ValueError
  naming the flag on bad input (the same checks the command makes before jax starts)."""
  config = configuration.build_config(
      fv.preset, fv['config'].override_values, schemes=fv.schemes, num_seeds=fv.num_seeds,
      pis=fv.pis)
  configuration.validate(config)
  configuration.check_distributed_flags(fv.distributed, fv.coordinator_address,
                                        fv.num_processes, fv.process_id)
  return config, fv.output_dir or os.path.join('results', config.preset)


def _parse(argv):
  with cli.exits_on_bad_input():
    define_flags(argv)
  return app.parse_flags_with_usage(argv)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  fv = flags.FLAGS
  with cli.exits_on_bad_input():
    config, output_dir = config_from_flags(fv)  # before jax.distributed and any compute
  cli.quiet_backend_probe()
  if fv.distributed:
    try:
      jax.distributed.initialize(coordinator_address=fv.coordinator_address,
                                 num_processes=fv.num_processes, process_id=fv.process_id)
    except (ValueError, TypeError) as e:  # nothing given and no cluster detected
      print(f'error: --distributed: {e} (no cluster detected: pass --coordinator_address, '
            '--num_processes and --process_id)', file=sys.stderr)
      sys.exit(2)
  config.lock()
  t0 = time.time()
  with cli.exits_on_bad_input(), cli.invocation_compilation_cache():
    runner.execute(config, output_dir, overwrite=fv.overwrite,
                   log=lambda s: print(s, flush=True))
  if distributed.is_main_process():
    print(f'done in {time.time() - t0:.1f}s; results in {output_dir}/ '
          '(summary.md, results.jsonl, plots/metrics.png, config.json)', flush=True)
    print(open(os.path.join(output_dir, 'summary.md')).read(), flush=True)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse)
