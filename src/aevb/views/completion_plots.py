"""Figures of partial observation and of posteriors on a grid: isocontours of the true posterior and
of a fitted q beside the encoder's q, the completions, the SVI trace.

Arrays in, matplotlib figures out, like aevb.views.plots (whose colours and image drawing these share).
"""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .plots import CLASS_COLOURS, image_axes


def posterior_axes(ax, grid, q_mean, q_log_std, encoder_mean, encoder_log_std, labels, legend_size=8, draws=()):
    """On ax: isocontours of the unnormalized posterior log_joint and of the fitted q (the grid's
    (axis1, axis2, log_joint, log_q)), the fitted q's mean, and the encoder's q: its mean and its 1-
    and 2-std ellipses. labels: the legend's three entries (posterior, fitted q, encoder's q). draws: [(label,
    z (n, 2), whose)], draws of a q richer than a factorized Gaussian (a flow) as dots, whose "encoder" (the
    encoder's whole q, in its colour) or "fitted" (a q fitted per image, in the fitted q's colour).
    q_mean, q_log_std: the fitted q's, (2,) each; encoder_mean, encoder_log_std: the encoder's q's; legend_size: its
    font size."""
    axis1, axis2, log_joint, log_q_grid = grid
    levels = [0.01, 0.1, 0.3, 0.6, 0.9]  # fractions of each surface's peak height
    ax.contour(axis1, axis2, np.exp(log_joint - log_joint.max()).T, levels=levels, colors=CLASS_COLOURS[0],
               linewidths=1.6)
    ax.contour(axis1, axis2, np.exp(log_q_grid - log_q_grid.max()).T, levels=levels, colors=CLASS_COLOURS[6],
               linewidths=1.4, linestyles="--")
    ax.plot(*q_mean, marker="+", color=CLASS_COLOURS[6], markersize=12, mew=2)
    angle = np.linspace(0, 2 * np.pi, 200)
    for k in (1, 2):
        ellipse = encoder_mean[:, None] + k * np.exp(encoder_log_std)[:, None] * np.stack([np.cos(angle),
                                                                                            np.sin(angle)])
        ax.plot(*ellipse, color=CLASS_COLOURS[3], linestyle=":", linewidth=1.5)
    ax.plot(*encoder_mean, marker="x", color=CLASS_COLOURS[3], markersize=10, mew=2)
    handles = [Line2D([], [], color=CLASS_COLOURS[0], linewidth=1.6, label=labels[0]),
               Line2D([], [], color=CLASS_COLOURS[6], linestyle="--", marker="+", label=labels[1]),
               Line2D([], [], color=CLASS_COLOURS[3], linestyle=":", marker="x", label=labels[2])]
    for label, z, whose in draws:
        colour = CLASS_COLOURS[3 if whose == "encoder" else 6]
        ax.scatter(*np.asarray(z).T, s=2, color=colour, alpha=0.35, linewidths=0)
        handles.append(Line2D([], [], color=colour, marker=".", linestyle="", label=label))
    ax.legend(handles=handles, loc="upper left", fontsize=legend_size, framealpha=0.9)
    ax.set_xlabel("z1"), ax.set_ylabel("z2")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)


def posterior_figure(grid, q_mean, q_log_std, encoder_mean, encoder_log_std, title, draws=(), family=None):
    """Isocontours of p(z, observed x) (the unnormalized posterior) and of the fitted q on the same
    axes, with the encoder's q(z | whole x) marked: its mean and its 1- and 2-std ellipses.
    grid: partial.posterior_grid's (axis1, axis2, log_joint, log_q); q_mean, q_log_std, encoder_mean,
    encoder_log_std, draws: as posterior_axes takes them; title: the figure's; family: the encoder's family where
    draws show it (its ellipses are then its factorized part)."""
    figure = Figure(figsize=(7, 6), layout="constrained")
    ax = figure.add_subplot()
    posterior_axes(ax, grid, q_mean, q_log_std, encoder_mean, encoder_log_std,
                   ("p(z, observed pixels) ∝ p(z | observed)", "q(z) fitted by SVI",
                    "encoder q(z | whole image): mean, 1 and 2 std" if not draws else
                    f"encoder q's factorized part ({family}): mean, 1 and 2 std"), draws=draws)
    ax.set_title(title + "\n" + CONTOURS, fontsize=10)
    return figure


CONTOURS = "contours at 1%, 10%, 30%, 60%, 90% of each surface's peak"


def completion_figure(original, completions, mask, title):
    """The original image beside completions: observed pixels kept, the rest the means of p(x|z)
    for z ~ q. A red outline marks the observed region. mask: (rows, columns), True where observed.
    title: the figure's title."""
    n = len(completions)
    figure = Figure(figsize=(1.2 * (n + 1) + 0.4, 2.3), layout="constrained")
    axes = figure.subplots(1, n + 1, squeeze=False)[0]
    image_axes(axes[0], original, "original")
    for i in range(n):
        image_axes(axes[i + 1], completions[i], f"z{i + 1} ~ q")
    observed = np.asarray(mask)
    for ax in axes[1:]:
        ax.contour(observed.astype(float), levels=[0.5], colors="red", linewidths=0.8)
    figure.suptitle(title, fontsize=10)
    return figure


def trace_figure(trace):
    """The SVI fit's ELBO estimate per Adam step; trace: (steps,) nats."""
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(np.arange(1, len(trace) + 1), trace, color=CLASS_COLOURS[0])
    low = np.percentile(trace, 2)
    ax.set_ylim(low - 0.05 * (trace.max() - low), trace.max() + 0.05 * (trace.max() - low))
    ax.set_xlabel("Adam step"), ax.set_ylabel("ELBO estimate (nats)")
    ax.set_title("SVI: the ELBO of q(z) for log p(observed pixels), K-sample estimate per step")
    ax.grid(alpha=0.3)
    return figure
