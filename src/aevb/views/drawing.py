"""The arrays behind a run's figures, computed from its parameters, then drawn by aevb.views.plots.

The plots take arrays and never see a model; this module turns a loaded run (aevb.pipeline.Run)
into those arrays with the model's pure functions: encodings, decoded means, ancestral samples,
the true posteriors, and a completion's figures.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..evaluation import aggregate, exact, families, gaps, partial, q_stars
from ..model import densities, probability
from ..runs import files, records
from . import ais_plots, completion_plots, exact_plots, plots


# The figures' few evaluations compiled whole: op by op, each operation of each shape compiles apart.
# q's factorized Gaussian (mean, log_std): the default family's q itself; a richer family's base (a flow's q0,
# a full covariance's mean and diagonal): the posterior panels' ellipses. _locate: the point each image is
# drawn at, q.location (the mean; for a flow its q0's mean pushed through the flow).
_encode = jax.jit(lambda net, theta, x: (lambda q: (q.mean, q.log_std))(net.encode(theta, x)), static_argnames="net")
_locate = jax.jit(lambda net, theta, x: net.encode(theta, x).location, static_argnames="net")
_means = jax.jit(probability.bernoulli_means, static_argnames="net")
_sample = jax.jit(probability.sample, static_argnames=("net", "latent_dim", "n"))


def encode_means(run, x, chunk=5000):
    """The means of q(z|x) for every image (a flow's: q0's mean through the flow): (N, Dz).
    chunk: images per encoder call."""
    return np.concatenate([np.asarray(_locate(run.net, run.params["encoder"], x[i : i + chunk]))
                           for i in range(0, len(x), chunk)])


def images(run, flat):
    """Flat pixels (..., D) -> images (..., rows, columns) for the plots.
    flat: pixels (..., D)."""
    flat = np.asarray(flat)
    return flat.reshape(flat.shape[:-1] + tuple(run.split.image_shape))


def means(run, z):
    """The decoder's Bernoulli means at z (N, Dz): (N, D), as float32 numpy."""
    return np.asarray(_means(run.net, run.params["decoder"], np.asarray(z, np.float32)))


def choose_pairs(labels, key, n_pairs=3):
    """n_pairs index pairs (i, j) of images of different classes, chosen by key; where the images
    hold one class only (an npz without labels), of different images; with one image, that image."""
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    labels = np.asarray(labels)
    several = len(np.unique(labels)) > 1
    pairs = []
    while len(pairs) < n_pairs:
        i, j = rng.integers(len(labels), size=2)
        if (labels[i] != labels[j]) if several else (i != j or len(labels) == 1):
            pairs.append((int(i), int(j)))
    return pairs


def pairs_rule(labels):
    """How choose_pairs chose, in words, for the figure."""
    if len(np.unique(labels)) > 1:
        return "pairs of training images of different classes, drawn at random"
    return "pairs of training images drawn at random (the data has one class)"


def _interpolation(run, pairs, rule, steps=10):
    x, y, names = run.split.x_train, run.split.y_train, run.split.dataset.class_names
    alphas = np.linspace(1.0, 0.0, steps)  # left to right: from z_a to z_b
    z = encode_means(run, np.stack([x[i] for pair in pairs for i in pair]))  # (2P, Dz)
    path = np.stack([plots.interpolate(z[0::2], z[1::2], alpha) for alpha in alphas], axis=1)  # (P, steps, Dz)
    titles = [(f"a: #{i} ({plots.plain(names[y[i]])})", f"b: #{j} ({plots.plain(names[y[j]])})") for i, j in pairs]
    return plots.interpolation_figure(images(run, x[[i for i, _ in pairs]]), images(run, x[[j for _, j in pairs]]),
                                      images(run, means(run, path)), alphas, titles, rule)


def _manifold(run, n=20):
    if run.config.latent_dim != 2:
        return plots.manifold_figure(None, None)
    grid = densities.standard_normal_quantile((np.arange(n) + 0.5) / n)
    z = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1)  # (n, n, 2): row i has z1 = grid[i]
    return plots.manifold_figure(images(run, means(run, z)), grid, f"Learned {run.split.dataset.display_name} manifold")


def figure(kind, run, metrics, pairs=None, seed=0):
    """The figure called kind (one of plots.KINDS) for a loaded run; metrics: its metrics.jsonl rows.
    pairs: the interpolation's pairs of training images; seed: the samples' draws."""
    split, key = run.split, jax.random.PRNGKey(seed)
    prior = run.net.prior.words
    draw = {
        "samples": lambda: plots.samples_figure(*(images(run, a) for a in _sample(  # z ~ the model's prior
            jax.random.fold_in(key, 1), run.net, probability.generative(run.net, run.params), run.config.latent_dim,
            10)[1:]), prior),
        "latent": lambda: plots.latent_figure(encode_means(run, split.x_train), split.y_train,
                                              split.dataset.class_names, split.dataset.noun),
        "interpolate": lambda: _interpolation(run, pairs or choose_pairs(split.y_train, jax.random.fold_in(key, 2)),
                                              "pairs chosen with --pairs" if pairs else pairs_rule(split.y_train)),
        "manifold": lambda: _manifold(run),
        "curves": lambda: plots.curves_figure(*(np.array([row[k] for row in metrics])
                                                for k in ("epoch", "train_elbo", "test_elbo")), _tracked(metrics)),
        "reconstructions": lambda: plots.reconstructions_figure(
            images(run, split.x_test[:12]), images(run, means(run, encode_means(run, split.x_test[:12])))),
        "bounds": lambda: exact_plots.bounds_figure(summary["bounds_vs_k"]),
        "gaps": lambda: exact_plots.gaps_figure(per_image["test_log_px"] - per_image["test_iwae"], summary["iwae_k"]),
        "posteriors": lambda: exact_plots.posteriors_figure(posterior_panels(run, per_image)),
        "ais": lambda: ais_plots.ais_figure(summary["ais_vs_steps"], *_ais_gaps(per_image), summary["iwae_k"]),
        "prior": lambda: exact_plots.prior_figure(*aggregate.on_grid(run.net, run.params, split.x_train), prior),
    }
    if kind == "prior" and (run.config.latent_dim != 2 or not run.net.family.q_type.has_density):
        return plots.note_figure("Prior", "This figure needs Dz = 2 and a posterior family with a density at any z "
                                 f"(this model: Dz = {run.config.latent_dim}, {run.config.posterior}).")
    if kind == "ais":
        summary, per_image = records.read_summary(run.path), records.read_per_image(run.path)
        if "ais_vs_steps" not in summary or "test_ais" not in per_image:
            return plots.note_figure("AIS", "This figure needs log p(x) by AIS: aevb evaluate --ais (aevb run does it "
                                     "where Dz != 2).")
    if kind in ("bounds", "gaps", "posteriors"):
        summary, per_image = records.read_summary(run.path), records.read_per_image(run.path)
        if "test_log_px" not in per_image or "bounds_vs_k" not in summary:
            why = ("needs Dz = 2: this model has another latent dimension" if run.config.latent_dim != 2 else
                   "needs the exact evaluation: aevb evaluate --exact")
            return plots.note_figure(kind.capitalize(), f"This figure {why}.")
    return draw[kind]()


# What each figure is drawn from besides the checkpoint (every figure draws the trained model): a figure file older
# than any of its inputs is stale, and aevb report draws it again (aevb.pipeline.report).
EVALUATED = ("bounds", "gaps", "posteriors", "ais")  # from the evaluation's per-image numbers (and summary)
INPUTS = {**{kind: (files.CHECKPOINT,) for kind in plots.KINDS}, "curves": (files.CHECKPOINT, files.METRICS),
          **{kind: (files.CHECKPOINT, files.PER_IMAGE) for kind in EVALUATED}}


def stale(run_dir):
    """The kinds of figure drawn before one of its inputs (INPUTS) last changed, in plots.KINDS' order (a figure
    never drawn is not stale: the report says how to draw it)."""
    def mtime(path):
        return path.stat().st_mtime_ns if path.exists() else -1

    run_dir = Path(run_dir)
    return [kind for kind in plots.KINDS if 0 <= mtime(files.figure_path(run_dir, kind)) < max(
        mtime(run_dir / name) for name in INPUTS[kind])]


def _ais_gaps(per_image):
    """(AIS minus the IWAE bound, per test image AIS evaluated; the same for the defensive bound, or None)."""
    ais = np.asarray(per_image["test_ais"], np.float64)
    defensive = per_image.get("test_iwae_defensive")
    return (ais - per_image["test_iwae"][: len(ais)]), (None if defensive is None else ais - defensive[: len(ais)])


def _tracked(metrics):
    """(epochs, log p(x), ELBO, images) of the rows that recorded the exact log p(x), or None."""
    rows = [row for row in metrics if "tracked" in row]
    if not rows:
        return None
    return ([row["epoch"] for row in rows], [row["tracked"]["log_px"] for row in rows],
            [row["tracked"]["elbo"] for row in rows], rows[0]["tracked"]["images"])


def count_modes(grid, within=5.0, apart=0.3):
    """Modes of a gridded log density (axis1, axis2, log density (n, n), ...): its local maxima within
    `within` nats of the largest, counting maxima closer than `apart` (z units) as one (float32
    ripples make twin maxima a grid step apart on a single peak)."""
    axis1, axis2, log_joint = grid[:3]
    inner = log_joint[1:-1, 1:-1]
    rows, cols = log_joint.shape
    higher = [log_joint[1 + di : rows - 1 + di, 1 + dj : cols - 1 + dj] for di in (-1, 0, 1) for dj in (-1, 0, 1)
              if di or dj]
    peaks = np.argwhere(np.all([inner >= other for other in higher], axis=0) & (inner >= log_joint.max() - within))
    points = np.stack([axis1[peaks[:, 0] + 1], axis2[peaks[:, 1] + 1]], -1)
    modes = []
    for point in points:
        if all(np.hypot(*(point - mode)) >= apart for mode in modes):
            modes.append(point)
    return len(modes)


def posterior_panels(run, per_image, search=40):
    """The true posterior of the test image the model fits best (highest log p(x)), a typical one (the
    median gap below IWAE), the worst (IWAE farthest below log p(x)) and the first multimodal one
    among the `search` worst.
    per_image: per_image.npz's arrays (the exact log p(x) and the bounds of each test image)."""
    x, theta = run.split.x_test, probability.generative(run.net, run.params)
    px, elbo, iwae = per_image["test_log_px"], per_image["test_elbo"], per_image["test_iwae"]
    order = np.argsort(px - iwae)
    everything = np.ones(x.shape[1], bool)
    chosen = {"best fitted": int(np.argmax(px)), "typical": int(order[len(order) // 2]),
              "IWAE farthest below": int(order[-1])}
    for i in order[::-1][1:search]:
        encoder = tuple(np.asarray(a) for a in _encode(run.net, run.params["encoder"], x[i]))
        if count_modes(partial.posterior_grid(run.net, theta, x[i], everything, encoder, encoder)) >= 2:
            chosen["multimodal"] = int(i)
            break
    panels = []
    ids = np.array(list(chosen.values()))
    tiles = exact.select_tiles(run.net, theta, x[ids])  # q* on the grid, as the gap decomposition finds it
    fitted, _ = q_stars.fit_on_grid(run.net, run.params, x[ids], tiles)
    own = _own_best(run, x[ids], fitted)  # a richer family's own q*_F: [] for the factorized Gaussian
    for j, (role, i) in enumerate(chosen.items()):
        encoder = tuple(np.asarray(a) for a in _encode(run.net, run.params["encoder"], x[i]))
        q_star = tuple(np.asarray(a[j]) for a in fitted)
        panels.append({"image": images(run, x[i]), "q_star": q_star, "encoder": encoder,
                       "grid": partial.posterior_grid(run.net, theta, x[i], everything, q_star, encoder),
                       "title": f"test image #{i}, {role}: log p(x) {px[i]:.1f}, IWAE {iwae[i]:.1f}, ELBO "
                                f"{elbo[i]:.1f} nats", "family": run.net.family.name,
                       "draws": _draws(run, x[i]) + [(label, z[:, j], "fitted") for label, z in own]})
    return panels


def _richer(run):  # the run's posterior family is richer than the factorized Gaussian (more outputs than 2 Dz)
    return run.net.family.outputs(run.config.latent_dim) > 2 * run.config.latent_dim


def _own_best(run, x, q_star, n=600):
    """[(label, z (n, images, Dz))]: draws of the family's own q*_F of each image x (images, D) where the family is
    richer than the factorized Gaussian, fitted from q* (mean, log_std) as the gap decomposition fits it; else []."""
    if not _richer(run):
        return []
    q, _, _ = families.best_member(run.net, run.params, jnp.asarray(x), q_star, gaps.KEY,
                                   jax.random.fold_in(gaps.KEY, 1))
    z = np.asarray(q.sample(jax.random.PRNGKey(0), (n,))[0])  # (n, images, Dz)
    return [(f"q*_F, {run.net.family.name}'s own best fitted (SVI): {n} draws", z)]


def _draws(run, image, n=600):
    """[(label, z (n, Dz), "encoder")]: draws of the encoder's whole q for one image where its family is richer than
    the factorized Gaussian the ellipses show (a flow moves its mass away from q0); else []."""
    if not _richer(run):
        return []
    z, _ = run.net.encode(run.params["encoder"], jnp.asarray(image)[None]).sample(jax.random.PRNGKey(0), (n,))
    return [(f"encoder q(z|x), {run.net.family.name}: {n} draws", np.asarray(z[:, 0]), "encoder")]


def completion_figures(run, c):
    """{name: Figure} of a completion c (aevb.evaluation.partial.Completion) of one of run's training
    images: the completions, the SVI trace and, with Dz = 2, the posterior's isocontours."""
    name, dataset = f"complete_{c.mask_name}", run.split.dataset
    title = plots.plain(f"Training image #{c.index} ({dataset.noun} {dataset.class_names[c.label]}; {c.criterion}), "
                        f"observed: {c.mask_name}")  # class names and the criterion naming one: as text
    figures = {name: completion_plots.completion_figure(images(run, c.image), images(run, c.completions),
                                                        images(run, c.mask), title),
               name + "_trace": completion_plots.trace_figure(c.elbo_trace)}
    if c.grid is not None:
        figures[name + "_posterior"] = completion_plots.posterior_figure(
            c.grid, c.q_mean, c.q_log_std, c.encoder_mean, c.encoder_log_std,
            f"Posterior given the {c.mask_name} of image #{c.index}", _draws(run, c.image), run.net.family.name)
    return figures
