"""Reranking effect: exact metrics of best-of-K discriminator reranking on an enumerable space.

    python -m benchmarks.measure.rerank_effect [--vocab_size=6 --seq_len=6 --mle_steps=300]

The oracle P is the `enumerable` preset's (random LSTM, V = T = 6 by default: 6^6 = 46,656
sequences); the generator Q is that preset's LSTM trained by MLE for `mle_steps` steps on
the oracle's training data (`objectives.mle`). For each scorer S and K ∈ {1, 2, 4, 8, 16},
the reranked distribution R (best of K samples of Q by S, `rerank.reranked_probs`) is
computed exactly over the whole space, and with it, per token (/T), exactly:
  nll_oracle = −E_R[log P], entropy H(R), KL(P ‖ R), KL(R ‖ P).
Scorers: the exact optimal discriminator's logit l* = log P − log Q (π = ½; any monotone
function of P/Q ranks alike), the same plus i.i.d. N(0, σ²) noise per sequence (a noisy D),
and Q's own log-prob (a reference: K > 1 then sharpens Q towards its mode).
Runs in float64 (jax_enable_x64): R(x) ~ Q(x)^K underflows float32 for K = 16.
"""

from typing import Dict, List, Sequence

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import configs
from benchmarks.engine import cli
import divergences
from models import oracle as oracle_lib
from objectives import mle
from objectives import rerank

KS = (1, 2, 4, 8, 16)


def metrics(log_p: np.ndarray, r: np.ndarray, seq_len: int) -> Dict[str, float]:
  """Per-token nll_oracle, entropy, KL(P‖R), KL(R‖P) of R against P (both over the space)."""
  log_p, r = np.asarray(log_p, np.float64), np.asarray(r, np.float64)
  p = np.exp(log_p)
  pos = r > 0
  log_r = np.where(pos, np.log(np.where(pos, r, 1.0)), -np.inf)
  with np.errstate(invalid='ignore'):
    kl_pr = float(np.sum(np.where(p > 0, p * (log_p - log_r), 0.0)))
  return dict(nll_oracle=float(-np.sum(r * log_p)) / seq_len,
              entropy=float(-np.sum(np.where(pos, r * log_r, 0.0))) / seq_len,
              kl_p_r=kl_pr / seq_len,
              kl_r_p=float(np.sum(np.where(pos, r * (log_r - log_p), 0.0))) / seq_len)


def rerank_table(log_p: jax.Array, log_q: jax.Array, scorers: Dict[str, jax.Array],
                 seq_len: int, ks: Sequence[int] = KS) -> List[dict]:
  """One row per (scorer, K): the exact metrics of the reranked distribution."""
  rows = []
  for name, scores in scorers.items():
    for k in ks:
      r = rerank.reranked_probs(log_q, scores, k)
      rows.append(dict(scorer=name, K=k, mass=float(np.sum(np.asarray(r, np.float64))),
                       **metrics(log_p, r, seq_len)))
  return rows


def train_generator(config, problem, num_steps: int, seed: int = 0):
  """The generator's variables after `num_steps` MLE steps (objectives.mle) on the data."""
  scheme = mle.make(config, problem)
  batch_size = config.train.batch_size

  @jax.jit
  def train(key):
    k_init, k_run = jax.random.split(key)

    def body(state, k):
      idx = jax.random.randint(k, (batch_size,), 0, problem.train.shape[0])
      state, _ = scheme.step(state, problem.train[idx], k, None)
      return state, None

    state, _ = jax.lax.scan(body, scheme.init(k_init), jax.random.split(k_run, num_steps))
    return scheme.generator_params(state)

  return scheme.generator, train(jax.random.PRNGKey(seed))


def run(vocab_size: int = 6, seq_len: int = 6, mle_steps: int = 300,
        noise: Sequence[float] = (1.0, 3.0), seed: int = 0, ks: Sequence[int] = KS):
  """Builds P and Q, scores the space, returns (info dict, rows)."""
  config = configs.get_preset('enumerable')
  config.problem.update(vocab_size=vocab_size, seq_len=seq_len)
  problem = oracle_lib.make_problem(config.problem)
  gen, params = train_generator(config, problem, mle_steps, seed)
  xs = divergences.enumerate_sequences(vocab_size, seq_len, 0, vocab_size ** seq_len)
  log_p = problem.model.apply(problem.params, xs, method='log_prob')
  log_q = gen.apply(params, xs, method='log_prob')
  # Renormalise over the enumerated space (float error only).
  log_p, log_q = log_p - jax.nn.logsumexp(log_p), log_q - jax.nn.logsumexp(log_q)
  d_star = log_p - log_q  # l* at π = ½
  scorers = {'exact D* (logit log P/Q)': d_star}
  for i, sigma in enumerate(noise):
    eps = jax.random.normal(jax.random.PRNGKey(seed + 100 + i), d_star.shape, d_star.dtype)
    scorers[f'noisy D* (σ={sigma:g})'] = d_star + sigma * eps
  scorers['Q itself (log Q)'] = log_q
  info = dict(vocab_size=vocab_size, seq_len=seq_len, mle_steps=mle_steps,
              kl_pq=float(jnp.sum(jnp.exp(log_p) * (log_p - log_q))) / seq_len,
              kl_qp=float(jnp.sum(jnp.exp(log_q) * (log_q - log_p))) / seq_len,
              h_p=float(-jnp.sum(jnp.exp(log_p) * log_p)) / seq_len)
  return info, rerank_table(log_p, log_q, scorers, seq_len, ks)


def markdown(info: dict, rows: Sequence[dict]) -> str:
  lines = [
      f"Oracle: enumerable preset's random LSTM, V={info['vocab_size']}, T={info['seq_len']}; "
      f"Q = MLE for {info['mle_steps']} steps: KL(P‖Q) {info['kl_pq']:.4f}, KL(Q‖P) "
      f"{info['kl_qp']:.4f}, H(P) {info['h_p']:.4f} (per token). Exact by enumeration, "
      'per token.',
      '',
      '| scorer | K | nll_oracle | entropy | KL(P‖R) | KL(R‖P) | ΣR |',
      '|---|---|---|---|---|---|---|',
  ]
  for r in rows:
    lines.append(f"| {r['scorer']} | {r['K']} | {r['nll_oracle']:.4f} | {r['entropy']:.4f} | "
                 f"{r['kl_p_r']:.4f} | {r['kl_r_p']:.4f} | {r['mass']:.6f} |")
  return '\n'.join(lines) + '\n'


def _define_flags():
  flags.DEFINE_integer('vocab_size', 6, 'V of the enumerable problem.')
  flags.DEFINE_integer('seq_len', 6, 'T of the enumerable problem.')
  flags.DEFINE_integer('mle_steps', 300, 'MLE steps of the generator Q.')
  flags.DEFINE_integer('seed', 0, 'Generator and noise seed.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli.quiet_backend_probe()
  jax.config.update('jax_enable_x64', True)
  f = flags.FLAGS
  info, rows = run(f.vocab_size, f.seq_len, f.mle_steps, seed=f.seed)
  print(markdown(info, rows), flush=True)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
