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


_PRESET = flags.DEFINE_string('preset', configs.DEFAULT, 'One of:' + _listing(
    configs.describe(p) for p in configs.PRESETS))
_SCHEMES = flags.DEFINE_string('schemes', None, "Comma-separated schemes, or 'all', or the "
                               'import path of a scheme module of your own '
                               "(default: the preset's). Schemes:" + _listing(_scheme_lines()))
_NUM_SEEDS = flags.DEFINE_integer('num_seeds', None, 'Seeds per scheme (default: the preset\'s).')
_PIS = flags.DEFINE_string('pis', None, 'Comma-separated π grid in [0, 1] for the js_pi '
                           'metrics and π-dependent schemes (default: the preset\'s).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Where results go '
                                  '(default: results/<preset>). A rerun with the same config '
                                  'resumes there.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Discard results of a different config '
                               'found in --output_dir instead of refusing.')
_DISTRIBUTED = flags.DEFINE_bool('distributed', False, 'Call jax.distributed.initialize() '
                                  'first (multi-host: run the same command on every host '
                                  'with a shared --output_dir). Without the three flags '
                                  'below JAX detects them (SLURM, Open MPI, Kubernetes, TPU).')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None, 'With --distributed: '
                                   'host:port of process 0 (else JAX_COORDINATOR_ADDRESS or '
                                   'auto-detection).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'With --distributed: how many '
                                      'processes (hosts) take part.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'With --distributed: this process\'s '
                                   'index in [0, --num_processes).')
_DEFAULT_CONFIG = configs.get_preset(configs.DEFAULT)
if __name__ == '__main__':  # before the config flag resolves the overrides
  with cli.exits_on_bad_input():
    _schemes = configuration.schemes_in_argv(sys.argv)
    if _schemes is not None:  # the config sections of schemes of the user's own
      configs.add_scheme_sections(_DEFAULT_CONFIG, configuration.split_names(_schemes))
    configuration.check_override_fields(sys.argv, _DEFAULT_CONFIG)
_CONFIG = config_flags.DEFINE_config_dict(
    'config', _DEFAULT_CONFIG, 'Overrides of preset fields, e.g. --config.train.num_steps=400.')

def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  with cli.exits_on_bad_input():
    config = configuration.build_config(
        _PRESET.value, flags.FLAGS[_CONFIG.name].override_values, schemes=_SCHEMES.value,
        num_seeds=_NUM_SEEDS.value, pis=_PIS.value)
    configuration.validate(config)  # the flags alone, before jax.distributed and any compute
    configuration.check_distributed_flags(_DISTRIBUTED.value, _COORDINATOR.value,
                                          _NUM_PROCESSES.value, _PROCESS_ID.value)
    output_dir = _OUTPUT_DIR.value or os.path.join('results', config.preset)

  cli.quiet_backend_probe()
  if _DISTRIBUTED.value:
    try:
      jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                                 num_processes=_NUM_PROCESSES.value,
                                 process_id=_PROCESS_ID.value)
    except (ValueError, TypeError) as e:  # nothing given and no cluster detected
      print(f'error: --distributed: {e} (no cluster detected: pass --coordinator_address, '
            '--num_processes and --process_id)', file=sys.stderr)
      sys.exit(2)
  config.lock()
  t0 = time.time()
  with cli.exits_on_bad_input(), cli.invocation_compilation_cache():
    runner.execute(config, output_dir, overwrite=_OVERWRITE.value, log=lambda s: print(s, flush=True))
  if distributed.is_main_process():
    print(f'done in {time.time() - t0:.1f}s; results in {output_dir}/ '
          '(summary.md, results.jsonl, plots/metrics.png, config.json)', flush=True)
    print(open(os.path.join(output_dir, 'summary.md')).read(), flush=True)


if __name__ == '__main__':
  app.run(main)
