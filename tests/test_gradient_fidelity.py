"""Tests of benchmarks/measure/gradient_fidelity.py on a tiny space: rows, metrics and output files."""

import json
import os
import tempfile

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.measure import gradient_fidelity


class GradientFidelityTest(absltest.TestCase):

  def test_rows_metrics_and_files(self):
    options = gradient_fidelity.Options(seq_len=2, num_inits=2, num_keys=40, batch_size=4, pis=(0.5,))

    def mc_mle_rows(setup):
      # A builder written the way a new scheme's would be: an MC row of E_P[∇nll] whose
      # per-key gradients all equal the exact expectation (zero noise).
      g = gradient_fidelity.mle_rows(setup)[0].gradients
      stacked = [jax.tree.map(lambda a: jnp.stack([a] * 40), x) for x in g]
      return [gradient_fidelity.Estimate('mle', 'constant mc', 'kl_pq', None, 'mc', stacked)]

    out = gradient_fidelity.run(options, builders=[gradient_fidelity.mle_rows, gradient_fidelity.cot_rows, mc_mle_rows], log=lambda s: None)
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
    md = gradient_fidelity.write(out, directory)
    self.assertEqual(md.count('\n| mle |'), 2)
    self.assertEqual(md, open(os.path.join(directory, 'gradient_fidelity.md')).read())
    saved = json.load(open(os.path.join(directory, 'gradient_fidelity.json')))
    self.assertLen(saved['rows'], 3)
    self.assertEqual(saved['info']['options']['seq_len'], 2)

  def test_gan_pi_and_seqgan_rows_with_exact_discriminator(self):
    options = gradient_fidelity.Options(seq_len=2, num_inits=1, pis=(0.5,))
    out = gradient_fidelity.run(options, builders=[gradient_fidelity.gan_pi_rows, gradient_fidelity.seqgan_rows], log=lambda s: None)
    rows = out['rows']
    self.assertEqual([(r['scheme'], r['divergence']) for r in rows],
                     [('gan_pi', 'js_pi')] * 2 + [('seqgan', 'js_pi'), ('seqgan', 'kl_qp')])
    minimax = rows[0]  # the envelope theorem: exactly ∇JS_π
    self.assertGreater(minimax['cosine_min'], 1 - 1e-6)
    self.assertLess(minimax['rel_err_max'], 1e-4)
    for r in rows[1:]:
      self.assertTrue(np.isfinite([r['cosine'], r['rel_err'], r['norm_ratio']]).all())

  def test_exact_prefix_rewards(self):
    xs = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]], jnp.int32)
    q = jnp.array([0.1, 0.3, 0.2, 0.4])
    reward = jnp.array([1.0, 0.0, 0.5, 1.0])
    r = gradient_fidelity.exact_prefix_rewards(jnp.log(q), reward, xs, vocab_size=2)
    np.testing.assert_allclose(r[:, 1], reward, rtol=1e-6)
    np.testing.assert_allclose(r[:, 0], [0.25, 0.25, 0.5 / 0.6, 0.5 / 0.6], rtol=1e-6)

  def test_distill_rows_exact_cases(self):
    # Provably exact: fkl on teacher prefixes is ∇KL(P‖Q) (either cost_to_go), rkl on
    # student prefixes with the cost-to-go is ∇KL(Q‖P); rkl without it is not.
    options = gradient_fidelity.Options(seq_len=2, num_inits=2, pis=(0.5,))

    def distill_kl_rows(setup):
      return gradient_fidelity.distill_rows(setup, names=('fkl', 'rkl'), with_mc=False)

    out = gradient_fidelity.run(options, builders=[distill_kl_rows], log=lambda s: None)
    rows = {r['estimator']: r for r in out['rows']}
    self.assertLen(rows, 12)  # 2 divergences x 6 prefix sources / cost_to_go
    for name, target in (('fkl, teacher', 'kl_pq'), ('rkl, student, full', 'kl_qp')):
      self.assertEqual(rows[name]['divergence'], target)
      self.assertGreater(rows[name]['cosine_min'], 1 - 1e-6, msg=name)
      self.assertLess(rows[name]['rel_err_max'], 1e-4, msg=name)
    self.assertGreater(rows['rkl, student, none']['rel_err'], 1e-2)
    for r in out['rows']:
      self.assertTrue(np.isfinite([r['cosine'], r['rel_err'], r['norm_ratio']]).all())

  def test_sequence_divergences_of_the_enumerated_distributions(self):
    # The whole-sequence targets agree with divergences.exact where both exist (JS_π scaled
    # by π(1−π)), and TV with numpy on the enumerated probabilities.
    setup = gradient_fidelity.make_setup(gradient_fidelity.Options(seq_len=2, num_inits=1))
    params, pi = setup.inits[0], jnp.float32(0.3)
    exact = gradient_fidelity.exact_divergences(setup)(params, pi)
    value = lambda name: float(gradient_fidelity.sequence_divergence(setup, name)(params, pi))
    np.testing.assert_allclose(value('js_pi_scaled') * 0.3 * 0.7, exact['js_pi'][0], rtol=1e-5)
    p = np.exp(np.asarray(setup.log_p_all, np.float64))
    q = np.exp(np.asarray(setup.log_q(params, setup.sequences), np.float64))
    np.testing.assert_allclose(value('tv'), 0.5 * np.abs(p - q).sum() / 2, rtol=1e-5)
    skew = np.sum(p * np.log(p / (0.1 * p + 0.9 * q))) / 2
    np.testing.assert_allclose(value('skew_kl_pq'), skew, rtol=1e-4)

  def test_direct_rows(self):
    # Both sampled estimators of `direct` are unbiased (constant baseline): their expected
    # updates are ∇KL(Q‖P) and ∇JS_π exactly. (Its 'exact' estimator takes no samples and
    # has no row: this builder once crashed the command by looping over it.)
    options = gradient_fidelity.Options(seq_len=2, num_inits=1, num_keys=20, batch_size=4,
                                        pis=(0.5,))
    out = gradient_fidelity.run(options, builders=[gradient_fidelity.direct_rows],
                                log=lambda s: None)
    exact = [r for r in out['rows'] if r['method'] == 'exact']
    self.assertLen(exact, 2 * 2)  # score, per_step x kl_qp, js_pi at one π
    for r in exact:
      self.assertLess(r['rel_err_max'], 1e-4, msg=r['estimator'])

  def test_default_builders(self):
    names = [b.__name__ for b in gradient_fidelity.ROW_BUILDERS]
    self.assertEqual(names, ['mle_rows', 'direct_rows', 'cot_rows', 'gan_pi_rows',
                             'seqgan_rows', 'distill_rows', 'kl_estimator_rows'])

  def test_kl_estimator_rows(self):
    # Each setting against both KLs; the provable cases (objectives/kl_estimator.py): k1 as
    # a reward and k3 as both follow ∇KL(Q‖P) exactly, k1 as a loss has no expected update.
    # (A few settings and one Monte-Carlo row: every setting compiles its own gradient; the
    # identities of every use are pinned by tests/test_kl_estimator.py.)
    options = gradient_fidelity.Options(seq_len=2, num_inits=2, num_keys=40, batch_size=4)
    settings = [('k1', 0, False), ('k3', 0, False), ('top_k', 4, True)]
    uses = (('loss', 'to_go'), ('reward', 'to_go'), ('both', 'to_go'))
    mc = [('k1', 'reward', 'to_go')]

    def builder(setup):
      return gradient_fidelity.kl_estimator_rows(setup, settings, uses, mc_settings=mc)

    out = gradient_fidelity.run(options, builders=[builder], log=lambda s: None)
    rows = {(r['estimator'], r['divergence'], r['method']): r for r in out['rows']}
    self.assertLen(rows, 2 * 2 * len(uses) + 1)  # top-4 > V = 3: none
    for name in ('k1 as reward (to_go)', 'k3 as both'):
      r = rows[(name, 'kl_qp', 'exact')]
      self.assertLess(r['rel_err_max'], 1e-4, msg=name)
      self.assertGreater(rows[(name, 'kl_pq', 'exact')]['rel_err'], 1e-2, msg=name)
    self.assertLess(rows[('k1 as loss', 'kl_qp', 'exact')]['norm_ratio'], 1e-4)
    mc = rows[('k1 as reward (to_go), loo baseline, B=4', 'kl_qp', 'mc')]
    self.assertGreater(mc['cosine'], 0.5)  # 40 keys of 4 samples: noisy, but that direction
    for r in out['rows']:
      self.assertTrue(np.isfinite([r['cosine'], r['rel_err'], r['norm_ratio']]).all())


if __name__ == '__main__':
  absltest.main()
