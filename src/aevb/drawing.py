"""The arrays behind a run's figures, computed from its parameters, then drawn by aevb.plots.

aevb.plots takes arrays and never sees a model; this module turns a loaded run (aevb.pipeline.Run)
into those arrays with the model's pure functions: encodings, decoded means, ancestral samples.
"""

import jax
import numpy as np

from . import densities, model, plots


def encode_means(run, x, chunk=5000):
    """The means of q(z|x) for every image: (N, Dz)."""
    return np.concatenate([np.asarray(run.net.encode(run.params["encoder"], x[i : i + chunk])[0])
                           for i in range(0, len(x), chunk)])


def images(run, flat):
    """Flat pixels (..., D) -> images (..., rows, columns) for the plots."""
    flat = np.asarray(flat)
    return flat.reshape(flat.shape[:-1] + tuple(run.split.image_shape))


def means(run, z):
    return np.asarray(model.bernoulli_means(run.net, run.params["decoder"], np.asarray(z, np.float32)))


def choose_pairs(labels, key, n_pairs=3):
    """n_pairs index pairs (i, j) of images of different classes, chosen by key."""
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    pairs = []
    while len(pairs) < n_pairs:
        i, j = rng.integers(len(labels), size=2)
        if labels[i] != labels[j]:
            pairs.append((int(i), int(j)))
    return pairs


def _interpolation(run, pairs, steps=10):
    x, y, names = run.split.x_train, run.split.y_train, run.split.dataset.class_names
    alphas = np.linspace(1.0, 0.0, steps)  # left to right: from z_a to z_b
    z = encode_means(run, np.stack([x[i] for pair in pairs for i in pair]))  # (2P, Dz)
    path = np.stack([plots.interpolate(z[0::2], z[1::2], alpha) for alpha in alphas], axis=1)  # (P, steps, Dz)
    titles = [(f"a: #{i} ({names[y[i]]})", f"b: #{j} ({names[y[j]]})") for i, j in pairs]
    return plots.interpolation_figure(images(run, x[[i for i, _ in pairs]]), images(run, x[[j for _, j in pairs]]),
                                      images(run, means(run, path)), alphas, titles)


def _manifold(run, n=20):
    if run.config.latent_dim != 2:
        return plots.manifold_figure(None, None)
    grid = densities.standard_normal_quantile((np.arange(n) + 0.5) / n)
    z = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1)  # (n, n, 2): row i has z1 = grid[i]
    return plots.manifold_figure(images(run, means(run, z)), grid, f"Learned {run.split.dataset.display_name} manifold")


def figure(kind, run, metrics, pairs=None, seed=0):
    """The figure called kind (one of plots.KINDS) for a loaded run; metrics: its metrics.jsonl rows."""
    split, key = run.split, jax.random.PRNGKey(seed)
    draw = {
        "samples": lambda: plots.samples_figure(*(images(run, a) for a in model.sample(
            jax.random.fold_in(key, 1), run.net, run.params["decoder"], run.config.latent_dim, 10)[1:])),
        "latent": lambda: plots.latent_figure(encode_means(run, split.x_train), split.y_train,
                                              split.dataset.class_names, split.dataset.noun),
        "interpolate": lambda: _interpolation(run, pairs or choose_pairs(split.y_train, jax.random.fold_in(key, 2))),
        "manifold": lambda: _manifold(run),
        "curves": lambda: plots.curves_figure(*(np.array([row[k] for row in metrics])
                                                for k in ("epoch", "train_elbo", "test_elbo"))),
        "reconstructions": lambda: plots.reconstructions_figure(
            images(run, split.x_test[:12]), images(run, means(run, encode_means(run, split.x_test[:12])))),
    }
    return draw[kind]()
