"""The comparison page's figures: arrays in, matplotlib figures out (built without pyplot)."""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .plots import CLASS_COLOURS, CLASS_MARKERS


def _positions(values):
    """x positions for a setting's values: the values themselves when numbers (a log axis if they
    span a factor of 8 or more), else evenly spaced categories. Returns (positions, log axis?, ticks)."""
    distinct = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct):
        log = min(distinct) > 0 and max(distinct) / min(distinct) >= 8
        return {v: v for v in distinct}, log, distinct
    return {v: i for i, v in enumerate(distinct)}, False, distinct


def settings_figure(name, points, measure_names):
    """Each measure against one setting: points = [(line label, setting value, [(mean, spread, what) or
    None per measure])]; one line per label, error bars of ± spread.
    name: the setting on the x axis; measure_names: a panel title per measure."""
    positions, log, ticks = _positions([value for _, value, _ in points])
    labels = list(dict.fromkeys(line for line, _, _ in points))
    step = min(np.diff(sorted(positions.values())), default=1)
    figure = Figure(figsize=(4.3 * len(measure_names), 3.9), layout="constrained")
    axes = figure.subplots(1, len(measure_names), squeeze=False)[0]
    for m, (ax, measure) in enumerate(zip(axes, measure_names, strict=True)):
        for i, line in enumerate(labels):
            rows = sorted((positions[value], numbers[m]) for label, value, numbers in points
                          if label == line and numbers[m] is not None)
            if not rows:
                continue
            shift = (i - (len(labels) - 1) / 2) * 0.04  # lines side by side, so error bars don't hide each other
            x = [r[0] * 10 ** (shift / 2) if log else r[0] + shift * (step or 1) for r in rows]
            mean = [r[1][0] for r in rows]
            spread = [r[1][1] if np.isfinite(r[1][1]) else 0.0 for r in rows]
            ax.errorbar(x, mean, yerr=spread, color=CLASS_COLOURS[i % len(CLASS_COLOURS)],
                        marker=CLASS_MARKERS[i % len(CLASS_MARKERS)], capsize=3, label=line)
        low, high = min(positions.values()), max(positions.values())
        if log:
            ax.set_xscale("log")
            ax.set_xlim(low / 1.4, high * 1.4)
        else:
            ax.set_xlim(low - 0.4 * (step or 1), high + 0.4 * (step or 1))
        ax.set_xticks([positions[t] for t in ticks], [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel(name), ax.set_title(measure, fontsize=10)
        ax.set_ylabel("nats per image") if m == 0 else None
        ax.grid(alpha=0.3)
    if len(labels) > 1 or labels[0] != "all runs":
        axes[0].legend(fontsize=8, loc="best")
    figure.suptitle(f"Against {name} (mean ± sd over seeds)", fontsize=11)
    return figure


def _mean_curve(rows_per_seed, key):
    """(epochs, mean over seeds) of a metrics key, over the epochs every seed has."""
    common = sorted(set.intersection(*({r["epoch"] for r in rows} for rows in rows_per_seed)))
    values = np.array([[{r["epoch"]: r[key] for r in rows}[e] for e in common] for rows in rows_per_seed])
    return np.array(common), values.mean(axis=0) if len(common) else values


def curves_figure(panels):
    """Train (solid) and test (dashed) ELBO against training images seen, log x axis, one panel per
    key of panels = {panel title: [(line label, images per epoch, [metrics rows of each seed])]}."""
    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(5.6 * columns, 4.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    for ax, (title, lines) in zip(axes, panels.items(), strict=False):
        lows, highs = [], []
        for i, (line, images_per_epoch, rows_per_seed) in enumerate(lines):
            rows_per_seed = [rows for rows in rows_per_seed if rows]
            if not rows_per_seed:
                continue
            colour = CLASS_COLOURS[i % len(CLASS_COLOURS)]
            for key, style in (("train_elbo", "-"), ("test_elbo", "--")):
                epochs, mean = _mean_curve(rows_per_seed, key)
                if len(epochs):
                    ax.plot(epochs * images_per_epoch, mean, style, color=colour, label=line if style == "-" else None)
                    lows.append(np.percentile(mean, 3)), highs.append(mean.max())
        ax.set_xscale("log")
        if lows:
            low, high = min(lows), max(highs)
            ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
        ax.set_xlabel("training images seen"), ax.set_ylabel("ELBO (nats per image)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        handles, labels = ax.get_legend_handles_labels()
        handles += [Line2D([], [], color="k", linestyle="-"), Line2D([], [], color="k", linestyle="--")]
        ax.legend(handles, labels + ["train", "test"], fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.suptitle("Learning curves (mean over seeds)", fontsize=11)
    return figure
