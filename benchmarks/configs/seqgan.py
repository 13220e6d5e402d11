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
  # SeqGAN's own schedule (objectives/seqgan.py): 120 MLE epochs, then D pre-training of
  # 50 rounds x 3 epochs over 10,000 data + 10,000 fresh samples (≈ 23,450 updates on
  # 64 + 64 sequences = 10 steps x d_steps), then 200 adversarial steps, each one generator
  # update (16 rollouts) and 5 rounds x 3 epochs of D (≈ 2,345 updates). Totals 19,050 steps,
  # so every scheme of this preset runs 19,050 steps, evaluated every 50.
  c.train.update(num_steps=120 * STEPS_PER_EPOCH + 10 + 200, eval_every=50)
  c.seqgan.update(pretrain_steps=120 * STEPS_PER_EPOCH, d_pretrain_steps=10, d_steps=2_345,
                  num_rollouts=16, rollout_update_rate=0.8, discriminator='cnn')
  c.discriminator.update(embed_dim=64, filter_widths=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20),
                         num_filters=(100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160,
                                      160),
                         dropout_rate=0.25, learning_rate=1e-4, l2=0.2)
  return c
