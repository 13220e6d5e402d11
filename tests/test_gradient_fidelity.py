"""Tests of benchmarks/gradient_fidelity.py on a tiny space: rows, metrics and output files."""

import json
import os
import tempfile

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import gradient_fidelity as gf


class GradientFidelityTest(absltest.TestCase):

  def test_rows_metrics_and_files(self):
    options = gf.Options(seq_len=2, num_inits=2, num_keys=40, batch_size=4, pis=(0.5,))

    def mc_mle_rows(setup):
      # A builder written the way a new scheme's would be: an MC row of E_P[∇nll] whose
      # per-key gradients all equal the exact expectation (zero noise).
      g = gf.mle_rows(setup)[0].gradients
      stacked = [jax.tree.map(lambda a: jnp.stack([a] * 40), x) for x in g]
      return [gf.Estimate('mle', 'constant mc', 'kl_pq', None, 'mc', stacked)]

    out = gf.run(options, builders=[gf.mle_rows, gf.cot_rows, mc_mle_rows], log=lambda s: None)
    rows = {(r['scheme'], r['estimator']): r for r in out['rows']}
    mle = rows['mle', 'teacher forcing, E_P[∇nll]']
    self.assertGreater(mle['cosine_min'], 1 - 1e-6)
    self.assertLess(mle['rel_err_max'], 1e-4)
    mc = rows['mle', 'constant mc']
    self.assertLess(mc['rel_err'], 1e-4)
    np.testing.assert_allclose([mc['noise'], mc['rel_err_se']], 0.0, atol=1e-6)
    cot = next(r for r in out['rows'] if r['scheme'] == 'cot')
    self.assertEqual((cot['divergence'], cot['pi']), ('js_pi', 0.5))
    self.assertLen(cot['per_init'], 2)
    self.assertTrue(np.isfinite([cot['cosine'], cot['rel_err'], cot['norm_ratio']]).all())

    directory = tempfile.mkdtemp()
    md = gf.write(out, directory)
    self.assertEqual(md.count('\n| mle |'), 2)
    self.assertEqual(md, open(os.path.join(directory, 'gradient_fidelity.md')).read())
    saved = json.load(open(os.path.join(directory, 'gradient_fidelity.json')))
    self.assertLen(saved['rows'], 3)
    self.assertEqual(saved['info']['options']['seq_len'], 2)

  def test_default_builders(self):
    names = [b.__name__ for b in gf.ROW_BUILDERS]
    self.assertEqual(names, ['mle_rows', 'direct_rows', 'cot_rows'])


if __name__ == '__main__':
  absltest.main()
