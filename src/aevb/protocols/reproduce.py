"""aevb reproduce NAME --budget full|short: a protocol's sweep, then its page (aevb.views.reproduced)."""

import dataclasses
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from .. import parallel, pipeline
from ..config import Config
from ..config_file import read_file
from ..errors import ConfigError
from ..runs import files, records, sweeps
from ..views import reproduced
from ..data import datasets
from ..training import compiled
from . import load, names, path_of

PAGE = "reproduced.html"


def grid(name, budget):
    """The protocol's sweep grid at a budget: its settings, the budget's over them, and its vary, each of its grids
    with the budget's "vary" for it over it (a list, one per grid: a budget may shorten one grid and not another).
    name: a protocol's name; budget: short or full. Raises ConfigError for a budget the protocol has not."""
    protocol, file = load(name), read_file(path_of(name))
    if budget not in protocol["budgets"]:
        raise ConfigError(f"{name} has the budgets {', '.join(protocol['budgets'])}, not {budget!r}")
    fixed = {key: (value,) for key, value in {**file["settings"], **protocol["budgets"][budget]["settings"]}.items()}
    vary = file["vary"] if isinstance(file["vary"], list) else [file["vary"]]
    over = protocol["budgets"][budget].get("vary", [{}] * len(vary))
    grids = [{**fixed, **one, **{k: tuple(v) for k, v in more.items()}} for one, more in zip(vary, over, strict=True)]
    return grids if isinstance(file["vary"], list) else grids[0]


def seconds_per_epoch(config, steps=200):
    """An epoch's seconds on this machine, from `steps` steps of config's compiled epoch timed after its compile
    (zeros as images: the time of a step does not depend on the pixels)."""
    short = dataclasses.replace(config, n_train=steps * config.batch_size, debug=False)
    params, opt_state = compiled.init_state(short)
    x = jnp.zeros((steps * config.batch_size, math.prod(datasets.get(config.dataset).image_shape)))
    epoch = compiled.make_epoch(short)
    jax.block_until_ready(epoch(params, opt_state, x, 1))  # compiled here, not timed
    began = time.perf_counter()
    jax.block_until_ready(epoch(params, opt_state, x, 2))
    return (time.perf_counter() - began) / steps * (config.train_size // config.batch_size)


def describe(name, budget, measure=True):
    """What aevb reproduce NAME --dry-run prints: the source, the points with their settings, the budget (epochs,
    and with measure an estimate of hours on this machine from a few timed steps of each point), the published
    numbers with where they were read, and what differs from the paper. Trains nothing, writes nothing.
    name: a protocol's name (aevb reproduce --list); budget: short or full."""
    protocol = load(name)
    points, point_names, varied = sweeps.sweep_points(grid(name, budget))
    source = protocol["source"]
    lines = [protocol["title"], f"  source: {source['paper']}", f"  where: {source['where']}",
             f"  setup: {source['setup']}", f"  budget {budget}: {protocol['budgets'][budget]['note']}",
             f"  measure: {protocol.get('measure_name', protocol['measure'])}"]
    total = 0.0
    for point, point_name in zip(points, point_names, strict=True):
        config = Config(**point)
        hours = ""
        if measure:
            hours_here = seconds_per_epoch(config) * config.epochs / 3600
            total += hours_here
            hours = f", about {hours_here:.2f} h of training here"
        lines.append(f"  point {point_name}: {config.epochs} epochs of {config.train_size} images{hours}")
    lines.append("  settings shared by the points: " + json.dumps(
        {k: v for k, v in points[0].items() if k not in varied}, sort_keys=True))
    if protocol["published"]:
        lines.append(f"  published, as read in the paper ({source['where']}): " + "; ".join(
            f"{p['label']}: {p['value']}" for p in protocol["published"]))
    else:
        lines.append(f"  published: {protocol.get('curves', 'no numbers')}")
    lines += [f"  differs from the paper: {d}" for d in protocol["differences"]]
    if measure:
        lines.append(f"  in all about {total:.2f} h of training on this machine ({jax.devices()[0].platform}; "
                     "estimated from 200 timed steps of each point, evaluation not included)")
    return "\n".join(lines)


def listing():
    """What aevb reproduce --list prints: each protocol's name, title and budgets."""
    return "\n".join(f"{n}: {load(n)['title']} (budgets: " + "; ".join(
        f"{b}: {v['note']}" for b, v in load(n)["budgets"].items()) + ")" for n in names())


def reproduce(name, budget="short", runs_dir="runs", data_dir=None, progress=True, seeds=None,
              devices=parallel.ONE):
    """Runs protocol name at budget as a sweep in RUNS_DIR/reproduce-NAME-BUDGET (resumable, like any sweep)
    and writes its page there; returns the page's path, or None if training was interrupted.
    runs_dir: the folder of run directories."""
    protocol = load(name)
    sweep_dir = Path(runs_dir) / f"reproduce-{name}-{budget}"
    directories = pipeline.sweep(grid(name, budget), sweep_dir, seeds, data_dir, progress, devices,
                                 extras=bool(protocol.get("gaps")))  # a protocol of gaps: the gap decomposition too
    if directories is None or not devices.writer:
        return None if directories is None else sweep_dir / PAGE
    return write_page(protocol, budget, sweep_dir, directories, companions(protocol, runs_dir, budget))


def companions(protocol, runs_dir, budget):
    """[(name, title, rows)] of the protocols that protocol names under "companions" (burda2016's two stochastic
    layers: a file of their own, so that burda2016's folders keep their names) whose sweep at budget has run in
    runs_dir: their points that have the measure, read; nothing is trained."""
    out = []
    for name in protocol.get("companions", []):
        other, sweep_dir = load(name), Path(runs_dir) / f"reproduce-{name}-{budget}"
        if not (sweep_dir / files.SWEEP).is_file():
            continue
        points = [sweep_dir / point for point in json.loads((sweep_dir / files.SWEEP).read_text())["points"]]
        trained = [p for p in points if (p / files.CONFIG).is_file() or records.read_group(p) is not None]
        shown = [row for row in rows(other, trained) if row["ours"] is not None]
        if shown:
            out.append((name, other["title"], shown))
    return out


def _numbers(directory):
    """(config, summary) of a point: its run's, or its group's means over seeds."""
    directory = Path(directory)
    group = records.read_group(directory)
    if group is not None:
        means = group["mean"]
        run = directory / group["runs"][0]
        return Config.from_json((run / files.CONFIG).read_text(), data=False), means, run
    return Config.from_json((directory / files.CONFIG).read_text(), data=False), records.read_summary(directory), \
        directory


def _device(trained_on):
    return "not recorded" if not trained_on else parallel.describe_text(trained_on)


# A measure's estimates, the most trusted first: where a run has not the first (the exact log p(x) exists at Dz = 2
# only), its next (AIS's, of the first ais_images test images).
ESTIMATES = {"test_log_px": ("test_log_px", "test_log_px_ais")}


def measured(summary, measure):
    """(value, SE, the summary's key it was read from) of a point's measure: the first of its ESTIMATES the summary
    holds, or (None, nan, measure)."""
    for key in ESTIMATES.get(measure, (measure,)):
        if summary.get(key) is not None:
            return summary[key], summary.get(key + "_se", math.nan), key
    return None, math.nan, measure


def rows(protocol, directories):
    """A row per point: the paper's number where it gives one, ours, the budget used.
    protocol: the protocol file's contents; directories: the sweep's points' run directories."""
    out = []
    for directory in directories:
        config, summary, run = _numbers(directory)
        published = [p for p in protocol["published"] if all(getattr(config, k) == v for k, v in p["point"].items())]
        images = summary.get("epochs", 0) * (config.train_size // config.batch_size * config.batch_size)
        named = ", ".join(f"{key}={getattr(config, key)}" for key in protocol.get("label", ())) or Path(directory).name
        ours, se, key = measured(summary, protocol["measure"])
        out.append({"label": published[0]["label"] if published else named, "ours": ours, "se": se,
                    "by": f"by AIS, first {config.ais_images} test images" if key.endswith("_ais") else "",
                    "paper": published[0]["value"] if published else None,
                    "epochs": summary.get("epochs", 0), "images": images,
                    "hours": summary.get("training_seconds", math.nan) / 3600,
                    "device": _device(records.read_summary(run).get("trained_on")), "run": str(directory),
                    "config": config, "metrics": records.read_metrics(run)})
    return out


def gaps_of(summary, side="test"):
    """A point's gaps on its test or training images (side) for the page from its summary (summary.json's), or None
    where it has none: log p(x) (exact at Dz = 2, else AIS: the training images' where ais_train_images asked for
    them), ELBO(q), the approximation and amortization gaps against the factorized q* and, for a richer family,
    against its own q*_F, each (mean, SE) in nats per image, and the images each was measured on."""
    g, how = summary.get("gap_decomposition", {}).get(side), "exact"
    if g is None:
        ais = summary.get("ais", {})
        g, how = (ais if side == "test" else ais.get("train", {})).get("gap_decomposition"), "AIS"
    if g is None:
        return None
    own = g.get("family", g)  # the factorized Gaussian's own q* is q*
    pair = lambda numbers, key: (numbers[key], numbers[key + "_se"])  # noqa: E731
    return {"how": how, "images": g["images"], "own_images": own["images"], "log_px": pair(g, "log_px"),
            "elbo": pair(g, "elbo_encoder"), **{f"{key}_{whose}": pair(numbers, key) for whose, numbers in
                                               (("ffg", g), ("own", own))
                                               for key in ("approximation_gap", "amortization_gap")}}


def write_page(protocol, budget, sweep_dir, directories, also=()):
    """Writes the protocol's page (reproduced.html, its figure and table) into sweep_dir from the runs in directories;
    budget: short or full; also: companions' [(name, title, rows)]. Returns the page's path."""
    table = rows(protocol, directories)
    if protocol["published"]:
        figure = reproduced.values_figure([(r["label"], r["paper"], r["ours"], r["se"]) for r in table])
        caption = "The paper's number (triangle) and ours (circle, ± two standard errors over test images)."
    else:
        lines = [(r["label"],
                  [m["epoch"] * r["images"] / max(r["epochs"], 1) for m in r["metrics"]],
                  [m["train_elbo"] for m in r["metrics"]], [m["test_elbo"] for m in r["metrics"]])
                 for r in table]
        figure = reproduced.curves_figure(lines)
        caption = ("Ours in the paper's axes: the training objective (solid) and the test ELBO of one sample per "
                   "image (dashed) after each epoch, against the training samples evaluated.")
    png = files.save_figure(sweep_dir, "reproduced", figure)
    sides = [(r, side, gaps_of(_numbers(r["run"])[1], side)) for r in table for side in ("test", "train")]
    gaps = [(r["label"], r["config"].posterior, side, g) for r, side, g in sides  # training rows where measured
            if side == "test" or g] if protocol.get("gaps") else None
    path = files.atomic_write_text(Path(sweep_dir) / PAGE, reproduced.page(protocol, budget, table, png, caption, gaps,
                                                                                 also))
    for r in table:
        paper = "" if r["paper"] is None else f" (paper {r['paper']:.2f})"
        by = f" ({r['by']})" if r["by"] else ""
        ours = "not evaluated" if r["ours"] is None else f"{r['ours']:.2f} ± {r['se']:.2f}{by}"
        print(f"{r['label']}: {protocol['measure']} {ours}{paper}, {r['epochs']} epochs")
    print(f"reproduced {protocol['title']} at the {budget} budget; page: {path.resolve()}")
    return path
