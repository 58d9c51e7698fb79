"""aevb reproduce NAME --budget full|short: a protocol's sweep, then its page (aevb.views.reproduced)."""

import math
from pathlib import Path

from .. import parallel, pipeline
from ..config import Config, read_file
from ..errors import ConfigError
from ..runs import files, records
from ..views import reproduced
from . import load, path_of

PAGE = "reproduced.html"


def grid(name, budget):
    """The protocol's sweep grid at a budget: its settings, the budget's over them, and its vary."""
    protocol, file = load(name), read_file(path_of(name))
    if budget not in protocol["budgets"]:
        raise ConfigError(f"{name} has the budgets {', '.join(protocol['budgets'])}, not {budget!r}")
    fixed = {key: (value,) for key, value in {**file["settings"], **protocol["budgets"][budget]["settings"]}.items()}
    vary = file["vary"]
    grids = [{**fixed, **one} for one in (vary if isinstance(vary, list) else [vary])]
    return grids if isinstance(vary, list) else grids[0]


def reproduce(name, budget="short", runs_dir="runs", data_dir=None, progress=True, seeds=None,
              devices=parallel.ONE):
    """Runs protocol name at budget as a sweep in RUNS_DIR/reproduce-NAME-BUDGET (resumable, like any sweep)
    and writes its page there; returns the page's path, or None if training was interrupted."""
    protocol = load(name)
    sweep_dir = Path(runs_dir) / f"reproduce-{name}-{budget}"
    directories = pipeline.sweep(grid(name, budget), sweep_dir, seeds, data_dir, progress, devices)
    if directories is None or not devices.writer:
        return None if directories is None else sweep_dir / PAGE
    return write_page(protocol, budget, sweep_dir, directories)


def _numbers(directory):
    """(config, summary) of a point: its run's, or its group's means over seeds."""
    directory = Path(directory)
    group = directory / files.GROUP
    if group.is_file():
        means = records.read_json(group)["mean"]
        run = directory / records.read_json(group)["runs"][0]
        return Config.from_json((run / files.CONFIG).read_text(), data=False), means, run
    return Config.from_json((directory / files.CONFIG).read_text(), data=False), records.read_summary(directory), \
        directory


def _device(trained_on):
    return "not recorded" if not trained_on else parallel.describe_text(trained_on)


def rows(protocol, directories):
    """A row per point: the paper's number where it gives one, ours, the budget used."""
    out = []
    for directory in directories:
        config, summary, run = _numbers(directory)
        published = [p for p in protocol["published"] if all(getattr(config, k) == v for k, v in p["point"].items())]
        images = summary.get("epochs", 0) * (config.train_size // config.batch_size * config.batch_size)
        out.append({"label": published[0]["label"] if published else Path(directory).name,
                    "paper": published[0]["value"] if published else None,
                    "ours": summary.get(protocol["measure"]), "se": summary.get(protocol["measure"] + "_se", math.nan),
                    "epochs": summary.get("epochs", 0), "images": images,
                    "hours": summary.get("training_seconds", math.nan) / 3600,
                    "device": _device(records.read_summary(run).get("trained_on")), "run": str(directory),
                    "config": config, "metrics": records.read_metrics(run)})
    return out


def write_page(protocol, budget, sweep_dir, directories):
    table = rows(protocol, directories)
    if protocol["published"]:
        figure = reproduced.values_figure([(r["label"], r["paper"], r["ours"], r["se"]) for r in table])
        caption = "The paper's number (triangle) and ours (circle, ± two standard errors over test images)."
    else:
        lines = [(f"Dz={r['config'].latent_dim}",
                  [m["epoch"] * r["images"] / max(r["epochs"], 1) for m in r["metrics"]],
                  [m["train_elbo"] for m in r["metrics"]], [m["test_elbo"] for m in r["metrics"]])
                 for r in table]
        figure = reproduced.curves_figure(lines)
        caption = ("Ours in the paper's axes: the training objective (solid) and the test ELBO of one sample per "
                   "image (dashed) after each epoch, against the training samples evaluated.")
    png = files.save_figure(sweep_dir, "reproduced", figure)
    path = files.atomic_write_text(Path(sweep_dir) / PAGE, reproduced.page(protocol, budget, table, png, caption))
    for r in table:
        paper = "" if r["paper"] is None else f" (paper {r['paper']:.2f})"
        ours = "not evaluated" if r["ours"] is None else f"{r['ours']:.2f} ± {r['se']:.2f}"
        print(f"{r['label']}: {protocol['measure']} {ours}{paper}, {r['epochs']} epochs")
    print(f"reproduced {protocol['title']} at the {budget} budget; page: {path.resolve()}")
    return path
