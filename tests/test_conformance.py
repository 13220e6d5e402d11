"""Tests of the conformance checker (benchmarks/measure/conformance.py, benchmarks/conformance.py):
a correct loss passes every case; each class of bug peers shipped fails, naming the case."""

import os
import subprocess
import sys
import tempfile
from unittest import mock

from absl import flags
from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import conformance as conformance_cli
from benchmarks.measure import conformance

ROOT = __file__.rsplit('/tests/', 1)[0]


def _log_probs(student, teacher, temperature):
  return (jax.nn.log_softmax(teacher / temperature, axis=-1),
          jax.nn.log_softmax(student / temperature, axis=-1))


def _kl(log_a, log_b):
  return jnp.sum(jnp.exp(log_a) * (log_a - log_b), axis=-1)


def _token_mean(d, mask):
  m = mask.astype(d.dtype)
  return jnp.sum(d * m) / jnp.maximum(jnp.sum(m), 1.0)


def gkd_jsd(student, teacher, mask, *, beta, temperature, bug=None):
  """GKD's generalised JSD written from its definition (M = βP + (1−β)Q; β = 0, 1 are the
  KLs), token mean; `bug` switches in one of the peers' mistakes ('bf16_arithmetic': all of
  it computed in the inputs' dtype, the middle as a difference of entropies)."""
  compute = jnp.float32 if bug != 'bf16_arithmetic' else student.dtype
  log_p, log_q = _log_probs(student.astype(compute), teacher.astype(compute), temperature)
  if bug == 'clamped_beta':  # verl-recipe #151: β clamped below 1, the unscaled JSD ~ 0
    beta = min(beta, 0.999)
  if bug == 'mixture_reversed' and beta in (0.0, 1.0):  # β's ends exchanged as well
    d = _kl(log_q, log_p) if beta == 0.0 else _kl(log_p, log_q)
  elif beta == 0.0 and bug not in ('swapped_weights', 'clamped_beta'):
    d = _kl(log_p, log_q)
  elif beta == 1.0 and bug not in ('swapped_weights', 'clamped_beta'):
    d = _kl(log_q, log_p)
  else:
    b = beta
    if bug in ('swapped_weights', 'mixture_reversed'):
      # TRL #3043: the mixture's weights swapped (M = (1−β)P + βQ), no end points; with
      # the ends exchanged too (a JAX library's convention) it agrees with GKD at β = ½ only.
      log_m = jnp.logaddexp(log_p + jnp.log1p(-b + 1e-12), log_q + jnp.log(b + 1e-12))
    elif bug == 'log_mixture':  # TRL #2202: the mixture of log-probabilities
      log_m = b * log_p + (1 - b) * log_q
    else:
      log_m = jnp.logaddexp(log_p + jnp.log(b), log_q + jnp.log1p(-b))
    if bug == 'bf16_arithmetic':  # ms-swift #10156: H(M) − βH(P) − (1−β)H(Q), in bfloat16
      h = lambda lp: -jnp.sum(jnp.exp(lp) * lp, axis=-1)
      d = h(log_m) - b * h(log_p) - (1 - b) * h(log_q)
    else:
      d = b * _kl(log_p, log_m) + (1 - b) * _kl(log_q, log_m)
  if bug == 'length_times_vocab':  # TRL #4105: batchmean over tokens × vocabulary
    return jnp.sum(d * mask) / (jnp.sum(mask) * student.shape[-1])
  if bug == 'mask_ignored':
    return jnp.mean(d)
  return _token_mean(d.astype(jnp.float32), mask)


def cross_entropy_as_fkl(student, teacher, mask, *, beta, temperature):
  """distillm #7: a "forward KL" that is the cross-entropy −Σ P log Q (off by H(P))."""
  del beta
  log_p, log_q = _log_probs(student.astype(jnp.float32), teacher.astype(jnp.float32),
                            temperature)
  return _token_mean(-jnp.sum(jnp.exp(log_p) * log_q, axis=-1), mask)


JSD = conformance.Spec('jsd', 'gkd')


class BatteryTest(parameterized.TestCase):

  def test_a_correct_loss_passes_every_case(self):
    results = conformance.run(gkd_jsd, JSD)
    self.assertLen(results, 5 * len(conformance.BETAS) * 2 * 2 * 2)
    failed = [conformance.line(r) for r in results if not r.passed]
    self.assertEqual(failed, [])

  @parameterized.named_parameters(
      ('log_mixture', 'log_mixture', 'β=0.5', 'β=0,'),
      ('swapped_weights', 'swapped_weights', 'β=1', None),
      ('mixture_reversed', 'mixture_reversed', 'β=0.25', 'β=0.5'),
      ('length_times_vocab', 'length_times_vocab', 'random', None),
      ('clamped_beta', 'clamped_beta', 'β=1', 'β=0.5'),
      ('mask_ignored', 'mask_ignored', 'mask=partial', 'mask=all'),
      ('bf16_arithmetic', 'bf16_arithmetic', 'bfloat16', 'float32'))
  def test_each_peer_bug_fails_naming_its_cases(self, bug, failing, passing):
    loss = lambda *a, **k: gkd_jsd(*a, bug=bug, **k)
    dtypes = ('float32', 'bfloat16') if 'bf16' in bug else ('float32',)
    results = conformance.run(loss, JSD, conformance.cases(JSD, taus=(1.0,), dtypes=dtypes))
    failed = [r for r in results if not r.passed]
    self.assertNotEmpty(failed, bug)
    self.assertTrue(any(failing in r.case for r in failed), [r.case for r in failed])
    if passing is not None:  # the bug is confined to the cases it concerns
      self.assertTrue(all(passing not in r.case for r in failed), [r.case for r in failed])
    for r in failed:
      self.assertIn(r.case, conformance.line(r))
      self.assertTrue(conformance.line(r).startswith('FAIL '))

  def test_the_bf16_bug_is_caught_as_a_negative_divergence(self):
    # (Near-equal distributions at τ = 2, where the divergence is ~1e-4: its cancellation
    # in bfloat16 goes below zero.)
    loss = lambda *a, **k: gkd_jsd(*a, bug='bf16_arithmetic', **k)
    results = conformance.run(loss, JSD, conformance.cases(JSD, distributions=('near',)))
    self.assertTrue(any('< 0 for a divergence' in r.message for r in results))

  def test_cross_entropy_is_not_the_forward_kl(self):
    results = conformance.run(cross_entropy_as_fkl, conformance.Spec('fkl'))
    failed = [r for r in results if not r.passed]
    # Off by H(P) in value; its gradient in the student's logits is the forward KL's. (In
    # bfloat16 an H(P) within the tolerance passes: the peaked teacher's at τ = 1.)
    self.assertTrue(all(not r.passed for r in results if 'float32' in r.case))
    self.assertTrue(all(r.message.startswith('value') and 'gradient' not in r.message
                        for r in failed))

  def test_the_reference_at_the_ends_and_in_closed_form(self):
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(1, 1, 4)), rng.normal(size=(1, 1, 4))
    p, q = np.exp(t) / np.exp(t).sum(), np.exp(s) / np.exp(s).sum()
    mask = np.ones((1, 1), bool)
    value = lambda spec, beta: conformance.reference(
        spec, conformance.Case('x', s.astype(np.float32), t.astype(np.float32), mask, beta,
                               1.0, 'float32'))[0]
    kl = lambda a, b: float(np.sum(a * np.log(a / b)))
    self.assertAlmostEqual(value(JSD, 0.0), kl(p, q), places=5)
    self.assertAlmostEqual(value(JSD, 1.0), kl(q, p), places=5)
    m = 0.3 * p + 0.7 * q
    self.assertAlmostEqual(value(JSD, 0.3), 0.3 * kl(p, m) + 0.7 * kl(q, m), places=5)
    self.assertAlmostEqual(value(conformance.Spec('jsd', 'scaled'), 0.3),
                           (0.3 * kl(p, m) + 0.7 * kl(q, m)) / 0.21, places=5)
    self.assertAlmostEqual(value(conformance.Spec('tv'), None), 0.5 * np.abs(p - q).sum(),
                           places=5)


class CliTest(parameterized.TestCase):

  def _chosen(self, *args):
    fv = flags.FlagValues()
    conformance_cli.define_flags(fv)
    fv(['conformance', *args])
    return conformance_cli.chosen(fv)

  @parameterized.named_parameters(
      ('neither', (), '--adapter, --loss: give exactly one'),
      ('unknown_adapter', ('--adapter=nope',), '--adapter: unknown'),
      ('bad_loss', ('--loss=nodots', '--divergence=fkl'), '--loss: give MODULE:FUNCTION'),
      ('missing_module', ('--loss=no_such_module_x:f', '--divergence=fkl'), '--loss: cannot'),
      ('no_divergence', ('--loss=math:exp',), '--divergence: say what'),
      ('bad_divergence', ('--loss=math:exp', '--divergence=kl'), '--divergence: unknown'),
      ('bad_reduction', ('--loss=math:exp', '--divergence=fkl', '--reduction=mean'),
       '--reduction: unknown'))
  def test_bad_input_is_one_line_naming_the_flag(self, args, message):
    with self.assertRaises(ValueError) as raised:
      self._chosen(*args)
    self.assertIn(message, str(raised.exception))
    self.assertNotIn('\n', str(raised.exception))

  def test_all_adapters_summary_lists_missing_packages_as_not_run(self):
    def missing():
      raise ImportError('No module named nope_lib')
    adapters = {'divbench_distill_tv': conformance.ADAPTERS['divbench_distill_tv'],
                'nope': (missing, conformance.Spec('fkl'))}
    out = os.path.join(tempfile.mkdtemp(), 'conformance.md')
    with mock.patch.dict(conformance.ADAPTERS, adapters, clear=True):
      failed = conformance_cli.run_all(out)
    self.assertEqual(failed, 0)
    page = open(out).read()
    self.assertIn('| `divbench_distill_tv` | divbench', page)
    self.assertIn('| 40 of 40 | none |', page)
    self.assertIn('| `nope` | divbench', page)  # (no package of its own named)
    self.assertIn('| not run |', page)
    self.assertIn('### `divbench_distill_tv`', page)
    self.assertNotIn('### `nope`', page)

  def test_the_command_checks_divbench_own_loss(self):
    proc = subprocess.run([sys.executable, '-m', 'benchmarks.conformance',
                           '--adapter=divbench_distill_fkl'], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
    lines = proc.stdout.strip().splitlines()
    self.assertEqual(lines[-1], '40 passed, 0 failed')
    self.assertTrue(all(l.startswith('PASS ') for l in lines[:-1]))


if __name__ == '__main__':
  absltest.main()
