"""Tests of benchmarks/experiments/kl_estimators.py on constructed rows: the derived
differences and the claims' verdicts follow the rows."""

from absl.testing import absltest
import numpy as np

from benchmarks.analysis import verdicts
from benchmarks.engine import experiment as experiment_lib
from benchmarks.experiments import kl_estimators as exp

SEEDS = range(8)


def _rows(values, warm=(0.5, 0.4)):
  """Exact-KL rows: values[label] = (kl_qp, kl_pq) at the last step (step 1000, a per-seed
  jitter), a step-0 row each, and the warm start's last evaluation."""
  rng = np.random.default_rng(0)
  rows = []
  for seed in SEEDS:
    rows.append({'scheme': 'warm_start', 'phase': 'warm_start', 'seed': seed, 'step': 500,
                 'exact_kl_qp': warm[0], 'exact_kl_pq': warm[1], 'exact_kl_pq_se': 0.0})
    for label, (qp, pq) in values.items():
      jitter = 0.001 * rng.normal()
      for step, (a, b) in ((0, warm), (1000, (qp + jitter, pq + jitter))):
        rows.append({'scheme': label, 'phase': 'train', 'seed': seed, 'step': step,
                     'exact_kl_qp': a, 'exact_kl_pq': b})
  return rows


class KlEstimatorsTest(absltest.TestCase):

  def test_derive_is_each_setting_minus_the_exact_gradient(self):
    rows = _rows({'k3_loss': (0.35, 0.25), 'analytic_both': (0.30, 0.30), 'mle': (0.4, 0.2)})
    derived = exp.derive(rows)
    self.assertEqual({r['scheme'] for r in derived}, {'k3_loss'})  # (not the references)
    self.assertLen(derived, len(SEEDS))
    for r in derived:
      self.assertAlmostEqual(r['exact_kl_qp'], 0.05, delta=0.005)
      self.assertAlmostEqual(r['exact_kl_pq'], -0.05, delta=0.005)

  def test_claims_follow_the_rows(self):
    values = {label: (0.30, 0.30) for label in exp.SETTINGS}
    values.update({'k1_loss': (0.52, 0.41), 'k3_loss': (0.35, 0.25)})
    rows = _rows(values)
    found = {v.claim.name: v.word for v in verdicts.judge(
        exp.claims(experiment_lib.Options()), rows + exp.derive(rows))}
    self.assertEqual(found, {'k1_loss_descends': verdicts.CONTRADICTED,
                             'k3_loss_higher_kl_qp': verdicts.SUPPORTED,
                             'k3_loss_lower_kl_pq': verdicts.SUPPORTED,
                             'k3_both_matches': verdicts.SUPPORTED})
    values['k3_both'] = (0.40, 0.30)  # 0.1 above the exact gradient's end: no match
    rows = _rows(values)
    found = {v.claim.name: v.word for v in verdicts.judge(
        exp.claims(experiment_lib.Options()), rows + exp.derive(rows))}
    self.assertEqual(found['k3_both_matches'], verdicts.CONTRADICTED)


if __name__ == '__main__':
  absltest.main()
