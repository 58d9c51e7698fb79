"""make bench: speed, memory and quality of the default config, against the issue's targets.

Prints a table and writes bench/results/bench.json. Exits 1 if a target is missed.
Targets: final test ELBO >= -158 nats/image averaged over seeds; seconds per epoch as a
fraction of this machine's dense float32 matmul throughput >= 65%; IWAE at K=5000 under 2 GiB;
SVI under 1 s per image; the make run pipeline (after install and data, less the exact
evaluation added later) under 2 minutes; the exact log p(x) of the 10000 test images under 60 s.
"""

import argparse
import dataclasses
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import ais_conv  # bench/, beside this file
import family_speed
import protocol_speed

from aevb import pipeline
from aevb.config import Config
from aevb.data import splits
from aevb.evaluation import ais, bounds, curves, exact, partial
from aevb.runs import records
from aevb.training import compiled, optimizers


def best_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - began)
    return min(times)


def peak_matmul_rate(n=2048):
    """Dense float32 matmul throughput of this machine, FLOP/s, from large square products."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
    product = jax.jit(lambda a: a @ a)
    jax.block_until_ready(product(a))
    return 2 * n**3 / best_seconds(lambda: product(a), 10)


def model_shape_matmul_rate(config, d, steps=100):
    """FLOP/s of just the matmuls of one epoch (forward and backward) at the model's own shapes."""
    b, h = config.batch_size, config.hidden_dim
    x = jnp.ones((steps, b, d))
    w1, w2 = jnp.ones((d, h)) * 0.01, jnp.ones((h, d)) * 0.01

    def body(carry, xb):
        w1, w2 = carry
        hidden = xb @ w1  # enc hidden forward
        logits = hidden @ w2  # dec out forward (stands in for the decoder's 500 -> 784 layer)
        g_w2 = hidden.T @ logits  # weight gradients
        g_hidden = logits @ w2.T  # input gradient
        g_w1 = xb.T @ g_hidden
        return (w1 - 1e-9 * g_w1, w2 - 1e-9 * g_w2), None

    run = jax.jit(lambda w1, w2: jax.lax.scan(body, (w1, w2), x)[0])
    jax.block_until_ready(run(w1, w2))
    return 5 * 2 * b * d * h * steps / best_seconds(lambda: run(w1, w2), 5)


def optimizer_seconds(config, steps):
    """Seconds for one epoch's optimizer updates alone (Adam on the model's parameters, no model).

    Adam reads the parameters, the gradient and both moments and writes three of them back, about
    22 MB per step at the default size: memory-bound work that no matmul speed can hide.
    """
    params, opt_state = compiled.init_state(config)
    opt = optimizers.optimizer(config)
    grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 1e-3), params)

    def body(carry, _):
        params, opt_state = carry
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    run = jax.jit(lambda p, s: jax.lax.scan(body, (p, s), None, length=steps)[0])
    jax.block_until_ready(run(params, opt_state))
    return best_seconds(lambda: run(params, opt_state), 5)


def stream_bandwidth(n, steps=100):
    """Bytes/s of the fastest elementwise pass over an n-float array (read once, write once)."""
    x = jnp.ones((n,))
    run = jax.jit(lambda x: jax.lax.scan(lambda x, _: (x * 1.0001 + 0.5, None), x, None, length=steps)[0])
    jax.block_until_ready(run(x))
    return 2 * 4 * n * steps / best_seconds(lambda: run(x), 5)


def flops_per_epoch(config, n_train, d):
    """Matmul FLOPs of one epoch: 2*m*k*n per product; forward, weight gradient, input gradient."""
    b, h, dz, steps = config.batch_size, config.hidden_dim, config.latent_dim, n_train // config.batch_size
    per_step = (2 * 2 * b * d * h  # encoder hidden: forward + weight gradient (x needs no gradient)
                + 3 * 2 * b * h * 2 * dz  # encoder out
                + 3 * 2 * b * dz * h  # decoder hidden (z needs a gradient: reparameterization)
                + 3 * 2 * b * h * d)  # decoder out
    return per_step * steps


def forward_flops(config, d):
    """Matmul FLOPs of one forward pass per image: (encoder, decoder), 2*m*n per product."""
    h, dz = config.hidden_dim, config.latent_dim
    return 2 * (d * h + h * 2 * dz), 2 * (dz * h + h * d)


def profile(summary, wall, config, d, n_train, n_test, peak):
    """aevb run stage by stage: summary.json's run_stages and the times it records inside them, and the
    rest of the command's wall seconds. Each row: (stage, seconds, GFLOP or None), with the share of the
    large-matmul peak its matmul FLOPs make where it is matmul work. Counted: training's epochs
    (flops_per_epoch); the ELBOs of the training and test images (encoder once, decoder S times per
    image); the IWAE bound (decoder K times); the exact log p(x) of the test images (the grid's own
    count). Not counted, their seconds alone: what training records after each epoch for its curves,
    the rest of the exact evaluation (the training images' log p(x), its accuracy check, the bounds
    against K, the gap decomposition), figures, completion, answers and report."""
    stages, encoder, decoder = summary["run_stages"], *forward_flops(config, d)
    elbo_gflop = (n_train + n_test) * (encoder + summary["elbo_samples"] * decoder) / 1e9
    iwae_gflop = n_test * (encoder + summary["iwae_k"] * decoder) / 1e9
    exact_seconds, iwae_seconds = summary.get("exact_evaluation_seconds", 0.0), summary["iwae_seconds"]
    recording = summary.get("recording_seconds", 0.0)
    rows = [("start-up, data and compiles (the command's wall time less the rest)",
             wall - summary["training_seconds"] - recording - sum(stages.values()), None),
            (f"training, {summary['epochs']} epochs", summary["training_seconds"],
             flops_per_epoch(config, n_train, d) * summary["epochs"] / 1e9),
            ("recorded after each epoch: the test ELBO (S = 1) and, at the tracked epochs, log p(x) of 100 images",
             recording, None)]
    if "evaluate" in stages:
        rows += [("evaluate", stages["evaluate"], None),
                 (f"  ELBOs of the training and test images (S = {summary['elbo_samples']}) and compiles",
                  stages["evaluate"] - iwae_seconds - exact_seconds, elbo_gflop),
                 (f"  IWAE bound, K = {summary['iwae_k']}, test images", iwae_seconds, iwae_gflop)]
        if "log_px_seconds" in summary:
            rows += [("  exact evaluation (Dz = 2)", exact_seconds, None),
                     ("    of which the test images' exact log p(x)", summary["log_px_seconds"],
                      summary["log_px_gflop"]),
                     ("    of which the rest (train log p(x), accuracy check, bounds against K, gap decomposition)",
                      exact_seconds - summary["log_px_seconds"], None)]
    rows += [(stage, stages[stage], None) for stage in records.RUN_STAGES[1:] if stage in stages]
    return [{"stage": name, "seconds": seconds, "gflop": gflop,
             "fraction_of_peak_matmul": None if gflop is None else gflop * 1e9 / seconds / peak,
             "floor_seconds": None if gflop is None else gflop * 1e9 / peak} for name, seconds, gflop in rows]


def exact_speed(run, peak):
    """The exact log p(x) of every test image of a trained run: seconds, FLOPs, the matmul rate
    reached, and what recording it during training costs per recorded epoch."""
    theta, x_test = run.params["decoder"], run.split.x_test
    exact.log_px(run.net, theta, x_test[:64])  # compile
    began = time.perf_counter()
    values, cost = exact.log_px(run.net, theta, x_test)
    seconds = time.perf_counter() - began
    curves.track(run.net, run.params, x_test[: curves.TRACKED_IMAGES])  # compile
    tracked = best_seconds(lambda: curves.track(run.net, run.params, x_test[: curves.TRACKED_IMAGES])["log_px"], 3)
    return {"test_images": len(x_test), "seconds": seconds, "gflop": cost["flops"] / 1e9,
            "gflop_per_s": cost["flops"] / seconds / 1e9, "fraction_of_peak_matmul": cost["flops"] / seconds / peak,
            "tiles": cost["tiles"], "grid_points": cost["points"], "test_log_px": float(values.mean()),
            "tracked_epoch_seconds": tracked}


def ais_speed(run, exact_rate, peak, images=100):
    """AIS at its defaults (no BDMC) on the first test images of a trained run: seconds, gradient
    evaluations of log p(x, z) per second, the matmul FLOPs they count (the decoder's forward products and,
    for the gradient in z alone, their transposed products: 2 x 2 (Dz H + H D) per z; no weight gradient
    is formed), the share of the peak, and how close it comes to the
    time its FLOPs take at the rate the exact evaluation reaches (the issue's target: within 2x)."""
    settings = ais.Settings(images=images, bdmc=0)
    x = run.split.x_test[:images]
    ais.ais_per_image(run.net, run.params, x[:1], settings, run.config.latent_dim)  # compile
    began = time.perf_counter()
    values = ais.ais_per_image(run.net, run.params, x, settings, run.config.latent_dim)["log_px"]
    seconds = time.perf_counter() - began
    evaluations = settings.gradient_evaluations() * images
    d, h, dz = x.shape[1], run.config.hidden_dim, run.config.latent_dim
    flops = evaluations * 2 * 2 * (dz * h + h * d)
    truth = exact.log_px(run.net, run.params["decoder"], x)[0]
    return {"images": images, "steps": settings.steps, "chains": settings.chains, "leapfrog": settings.leapfrog,
            "seconds": seconds, "gradient_evaluations_per_s": evaluations / seconds, "gflop": flops / 1e9,
            "gflop_per_s": flops / seconds / 1e9, "fraction_of_peak_matmul": flops / seconds / peak,
            "speed_at_exact_rate": flops / exact_rate / seconds, "minus_exact": float(np.mean(values - truth))}


def epoch_seconds(config, x_train, epochs=6):
    params, opt_state = compiled.init_state(config)
    epoch = compiled.make_epoch(config)
    x_train = jnp.asarray(x_train)
    params, opt_state, _ = epoch(params, opt_state, x_train, 1)  # compile
    times = []
    for e in range(2, epochs + 2):
        began = time.perf_counter()
        params, opt_state, metrics = epoch(params, opt_state, x_train, e)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def group_epoch_seconds(config, x_train, seeds, rounds=9):
    """Median seconds of one epoch of len(seeds) seeds trained together (one compiled epoch)
    and of the same seeds' epochs one after another, measured alternately in this process (the
    medians of 3 rounds gave ratios of 0.99-1.08 on one 2-core host; of 9, 0.97 and 1.04)."""
    x_train = jnp.asarray(x_train)
    configs = [dataclasses.replace(config, seed=s) for s in seeds]
    singles = [(compiled.make_epoch(c), *compiled.init_state(c)) for c in configs]
    group = compiled.make_epoch(config, tuple(seeds))
    params = compiled.stack([p for _, p, _ in singles])
    opt_state = compiled.stack([o for _, _, o in singles])
    active = jnp.ones(len(seeds), bool)
    together, apart = [], []
    for r in range(rounds + 1):  # round 0 compiles
        began = time.perf_counter()
        params, opt_state, metrics = group(params, opt_state, x_train, jnp.full(len(seeds), r + 1), active)
        jax.block_until_ready(metrics)
        together.append(time.perf_counter() - began)
        began = time.perf_counter()
        for i, (epoch, p, o) in enumerate(singles):
            p, o, metrics = epoch(p, o, x_train, r + 1)
            jax.block_until_ready(metrics)
            singles[i] = (epoch, p, o)
        apart.append(time.perf_counter() - began)
    return statistics.median(together[1:]), statistics.median(apart[1:])


def scaling(rounds=2, epochs=4):
    """Images/s of training the default config with `aevb train` on 1 device, on 2 devices of one
    process and on 2 processes (one device each, gloo on 127.0.0.1): the median of epochs 2..epochs
    (epoch 1 compiles) over rounds, the three layouts alternated so that they share the hour."""
    def launch(name, extra):
        command = [sys.executable, "-m", "aevb", "train", "--runs-dir", "bench/results/runs/scaling", "--name", name,
                   "--overwrite", "--epochs", str(epochs), "--log-px-every", "0", "--no-progress"]
        environment = {**os.environ, "XLA_FLAGS": ""}  # one CPU device per process unless --devices asks more
        if extra == "processes":
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            processes = [subprocess.Popen(command + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                                                     "--process-id", str(i)], env=environment,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in (0, 1)]
        else:
            processes = [subprocess.Popen(command + extra, env=environment, stdout=subprocess.DEVNULL)]
        for process in processes:
            if process.wait(timeout=900) != 0:
                raise RuntimeError(f"aevb train for {name} failed")
        rows = [json.loads(line) for line in Path(f"bench/results/runs/scaling/{name}/metrics.jsonl").read_text()
                .splitlines()]
        return [row["seconds"] for row in rows[1:]]

    layouts = {"1_device": [], "2_devices_1_process": ["--devices", "2"], "2_processes": "processes"}
    seconds = {name: [] for name in layouts}
    for _ in range(rounds):
        for name, extra in layouts.items():
            seconds[name] += launch(name, extra)
    images = Config().n_train // Config().batch_size * Config().batch_size
    result = {name: {"seconds_per_epoch": statistics.median(times), "images_per_second":
                     images / statistics.median(times), "epochs_timed": len(times)} for name, times in seconds.items()}
    for name in layouts:
        result[name]["speedup_over_1_device"] = (result["1_device"]["seconds_per_epoch"]
                                                 / result[name]["seconds_per_epoch"])
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="speed only, no 100-epoch quality runs")
    args = parser.parse_args()
    config = Config()
    split = splits.load(config)
    x_train, x_test, d = split.x_train, split.x_test, split.x_train.shape[1]
    net = config.network
    results = {"machine": {"devices": str(jax.devices()), "jax": jax.__version__, "cpus": os.cpu_count()}}

    params, _ = compiled.init_state(config)
    steps = x_train.shape[0] // config.batch_size
    peak = peak_matmul_rate()
    shape_rate = model_shape_matmul_rate(config, d)
    seconds = epoch_seconds(config, x_train)
    flops = flops_per_epoch(config, x_train.shape[0], d)
    adam_seconds = optimizer_seconds(config, steps)
    # The best an epoch could do here: its matmuls at the model-shape rate plus the Adam updates,
    # with every other operation (activations, the likelihood, sampling, shuffling) free.
    ceiling_seconds = flops / shape_rate + adam_seconds
    # Tighter still: Adam fused into one pass, moving only its minimal traffic (read parameters,
    # gradient, two moments; write parameters and moments: 7 floats per parameter) at the
    # streaming bandwidth measured on arrays of the parameters' size.
    n_params = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))
    bandwidth = stream_bandwidth(n_params)
    adam_floor_seconds = 7 * 4 * n_params * steps / bandwidth
    floor_seconds = flops / shape_rate + adam_floor_seconds
    results["speed"] = {
        "seconds_per_epoch": seconds,
        "matmul_gflops_per_epoch": flops / 1e9,
        "model_gflop_per_s": flops / seconds / 1e9,
        "peak_matmul_gflop_per_s": peak / 1e9,
        "model_shape_matmul_gflop_per_s": shape_rate / 1e9,
        "fraction_of_peak_matmul": flops / seconds / peak,
        "fraction_of_model_shape_matmul": flops / seconds / shape_rate,
        "adam_seconds_per_epoch": adam_seconds,
        "ceiling_seconds_per_epoch": ceiling_seconds,
        "ceiling_fraction_of_peak_matmul": flops / ceiling_seconds / peak,
        "stream_bandwidth_gb_per_s": bandwidth / 1e9,
        "adam_minimal_traffic_seconds_per_epoch": adam_floor_seconds,
        "ideal_ceiling_fraction_of_peak_matmul": flops / floor_seconds / peak,
    }

    k = 1000
    sub = x_test[:1000]
    bounds.iwae_per_image(net, params, sub[:100], k)  # compile
    began = time.perf_counter()
    bounds.iwae_per_image(net, params, sub, k)
    results["iwae"] = {"k": k, "images_times_k_per_s": sub.shape[0] * k / (time.perf_counter() - began)}
    # Memory does not grow with the number of images (one chunk at a time) nor with K (scan). Measured before
    # the seeds' group epoch, whose three stacked states would set this process's peak (ru_maxrss) instead.
    bounds.iwae_per_image(net, params, x_test[:300], 5000)
    results["iwae"]["peak_rss_gib_after_k5000"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    results["scaling"] = scaling()
    print(json.dumps(results["scaling"]), flush=True)
    together, apart = group_epoch_seconds(config, x_train, tuple(range(args.seeds)))
    results["seeds_together"] = {"seeds": args.seeds, "together_seconds_per_epoch": together,
                                 "one_after_another_seconds_per_epoch": apart, "ratio": together / apart}
    results["objective_seconds_per_epoch"] = {
        name: epoch_seconds(Config(objective=objective, num_samples=k), x_train, epochs=2)
        for name, objective, k in (("elbo", "elbo", 1), ("iwae_k5", "iwae", 5), ("iwae_k50", "iwae", 50))}

    # SVI for one partly observed image at the defaults (K=100, 4 starts), after compilation.
    mask = partial.make_mask("top", split.image_shape)
    fit = lambda i: partial.fit_q(jax.random.PRNGKey(i), net, params["decoder"], x_train[i], mask,  # noqa: E731
                                  config.latent_dim)[1]
    jax.block_until_ready(fit(0))
    svi_seconds = [best_seconds(lambda i=i: fit(i), 1) for i in range(1, 6)]
    results["svi_seconds_per_image"] = statistics.mean(svi_seconds)

    if not args.quick:
        # The seeds trained together in one compiled program (aevb train --seeds 0,1,2), each evaluated.
        began = time.perf_counter()
        group = pipeline.train(config, "bench/results/runs/seeds", "overwrite", progress=False,
                               seeds=tuple(range(args.seeds)))
        runs = []
        for result in group:
            test_elbo, test_se = bounds.evaluate_elbo(net, result["params"], x_test, config.eval_samples)
            runs.append({"seed": result["config"].seed, "test_elbo": test_elbo, "test_elbo_se": test_se})
            print(json.dumps(runs[-1]), flush=True)
        results["quality"] = {"runs": runs, "mean_test_elbo": statistics.mean(r["test_elbo"] for r in runs),
                              "sd_test_elbo": statistics.stdev(r["test_elbo"] for r in runs) if len(runs) > 1 else 0,
                              "seeds_trained_together_seconds": time.perf_counter() - began}
        # What make run does after install and data (seed 0, the whole pipeline), timed.
        out = Path("bench/results/runs/seed0")
        shutil.rmtree(out, ignore_errors=True)
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "aevb", "run", "--runs-dir", str(out.parent), "--name", out.name,
                        "--no-progress"], check=True, stdout=subprocess.DEVNULL)
        summary = json.loads((out / "summary.json").read_text())
        results["make_run"] = {"seconds": time.perf_counter() - began, "test_elbo": summary["test_elbo"],
                               "test_elbo_se": summary["test_elbo_se"], "test_iwae_k1000": summary["test_iwae"],
                               "test_log_px": summary["test_log_px"],
                               "exact_evaluation_seconds": summary["exact_evaluation_seconds"]}
        results["make_run"]["profile"] = profile(summary, results["make_run"]["seconds"], config, d,
                                                 x_train.shape[0], x_test.shape[0], peak)
        print(json.dumps(results["make_run"]), flush=True)
        results["exact"] = exact_speed(pipeline.load(out), peak)
        results["ais"] = ais_speed(pipeline.load(out), results["exact"]["gflop_per_s"] * 1e9, peak)
        print(json.dumps(results["ais"]), flush=True)

    # The burda2016 protocol's network (issue 22) against a plain JAX scan epoch of it, batch 20 and 100.
    results["protocol_epoch"] = protocol_speed.measure()
    print(json.dumps(results["protocol_epoch"]), flush=True)
    # Each posterior family's epoch against a plain JAX scan epoch of the same network and q (issue 46).
    results["family_epoch"] = family_speed.measure()
    print(json.dumps(results["family_epoch"]), flush=True)
    # AIS on a conv model at its smallest settings, compile apart from run, and the exact grid beside it (issue 44).
    results["ais_conv"] = ais_conv.measure()
    print(json.dumps(results["ais_conv"]), flush=True)

    # Each target as it was first stated; (name, passed, what was measured).
    speed, iwae = results["speed"], results["iwae"]
    checks = [("training reaches >= 65% of the machine's peak matmul rate", speed["fraction_of_peak_matmul"] >= 0.65,
               f"{speed['fraction_of_peak_matmul']:.0%}"),
              ("IWAE at K = 5000: peak memory < 2 GiB", iwae["peak_rss_gib_after_k5000"] < 2.0,
               f"{iwae['peak_rss_gib_after_k5000']:.2f} GiB"),
              ("SVI under 1 s per image", results["svi_seconds_per_image"] < 1.0,
               f"{results['svi_seconds_per_image']:.2f} s"),
              (f"{args.seeds} seeds together no slower than one after another (within 5%)",
               results["seeds_together"]["ratio"] <= 1.05, f"ratio {results['seeds_together']['ratio']:.2f}")]
    for batch, measured in results["protocol_epoch"].items():
        ours, plain = measured["aevb_seconds_per_epoch"], measured["plain_jax_seconds_per_epoch"]
        checks.append((f"burda2016's epoch at batch {batch} within 1.15x of a plain JAX scan epoch",
                       measured["ratio"] <= 1.15,
                       f"ratio {measured['ratio']:.2f} ({ours:.2f} s against {plain:.2f} s)"))
    for family, measured in results["family_epoch"].items():
        checks.append((f"the {family} posterior's epoch within 1.15x of a plain JAX scan epoch", measured["ratio"] <= 1.15,
                       f"ratio {measured['ratio']:.2f} ({measured['aevb_seconds_per_epoch']:.3f} s against "
                       f"{measured['plain_jax_seconds_per_epoch']:.3f} s)"))
    if "quality" in results:
        mean_elbo, timed = results["quality"]["mean_test_elbo"], results["make_run"]
        checks.append(("mean test ELBO over the seeds >= -158 nats/image", mean_elbo >= -158.0, f"{mean_elbo:.2f}"))
        # Stated for the assignment's pipeline, before the exact evaluation existed; kept as stated.
        checks.append(("`make run` (after install and data) under 120 s", timed["seconds"] < 120,
                       f"{timed['seconds']:.0f} s ({timed['seconds'] - timed['exact_evaluation_seconds']:.0f} s "
                       "without the exact evaluation)"))
        iwae_row = next(row for row in timed["profile"] if row["stage"].strip().startswith("IWAE bound"))
        checks.append(("the IWAE bound at >= 75% of its matmul floor (in `aevb run`)",
                       iwae_row["fraction_of_peak_matmul"] >= 0.75, f"{iwae_row['fraction_of_peak_matmul']:.0%}"))
        checks.append(("exact log p(x) of the 10000 test images under 60 s", results["exact"]["seconds"] < 60,
                       f"{results['exact']['seconds']:.1f} s"))
        at_rate = results["ais"]["speed_at_exact_rate"]
        checks.append(("AIS within 2x of what its FLOP count allows at the exact evaluation's matmul rate",
                       at_rate >= 0.5, f"{at_rate:.0%} of that speed"))
    results["checks"] = {name: {"ok": ok, "measured": measured} for name, ok, measured in checks}
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/bench.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    for name, ok, measured in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name}: {measured}")
    speed = results["speed"]
    scale = results["scaling"]
    print(f"note  training images/s: 1 device {scale['1_device']['images_per_second']:.0f}, 2 devices of one process "
          f"{scale['2_devices_1_process']['images_per_second']:.0f}, 2 processes "
          f"{scale['2_processes']['images_per_second']:.0f}: on {os.cpu_count()} CPU cores that share one memory, "
          "several devices split the same cores and add an all-reduce per step, so no speed-up is expected here")
    print(f"note  an epoch whose only costs were its matmuls at the model-shape rate and optax's Adam would reach "
          f"{speed['ceiling_fraction_of_peak_matmul']:.0%} of peak; with Adam fused to its minimal memory "
          f"traffic, {speed['ideal_ceiling_fraction_of_peak_matmul']:.0%}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
