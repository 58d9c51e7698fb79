"""The report: one self-contained HTML page (figures as data URIs, no network access) with a
live latent-space explorer that decodes z in the page, in plain JavaScript (aevb.views.explorer).

render() takes what a run has measured and drawn; it computes nothing and writes nothing.
page() gathers those from a loaded run.
"""

import base64
import html
import json
from pathlib import Path

from .. import parallel
from ..evaluation import answers, families, likelihood, partial
from ..runs import files, records
from . import explorer

NOT_RECORDED = "its components not recorded"  # a defensive proposal in a summary written before it was kept
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; line-height: 1.45; }
main { max-width: 980px; margin: 0 auto; padding: 12px 16px 48px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee;
  text-align: left; vertical-align: top; } td.num { text-align: right; font-variant-numeric: tabular-nums;
  white-space: nowrap; }
img.figure { max-width: 100%; height: auto; display: block; margin: 10px 0; }
figure { margin: 0 0 18px; }
.headline { font-size: 1.15em; background: #f4f6fa; padding: 10px 14px; border-radius: 6px; }
.note { color: #555; font-size: 0.92em; }
#explorer { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
#latent-canvas { width: 100%; max-width: 560px; aspect-ratio: 1; border: 1px solid #ccc; cursor: crosshair;
  touch-action: none; }
#decoded-canvas { width: 196px; height: 196px; image-rendering: pixelated; border: 1px solid #ccc; }
#strip-canvas { width: 100%; max-width: 700px; image-rendering: pixelated; border: 1px solid #ccc; }
.answer { margin: 10px 0; } .answer b { display: inline-block; min-width: 3.2em; }
.wrap { overflow-x: auto; }
@media (max-width: 600px) { main { padding: 8px; } h1 { font-size: 1.3em; } td, th { padding: 2px 5px; } }
"""


def figure_html(png_path, caption):
    """A figure of the report inlined as a data: URI with its caption, or a note where png_path is not drawn yet."""
    if not (png_path := Path(png_path)).is_file():
        return f'<p class="note">Figure {html.escape(png_path.stem)} not drawn yet (aevb plot / aevb complete).</p>'
    uri = "data:image/png;base64," + base64.b64encode(png_path.read_bytes()).decode("ascii")
    return (f'<figure><img class="figure" alt="{html.escape(caption)}" src="{uri}">'
            f'<figcaption class="note">{html.escape(caption)}</figcaption></figure>')


def _pm(mean, se):
    return f"{mean:.2f} ± {se:.2f}"


def exact_section(s, figure, latent_dim):
    """'How good is the model, exactly?' from summary.json's numbers s, figure(name)'s PNGs and latent_dim."""
    try:
        return _exact_section(s, figure, latent_dim)
    except KeyError as missing:  # a summary written before one of these numbers existed
        return f'<p class="note">Incomplete ({html.escape(str(missing))} is missing): run aevb evaluate --exact.</p>'


def ais_section(s, figure):
    """The AIS estimate and its BDMC check (aevb evaluate --ais), in the words the command prints, and its
    figure (figure(name): its PNG); '' if summary.json's numbers s have none."""
    if "ais" not in s:
        return ""
    lines = likelihood.describe(s["ais"]).splitlines()
    text = "".join(f'<p class="{"headline" if i == 0 else "note"}">{html.escape(line)}</p>'
                   for i, line in enumerate(lines))
    return text + (figure_html(figure("ais"), "AIS against T beside the IWAE bounds against K on the same images; "
                               "BDMC's two bounds against T; AIS minus the IWAE bound per image")
                   if "ais_vs_steps" in s else "")


def _exact_section(s, figure, latent_dim):
    if "test_log_px" not in s:
        why = (f"the grid needs a 2-D latent space; this model has Dz = {latent_dim}" if latent_dim != 2 else
               "run aevb evaluate --exact")
        defensive = ""
        if "test_iwae_defensive" in s:
            higher = "higher" if s["test_iwae_defensive"] > s["test_iwae"] else "not higher"
            proposal = html.escape(s.get("defensive_proposal", NOT_RECORDED))
            defensive = (f" The importance-weighted bound with the defensive proposal ({proposal}), "
                         f"K = {s['iwae_k']}: <b>{_pm(s['test_iwae_defensive'], s['test_iwae_defensive_se'])}</b> "
                         f"nats/image, {higher} than {_pm(s['test_iwae'], s['test_iwae_se'])} with q alone. Both are "
                         "lower bounds: the higher is the closer" + (", and AIS below is the estimate to trust here."
                                                                   if "test_log_px_ais" in s else
                                                                   ", and nothing here says how far below log p(x) it "
                                                                   "is (aevb evaluate --ais does)."))
        return f'<p class="note">Exact log p(x) not computed: {html.escape(why)}.{defensive}</p>'
    rows = [("exact log p(x), every image", _pm(s["test_log_px"], s["test_log_px_se"]),
             _pm(s["train_log_px"], s["train_log_px_se"])),
            (f"ELBO (S = {s['elbo_samples']})", _pm(s["test_elbo"], s["test_elbo_se"]),
             _pm(s["train_elbo"], s["train_elbo_se"])),
            (f"IWAE bound (K = {s['iwae_k']})", _pm(s["test_iwae"], s["test_iwae_se"]), "not computed"),
            ("log p(x) - ELBO, per image", _pm(s["test_gap_elbo"], s["test_gap_elbo_se"]),
             _pm(s["train_gap_elbo"], s["train_gap_elbo_se"])),
            ("log p(x) - IWAE, per image", _pm(s["test_gap_iwae"]["mean"], s["test_gap_iwae"]["se"]), "")]
    if "gap_decomposition" not in s:  # a quick evaluation (or a sweep's): the grid's numbers alone
        return (f'<p>log p(x) on a grid of spacing {s["log_px_grid"]["spacing"]} (quadrature), nats per image ± one '
                f'standard error over images.</p><div class="wrap"><table><tr><th></th><th>test</th><th>train</th></tr>'
                f'{_rows(rows)}</table></div><p class="note">A quick evaluation: the grid\'s accuracy check, the '
                "bounds against K and the gap decomposition were not run (aevb run without --quick adds them).</p>")
    g, check, b, gap = s["gap_decomposition"], s["log_px_accuracy"], s["bounds_vs_k"], s["test_gap_iwae"]
    halved, grown = check["halved_spacing"], check["grown_extent"]
    verdict = "within" if max(halved["max_abs_change"], grown["max_abs_change"]) < 0.01 else "NOT within"
    rows += [(f"approximation gap log p(x) - ELBO(q*), first {g['test']['images']} images",
             _pm(g["test"]["approximation_gap"], g["test"]["approximation_gap_se"]),
             _pm(g["train"]["approximation_gap"], g["train"]["approximation_gap_se"])),
            ("amortization gap ELBO(q*) - ELBO(encoder's q), same images",
             _pm(g["test"]["amortization_gap"], g["test"]["amortization_gap_se"]),
             _pm(g["train"]["amortization_gap"], g["train"]["amortization_gap_se"]))]
    # q* above is the best factorized Gaussian; a richer family's own q*_F (SVI), then those of gap_families
    for (t, own), (r, _) in zip(*(families.fitted(g[side]) for side in ("test", "train")), strict=True):
        whose = "own" if own else "(fitted to this model)"
        rows += [(label, _pm(t[key], t[key + "_se"]), _pm(r[key], r[key + "_se"])) for label, key in (
            (f"approximation gap log p(x) - ELBO(q*_F), q*_F {t['posterior']}'s {whose} (SVI), first {t['images']} "
             "images", "approximation_gap"),
            (f"{'amortization gap ' if own else ''}ELBO(q*_F) - ELBO(encoder's q), same images", "amortization_gap"),
            ("ELBO(q*_F) - ELBO(q*): the family's gain over the factorized Gaussian q*", "gain_over_gaussian_q_star"))]
    return f"""
<p>For a 2-D latent space log p(x) = log ∫ p(x|z) p(z) dz is computed on a grid of spacing
{s['log_px_grid']['spacing']} over every tile of z where an image's posterior has mass (quadrature;
{s['log_px_seconds']:.1f} s and {s['log_px_gflop']:.0f} GFLOP for the test set). Halving the spacing moves it by
{halved['mean_abs_change']:.1e} nats per image on average ({halved['max_abs_change']:.1e} at most), growing the extent
by {grown['max_abs_change']:.1e} at most (first {check['images']} test images): {verdict} the 0.01 nats per image aimed
at. Nats per image, ± one standard error over images; gaps are per-image differences.</p>
<div class="wrap"><table><tr><th></th><th>test</th><th>train</th></tr>{_rows(rows)}</table></div>
<p>The IWAE bound with the encoder's q as proposal stays {s['test_gap_iwae']['mean']:.1f} nats below log p(x) at
K = {s['iwae_k']}: {gap['fraction_over_10_nats']:.0%} of the test images are over 10 nats below, and they hold
{gap['share_of_total_from_those']:.0%} of the gap. {_bounds_conclusion(b)}</p>
{figure_html(figure("bounds"), "Bounds against K beside the exact log p(x)")}
{figure_html(figure("gaps"), "Per-image gap between the exact log p(x) and the IWAE bound (negative where that "
                          "image's single IWAE estimate landed above the truth, as a random estimate may)")}
{figure_html(figure("posteriors"), "True posteriors beside q* and the encoder's q")}"""


def _rows(rows):
    return "".join(f"<tr><td>{html.escape(a)}</td><td class=num>{t}</td><td class=num>{r}</td></tr>"
                   for a, t, r in rows)


def _bounds_conclusion(b):
    """What the bounds against K say, worded from this run's numbers (bounds_vs_k of summary.json)."""
    k, plain, defensive = b["k"], b["iwae_gap"], b["defensive_gap"]
    closed = plain[-2] - plain[-1]  # what the last step in K closed of the plain bound's gap
    more = (f"more samples from q barely help: from K = {k[-2]} to {k[-1]} the gap falls by {closed:.2f} nats only"
            if closed < 0.1 * plain[-2] else
            f"more samples from q help: from K = {k[-2]} to {k[-1]} the gap falls by {closed:.2f} nats")
    found = "finds the missing mass" if defensive[-1] < 0.5 * plain[-1] else "does not find the missing mass either"
    trust = (f"where no grid exists (Dz &gt; 2), the defensive bound at large K, which came within "
             f"{defensive[-1]:.2f} nats of it here" if defensive[-1] < 0.5 else
             f"where no grid exists, no bound here can stand in for it: the defensive one stayed {defensive[-1]:.2f} "
             "nats below")
    return (f"On the first {b['images']} test images, {more} ({_pm(plain[-1], b['iwae_gap_se'][-1])} nats below at "
            f"K = {k[-1]}). A defensive proposal ({html.escape(b.get('defensive_proposal', NOT_RECORDED))}) {found}: "
            f"at K = {k[-1]} it is {_pm(defensive[-1], b['defensive_gap_se'][-1])} nats below log p(x). Which number "
            f"to trust: the exact log p(x); {trust}.")


def render(name, config, summary, split, figure, answers, payload=None, explorer_note=""):
    """The report's HTML as a string.

    name: the run's name; split: its aevb.data.splits.Split; figure(name) -> the PNG path of a figure;
    answers: (question, true or false, reason) triples; payload: explorer.payload(...) or None,
    with explorer_note saying why there is no explorer; config and summary: the run's Config and summary.json."""
    s, dataset = summary, split.dataset
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in json.loads(config.to_json()).items())
    headline = "Not evaluated yet: run aevb evaluate."
    if "test_elbo" in s:
        headline = (f"Test ELBO <b>{s['test_elbo']:.2f} ± {s['test_elbo_se']:.2f}</b> nats/image "
                    f"(S = {s['elbo_samples']} samples per image, ± one standard error over images); "
                    f"importance-weighted bound on log p(x) <b>{s['test_iwae']:.2f} ± {s['test_iwae_se']:.2f}</b> "
                    f"(K = {s['iwae_k']}); train ELBO {s['train_elbo']:.2f} ± {s['train_elbo_se']:.2f}.")
        if "test_log_px" in s:
            headline += f" Exact log p(x) <b>{_pm(s['test_log_px'], s['test_log_px_se'])}</b>: the number to trust."
        elif "test_log_px_ais" in s:
            headline += (f" log p(x) by AIS <b>{_pm(s['test_log_px_ais'], s['test_log_px_ais_se'])}</b> on the first "
                         f"{s['ais']['images']} test images, the number to trust" + (
                             f" (BDMC gap {_pm(s['bdmc_gap'], s['bdmc_gap_se'])} nats on data simulated from the "
                             "model: how far AIS can be from the truth)." if "bdmc_gap" in s else "."))
    timing = ""
    if "training_seconds" in s:
        timing = (f"{s['epochs']} epochs in {s['training_seconds']:.1f} s ({s['seconds_per_epoch']:.3f} s per epoch, "
                  f"{s['images_per_second']:.0f} images/s).")
        if "trained_with_seeds" in s:
            seeds = ", ".join(map(str, s["trained_with_seeds"]))
            timing += f" Trained together with seeds {seeds} in one compiled program: the times are the group's."
        if "trained_on" in s:
            timing += f" Trained on {html.escape(parallel.describe_text(s['trained_on']))}"
            timing += (f"; evaluated on {html.escape(parallel.describe_text(s['evaluated_on']))}." if "evaluated_on"
                       in s else ".")
    if "run_stages" in s:  # what aevb run spent its time on (wall seconds, each stage when it last ran)
        timing += " Seconds of each stage when it last ran: " + ", ".join(
            f"{html.escape(str(stage))} {s['run_stages'][stage]:.1f} s" for stage in records.RUN_STAGES
            if stage in s["run_stages"]) + "."
    completion_rows, completion_figures = "", ""
    for mask, c in s.get("completion", {}).items():
        if mask not in partial.MASKS:  # a key of summary.json names figure files: only the masks aevb makes
            continue
        # The data may have changed since the completion was made: a label it no longer has is said so.
        label = (dataset.class_names[c["label"]] if c.get("label") is not None and 0 <= c["label"] <
                 len(dataset.class_names) else f"label {c.get('label')}, not among the data's classes now")
        completion_rows += (f"<tr><td>{html.escape(mask)}</td><td>#{c['index']} ({html.escape(label)})</td>"
                            f"<td class=num>{c['log_p_hidden_under_q_predictive']:.2f}</td>"
                            f"<td class=num>{c['log_p_hidden_under_prior_predictive']:.2f}</td>"
                            f"<td class=num>{c['hidden_pixels']}</td></tr>")
        completion_figures += (
            figure_html(figure(f"complete_{mask}_posterior"),
                        f"Isocontours of p(z, {mask} pixels) and of the SVI fit q")
            + figure_html(figure(f"complete_{mask}"), f"Completions from the {mask} pixels: z ~ q, means of p(x|z)")
            + figure_html(figure(f"complete_{mask}_trace"), "The SVI objective during optimization"))
    answer_html = "".join(f'<p class="answer">{html.escape(question)}<br><b>{"True" if answer else "False"}.</b> '
                          f"{html.escape(reason)}</p>" for question, answer, reason in answers)
    pixels = dataset.image_shape[0] * dataset.image_shape[1]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>aevb report: {html.escape(name)}</title><style>{STYLE}</style></head>
<body><main><h1>VAE on binarized {html.escape(dataset.display_name)}: run “{html.escape(name)}”</h1>
<p class="note">Auto-Encoding Variational Bayes (Kingma &amp; Welling, 2013), every density written by hand.
All numbers are in nats per image (summed over {pixels} pixels, averaged over images).</p>
<p class="headline" id="headline">{headline}</p>
<p>{timing}</p>
<h2>Data</h2><p>{html.escape(split.description)}. Binarized: {html.escape(split.binarization)}.</p>
<h2>Latent-space explorer</h2>{explorer.section(payload, explorer_note)}
<h2>How good is the model, exactly?</h2>{exact_section(s, figure, config.latent_dim)}{ais_section(s, figure)}
<h2>Training curves</h2>{figure_html(figure("curves"), "ELBO per epoch")}
<h2>Samples from the model</h2>{figure_html(figure("samples"), "Ancestral samples")}
<h2>Latent space</h2>{figure_html(figure("latent"), "Means of q(z|x) by class")}
{figure_html(figure("manifold"), "Decoded means over a grid of z")}
{figure_html(figure("prior"), "The prior p(z) beside the aggregate posterior of the training images, and the KL between")}
<h2>Interpolation</h2>{figure_html(figure("interpolate"), "Interpolations between encodings")}
<h2>Reconstructions</h2>{figure_html(figure("reconstructions"), "Test images and their reconstructions")}
<h2>Predicting hidden pixels (SVI)</h2><div class="wrap"><table><tr><th>observed</th><th>image</th><th>log p(true hidden | SVI predictive)</th>
<th>log p(true hidden | prior predictive)</th><th>hidden pixels</th></tr>{completion_rows}</table></div>
{completion_figures}
<h2>True or false</h2>{answer_html}
<h2>Configuration</h2><div class="wrap"><table>{rows}</table></div>
</main></body></html>
"""


def page(run, summary):
    """The report's HTML for a loaded run (aevb.pipeline.Run) and its summary.json."""
    payload, note = explorer.for_run(run)
    answer_texts = answers.answer_texts(summary.get("answers_demo"), run.split.image_shape[1],
                                        "(Run aevb answers to compute it.)")
    return render(run.name, run.config, summary, run.split, lambda name: files.figure_path(run.path, name),
                  answer_texts, payload, note or "")
