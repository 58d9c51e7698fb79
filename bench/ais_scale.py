"""AIS and BDMC at the issue's scale (1000 test images, 1000 simulated examples, several models), for
a machine with an accelerator that holds no data and no runs: `pack` writes what it needs here,
`measure` runs there.

    python bench/ais_scale.py pack runs/a runs/b ... --out DIR     # each run's parameters, config, test images
    python bench/ais_scale.py measure DIR --out FILE.json [--deadline SECONDS]
    python bench/ais_scale.py table FILE.json [FILE.json ...]        # the README's table

measure, model by model (in the order packed): AIS of the first 1000 test images and BDMC on 1000 examples
simulated from the model at the run's AIS settings (aevb.evaluation.likelihood.evaluate, with its curve
against T), the IWAE-5000 bounds (plain and defensive) of the same images, and at Dz = 2 the exact
log p(x); then, for the first Dz = 2 model, AIS with more chains and more distributions. float32 matmuls
at full precision (no TF32): the numbers are those of the CPU up to rounding. A stage that would start
after the deadline is skipped and said so; FILE.json is rewritten after each stage.
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

IMAGES = 1000
VARIANTS = ({"chains": 128}, {"steps": 4000})  # more chains, more distributions (Dz = 2)


def pack(runs, out, images=IMAGES):
    from aevb.runs import checkpoint
    from aevb.training.trained import load

    out.mkdir(parents=True, exist_ok=True)
    for path in runs:
        run = load(path)
        arrays = checkpoint.flatten(run.params, "params")  # {"params.encoder.hidden.weight": array, ...}
        np.savez_compressed(out / f"{run.name}.npz", x_test=run.split.x_test[:images].astype(np.uint8),
                            config=np.array(run.config.to_json()), **arrays)
        print(f"packed {path}: {len(arrays)} arrays, {min(images, len(run.split.x_test))} test images")


def _unpack(path):
    from aevb.config import Config

    f = np.load(path)
    params = {}
    for key in f.files:
        if key.startswith("params."):
            *parents, name = key.split(".")[1:]
            node = params
            for parent in parents:
                node = node.setdefault(parent, {})
            node[name] = f[key]
    return Config.from_json(str(f["config"]), data=False), params, f["x_test"].astype(np.float32)


def measure(folder, out_file, deadline, images=IMAGES, bdmc=IMAGES, variants=VARIANTS, curve=True, only=None,
            given=None):
    """only: the packed models' names to measure (all when None). given: AIS settings instead of each run's
    own (a run trained before a change of the defaults stores the old ones). variants: the Dz = 2 model's
    settings tried beside them (more chains, more distributions)."""
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")  # float32 as on the CPU, not TF32
    from aevb.evaluation import exact, gaps, likelihood
    from bench import peak_matmul_rate  # bench/, beside this file

    began = time.perf_counter()
    results = {"devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
               "float32_matmul_flop_per_s": peak_matmul_rate(8192 if jax.default_backend() == "gpu" else 2048),
               "images": images, "bdmc_examples": bdmc, "models": {}, "skipped": []}

    def save():
        results["seconds"] = time.perf_counter() - began
        Path(out_file).write_text(json.dumps(results, indent=1, default=float))

    def left():
        return deadline - (time.perf_counter() - began)

    save()
    print(f"{results['devices']} jax {results['jax']}, float32 matmul "
          f"{results['float32_matmul_flop_per_s'] / 1e12:.1f} TFLOP/s", flush=True)
    packed = sorted(Path(folder).glob("*.npz"),  # MNIST first, then by Dz
                    key=lambda p: (p.stem.split("-")[1] != "mnist", int(p.stem.split("-")[-1])))
    first_2d = None
    for path in packed:
        if only and path.stem not in only:
            continue
        if left() < 0:
            results["skipped"].append(path.stem)
            continue
        config, params, x = _unpack(path)
        x = x[:images]
        net, dz = config.network, config.latent_dim
        settings = likelihood.settings_of(config, **(given or {}), images=len(x), bdmc=bdmc)
        t0 = time.perf_counter()
        headline, per_image = likelihood.evaluate(net, params, x, dz, settings, progress=False, curve=curve)
        r = {"dataset": config.dataset, "latent_dim": dz, "evaluate_seconds": time.perf_counter() - t0, **headline}
        for name, defensive in (("iwae_5000", False), ("defensive_5000", True)):
            values = gaps.iwae_prefixes_per_image(net, params, x, (1000, 5000), defensive=defensive)
            r[name] = float(np.mean(values[:, 1]))
            r[name.replace("5000", "1000")] = float(np.mean(values[:, 0]))
            r[f"ais_minus_{name}"] = float(np.mean(np.asarray(per_image["test_ais"], np.float64) - values[:, 1]))
        if dz == 2:
            r["exact"] = float(np.mean(exact.log_px(net, params["decoder"], x)[0]))
            first_2d = first_2d or (path, config, params, x, per_image)
        results["models"][path.stem] = r
        save()
        a, b = r["ais"], r["ais"].get("bdmc", {})
        print(f"{path.stem}: AIS {a['log_px']:.3f} ({a['seconds']:.1f} s, "
              f"{a['gradient_evaluations_per_second']:.3g} grad/s), BDMC {b.get('forward', 0):.3f} .. "
              f"{b.get('reverse', 0):.3f} gap {b.get('gap', 0):.3f} ± {b.get('gap_se', 0):.3f}, "
              f"IWAE-5000 {r['iwae_5000']:.3f} defensive {r['defensive_5000']:.3f}"
              + (f", exact {r['exact']:.3f}, within 0.5 {a['within_half_nat']:.3f}" if dz == 2 else "")
              + f"  [{r['evaluate_seconds']:.0f} s, total {time.perf_counter() - began:.0f} s]", flush=True)
    if first_2d is not None and variants:
        path, config, params, x, _ = first_2d
        base = results["models"][path.stem]["ais"]
        results["variants"] = []
        for variant in variants:
            settings = likelihood.settings_of(config, **{**(given or {}), **variant}, images=len(x), bdmc=0)
            cost = base["seconds"] * settings.gradient_evaluations() / likelihood.Settings(
                steps=base["steps"], chains=base["chains"], leapfrog=base["leapfrog"]).gradient_evaluations()
            if cost > left():
                results["skipped"].append(f"{path.stem} {variant} (about {cost:.0f} s, {left():.0f} s left)")
                continue
            headline, _ = likelihood.evaluate(config.network, params, x, 2, settings, progress=False, curve=False)
            results["variants"].append(headline["ais"])
            save()
            a = headline["ais"]
            print(f"{path.stem} {variant}: AIS minus exact {a['minus_exact']:.4f} ± {a['minus_exact_se']:.4f}, "
                  f"within 0.5 {a['within_half_nat']:.3f}, largest {a['largest_abs_difference']:.2f} "
                  f"[{a['seconds']:.0f} s]", flush=True)
    save()
    print(f"done in {time.perf_counter() - began:.0f} s; skipped: {results['skipped'] or 'nothing'}", flush=True)


def table(files):
    """The README's AIS table (markdown) from what measure wrote (one file or several, their models in the
    order given): nothing in it typed by hand."""
    results = {"models": {name: r for file in files for name, r in json.loads(Path(file).read_text())["models"].items()}}
    lines = ["| dataset | Dz | AIS | BDMC forward | BDMC reverse | BDMC gap | IWAE-5000 | defensive IWAE-5000 | "
             "AIS minus defensive | exact | test images / simulated examples | seconds (AIS / BDMC) |", "|---" * 12 + "|"]
    for r in results["models"].values():
        a, b = r["ais"], r["ais"]["bdmc"]
        lines.append(f"| {'Fashion-MNIST' if r['dataset'] == 'fashion-mnist' else 'MNIST'} | {r['latent_dim']} | "
                     f"**{a['log_px']:.2f} ± {a['log_px_se']:.2f}** | {b['forward']:.2f} | {b['reverse']:.2f} | "
                     f"{b['gap']:.2f} ± {b['gap_se']:.2f} | {r['iwae_5000']:.2f} | {r['defensive_5000']:.2f} | "
                     f"{r['ais_minus_defensive_5000']:+.2f} | " + (f"{r['exact']:.2f}" if "exact" in r else "") +
                     f" | {a['images']} / {b['examples']} | {a['seconds']:.0f} / {b['seconds']:.0f} |")
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("measure")
    m.add_argument("folder", type=Path)
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--deadline", type=float, default=480.0, help="seconds after which no stage starts")
    m.add_argument("--images", type=int, default=IMAGES, help="the first N test images of each model")
    m.add_argument("--bdmc", type=int, default=IMAGES, help="examples simulated from each model for BDMC")
    m.add_argument("--quick", action="store_true", help="no curve against T and no Dz = 2 variants (a CPU)")
    m.add_argument("--settings", type=json.loads, default=None,
                   help='AIS settings instead of each run\'s own, as JSON: \'{"chains": 32, "leapfrog": 2}\'')
    m.add_argument("--variants", type=json.loads, default=list(VARIANTS),
                   help="the Dz = 2 model's settings tried beside them, a JSON list (default: %(default)s)")
    m.add_argument("--only", nargs="*", help="the packed models to measure, by name")
    t = sub.add_parser("table")
    t.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "table":
        table(args.files)
    elif args.command == "pack":
        pack(args.runs, args.out)
    else:
        measure(args.folder, args.out, args.deadline, args.images, args.bdmc, [] if args.quick else args.variants,
                not args.quick, args.only, args.settings)


if __name__ == "__main__":
    sys.exit(main())
