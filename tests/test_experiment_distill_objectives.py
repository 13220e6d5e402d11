"""Tests of benchmarks/experiments/distill_objectives.py on constructed rows: each paper's
claim names variants the runs train, and its verdict follows the rows."""

from absl.testing import absltest
import numpy as np

from benchmarks.analysis import verdicts
from benchmarks.engine import experiment as experiment_lib
from benchmarks.experiments import distill_objectives as exp

SEEDS = range(8)
METRICS = ('exact_kl_qp', 'exact_kl_pq', 'exact_entropy_q')


def _rows(values, run='gap', extra=None):
  """values[label] = (kl_qp, kl_pq, entropy) at the last step of `run`, a per-seed jitter;
  extra[label]: its exact_nll_oracle there."""
  rng = np.random.default_rng(0)
  rows = []
  for seed in SEEDS:
    for label, end in values.items():
      jitter = 0.001 * rng.normal()
      for step, point in ((0, (1.0, 1.0, 1.0)), (1000, [v + jitter for v in end])):
        row = {'run': run, 'scheme': label, 'phase': 'train', 'seed': seed, 'step': step,
               **dict(zip(METRICS, point))}
        if extra:
          row['exact_nll_oracle'] = 1.0 if step == 0 else extra[label] + jitter
        rows.append(row)
  return rows


class DistillObjectivesTest(absltest.TestCase):

  def test_every_claim_compares_variants_its_run_trains(self):
    runs = exp.runs(experiment_lib.Options())
    self.assertEqual(set(runs), set(exp.WIDTHS) | {'bond'})
    found = exp.claims(experiment_lib.Options())
    self.assertLen(found, 13)
    for claim in found:
      for select in (getattr(claim, 'a', None), getattr(claim, 'b', None),
                     getattr(claim, 'value', None)):
        if select is not None and select.where.get('phase') in ('train', 'vs_bond_exact'):
          self.assertIn(select.where['scheme'], runs[select.where['run']].variants, claim.name)

  def test_claims_follow_the_rows(self):
    same = {label: (0.30, 0.30, 1.0) for label in exp.VARIANTS}
    better = dict(same, akl_data=(0.25, 0.25, 1.0), taid_data=(0.30, 0.27, 1.0),
                  eopd_student=(0.30, 0.35, 1.2), tailr=(0.40, 0.30, 1.0))
    rows = _rows(better) + _rows(same, run='no_gap')
    found = {v.claim.name: v.word for v in verdicts.judge(
        exp.claims(experiment_lib.Options()), rows)}
    self.assertEqual(found['gap_akl_below_fkl_in_kl_qp'], verdicts.SUPPORTED)
    self.assertEqual(found['gap_akl_below_rkl_in_kl_pq'], verdicts.SUPPORTED)
    self.assertEqual(found['gap_taid_below_fkl_in_kl_pq'], verdicts.SUPPORTED)
    self.assertEqual(found['gap_eopd_higher_entropy'], verdicts.SUPPORTED)
    self.assertEqual(found['gap_eopd_below_rkl_in_kl_pq'], verdicts.CONTRADICTED)
    self.assertEqual(found['gap_tailr_below_mle_in_kl_qp'], verdicts.CONTRADICTED)
    # BOND: its rows, the warm start, and the Monte-Carlo form 0.002 from the exact one.
    rows += _rows({'bond_b0': (0.3, 0.2, 1.0), 'bond_b0.5': (0.3, 0.25, 1.0),
                   'bond_b1': (0.3, 0.4, 1.0), 'bond_sampled_b0.5': (0.3, 0.252, 1.0)},
                  run='bond', extra={'bond_b0': 0.9, 'bond_b0.5': 0.8, 'bond_b1': 0.7,
                                     'bond_sampled_b0.5': 0.8})
    rows += [{'run': 'bond', 'scheme': 'warm_start', 'phase': 'warm_start', 'seed': s,
              'step': 500, 'exact_nll_oracle': 1.0} for s in SEEDS]
    found = {v.claim.name: v.word for v in verdicts.judge(
        exp.claims(experiment_lib.Options()), rows + exp.derive(rows))}
    self.assertEqual(found['bond_improves_quality'], verdicts.SUPPORTED)
    self.assertEqual(found['bond_jeffreys_below_backward_in_kl_pq'], verdicts.SUPPORTED)
    self.assertEqual(found['bond_jeffreys_below_forward_in_nll'], verdicts.SUPPORTED)
    self.assertEqual(found['bond_sampled_matches_exact'], verdicts.SUPPORTED)
    # Equal end points (jitter only): no direction resolved.
    self.assertEqual(found['no_gap_taid_below_fkl_in_kl_pq'], verdicts.UNRESOLVED)
    self.assertEqual(found['gap_abkd_below_fkl_in_kl_qp'], verdicts.UNRESOLVED)


if __name__ == '__main__':
  absltest.main()
