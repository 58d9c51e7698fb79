"""The page of a reproduced protocol (aevb reproduce): the paper's number beside ours, their difference,
the budget used and what differs from the paper's setup; and its figure, in the paper's axes."""

import html
import math

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from .plots import CLASS_COLOURS
from .report import STYLE, figure_html


def curves_figure(lines, x_range=(1e5, 1e8)):
    """The lower bound per datapoint against training samples evaluated, log x, in the style of Kingma &
    Welling (2013), Figure 2: lines = [(label, samples (E,), train (E,), test (E,))], solid train, dashed test.
    x_range: the x axis' limits, training samples."""
    # The legend below the axes, one or two columns by the labels' length: a protocol of a dozen points (two
    # lines each) would cover the curves inside them.
    columns = 2 if max((len(label) for label, *_ in lines), default=0) <= 40 else 1
    figure = Figure(figsize=(6.4, 4.4 + 0.16 * math.ceil(2 * len(lines) / columns)), layout="constrained")
    ax = figure.subplots()
    # The colour-blind-safe palette where it has a colour per point; past it (cremer2018's 12), tab20's 20.
    palette = CLASS_COLOURS if len(lines) <= len(CLASS_COLOURS) else [colormaps["tab20"](i % 20) for i in range(20)]
    for i, (label, samples, train, test) in enumerate(lines):
        colour = palette[i % len(palette)]
        ax.plot(samples, train, color=colour, label=f"{label} train")
        ax.plot(samples, test, color=colour, linestyle="--", label=f"{label} test")
    ax.set_xscale("log")
    ax.set_xlim(*x_range)
    ax.set_xlabel("training samples evaluated")
    ax.set_ylabel("lower bound per datapoint (nats)")
    # The paper's axes show the bound's useful range; the first epoch's train values (thousands of nats
    # below) would squash every curve into a line, so the axis stops 10 nats under the lowest test value.
    lowest = min((min(test) for _, _, _, test in lines if len(test)), default=-150.0)
    highest = max((max(max(train), max(test)) for _, _, train, test in lines if len(test)), default=-95.0)
    ax.set_ylim(min(-150.0, lowest - 10.0), max(-95.0, highest + 5.0))
    ax.grid(alpha=0.3)
    figure.legend(fontsize=7, ncol=columns, loc="outside lower center")
    return figure


def values_figure(rows):
    """Ours (± 2 SE) beside the paper's number, one row each: rows = [(label, paper, ours, se)]."""
    figure = Figure(figsize=(6.4, 0.6 + 0.55 * len(rows)), layout="constrained")
    ax = figure.subplots()
    y = np.arange(len(rows))[::-1]
    for yi, (_, paper, ours, se) in zip(y, rows, strict=True):
        if paper is not None:
            ax.plot([paper], [yi + 0.12], "k^", label="paper" if yi == y[0] else None)
        if ours is not None and math.isfinite(ours):
            ax.errorbar([ours], [yi - 0.12], xerr=[2 * se if math.isfinite(se) else 0], fmt="o",
                        color=CLASS_COLOURS[0], capsize=3, label="aevb (± 2 SE)" if yi == y[0] else None)
    ax.set_yticks(y, [row[0] for row in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("nats per image (higher is better)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35 * 4 / (len(rows) + 1)), ncol=2)
    return figure


def _number(value, digits=2):
    return "&ndash;" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def gaps_table(gaps):
    """Each point's gaps (aevb.protocols.reproduce.gaps_of) as a table, and which gap dominates where.
    gaps: [(label, posterior family, side ("test" or "train": the images'), gaps_of's dict or None)]."""
    e, pm = html.escape, lambda pair: f"{_number(pair[0])} &plusmn; {_number(pair[1])}"
    table = ["<table><tr><th>run</th><th>family</th><th>images</th><th>log p(x)</th><th>ELBO(q)</th><th>approximation "
             "gap, q*</th><th>amortization gap, q*</th><th>approximation gap, the family's own q*</th><th>amortization "
             "gap, the family's own q*</th><th>images (own q*)</th></tr>"]
    larger = {"test": [], "train": []}
    for label, family, side, g in gaps:
        words = "test" if side == "test" else "training"
        if g is None:
            table.append(f"<tr><td>{e(label)}</td><td>{e(family)}</td><td>{words}</td>" + "<td>&ndash;</td>" * 7
                         + "</tr>")
            continue
        larger[side].append(g["amortization_gap_own"][0] > g["approximation_gap_own"][0])
        table.append(f"<tr><td>{e(label)}</td><td>{e(family)}</td><td>{words}</td><td class=num>{pm(g['log_px'])} "
                     f"({g['how']})</td>"
                     + "".join(f"<td class=num>{pm(g[key])}</td>" for key in (
                         "elbo", "approximation_gap_ffg", "amortization_gap_ffg", "approximation_gap_own",
                         "amortization_gap_own")) + f"<td class=num>{g['images']} ({g['own_images']})</td></tr>")
    table.append("</table>")
    verdict = " ".join(f"On {words} images the amortization gap is the larger one in {sum(larger[side])} of the "
                       f"{len(larger[side])} evaluated runs." for side, words in (("test", "test"), ("train", "training"))
                       if larger[side]) or "No run has been evaluated with its gaps yet."
    return ("<h2>Where the ELBO's gap comes from</h2><p class=\"note\">log p(x) - ELBO(q) = approximation gap "
            "[log p(x) - ELBO(q*)] + amortization gap [ELBO(q*) - ELBO(q)], nats per image ± one "
            "standard error over images; q* the best factorized Gaussian per image, the family's own q* its best "
            f"member fitted per image. {verdict}</p>" + '<div class="wrap">' + "".join(table) + "</div>")


def _by(row):
    """How a row's number was estimated where it is not the measure itself (AIS for log p(x)), for its cell."""
    return f"<br><small>({html.escape(row['by'])})</small>" if row.get("by") else ""


def rows_table(rows):
    """The table of a protocol's points: rows = [dict(label, paper, ours, se, epochs, images, hours, device, run)]."""
    e = html.escape
    table = ["<table><tr><th>run</th><th>paper</th><th>aevb</th><th>aevb &minus; paper</th><th>epochs</th>"
             "<th>training images seen</th><th>training hours</th><th>device</th><th>run directory</th></tr>"]
    for r in rows:
        difference = None if r["paper"] is None or r["ours"] is None else r["ours"] - r["paper"]
        table.append(f"<tr><td>{e(r['label'])}</td><td class=num>{_number(r['paper'])}</td><td class=num>"
                     f"{_number(r['ours'])} &plusmn; {_number(r['se'])}{_by(r)}</td>"
                     f"<td class=num>{_number(difference)}</td>"
                     f"<td class=num>{r['epochs']}</td><td class=num>{r['images']:.3g}</td><td class=num>"
                     f"{_number(r['hours'], 3)}</td><td>{e(r['device'])}</td><td>{e(r['run'])}</td></tr>")
    return '<div class="wrap">' + "".join(table) + "</table></div>"


def page(protocol, budget, rows, figure_path, caption, gaps=None, also=()):
    """The reproduction's HTML: protocol (its file's contents), budget (its name), rows = [dict(label,
    paper, ours, se, epochs, images, hours, device, run)].
    figure_path: the curves' PNG; caption: under it; gaps: gaps_table's, for a protocol of gaps (None: none); also:
    companion protocols' points, [(name, title, rows)] (aevb.protocols.reproduce.companions)."""
    source, e = protocol["source"], html.escape
    note = budget_note(protocol, budget)
    body = [f"<h1>Reproduced: {e(protocol['title'])}</h1>",
            f'<p class="headline">{e(protocol["measure_name"])}; the budget: {e(budget)} ({e(note)}).</p>',
            f"<p>{e(source['paper'])} {e(source['where'])}.</p>", f'<p class="note">{e(source["setup"])}</p>',
            rows_table(rows)]
    for name, title, more in also:  # a companion's points, as far as they have run (aevb reproduce NAME runs them)
        body += [f"<h2>Also measured here: {e(title)}</h2>", f'<p class="note">Its own protocol, aevb reproduce '
                 f"{e(name)} (its page gives its setup and differences); its points that have run at this budget.</p>",
                 rows_table(more)]
    if gaps is not None:
        body.append(gaps_table(gaps))
    if protocol.get("curves"):
        body.append(f'<p class="note">{e(protocol["curves"][0].upper() + protocol["curves"][1:])}.</p>')
    body += [f'<div class="wrap">{figure_html(figure_path, caption)}</div>', "<h2>What differs from the paper</h2>",
             "<ul>" + "".join(f"<li>{e(text)}</li>" for text in differences(protocol, budget)) + "</ul>"]
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>aevb reproduced: {e(protocol["title"])}</title>'
            f'<style>{STYLE}</style></head><body><main>{"".join(body)}</main></body></html>')


def budget_note(protocol, budget):
    """What the protocol's budget (short or full) says of itself."""
    return protocol["budgets"][budget]["note"]


def differences(protocol, budget):
    """What differs from the paper's setup, the budget first where it is not the paper's.
    protocol: the protocol file's contents; budget: short or full."""
    shorter = [] if budget == "full" else [f"the budget: {budget_note(protocol, budget)}"]
    return shorter + list(protocol["differences"])
