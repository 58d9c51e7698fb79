"""Comparing runs: gather run directories (runs, groups of seeds, sweeps), group them by their
settings less the seed, and write one self-contained HTML page with its figures.

Nothing is trained or evaluated here: the numbers are those each run's summary.json holds.
"""

import dataclasses
import html
import json
import math
import sys
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import ConfigError, DataError
from ..runs import checkpoint, files, records
from . import compare_plots, report

# summary key -> what the page calls it; the bounds a run may hold, best known last
MEASURES = {"test_elbo": "test ELBO", "test_iwae": "test IWAE bound", "test_iwae_defensive": "test IWAE, defensive",
            "test_log_px_ais": "AIS test log p(x)", "test_log_px": "exact test log p(x)", "bdmc_gap": "BDMC gap"}
# The gap decomposition's test numbers (summary.json's gap_decomposition.test, and .family for a richer posterior)
GAPS = {"approximation_gap": "approximation gap (q*: factorized)", "amortization_gap": "amortization gap",
        "family.approximation_gap": "approximation gap (the family's own q*)",
        "family.amortization_gap": "amortization gap (the family's own q*)"}
PAGE = "compare.html"
# On a phone the wide figures keep a readable size and scroll sideways in their box, not the page.
STYLE = """td.path { overflow-wrap: anywhere; min-width: 8em; } h1 { overflow-wrap: anywhere; }
@media (max-width: 600px) { .wrap img.figure { max-width: none; width: 760px; } }"""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One run: where it is, its config, its summary and its metrics rows."""

    path: Path
    config: Config
    summary: dict
    metrics: list


@dataclasses.dataclass(frozen=True)
class Group:
    """Runs whose settings differ only in the seed."""

    config: Config  # the settings, with the first run's seed
    entries: list

    def values(self, key):
        """The runs' numbers of summary key (those that hold one), in order."""
        return [e.summary[key] for e in self.entries if isinstance(e.summary.get(key), (int, float))]

    def mean_spread(self, key):
        """(mean, spread, what the spread is) of a summary number: the standard deviation across seeds,
        or with one seed its standard error over images; None where no run holds it."""
        values = self.values(key)
        if not values:
            return None
        if len(values) > 1:
            return float(np.mean(values)), float(np.std(values, ddof=1)), f"sd over {len(values)} seeds"
        return values[0], self.entries[0].summary.get(f"{key}_se", math.nan), "SE over images (one seed)"


def find_runs(paths):
    """Every run directory (one with a checkpoint, whose config it holds; config.json may be lost) at
    or under paths, in order. ConfigError if none."""
    found, seen = [], set()
    for path in map(Path, paths):
        if not path.is_dir():
            raise ConfigError(f"{path} is not a directory (give run, group or sweep directories)")
        candidates = [path] if files.has_checkpoint(path) else sorted(
            {c.parent for c in path.rglob(files.CHECKPOINT) if files.ASIDE not in c.parts})
        for run_dir in candidates:
            if files.has_checkpoint(run_dir) and files.identity(run_dir) not in seen:
                seen.add(files.identity(run_dir))
                try:
                    config, _ = checkpoint.read_checkpoint_config(run_dir)
                except DataError as error:  # the page needs only its settings and numbers: shown, and said
                    print(f"aevb: warning: {error}; {run_dir} is shown from its stored settings", file=sys.stderr)
                    config, _ = checkpoint.read_checkpoint_config(run_dir, data=False)
                found.append(Entry(run_dir, config, _with_gaps(records.read_summary(run_dir)),
                                   records.read_metrics(run_dir)))
    if not found:
        raise ConfigError(f"no trained runs under {', '.join(map(str, paths))}")
    return found


def _but_the_seed(config):
    """The settings but the seed, as text (no new Config: a run shown without its data has none to check)."""
    return json.dumps({**dataclasses.asdict(config), "seed": None}, sort_keys=True)


def group_runs(entries):
    """Groups of entries with the same settings but the seed, in the order first seen. Two runs of
    the same settings and the same seed are repeats, not two seeds: the second starts another group."""
    groups = {}
    for entry in entries:
        settings, repeat = _but_the_seed(entry.config), 0
        while entry.config.seed in [e.config.seed for e in groups.get((settings, repeat), [])]:
            repeat += 1
        groups.setdefault((settings, repeat), []).append(entry)
    return [Group(members[0].config, members) for members in groups.values()]


def repeats(groups):
    """The groups whose settings another group has too (runs repeated with the same seeds)."""
    settings = [_but_the_seed(g.config) for g in groups]
    return [g for g, c in zip(groups, settings, strict=True) if settings.count(c) > 1]


def varied_settings(groups):
    """The settings (but the seed) whose values differ between groups, in Config's order."""
    names = [f.name for f in dataclasses.fields(Config) if f.name != "seed"]
    return [name for name in names if len({json.dumps(getattr(g.config, name)) for g in groups}) > 1]


def _order(value):
    return (1, str(value), 0) if isinstance(value, str) else (0, "", value)


def label(config, names):
    """A group's label from the settings names that vary, such as latent_dim=2, hidden_dim=500."""
    return ", ".join(f"{name}={getattr(config, name)}" for name in names) or "all runs"


def _with_gaps(summary):
    """The summary with its test gaps (GAPS) as top-level numbers, "gap:" before their names, where it has them."""
    test, flat = summary.get("gap_decomposition", {}).get("test", {}), {}
    for key in GAPS:
        part, name = (test.get("family", {}), key.split(".")[1]) if "." in key else (test, key)
        if name in part:
            flat[f"gap:{key}"], flat[f"gap:{key}_se"] = part[name], part.get(name + "_se", math.nan)
    return {**summary, **flat}


def _gap_table(groups, varied):
    """Each setting's gaps on its test images (mean ± sd over seeds), where any run has the decomposition."""
    shown = [key for key in GAPS if any(g.values(f"gap:{key}") for g in groups)]
    head = "".join(f"<th>{html.escape(t)}</th>" for t in [*varied, *(GAPS[key] for key in shown)])
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(getattr(g.config, name)))}</td>" for name in varied)
                   + "".join(f'<td class="num">{_pm(g.mean_spread(f"gap:{key}"))}</td>' for key in shown) + "</tr>"
                   for g in groups)
    return ["<h2>Gaps, test images</h2>", f'<div class="wrap"><table><tr>{head}</tr>{rows}</table></div>'] * bool(shown)


def _pm(triple, digits=2):
    if triple is None:
        return "&ndash;"
    mean, spread, _ = triple
    return f"{mean:.{digits}f} ± {spread:.{digits}f}" if math.isfinite(spread) else f"{mean:.{digits}f}"


def _group_table(groups, varied, measures):
    head = "".join(f"<th>{html.escape(name)}</th>" for name in varied)
    head += "".join(f"<th>{html.escape(MEASURES[m])}</th>" for m in measures) + "<th>s/epoch</th><th>seeds</th>"
    rows = []
    for g in groups:
        cells = "".join(f"<td>{html.escape(str(getattr(g.config, name)))}</td>" for name in varied)
        cells += "".join(f'<td class="num">{_pm(g.mean_spread(m))}</td>' for m in measures)
        cells += f'<td class="num">{_pm(g.mean_spread("seconds_per_epoch"), 3)}</td>'
        cells += f"<td>{', '.join(str(e.config.seed) for e in g.entries)}</td>"
        rows.append(f"<tr>{cells}</tr>")
    return f'<div class="wrap"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def _run_table(entries, varied, measures, root):
    """Every run: where it is, its seed and the settings that vary, its numbers ± SE over test images."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in ["run", "seed", *varied])
    head += "".join(f"<th>{html.escape(MEASURES[m])} ± SE</th>" for m in measures) + "<th>epochs</th>"
    rows = []
    for e, s in ((e, e.summary) for e in entries):
        try:
            where = e.path.relative_to(root)
        except ValueError:
            where = e.path
        cells = f'<td class="path">{html.escape(str(where))}</td><td>{e.config.seed}</td>'
        cells += "".join(f"<td>{html.escape(str(getattr(e.config, name)))}</td>" for name in varied)
        cells += "".join(f'<td class="num">{_pm((s[m], s.get(m + "_se", math.nan), ""))}</td>' if m in s else
                         "<td>&ndash;</td>" for m in measures)
        rows.append(f'<tr>{cells}<td class="num">{s.get("epochs", "&ndash;")}</td></tr>')
    return f'<div class="wrap"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def compare(paths, out_dir):
    """Writes out_dir/compare.html and its figures for paths (runs, groups, sweeps); returns the page's path."""
    entries = find_runs(paths)
    varied = varied_settings(group_runs(entries))
    # In the order of the varied settings' values (numbers as numbers: 2 before 10), then the seed.
    entries.sort(key=lambda e: ([_order(getattr(e.config, name)) for name in varied], e.config.seed))
    groups = group_runs(entries)
    measures = [m for m in MEASURES if any(g.values(m) for g in groups)]
    out_dir, figures = Path(out_dir), []
    for name in varied if measures else []:  # per varied setting: each measure against it, a line per other combination
        others = [n for n in varied if n != name]
        figure = compare_plots.settings_figure(
            name, [(label(g.config, others), getattr(g.config, name), [g.mean_spread(m) for m in measures])
                   for g in groups], [MEASURES[m] for m in measures])
        figures.append((f"compare_{name}", files.save_figure(out_dir, f"compare_{name}", figure),
                        f"Test numbers against {name}, mean over seeds with error bars of ± one standard deviation "
                        "across seeds (with one seed: ± one standard error over test images)."))
    panels = {}
    for g in groups:  # curves: a panel per combination of the varied settings other than the latent dimension
        others = [n for n in varied if n != "latent_dim"]
        panel = label(g.config, others) if others else g.config.dataset
        line = f"Dz={g.config.latent_dim}" if "latent_dim" in varied else label(g.config, varied)
        images_per_epoch = g.config.train_size // g.config.batch_size * g.config.batch_size
        panels.setdefault(panel, []).append((line, images_per_epoch, [e.metrics for e in g.entries]))
    figure = compare_plots.curves_figure(panels)
    figures.append(("compare_curves", files.save_figure(out_dir, "compare_curves", figure),
                    "Train (solid) and test (dashed) ELBO against the number of training images seen, mean over "
                    "seeds, in the style of Kingma & Welling (2013), Figure 2. The train curve is the training "
                    "objective (the IWAE bound for objective iwae); the test curve one sample per image."))
    base = groups[0].config  # the settings every run shares are read from it
    root = Path(paths[0]) if len(paths) == 1 else Path(".")
    seeds = sorted({e.config.seed for e in entries})
    headline = (f"{len(entries)} runs in {len(groups)} settings" + (f", seeds {', '.join(map(str, seeds))}")
                + (f"; varied: {', '.join(varied)}" if varied else "; the settings are the same but for the seed"))
    body = [f"<h1>Comparison: {html.escape(', '.join(str(p) for p in paths))}</h1>",
            f'<p class="headline">{html.escape(headline)}. Numbers in nats per image, higher is better.</p>',
            '<p class="note">Where two settings differ by less than the seed-to-seed spread, these runs do not '
            "tell them apart. The exact log p(x) exists for Dz = 2 only (a grid over the latent plane); the IWAE "
            "bounds are lower bounds on it. Where it does not exist, log p(x) by AIS (on the first test images, as "
            "each run's config.json says: ais_images) is the number to trust, and its BDMC gap, reverse minus forward "
            "AIS on data simulated from the model, says how far from the truth it can be; without AIS, the higher of "
            "the plain and the defensive bound (proposal ½ q + ¼ wide q + ¼ N(0, I), a Gaussian at q's moments "
            "standing in for a q without a density at any z) is the closer, with no certificate of how close.</p>",
            "<h2>Settings, mean ± sd over seeds</h2>", _group_table(groups, varied, measures),
            *_gap_table(groups, varied)]
    if not measures:
        body.append('<p class="note">No run here has been evaluated (aevb evaluate): there are no test numbers '
                    "to compare, only the training curves.</p>")
    repeated = repeats(groups)
    if repeated:
        where = "; ".join(", ".join(html.escape(str(e.path)) for e in g.entries) for g in repeated)
        body.append(f'<p class="note">Runs with the same settings and the same seed are repeats, not seeds: each '
                    f"repeat is a row of its own, not averaged with the other ({where}).</p>")
    body += ["<h2>Figures</h2>"] + [f'<div class="wrap">{report.figure_html(path, caption)}</div>'
                                     for _, path, caption in figures]
    shared = ", ".join(f"{name}={getattr(base, name)}" for name in (f.name for f in dataclasses.fields(Config))
                       if name != "seed" and name not in varied)
    body += ["<h2>Every run</h2>", f'<p class="note">Settings every run shares: {html.escape(shared)}. The '
             "columns give the settings in which the runs differ.</p>", _run_table(entries, varied, measures, root)]
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>aevb comparison</title><style>{report.STYLE}'
            f'{STYLE}</style></head><body><main>{"".join(body)}</main></body></html>')
    path = files.atomic_write_text(out_dir / PAGE, page)
    print(f"compared {len(entries)} runs in {len(groups)} settings; page: {path.resolve()}")
    return path
