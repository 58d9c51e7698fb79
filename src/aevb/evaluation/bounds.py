"""Evaluation: the ELBO with its standard error and the importance-weighted bound on log p(x).

Units: nats per image. A fixed key (EVAL_KEY) makes the numbers compare across runs and epochs;
images are taken IMAGE_CHUNK at a time and chunk i draws its noise from fold_in(key, first image).
On several devices (aevb.parallel) each takes whole chunks, with their own keys: the same draws
and the same numbers as on one device.
"""

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from .. import parallel
from ..data import splits
from ..errors import Interrupted
from ..model import posteriors, probability
from . import proposals

EVAL_KEY = np.array([0, 2], np.uint32)  # jax.random.PRNGKey(2), made without starting a backend
IMAGE_CHUNK = 100  # images per draw of noise
SAMPLE_CHUNK = 100  # z per image drawn at once (the ELBO beyond this, and IWAE, scan over groups of them):
#                     memory ~ IMAGE_CHUNK * SAMPLE_CHUNK * (D + H) * 4 bytes, whatever S or K
CHUNKS_PER_CALL = 25  # chunks per compiled call (vmapped): fewer dispatches, same draws ...
SAMPLES_PER_CALL = 250  # ... and fewer chunks per call when each image has many z
BLOCK_ROWS = 2048  # decoder rows (draws x images) per step of in_row_blocks: 6 MB of logits stay in L3


def in_row_blocks(log_w, z):
    """log_w(z) -> (C, B) over draws z (C, B, Dz) in blocks of draws of at most BLOCK_ROWS decoder rows
    (lax.map): the same numbers bit for bit as one call (measured; blocks of 500 rows or fewer were not),
    1.1-2x faster on a 2-core CPU, where (C * B, D) logits written out and read back leave the caches."""
    per_block = max([d for d in range(1, z.shape[0] + 1) if z.shape[0] % d == 0 and d * z.shape[1] <= BLOCK_ROWS],
                    default=1)
    if per_block == z.shape[0]:
        return log_w(z)
    blocks = jax.lax.map(log_w, z.reshape(-1, per_block, *z.shape[1:]))  # (C / per_block, per_block, B)
    # The barrier keeps a sum over C from being folded into one over the blocks' two axes (other digits).
    return jax.lax.optimization_barrier(blocks.reshape(z.shape[:2]))


def blocked_log_weights(net, theta, x, z, q):
    """probability.log_weights of draws z (C, B, Dz) from q in in_row_blocks: (C, B)."""
    return in_row_blocks(lambda zc: probability.log_weights(net, theta, x, zc, q), z)


def sampled_log_weights(net, theta, x, q, key, count):
    """log p(x, z) - log q(z) of count draws z ~ q (q.sample) in in_row_blocks: (C, B)."""
    q = posteriors.as_q(q)
    return draws_log_weights(net, theta, x, q, *q.sample(key, (count,)))  # of (C, B, Dz), (C, B)


def draws_log_weights(net, theta, x, q, z, log_q_z):
    """log p(x, z) - log q(z) of draws z (C, B, Dz) of q with their log q (C, B), in in_row_blocks: where q has a
    density, log q from z in the blocks as it always was (the same bits); a flow's own log q as given (log_q_z)."""
    if q.has_density:
        return blocked_log_weights(net, theta, x, z, q)
    return in_row_blocks(lambda zc: probability.log_joint(net, theta, x, zc), z) - log_q_z


def mean_and_standard_error(values):
    """(mean, standard error of the mean) of per-image values, in float64."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size) if values.size > 1 else math.nan)


def _elbo_chunk(key, net, params, x, num_samples):
    """Each image's ELBO estimate from num_samples z ~ q(z|x): x (B, D) -> (B,). Up to SAMPLE_CHUNK
    samples are drawn at once; more are drawn SAMPLE_CHUNK at a time in a scan (bounded memory)."""
    q, theta = net.encode(params["encoder"], x), probability.generative(net, params)  # q: (B, Dz) each
    if num_samples <= SAMPLE_CHUNK:  # probability.elbo_per_image's draws and numbers, its log weights in row blocks
        return jnp.mean(sampled_log_weights(net, theta, x, q, key, num_samples), axis=0)

    def body(total, group):
        log_w = sampled_log_weights(net, theta, x, q, jax.random.fold_in(key, group), SAMPLE_CHUNK)
        index = group * SAMPLE_CHUNK + jnp.arange(SAMPLE_CHUNK)  # samples past S count for nothing
        return total + jnp.sum(jnp.where(jnp.broadcast_to(index[:, None], log_w.shape) < num_samples, log_w, 0.0),
                               axis=0), None

    total, _ = jax.lax.scan(body, jnp.zeros(x.shape[:1]), jnp.arange(-(-num_samples // SAMPLE_CHUNK)))
    return total / num_samples


@jax.jit(static_argnames=("net", "num_samples"))
def _elbo_chunks(net, params, x, keys, num_samples):
    """x (C, IMAGE_CHUNK, D), keys (C,) -> (C, IMAGE_CHUNK): one ELBO estimate per image."""
    return jax.vmap(lambda xc, key: _elbo_chunk(key, net, params, xc, num_samples))(x, keys)


def by_chunks(compute, x, key, per_call, devices, progress, desc, alongside=()):
    """``compute(block (C, B, D), keys (C,), *blocks of alongside (C, B, ...)) -> (C, B, ...)`` over x's
    images: per_call whole chunks of IMAGE_CHUNK images per compiled call, then a shorter rest alone
    (its own shape); chunk i draws its noise from fold_in(key, its first image). alongside: arrays
    (N, ...) cut as x. On several devices each takes whole chunks, the call filled up with copies of
    its first chunk, so no draw moves. Returns (N, ...). Raises Interrupted on a signal."""
    n = x.shape[0]
    whole = n // IMAGE_CHUNK * IMAGE_CHUNK
    calls = splits.chunks(whole, IMAGE_CHUNK * per_call) + ([(whole, n)] if whole < n else [])
    parts, done = [], 0
    try:
        for start, stop in tqdm(calls, desc=desc, unit="call", disable=not progress, dynamic_ncols=True):
            size = min(IMAGE_CHUNK, stop - start)
            starts = np.arange(start, stop, size)
            keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.asarray(starts))
            block = jnp.asarray(x[start:stop]).reshape(len(starts), size, -1)
            given = [jnp.asarray(a[start:stop]).reshape(len(starts), size, *a.shape[1:]) for a in alongside]
            keys, block, *given = (devices.split(devices.pad(a)) for a in (keys, block, *given))
            # Waited for so that Ctrl-C or SIGTERM stops it at once, not when the call ends (minutes at large K).
            out = devices.gather(parallel.wait(compute(block, keys, *given)))[: len(starts)]  # (C, B, ...)
            parts.append(out.reshape(-1, *out.shape[2:]))
            done = stop
    except KeyboardInterrupt:
        raise Interrupted(f"stopped during {desc} after {done} of {n} images; what was finished before it is "
                          "saved (summary.json)") from None
    return np.concatenate(parts)


def elbo_per_image(net, params, x, num_samples, key=EVAL_KEY, progress=False, desc="ELBO", devices=parallel.ONE):
    """Each image's ELBO estimated with num_samples z ~ q(z|x): (N,)."""
    params = devices.replicate(params)
    per_call = max(1, min(CHUNKS_PER_CALL, SAMPLES_PER_CALL // min(num_samples, SAMPLE_CHUNK)))
    return by_chunks(lambda block, keys: _elbo_chunks(net, params, block, keys, num_samples), x, key, per_call,
                     devices, progress, desc)


def evaluate_elbo(net, params, x, num_samples, key=EVAL_KEY, progress=False, desc="ELBO", devices=parallel.ONE):
    """(mean ELBO, its standard error over images), nats per image."""
    return mean_and_standard_error(elbo_per_image(net, params, x, num_samples, key, progress, desc, devices))


def proposal_log_weights(net, params, x, q, key, sample_chunk, defensive):
    """log p(x, z) - log r(z) of sample_chunk draws z ~ r per image, r = q or the defensive mixture: (C, B)."""
    theta = probability.generative(net, params)  # p(x, z)'s parameters
    if defensive:  # a flow's moments for the mixture from a key apart from its draws'
        sample, _ = proposals.defensive(q, jax.random.fold_in(key, 1))
        z, log_r = sample(key, (sample_chunk,))  # (C, B, Dz), (C, B)
        return in_row_blocks(lambda zc: probability.log_joint(net, theta, x, zc), z) - log_r
    return sampled_log_weights(net, theta, x, q, key, sample_chunk)  # (C, B)


def empty_log_sum_exp(batch):
    """The running log-sum-exp of no terms: (running_max -inf, running_sum 0), each of shape batch."""
    return jnp.full(batch, -jnp.inf), jnp.zeros(batch)


def add_to_log_sum_exp(carry, log_w):
    """A running log-sum-exp, carry = (running_max, running_sum) each (B,), with a chunk's log_w (C, B) added."""
    running_max, running_sum = carry
    new_max = jnp.maximum(running_max, jnp.max(log_w, axis=0))
    shifted = log_w - jnp.broadcast_to(new_max, log_w.shape)
    return new_max, running_sum * jnp.exp(running_max - new_max) + jnp.sum(jnp.exp(shifted), axis=0)


@jax.jit(static_argnames=("net", "k", "sample_chunk", "defensive"))
def iwae_chunk(net, params, x, key, k, sample_chunk=SAMPLE_CHUNK, defensive=False):
    """log (1/K) sum_k p(x, z_k) / r(z_k), z_k ~ r, for each image: (B, D) -> (B,); r = q(z|x), or the
    defensive mixture around it (aevb.evaluation.proposals).

    Burda et al. (2016), eq. 8. The K samples are drawn sample_chunk at a time in a scan with a
    running log-sum-exp, so memory does not grow with K; chunk c draws with fold_in(key, c).
    """
    q = net.encode(params["encoder"], x)  # (B, Dz) each

    def body(carry, chunk_index):
        log_w = proposal_log_weights(net, params, x, q, jax.random.fold_in(key, chunk_index), sample_chunk, defensive)
        # Samples past K in the last chunk get weight zero.
        index = chunk_index * sample_chunk + jnp.arange(sample_chunk)  # (C,)
        log_w = jnp.where(jnp.broadcast_to(index[:, None], log_w.shape) < k, log_w, -jnp.inf)
        return add_to_log_sum_exp(carry, log_w), None

    (running_max, running_sum), _ = jax.lax.scan(body, empty_log_sum_exp(q[0].shape[:1]),
                                                 jnp.arange(-(-k // sample_chunk)))
    return running_max + jnp.log(running_sum) - jnp.log(k)


@jax.jit(static_argnames=("net", "k", "sample_chunk", "defensive"))
def _iwae_chunks(net, params, x, keys, k, sample_chunk, defensive):
    """iwae_chunk of each chunk x (C, B, D) with its key (C,): (C, B)."""
    return jax.vmap(lambda xc, key: iwae_chunk(net, params, xc, key, k, sample_chunk, defensive))(x, keys)


def iwae_per_image(net, params, x, k, key=EVAL_KEY, progress=False, defensive=False, devices=parallel.ONE):
    """The importance-weighted lower bound on log p(x) for each image, K samples: (N,). One chunk
    per device per call (K samples already fill a call; on one device the numbers are bit for bit
    those of unbatched iwae_chunk calls, measured). defensive: from the defensive proposal (evaluation.proposals)."""
    params = devices.replicate(params)
    return by_chunks(lambda block, keys: _iwae_chunks(net, params, block, keys, k, min(SAMPLE_CHUNK, k), defensive),
                     x, key, devices.count, devices, progress, f"IWAE K={k}" + " defensive" * defensive)


def evaluate(net, params, x_train, x_test, num_samples, k, progress=True, defensive=False, devices=parallel.ONE):
    """(the numbers summary.json holds, in nats per image; the per-image values behind them).
    defensive: also the bound with the defensive proposal (usually the tighter one where no grid exists).
    devices: images split over them (see aevb.parallel), the same numbers as on one."""
    train_elbo = elbo_per_image(net, params, x_train, num_samples, progress=progress, desc="train ELBO",
                                devices=devices)
    test_elbo = elbo_per_image(net, params, x_test, num_samples, progress=progress, desc="test ELBO", devices=devices)
    began = time.perf_counter()
    iwae = iwae_per_image(net, params, x_test, k, progress=progress, devices=devices)
    seconds = time.perf_counter() - began
    results = {"elbo_samples": num_samples, "iwae_k": k, "iwae_seconds": seconds,
               "iwae_samples_per_second": x_test.shape[0] * k / seconds, "units": "nats per image",
               "evaluated_on": devices.describe()}
    results["train_elbo"], results["train_elbo_se"] = mean_and_standard_error(train_elbo)
    results["test_elbo"], results["test_elbo_se"] = mean_and_standard_error(test_elbo)
    results["test_iwae"], results["test_iwae_se"] = mean_and_standard_error(iwae)
    per_image = {"train_elbo": train_elbo, "test_elbo": test_elbo, "test_iwae": iwae}
    if defensive:
        per_image["test_iwae_defensive"] = iwae_per_image(net, params, x_test, k, progress=progress, defensive=True,
                                                          devices=devices)
        results["test_iwae_defensive"], results["test_iwae_defensive_se"] = mean_and_standard_error(
            per_image["test_iwae_defensive"])
        results["defensive_proposal"] = proposals.describe_defensive(net.family)
    return results, per_image


def describe(results, n_test):
    """The lines `aevb evaluate` prints of results (evaluate's numbers) over n_test test images."""
    r = results
    higher = "higher" if r.get("test_iwae_defensive", -math.inf) > r["test_iwae"] else "not higher"
    return (f"test ELBO  {r['test_elbo']:.2f} ± {r['test_elbo_se']:.2f} nats/image (S={r['elbo_samples']}, ± one "
            f"standard error over {n_test} images)\n"
            f"test IWAE  {r['test_iwae']:.2f} ± {r['test_iwae_se']:.2f} nats/image (K={r['iwae_k']}; a lower bound "
            f"on log p(x))\n"
            + (f"test IWAE, defensive proposal {r['test_iwae_defensive']:.2f} ± {r['test_iwae_defensive_se']:.2f} "
               f"nats/image (also a lower bound; {higher} than the plain one; the proposal {r['defensive_proposal']})\n"
               if "test_iwae_defensive" in r else "") +
            f"train ELBO {r['train_elbo']:.2f} ± {r['train_elbo_se']:.2f} nats/image")
