"""Figures of AIS (aevb.evaluation.ais, .likelihood): the estimate against the number of
distributions T beside the IWAE bounds against K, BDMC's two bounds against T, and the per-image gap
between AIS and the IWAE bound. Arrays in, matplotlib figures out, like aevb.views.exact_plots.
"""

import textwrap

import numpy as np
from matplotlib.figure import Figure

from .plots import CLASS_COLOURS

AIS_COLOUR, IWAE_COLOUR, DEFENSIVE_COLOUR, TRUTH_COLOUR = CLASS_COLOURS[1], CLASS_COLOURS[6], CLASS_COLOURS[3], \
    CLASS_COLOURS[0]


def _against(ax, x, values, se, colour, label):
    ax.errorbar(x, values, yerr=se, marker="o", capsize=3, color=colour, label=label)
    ax.set_xscale("log")
    ax.set_xticks(x, [str(v) for v in x])
    ax.minorticks_off()
    ax.grid(alpha=0.3)


def ais_figure(curve, ais_minus_iwae, ais_minus_defensive, iwae_k):
    """Top left: AIS against T on the curve's test images; top right: the IWAE bounds against K on the
    same images, on the same y axis, with the exact log p(x) (Dz = 2) or the AIS at the largest T as a
    line; bottom left: BDMC's forward and reverse AIS against T on examples simulated from the model;
    bottom right: the histogram of AIS minus the IWAE-K bound per test image. curve: the summary's
    ais_vs_steps; ais_minus_iwae (N,): per image; ais_minus_defensive
    the same for the defensive bound, or None.
    iwae_k: K of the bounds in ais_minus_iwae."""
    figure = Figure(figsize=(11, 8.4), layout="constrained")
    (left, right), (low_left, low_right) = figure.subplots(2, 2)
    right.sharey(left)
    exact = curve.get("exact")
    line, line_label = ((exact, f"exact log p(x) = {exact:.2f}") if exact is not None else
                        (curve["ais"][-1], f"AIS at T = {curve['steps'][-1]}: {curve['ais'][-1]:.2f}"))
    _against(left, curve["steps"], curve["ais"], curve["ais_se"], AIS_COLOUR, "AIS (a stochastic lower bound)")
    _against(right, curve["k"], curve["iwae"], curve["iwae_se"], IWAE_COLOUR, "IWAE bound, proposal q(z|x)")
    _against(right, curve["k"], curve["defensive"], curve["defensive_se"], DEFENSIVE_COLOUR,
             textwrap.fill("IWAE bound, defensive " + curve.get("defensive_proposal", ""), 50))
    for ax in (left, right):
        ax.axhline(line, color=TRUTH_COLOUR, linewidth=2, label=line_label)
    low = min(curve["ais"][0], curve["iwae"][0]) - 2
    left.set_ylim(low, line + 0.1 * (line - low))
    left.set_xlabel("T, intermediate distributions"), right.set_xlabel("K, importance samples")
    left.set_ylabel("nats per image")
    left.set_title(f"AIS against T, first {curve['images']} test images", fontsize=9)
    right.set_title(f"IWAE against K, the same {curve['images']} images", fontsize=9)
    left.legend(loc="lower right", fontsize=8), right.legend(loc="lower right", fontsize=8)
    if "bdmc" in curve:
        b = curve["bdmc"]
        _against(low_left, curve["steps"], b["forward"], b["forward_se"], AIS_COLOUR, "forward AIS (lower bound)")
        _against(low_left, curve["steps"], b["reverse"], b["reverse_se"], DEFENSIVE_COLOUR,
                 "reverse AIS from the true z (upper bound)")
        if "exact" in b:
            low_left.axhline(b["exact"], color=TRUTH_COLOUR, linewidth=2, label=f"exact log p(x) = {b['exact']:.2f}")
        low_left.set_xlabel("T, intermediate distributions"), low_left.set_ylabel("nats per example")
        gap = b["reverse"][-1] - b["forward"][-1]
        low_left.set_title(f"BDMC on {b['examples']} examples simulated from the model: gap {gap:.2f} nats at "
                           f"T = {curve['steps'][-1]}", fontsize=9)
        low_left.legend(loc="best", fontsize=8)
    else:
        low_left.axis("off")
        low_left.text(0.5, 0.5, "BDMC not run (--bdmc 0)", ha="center", va="center", transform=low_left.transAxes)
    gaps = [(np.asarray(ais_minus_iwae), IWAE_COLOUR, "q(z|x)")]
    if ais_minus_defensive is not None:
        gaps.append((np.asarray(ais_minus_defensive), DEFENSIVE_COLOUR, "defensive"))
    everything = np.concatenate([g for g, _, _ in gaps])
    bins = np.linspace(min(everything.min(), 0), max(everything.max(), 0.1), 40)
    for values, colour, label in gaps:
        low_right.hist(values, bins=bins, color=colour, alpha=0.6,
                       label=f"IWAE K = {iwae_k}, {label}: mean {values.mean():.2f}, "
                             f"{np.mean(values < 0):.0%} below 0")
    low_right.axvline(0, color=TRUTH_COLOUR, linewidth=1)
    low_right.set_xlabel("AIS minus the IWAE bound, per test image (nats)"), low_right.set_ylabel("images")
    low_right.set_title(f"Per-image gap, first {len(everything) // len(gaps)} test images", fontsize=9)
    low_right.legend(loc="best", fontsize=8)
    figure.suptitle("log p(x) by AIS: against T, against the IWAE bounds, and bounded from both sides by BDMC. "
                    "Error bars: SE of each image's difference to the line", fontsize=10)
    return figure
