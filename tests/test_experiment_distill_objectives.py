"""Tests of benchmarks/experiments/distill_objectives.py on constructed rows: each paper's
claim names variants the runs train, and its verdict follows the rows."""

from absl.testing import absltest
import numpy as np

from benchmarks.analysis import verdicts
from benchmarks.engine import experiment as experiment_lib
from benchmarks.experiments import distill_objectives as exp

SEEDS = range(8)
METRICS = ('exact_kl_qp', 'exact_kl_pq', 'exact_entropy_q')


def _rows(values, run='gap'):
  """values[label] = (kl_qp, kl_pq, entropy) at the last step of `run`, a per-seed jitter."""
  rng = np.random.default_rng(0)
  rows = []
  for seed in SEEDS:
    for label, end in values.items():
      jitter = 0.001 * rng.normal()
      for step, point in ((0, (1.0, 1.0, 1.0)), (1000, [v + jitter for v in end])):
        rows.append({'run': run, 'scheme': label, 'phase': 'train', 'seed': seed,
                     'step': step, **dict(zip(METRICS, point))})
  return rows


class DistillObjectivesTest(absltest.TestCase):

  def test_every_claim_compares_variants_its_run_trains(self):
    runs = exp.runs(experiment_lib.Options())
    self.assertEqual(set(runs), set(exp.WIDTHS))
    found = exp.claims(experiment_lib.Options())
    self.assertLen(found, 9)
    for claim in found:
      run = claim.a.where['run']
      for select in (claim.a, claim.b):
        self.assertIn(select.where['scheme'], runs[run].variants, claim.name)

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
    # Equal end points (jitter only): no direction resolved.
    self.assertEqual(found['no_gap_taid_below_fkl_in_kl_pq'], verdicts.UNRESOLVED)
    self.assertEqual(found['gap_abkd_below_fkl_in_kl_qp'], verdicts.UNRESOLVED)


if __name__ == '__main__':
  absltest.main()
