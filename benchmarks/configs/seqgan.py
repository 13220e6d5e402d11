"""seqgan: the SeqGAN synthetic protocol on its own oracle (V=5000, T=20, E=H=32). GPU."""

from benchmarks.configs import base

STEPS_PER_EPOCH = 157             # 10,000 sequences / batch 64, rounded up


def get_config():
  c = base.get_config()
  c.preset = 'seqgan'
  c.problem.update(source='seqgan', vocab_size=5_000, seq_len=20, embed_dim=32,
                   hidden_dim=32, num_train=10_000, num_test=10_000)
  c.train.update(batch_size=64, num_steps=120 * STEPS_PER_EPOCH,  # 120 MLE epochs
                 eval_every=5 * STEPS_PER_EPOCH, learning_rate=0.01, grad_clip=5.0,
                 seed_strategy='vmap')
  c.eval.update(num_samples=10_000, batch_size=1_000)
  return c
