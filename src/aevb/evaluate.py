"""Evaluation: the ELBO with its standard error and the importance-weighted bound on log p(x).

Units: nats per image. Evaluation uses fixed keys so numbers compare across runs.
"""

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from . import data, densities, model

EVAL_KEY = jax.random.PRNGKey(2)
IMAGE_CHUNK = 100  # images per compiled call
SAMPLE_CHUNK = 100  # importance samples per scan step: memory ~ IMAGE_CHUNK*SAMPLE_CHUNK*(784+500)*4 B


def _mean_and_standard_error(values):
    values = np.asarray(values, dtype=np.float64)
    se = values.std(ddof=1) / math.sqrt(values.size) if values.size > 1 else float("nan")
    return float(values.mean()), float(se)


@jax.jit(static_argnames=("num_samples",))
def _elbo_chunk(params, x, key, num_samples):
    return model.elbo_per_image(key, params["encoder"], params["decoder"], x, num_samples)


def elbo_per_image(params, x, num_samples, key=EVAL_KEY, progress=False, desc="ELBO"):
    """Each image's ELBO estimated with num_samples z ~ q(z|x): (N,)."""
    parts = [_elbo_chunk(params, x[start:stop], jax.random.fold_in(key, start), num_samples)
             for start, stop in tqdm(data.chunks(x.shape[0], IMAGE_CHUNK), desc=desc, unit="chunk",
                                     disable=not progress, dynamic_ncols=True)]
    return np.concatenate([np.asarray(p) for p in parts])


def evaluate_elbo(params, x, num_samples, key=EVAL_KEY, progress=False, desc="ELBO"):
    """(mean ELBO, its standard error over images), nats per image."""
    return _mean_and_standard_error(elbo_per_image(params, x, num_samples, key, progress, desc))


@jax.jit(static_argnames=("k", "sample_chunk"))
def iwae_chunk(params, x, key, k, sample_chunk=SAMPLE_CHUNK):
    """log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x), for each image: (B, 784) -> (B,).

    Burda et al. (2016), eq. 8. The K samples are drawn sample_chunk at a time in a scan with a
    running log-sum-exp, so memory does not grow with K.
    """
    mean, log_std = model.encoder(params["encoder"], x)  # (B, Dz)
    n_chunks = -(-k // sample_chunk)

    def body(carry, chunk_index):
        running_max, running_sum = carry  # (B,) each: log-sum-exp = running_max + log(running_sum)
        chunk_key = jax.random.fold_in(key, chunk_index)
        z = densities.sample_diag_gaussian(chunk_key, mean, log_std, (sample_chunk,))  # (C, B, Dz)
        log_w = model.joint_log_density(params["decoder"], x, z) - model.log_q((mean, log_std), z)  # (C, B)
        # Samples past K in the last chunk get weight zero.
        index = chunk_index * sample_chunk + jnp.arange(sample_chunk)  # (C,)
        log_w = jnp.where(jnp.broadcast_to(index[:, None], log_w.shape) < k, log_w, -jnp.inf)
        new_max = jnp.maximum(running_max, jnp.max(log_w, axis=0))
        shifted = log_w - jnp.broadcast_to(new_max, log_w.shape)
        new_sum = running_sum * jnp.exp(running_max - new_max) + jnp.sum(jnp.exp(shifted), axis=0)
        return (new_max, new_sum), None

    start = (jnp.full(mean.shape[:1], -jnp.inf), jnp.zeros(mean.shape[:1]))
    (running_max, running_sum), _ = jax.lax.scan(body, start, jnp.arange(n_chunks))
    return running_max + jnp.log(running_sum) - jnp.log(k)


def iwae_per_image(params, x, k, key=EVAL_KEY, progress=False):
    """The importance-weighted lower bound on log p(x) for each image, K samples: (N,)."""
    parts = []
    bar = tqdm(data.chunks(x.shape[0], IMAGE_CHUNK), desc=f"IWAE K={k}", unit="chunk", disable=not progress,
               dynamic_ncols=True)
    for start, stop in bar:
        parts.append(np.asarray(iwae_chunk(params, x[start:stop], jax.random.fold_in(key, start), k,
                                           min(SAMPLE_CHUNK, k))))
    return np.concatenate(parts)


def evaluate(params, x_train, x_test, num_samples, k, progress=True):
    """The numbers summary.json holds; every value in nats per image."""
    results = {}
    results["train_elbo"], results["train_elbo_se"] = evaluate_elbo(params, x_train, num_samples, progress=progress,
                                                                    desc="train ELBO")
    results["test_elbo"], results["test_elbo_se"] = evaluate_elbo(params, x_test, num_samples, progress=progress,
                                                                  desc="test ELBO")
    results["elbo_samples"] = num_samples
    began = time.perf_counter()
    iwae = iwae_per_image(params, x_test, k, progress=progress)
    seconds = time.perf_counter() - began
    results["test_iwae"], results["test_iwae_se"] = _mean_and_standard_error(iwae)
    results["iwae_k"] = k
    results["iwae_seconds"] = seconds
    results["iwae_samples_per_second"] = x_test.shape[0] * k / seconds
    results["units"] = "nats per image"
    return results
