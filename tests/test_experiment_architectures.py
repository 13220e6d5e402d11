"""Tests of benchmarks/experiments/architectures.py beyond its --quick run (tests/test_experiment.py):
matched parameter counts, one claim of each kind per cell, and the transfer table's reading."""

from absl.testing import absltest

from benchmarks.engine import experiment as experiment_lib
from benchmarks.experiments import architectures as arch

FULL = experiment_lib.Options()


def _rows(cell, student, data, seeds=10):
  """Final training rows of fkl on student and data prefixes in `cell` (exact KL[P‖Q])."""
  out = []
  for seed in range(seeds):
    for label, value in (('fkl_student', student), ('fkl_data', data)):
      out.append({'run': cell, 'scheme': label, 'phase': 'train', 'seed': seed, 'step': 100,
                  'pi': None, 'diverged': False,
                  'exact_kl_pq': value + 0.01 * ((seed * 7) % 5)})
  return out


class ArchitecturesTest(absltest.TestCase):

  def test_the_two_generators_have_matched_parameter_counts(self):
    counts = arch.parameter_counts(FULL)
    self.assertLen(counts, 4)
    lstm, transformer = counts['lstm_random'], counts['transformer_random']
    self.assertLess(abs(lstm - transformer) / lstm, 0.05, counts)
    self.assertEqual(counts['lstm_random'], counts['lstm_automaton'])

  def test_every_cell_gets_every_claim(self):
    names = [c.name for c in arch.claims(FULL)]
    self.assertLen(set(names), len(names))
    kinds = {}
    for name in names:
      cell, kind = name.split('__')
      kinds.setdefault(kind, set()).add(cell)
    self.assertLen(kinds, 8)
    for cells in kinds.values():
      self.assertEqual(cells, set(arch.cells(FULL)))

  def test_the_transfer_table_reads_holds_flips_and_unresolved(self):
    # fkl_on_policy: supported in the reference cell, contradicted in one, supported in
    # another, no rows in the last.
    rows = (_rows('lstm_random', 0.1, 0.3) + _rows('transformer_random', 0.3, 0.1)
            + _rows('lstm_automaton', 0.1, 0.3))
    names = list(arch.cells(FULL))
    table = arch.transfer_table(rows, FULL, names)
    line = next(l for l in table if l.startswith('| fkl_on_policy |'))
    cells = [c.strip() for c in line.strip('|').split('|')][1:]
    self.assertEqual(dict(zip(names, cells)), {
        'lstm_random': 'supported', 'lstm_automaton': 'supported (holds)',
        'transformer_random': 'contradicted (flips)',
        'transformer_automaton': 'unresolved'})
    # A claim resolved in a cell but not in the reference reads against nothing.
    table = arch.transfer_table(_rows('transformer_random', 0.1, 0.3), FULL, names)
    line = next(l for l in table if l.startswith('| fkl_on_policy |'))
    self.assertIn('| supported (reference unresolved) |', line)


if __name__ == '__main__':
  absltest.main()
