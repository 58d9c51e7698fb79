"""Figures of the exact evaluation: the bounds against K, the gaps per image, true posteriors.

Arrays in, matplotlib figures out, like aevb.views.plots and aevb.views.completion_plots (whose colours
and posterior drawing these share).
"""

import textwrap

import numpy as np
from matplotlib.figure import Figure

from .completion_plots import CONTOURS, posterior_axes
from .plots import CLASS_COLOURS


def bounds_figure(bounds):
    """Left: the importance-weighted bound against K, with q and with the defensive proposal, beside
    the exact log p(x) of the same images; right: how far below it each lies. Error bars: one standard
    error of the per-image gap (paired, so the images' own spread cancels). bounds: summary's bounds_vs_k."""
    figure = Figure(figsize=(11, 4.6), layout="constrained")
    left, right = figure.subplots(1, 2)
    ks, exact = np.asarray(bounds["k"]), bounds["exact"]
    styles = (("iwae", CLASS_COLOURS[6], "proposal q(z|x)"),
              ("defensive", CLASS_COLOURS[3],
               textwrap.fill("defensive proposal " + bounds.get("defensive_proposal", ""), 50)))
    for name, colour, label in styles:
        left.errorbar(ks, bounds[name], yerr=bounds[name + "_gap_se"], marker="o", capsize=3, color=colour,
                      label="IWAE bound, " + label)
        right.errorbar(ks, bounds[name + "_gap"], yerr=bounds[name + "_gap_se"], marker="o", capsize=3,
                       color=colour, label=label)
    left.axhline(exact, color=CLASS_COLOURS[0], linewidth=2, label=f"exact log p(x) = {exact:.2f}")
    low = bounds["iwae"][0] - 2  # the ELBO (K = 1 with q); the defensive bound at K = 1 may lie below it
    left.set_ylim(low, exact + 0.15 * (exact - low))
    for name, _, _ in styles:
        for k, value in zip(ks, bounds[name], strict=True):
            if value < low:
                left.annotate(f"{value:.0f} ↓", (k, low), textcoords="offset points", xytext=(4, 4), fontsize=8)
    left.set_ylabel("nats per image")
    left.set_title(f"Bounds on log p(x), first {bounds['images']} test images (K = 1 with q: the ELBO)", fontsize=9)
    left.legend(loc="lower right", fontsize=8)
    right.set_yscale("symlog", linthresh=0.1)
    right.axhline(0, color=CLASS_COLOURS[0], linewidth=1)
    right.set_ylabel("exact log p(x) - bound (nats per image)")
    right.set_title("How far each bound lies below the exact value", fontsize=9)
    right.legend(loc="upper right", fontsize=8)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("K, importance samples per image")
        ax.grid(alpha=0.3, which="both")
    return figure


def gaps_figure(gaps, k):
    """How far below the exact log p(x) each image's IWAE-K bound lies: a histogram, log-scaled counts.
    gaps: log p(x) minus the bound, per image (N,), nats; k: K."""
    gaps = np.asarray(gaps)
    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = figure.add_subplot()
    # Log-spaced bins both ways from +-0.01 (an estimate may land above the truth), one bin between.
    below = np.geomspace(0.01, max(-gaps.min(), 0.02), 12)[::-1] * -1 if gaps.min() < -0.01 else np.array([-0.01])
    edges = np.concatenate([below, np.geomspace(0.01, max(gaps.max(), 1.0), 40)])
    ax.hist(gaps, bins=edges, color=CLASS_COLOURS[0])
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_yscale("log")
    over = gaps > 10
    ax.axvline(10, color=CLASS_COLOURS[6], linestyle="--")
    ax.set_xlabel(f"exact log p(x) - IWAE bound, K = {k} (nats)"), ax.set_ylabel("images")
    ax.set_title(f"Per image, over {len(gaps)} test images: median {np.median(gaps):.2f} nats; {over.mean():.0%} are "
                 f"over 10 nats and hold {gaps[over].sum() / gaps.sum():.0%} of the total gap", fontsize=9)
    ax.grid(alpha=0.3)
    return figure


def posteriors_figure(panels):
    """One panel per image: the true posterior p(z|x) from the grid, the best factorized Gaussian q*
    (fitted on the grid, aevb.evaluation.q_stars) and the encoder's q, with the image in a corner.
    panels: dicts with image (rows, columns), grid, q_star (mean, log_std), encoder (mean, log_std), title, and
    for a family richer than the factorized Gaussian its name (family) and draws: [(label, z (n, 2), whose)] of the
    encoder's q and of the family's own q*_F (completion_plots.posterior_axes)."""
    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(6.2 * columns, 5.4 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False).ravel())
    for ax, panel in zip(axes, panels, strict=False):
        draws = panel.get("draws", [])  # a richer family: its ellipses are q's factorized part, its draws q itself
        posterior_axes(ax, panel["grid"], *panel["q_star"], *panel["encoder"],
                       ("p(z | x), exact (grid)", "q*: best factorized Gaussian (on the grid)",
                        "encoder q(z|x): 1 and 2 std" if not draws else
                        f"encoder q's factorized part ({panel['family']}): 1 and 2 std"), legend_size=7, draws=draws)
        inset = ax.inset_axes([0.78, 0.78, 0.2, 0.2])
        inset.imshow(panel["image"], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        inset.set_xticks([]), inset.set_yticks([])
        ax.set_title(panel["title"], fontsize=9)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    richer = any(panel.get("draws") for panel in panels)  # a flow's own q*_F is drawn too
    figure.suptitle("True posteriors beside q*" + (", the family's own q*_F" if richer else "") + " and the encoder's q; "
                    + CONTOURS, fontsize=10)
    return figure


def prior_figure(axis, log_p, log_q, kl, mass, prior):
    """The prior p(z) and the aggregate posterior q(z) = mean of the training images' q(z|x), filled contours of
    their log densities log_p and log_q (G, G) (rows z1) on the grid axis (G,) x axis, side by side, with kl =
    KL(q || p(z)) in nats and q's mass on the grid in the title; prior: p(z) in words
    (aevb.evaluation.aggregate.on_grid gives the rest)."""
    figure = Figure(figsize=(11.5, 5.0), layout="constrained")
    axes = figure.subplots(1, 2, sharex=True, sharey=True)
    floor = max(float(np.max(log_p)), float(np.max(log_q))) - 12.0  # 12 nats below the higher peak: white
    levels = np.linspace(floor, max(float(np.max(log_p)), float(np.max(log_q))), 13)
    for ax, table, title in ((axes[0], log_p, f"prior p(z): {prior}"),
                             (axes[1], log_q, "aggregate posterior q(z) = mean of q(z|x) over training images")):
        filled = ax.contourf(axis, axis, np.maximum(table, floor).T, levels=levels, cmap="Blues")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("z1")
        ax.set_aspect("equal")
    axes[0].set_ylabel("z2")
    figure.colorbar(filled, ax=axes, shrink=0.8, label="log density (nats), cut 12 below the peak")
    figure.suptitle(f"KL(q(z) || p(z)) = {kl:.3f} nats on the grid (q's mass there {mass:.4f}): what the prior misses "
                    "of where the encoder puts the images", fontsize=10)
    return figure
