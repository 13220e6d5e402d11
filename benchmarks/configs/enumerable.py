"""enumerable: V^T small enough to enumerate, so divergences are also reported exactly."""

from benchmarks.configs import base


def get_config():
  c = base.get_config()
  c.preset = 'enumerable'
  c.problem.update(vocab_size=6, seq_len=6, embed_dim=16, hidden_dim=16,
                   num_train=10_000, num_test=2_000)
  c.generator.update(embed_dim=16, hidden_dim=16)
  c.train.update(num_steps=1_000, eval_every=100)
  c.eval.update(exact=True)       # 6^6 = 46,656 sequences
  return c
