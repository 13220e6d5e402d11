"""smoke: every scheme a few steps, for CI (< 60 s for all schemes on CPU)."""

from benchmarks.configs import base


def get_config():
  c = base.get_config()
  c.preset = 'smoke'
  c.num_seeds = 2
  c.problem.update(vocab_size=16, seq_len=8, embed_dim=8, hidden_dim=8,
                   num_train=512, num_test=256)
  c.generator.update(embed_dim=8, hidden_dim=8)
  c.train.update(batch_size=16, num_steps=20, eval_every=10)
  c.eval.update(num_samples=256, batch_size=128)
  c.discriminator.update(embed_dim=8, filter_widths=(1, 2, 3), num_filters=(4, 4, 4),
                         hidden_dim=8)
  c.seqgan.update(pretrain_steps=10, d_pretrain_steps=2, num_rollouts=2)  # then 8 adversarial
  return c
