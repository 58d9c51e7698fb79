"""Figures: arrays in, matplotlib figures out. Nothing here trains or knows a model.

Plot functions take numpy arrays and return a matplotlib Figure (built without pyplot, so
they render headless). Images come shaped (..., rows, columns), with values in [0, 1] (Bernoulli
means or binary pixels), shown in the grey colour map: 0 black, 1 white.
"""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..errors import ConfigError

# Paul Tol's "muted" palette, designed for colour-blind readers (its pale grey swapped for a dark
# one that shows on white), with a marker per class as well.
CLASS_COLOURS = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255",
                 "#AA4499", "#555555"]
CLASS_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
GREY = "gray"  # 0 = black, 1 = white


def plain(text):
    """A string a user supplied (a class name), as text: aevb.runs.files.save_figure draws every text of a
    figure without matplotlib's $...$ mathematics, so it is shown as it is."""
    return str(text)


def colour(label):
    """The colour of a class label (an integer; the colours repeat)."""
    return CLASS_COLOURS[label % len(CLASS_COLOURS)]


def marker(label):
    """The marker of a class label (an integer; the markers repeat)."""
    return CLASS_MARKERS[label % len(CLASS_MARKERS)]


def image_axes(ax, pixels, title=None):
    """Draws pixels (rows, cols) in [0, 1] into ax as a grey image without ticks, with an optional title."""
    ax.imshow(np.asarray(pixels), cmap=GREY, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def note_figure(title, message):
    """A figure holding only a title and a message: what is drawn where a figure cannot be."""
    figure = Figure(figsize=(6, 2.5), layout="constrained")
    ax = figure.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11)
    return figure


# ---- the figures ---------------------------------------------------------------------------


def _two_rows(top, bottom, row_labels, title, column_titles=None):
    """A 2 x n grid of images: top[i] above bottom[i], one column per example."""
    n = len(top)
    figure = Figure(figsize=(1.1 * n, 2.9), layout="constrained")
    axes = figure.subplots(2, n, squeeze=False)
    for i in range(n):
        image_axes(axes[0, i], top[i], column_titles[i] if column_titles else None)
        image_axes(axes[1, i], bottom[i])
    axes[0, 0].set_ylabel(row_labels[0], fontsize=8)
    axes[1, 0].set_ylabel(row_labels[1], fontsize=8)
    figure.suptitle(title)
    return figure


def samples_figure(means, binary, prior="N(0, I)"):
    """Ancestral samples: row 1 the Bernoulli means of p(x|z), row 2 a binary draw from each; prior: p(z) in words."""
    return _two_rows(means, binary, ("mean of p(x|z)", "x ~ p(x|z)"),
                     f"Ancestral samples: z ~ {prior}, then x ~ p(x | z); each column one z",
                     [f"z{i + 1}" for i in range(len(means))])


def pca_2d(points):
    """Projection of (N, D) points on their first two principal components, and the variance share."""
    centred = points - points.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    share = (singular[:2] ** 2).sum() / (singular**2).sum()
    return centred @ vt[:2].T, float(share)


def latent_figure(z_means, labels, class_names, noun="image"):
    """Scatter of the means of q(z|x) for every image, coloured and marked by class.
    z_means: (N, 2); class_names: a name per label; noun: what the legend calls a point."""
    z_means, labels = np.asarray(z_means), np.asarray(labels)
    axis_names = ("z1", "z2")
    title = f"Means of q(z|x) for all {len(labels)} training images"
    if z_means.shape[1] != 2:
        latent_dim = z_means.shape[1]
        z_means, share = pca_2d(z_means)
        axis_names = ("principal component 1", "principal component 2")
        title += f"\nDz = {latent_dim}: a PCA projection to 2-D ({share:.0%} of the variance), not the latent plane"
    figure = Figure(figsize=(7.5, 6.5), layout="constrained")
    ax = figure.add_subplot()
    order = np.random.default_rng(0).permutation(len(labels))  # no class painted over all the others
    classes = range(len(class_names))
    for label in classes:
        chosen = order[labels[order] == label]
        ax.scatter(z_means[chosen, 0], z_means[chosen, 1], s=8, alpha=0.75, color=colour(label),
                   marker=marker(label), linewidths=0)
    for label in classes:
        if np.any(labels == label):
            centre = np.median(z_means[labels == label], axis=0)
            ax.annotate(plain(class_names[label]), centre, ha="center", va="center", fontsize=13, weight="bold",
                        bbox=dict(boxstyle="round,pad=0.2", fc="white", ec=colour(label), alpha=0.85))
    handles = [Line2D([], [], color=colour(label), marker=marker(label), linestyle="", markersize=7,
                      label=plain(class_names[label])) for label in classes]
    ax.legend(handles=handles, title=noun, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_xlabel(axis_names[0]), ax.set_ylabel(axis_names[1])
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    return figure


def interpolate(z_a, z_b, alpha):
    """alpha * z_a + (1 - alpha) * z_b: alpha = 1 gives z_a, alpha = 0 gives z_b."""
    return alpha * z_a + (1.0 - alpha) * z_b


def interpolation_figure(first, second, means, alphas, titles, rule=None):
    """One row per pair: image a, the decoded means along the line from z_a to z_b, image b; rule:
    how the pairs were chosen, in words (shown under the title).
    first, second: the pairs' images (P, rows, columns); means: (P, steps, rows, columns); alphas: where along the
    line (steps,); titles: each pair's two titles."""
    pairs, steps = means.shape[:2]
    figure = Figure(figsize=(1.05 * (steps + 2), 1.35 * pairs + 0.8), layout="constrained")
    axes = figure.subplots(pairs, steps + 2, squeeze=False)
    for row in range(pairs):
        image_axes(axes[row, 0], first[row], titles[row][0])
        for j in range(steps):
            image_axes(axes[row, j + 1], means[row, j], f"α={alphas[j]:.2f}" if row == 0 else None)
        image_axes(axes[row, -1], second[row], titles[row][1])
    figure.suptitle("Interpolation z = α z_a + (1 - α) z_b between the means of q(z|x); "
                    "decoded Bernoulli means, originals at the ends" + (f"\n{rule}" if rule else ""))
    return figure


def manifold_figure(images, grid, title="Learned manifold"):
    """The decoded means over a grid of z (Kingma & Welling 2013, figure 4): images (n, n, rows,
    columns), images[i, j] decoded at z = (grid[i], grid[j]).
    title: the figure's title."""
    if images is None:
        return note_figure("Learned manifold", "The manifold plot needs Dz = 2:\nthis model has another "
                            "latent dimension.")
    n, rows, cols = len(grid), *np.shape(images)[2:]
    blocks = np.asarray(images).transpose(1, 0, 2, 3)[::-1]  # block row r holds z2 = grid[n-1-r]: z2 grows upwards
    canvas = blocks.transpose(0, 2, 1, 3).reshape(n * rows, n * cols)
    figure = Figure(figsize=(8, 8.3), layout="constrained")
    ax = figure.add_subplot()
    ax.imshow(canvas, cmap=GREY, vmin=0, vmax=1, extent=(0, n, 0, n), interpolation="nearest")
    ticks = np.arange(0, n, 4) + 0.5
    labels = [f"{grid[int(t)]:.2f}" for t in ticks - 0.5]
    ax.set_xticks(ticks, labels), ax.set_yticks(ticks, labels)
    ax.set_xlabel("z1 (standard-normal quantiles)"), ax.set_ylabel("z2 (standard-normal quantiles)")
    ax.set_title(f"{title}: means of p(x|z) over a {n}x{n} grid of z")
    return figure


def curves_figure(epochs, train_elbo, test_elbo, tracked=None):
    """The ELBO per epoch; with tracked = (epochs, log p(x), ELBO, images) a second panel: the exact
    log p(x) of a fixed set of test images beside their ELBO, and the gap between them, KL(q || p(z|x)).
    epochs, train_elbo, test_elbo: metrics.jsonl's columns (E,) each (test_elbo None where not measured)."""
    figure = Figure(figsize=(7, 4.5) if tracked is None else (13, 4.8), layout="constrained")
    ax, *others = figure.subplots(1, 1 if tracked is None else 2, squeeze=False)[0]
    if tracked is not None:
        _tracked_axes(others[0], *tracked)
    ax.plot(epochs, train_elbo, label="train (mean of the epoch's minibatch estimates)", color=CLASS_COLOURS[0])
    ax.plot(epochs, test_elbo, label="test (single-sample ELBO, fixed key)", color=CLASS_COLOURS[1])
    ax.set_xlabel("epoch"), ax.set_ylabel("ELBO (nats per image)")
    low = min(np.percentile(train_elbo, 5), np.percentile(test_elbo, 5))
    high = max(np.max(train_elbo), np.max(test_elbo))
    ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    ax.set_title(f"Training curves (final: train {train_elbo[-1]:.1f}, test {test_elbo[-1]:.1f} nats/image)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return figure


def _tracked_axes(ax, epochs, log_px, elbo, images):
    epochs, log_px, elbo = (np.asarray(a) for a in (epochs, log_px, elbo))
    ax.plot(epochs, log_px, marker=".", color=CLASS_COLOURS[0], label="exact log p(x)")
    ax.plot(epochs, elbo, marker=".", color=CLASS_COLOURS[6], label="ELBO (S = 100, fixed key)")
    low = min(np.percentile(elbo, 5), np.percentile(log_px, 5))
    high = np.max(log_px)
    ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    ax.set_xlabel("epoch"), ax.set_ylabel("nats per image")
    ax.grid(alpha=0.3)
    gap = ax.twinx()
    gap.plot(epochs, log_px - elbo, marker=".", linestyle="--", color=CLASS_COLOURS[3],
             label="log p(x) - ELBO = KL(q || p(z|x)) (right axis)")
    gap.set_ylabel("KL(q(z|x) || p(z|x)), nats per image")
    lines = ax.get_legend_handles_labels()
    more = gap.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower right", fontsize=8)
    ax.set_title(f"The first {images} test images: the exact log p(x) and the ELBO", fontsize=10)


def reconstructions_figure(originals, means):
    """Test images, originals (N, rows, cols), above the means of p(x | z = q's mean) (N, rows, cols)."""
    return _two_rows(originals, means, ("test image", "mean of p(x|z)"),
                     "Reconstructions: test images and the means of p(x | z = mean of q(z|x))")


KINDS = ("samples", "latent", "interpolate", "manifold", "curves", "reconstructions", "bounds", "gaps", "posteriors",
         "ais", "prior")


def check_kinds(kinds):
    """kinds if every one is a figure's name (KINDS), else a usage error naming the first that is not. (ConfigError)."""
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise ConfigError(f"unknown figure {unknown[0]!r}; choose from {', '.join(KINDS)} or all")
    return kinds
