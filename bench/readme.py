"""Rewrites the benchmark's results in the docs and the README from what `make bench` measured (its last step).

Reads bench/results/bench.json and the summary of the run the benchmark made
(bench/results/runs/seed0/summary.json), and replaces the lines between the markers BEGIN and END of
docs/performance.md (the results table, the `aevb run` profile, then every target with its measured value
and PASS or MISS) and between HEADLINE_BEGIN and HEADLINE_END of the README (the headline numbers).
Nothing in either block is typed by hand, so neither page can disagree with the benchmark.
"""

import json
import sys
from pathlib import Path

BEGIN, END = "<!-- results: written by bench/readme.py from bench/results/bench.json -->", "<!-- end of results -->"
HEADLINE_BEGIN = "<!-- headline: written by bench/readme.py from bench/results/bench.json -->"
HEADLINE_END = "<!-- end of headline -->"


def pm(mean, se):
    return f"{mean:.2f} ± {se:.2f}"


def both(decomposition, name):
    """'test / train' of one gap of the decomposition, each mean ± se."""
    return " / ".join(pm(decomposition[side][name], decomposition[side][name + "_se"]) for side in ("test", "train"))


def results_rows(r, s):
    """(quantity, value) rows: r the benchmark's JSON, s the summary of its `aevb run` (seed 0)."""
    quality, speed, exact, run = r["quality"], r["speed"], r["exact"], r["make_run"]
    check, gap, bounds = s["log_px_accuracy"], s["test_gap_iwae"], s["bounds_vs_k"]
    decomposition = s["gap_decomposition"]
    seeds = ", ".join(f"{run_['test_elbo']:.2f}" for run_ in quality["runs"])
    return [
        (f"test ELBO, seed 0 (S = {s['elbo_samples']} samples per image)",
         f"**{pm(s['test_elbo'], s['test_elbo_se'])}** nats/image"),
        (f"test ELBO, mean over seeds {', '.join(str(x['seed']) for x in quality['runs'])} (trained together)",
         f"**{quality['mean_test_elbo']:.2f}** ± {quality['sd_test_elbo']:.2f} (sd) nats/image ({seeds})"),
        (f"test importance-weighted bound on log p(x), K = {s['iwae_k']}, seed 0",
         f"**{pm(s['test_iwae'], s['test_iwae_se'])}** nats/image"),
        ("**test log p(x), exact** (quadrature, Dz = 2), seed 0",
         f"**{pm(s['test_log_px'], s['test_log_px_se'])}** nats/image; "
         f"train {pm(s['train_log_px'], s['train_log_px_se'])}"),
        ("accuracy of the exact value",
         f"halving the grid spacing moves it by {check['halved_spacing']['max_abs_change']:.1e} nats at most per "
         "image, "
         f"growing its extent by {check['grown_extent']['max_abs_change']:.1e} (first {check['images']} test images)"),
        (f"how far the IWAE-{gap['k']} bound lies below it",
         f"{pm(gap['mean'], gap['se'])} nats/image; {gap['fraction_over_10_nats']:.0%} of the test images are over "
         f"10 nats below and hold {gap['share_of_total_from_those']:.0%} of that gap"),
        (f"defensive IWAE, K = {bounds['k'][-1]} (first {bounds['images']} test images)",
         f"{pm(bounds['defensive_gap'][-1], bounds['defensive_gap_se'][-1])} nats below the exact value, against "
         f"{pm(bounds['iwae_gap'][-1], bounds['iwae_gap_se'][-1])} for the plain IWAE bound"),
        (f"where the gap comes from (first {decomposition['test']['images']} images; test / train)",
         "approximation gap " + both(decomposition, "approximation_gap")
         + ", amortization gap " + both(decomposition, "amortization_gap") + " nats/image"),
        ("train ELBO, seed 0", f"{pm(s['train_elbo'], s['train_elbo_se'])} nats/image"),
        (f"training, {s['epochs']} epochs (in `aevb run`)",
         f"{s['seconds_per_epoch']:.3f} s/epoch ({s['images_per_second']:.0f} images/s), {s['training_seconds']:.0f} s "
         f"in all; {speed['seconds_per_epoch']:.3f} s/epoch timed alone"),
        ("matmul throughput reached in training",
         f"{speed['model_gflop_per_s']:.0f} GFLOP/s: {speed['fraction_of_peak_matmul']:.0%} of this machine's "
         f"large-matmul peak ({speed['peak_matmul_gflop_per_s']:.0f} GFLOP/s), "
         f"{speed['fraction_of_model_shape_matmul']:.0%} of its matmul rate at the model's own shapes "
         f"({speed['model_shape_matmul_gflop_per_s']:.0f} GFLOP/s); an epoch of only its matmuls and optax's Adam "
         f"would reach {speed['ceiling_fraction_of_peak_matmul']:.0%} of peak, with Adam fused to its minimal "
         f"traffic {speed['ideal_ceiling_fraction_of_peak_matmul']:.0%}"),
        ("IWAE throughput", f"{r['iwae']['images_times_k_per_s']:.0f} images x K per second (K = {r['iwae']['k']}); "
                            f"{r['iwae']['peak_rss_gib_after_k5000']:.2f} GiB peak memory after K = 5000"),
        ("SVI for one partly observed image (defaults)", f"{r['svi_seconds_per_image']:.2f} s"),
        (f"exact log p(x) of the {exact['test_images']} test images",
         f"{exact['seconds']:.1f} s, {exact['gflop']:.0f} GFLOP: {exact['gflop_per_s']:.0f} GFLOP/s, "
         f"{exact['fraction_of_peak_matmul']:.0%} of the large-matmul peak; the whole exact evaluation "
         f"{run['exact_evaluation_seconds']:.0f} s"),
        (f"AIS of {r['ais']['images']} test images (T = {r['ais']['steps']}, C = {r['ais']['chains']}, "
         f"L = {r['ais']['leapfrog']}, no BDMC)" if "ais" in r else "AIS",
         f"{r['ais']['seconds']:.1f} s, {r['ais']['gradient_evaluations_per_s']:.0f} gradient evaluations per second, "
         f"{r['ais']['gflop_per_s']:.0f} GFLOP/s by count, {r['ais']['fraction_of_peak_matmul']:.0%} of the "
         f"large-matmul peak; AIS minus exact {r['ais']['minus_exact']:.3f} nats/image" if "ais" in r else
         "not measured"),
        *((f"burda2016's network, an epoch of 60 000 images at batch {batch}",
           f"{m['aevb_seconds_per_epoch']:.2f} s; a plain JAX scan epoch of the same network "
           f"{m['plain_jax_seconds_per_epoch']:.2f} s (ratio {m['ratio']:.2f})")
          for batch, m in r.get("protocol_epoch", {}).items()),
        *((("AIS on a conv model, 2 test images (T = 5 and 20, C = 2, L = 1, no BDMC)",
           ", ".join(f"T = {t}: first call {a['first_call_seconds']:.1f} s (compiles), then "
                     f"{a['second_call_seconds']:.2f} s" for t, a in r["ais_conv"]["ais"].items()) + f"; the exact grid of the same images "
           f"{r['ais_conv']['exact']['seconds']:.0f} s ({r['ais_conv']['exact']['points']} points, "
           f"{r['ais_conv']['exact']['gflop']:.0f} GFLOP by XLA's count)"),) if "ais_conv" in r else ()),
        ("recording the exact log p(x) during training", f"{exact['tracked_epoch_seconds']:.2f} s per recorded epoch"),
        ("`aevb run` (what `make run` does after install and data)",
         f"{run['seconds']:.0f} s, of which {run['exact_evaluation_seconds']:.0f} s the exact evaluation"),
        (f"{r['seeds_together']['seeds']} seeds trained together (one compiled epoch)",
         f"{r['seeds_together']['together_seconds_per_epoch']:.2f} s per epoch of all of them against "
         f"{r['seeds_together']['one_after_another_seconds_per_epoch']:.2f} s one after another "
         f"(ratio {r['seeds_together']['ratio']:.2f})"),
        ("one epoch, by objective (same process)",
         ", ".join(f"{name} {seconds:.2f} s" for name, seconds in r["objective_seconds_per_epoch"].items())),
        ("the machine", f"{r['machine'].get('cpus', '?')} CPU cores, {r['machine']['devices']}, JAX "
                        f"{r['machine']['jax']}; large-matmul peak {speed['peak_matmul_gflop_per_s']:.0f} GFLOP/s"),
    ]


def profile_rows(r):
    """The `aevb run` profile (bench.profile): stage, seconds, GFLOP counted, share of the peak, floor."""
    peak = r["speed"]["peak_matmul_gflop_per_s"]
    lines = ["", f"`aevb run` stage by stage (wall seconds; FLOPs counted where the stage is matmul work, the floor "
                 f"their time at this machine's large-matmul peak, {peak:.0f} GFLOP/s):", "",
             "| stage | seconds | GFLOP | share of peak | floor |", "|---|---|---|---|---|"]
    for row in r["make_run"].get("profile", []):
        counted = row["gflop"] is not None
        lines.append(f"| {row['stage'].replace('  ', '&nbsp;&nbsp;&nbsp;')} | {row['seconds']:.1f} | "
                     + (f"{row['gflop']:.0f} | {row['fraction_of_peak_matmul']:.0%} | {row['floor_seconds']:.1f} s |"
                        if counted else "| | |"))
    return lines if "profile" in r["make_run"] else []


def block(r, s):
    lines = [BEGIN, "", "| quantity | value |", "|---|---|"]
    lines += [f"| {quantity} | {value} |" for quantity, value in results_rows(r, s)]
    lines += profile_rows(r)
    lines += ["", "| target | measured | |", "|---|---|---|"]
    lines += [f"| {name} | {check['measured']} | **{'PASS' if check['ok'] else 'MISS'}** |"
              for name, check in r["checks"].items()]
    lines += ["", END]
    return "\n".join(lines)


def headline(r, s):
    """The README's few numbers: the model's three log-likelihood numbers, training's speed, make run's time and
    how many targets pass."""
    quality, speed, checks = r["quality"], r["speed"], r["checks"]
    rows = [("test ELBO, seed 0", f"**{pm(s['test_elbo'], s['test_elbo_se'])}** nats/image (mean over "
             f"{len(quality['runs'])} seeds {quality['mean_test_elbo']:.2f})"),
            (f"test IWAE bound, K = {s['iwae_k']}", f"{pm(s['test_iwae'], s['test_iwae_se'])} nats/image"),
            ("**test log p(x), exact** (Dz = 2)", f"**{pm(s['test_log_px'], s['test_log_px_se'])}** nats/image"),
            (f"training, {s['epochs']} epochs", f"{speed['seconds_per_epoch']:.3f} s/epoch, "
             f"{speed['fraction_of_peak_matmul']:.0%} of the machine's matmul peak "
             f"({speed['peak_matmul_gflop_per_s']:.0f} GFLOP/s)"),
            ("`make run` after install and data", f"{r['make_run']['seconds']:.0f} s"),
            ("targets", f"{sum(c['ok'] for c in checks.values())} of {len(checks)} PASS")]
    lines = [HEADLINE_BEGIN, "", "| measured by `make bench` | |", "|---|---|"]
    return "\n".join(lines + [f"| {name} | {value} |" for name, value in rows] + ["", HEADLINE_END])


def _between(path, begin, end):
    """(head, tail) of a file around its one block, or None if the markers are not there once each."""
    text = Path(path).read_text()
    if text.count(begin) != 1 or text.count(end) != 1:
        return None
    head, rest = text.split(begin)
    return head, rest.split(end, 1)[1]


def main(readme="README.md", bench="bench/results/bench.json", summary="bench/results/runs/seed0/summary.json",
         performance="docs/performance.md"):
    r = json.loads(Path(bench).read_text())
    if "quality" not in r:
        print(f"bench/readme.py: {bench} has no quality runs (make bench --quick?); the pages are left as they are")
        return 0
    s = json.loads(Path(summary).read_text())
    parts = {readme: _between(readme, HEADLINE_BEGIN, HEADLINE_END), performance: _between(performance, BEGIN, END)}
    for path, found in parts.items():
        if found is None:
            print(f"bench/readme.py: {path} needs its two markers once each; nothing was rewritten", file=sys.stderr)
            return 1
    for path, block_text in ((readme, headline(r, s)), (performance, block(r, s))):
        head, tail = parts[path]
        Path(path).write_text(head + block_text + tail)
        print(f"bench/readme.py: rewrote the results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
