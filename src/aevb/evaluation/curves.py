"""What training records each epoch for its curves: the test ELBO and, with Dz = 2, the exact log p(x).

`monitor` makes the function the training loop calls after every epoch (aevb.pipeline passes it
in: training does not import evaluation). The test ELBO is one sample per image with
evaluation's fixed key; the tracked log p(x) uses a cheaper grid than `aevb evaluate --exact`.
"""

import math
import time

import jax.numpy as jnp
import numpy as np

from .. import parallel
from ..model import probability
from . import bounds, exact

TRACKED_IMAGES = 100  # the first this many test images, every recorded epoch
TRACKED_ELBO_SAMPLES = 100  # z per image for their ELBO (evaluation's fixed key: epoch-to-epoch noise stays low)


def tracked(epoch, every):
    """Whether training records the exact log p(x) at this epoch: epochs 1-10, then every `every`."""
    return every > 0 and (epoch <= 10 or epoch % every == 0)


def track(net, params, x, devices=parallel.ONE):
    """{"log_px", "elbo", "kl"}: means over the images x, for the curves during training. A cheaper
    grid than the evaluation's (spacing 0.05, a coarse look at 0.2, tiles within 12 nats, not grown):
    within 0.01 nats of it per image on the default run's first 100 test images (measured)."""
    theta = probability.generative(net, params)
    tiles = exact.select_tiles(net, theta, x, threshold=12.0, coarse=2, grow=False, devices=devices)
    log_px_values = exact.log_px(net, theta, x, spacing=0.05, tiles=tiles, devices=devices)[0]
    elbo = bounds.elbo_per_image(net, params, x, TRACKED_ELBO_SAMPLES, devices=devices)
    return {"log_px": float(np.mean(log_px_values)), "elbo": float(np.mean(elbo)),
            "kl": float(np.mean(log_px_values - elbo))}


def monitor(config, x_test, devices=parallel.ONE):
    """measure(epoch, params) -> the metrics row's measured fields for config's run (a Config):
    {"test_elbo"} and, at the epochs `tracked` names (Dz = 2), {"tracked": {"log_px", "elbo", "kl",
    "images", "seconds"}}. A test ELBO that is not finite is returned alone: training stops there."""
    net, x_test = config.network, jnp.asarray(x_test)

    def measure(epoch, params):
        # The curve's test ELBO: one sample per image with evaluation's fixed key.
        test_elbo = float(bounds.elbo_per_image(net, params, x_test, 1, devices=devices).mean())
        row = {"test_elbo": test_elbo}
        if math.isfinite(test_elbo) and config.latent_dim == 2 and tracked(epoch, config.log_px_every):
            began = time.perf_counter()
            row["tracked"] = {**track(net, params, x_test[:TRACKED_IMAGES], devices),
                              "images": min(TRACKED_IMAGES, len(x_test)), "seconds": time.perf_counter() - began}
        return row

    return measure
