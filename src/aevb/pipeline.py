"""What a notebook or the command line calls: train, evaluate, draw, complete, answer, report.

    from aevb import pipeline
    from aevb.config import Config

    run = pipeline.train_and_evaluate(Config(epochs=20), "runs/quick")
    pipeline.figures(run)
    print(pipeline.report(run))

Every function that takes a run accepts a loaded Run or a run directory. Results are returned
and also printed in a line or two, in nats per image.
"""

import contextlib
import dataclasses
import itertools
import json
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from . import answers as questions, compare as comparison, data, datasets, drawing, evaluate as evaluation
from . import exact as exactly, networks, parallel, partial, plots, rundir
from . import report as pages, train as training, writer
from .config import Config, ConfigError


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """A trained run, loaded: where it lives, its config, its parameters at epoch, its data."""

    path: Path
    config: Config
    params: dict
    epoch: int
    split: data.Split

    @property
    def net(self):
        return networks.get(self.config.architecture)

    @property
    def name(self):
        return self.path.name


def load(run_dir, data_dir=None):
    """The Run stored in run_dir: its checkpoint and the data its config names."""
    config, params, _, epoch = training.restore(run_dir)
    return Run(Path(run_dir), config, params, epoch, data.load(config, data_dir))


# What process 0 may meet while it decides for every process (aevb.parallel.Devices.agree).
ERRORS = (ConfigError, rundir.CheckpointError, writer.RunBusy, datasets.DataError)


@contextlib.contextmanager
def _writing(run, command, data_dir=None, devices=parallel.ONE):
    """The loaded run, with its writer lock held for the block: if another process is writing the
    run (training it), this waits for it to end, then reads the run as that process left it.
    With several processes, process 0 holds the lock and reads the run; the others get its
    config, epoch and parameters."""
    path = run.path if isinstance(run, Run) else Path(run)
    with contextlib.ExitStack() as stack:
        loaded = []

        def hold():
            if not path.is_dir():
                raise rundir.CheckpointError(f"run directory {path} does not exist")
            stack.enter_context(writer.writing(path, command, wait=True))
            if not isinstance(run, Run):
                loaded.append(load(path, data_dir))
                return [loaded[0].config.to_json(), loaded[0].epoch]

        shared = devices.agree(hold, ERRORS)
        if isinstance(run, Run):
            yield run
        elif devices.processes == 1:
            yield loaded[0]
        else:
            config = Config.from_json(shared[0])
            params = loaded[0].params if loaded else training.init_state(config)[0]  # a template for the others
            split = loaded[0].split if loaded else data.load(config, data_dir)
            yield Run(path, config, devices.local(devices.broadcast(params)), shared[1], split)


def data_info(dataset="mnist", data_dir=None):
    """Fetches and verifies a dataset; prints where it is and how many images of each class."""
    print(f"devices: {parallel.available()}; aevb uses one unless told --devices N or all")
    images, source = datasets.load(dataset, data_dir)
    spec, labels = images.dataset, images.arrays["train_labels"]
    n_train, n_test = (f.default for f in dataclasses.fields(Config) if f.name in ("n_train", "n_test"))
    if spec.files:
        print(f"{spec.display_name} verified (SHA-256 of the standard IDX files), from {source}")
        print(f"cached at {datasets.cache_path(spec)}")
    else:
        print(f"{spec.display_name}: {sum(spec.sizes)} images of {spec.image_shape[0]}x{spec.image_shape[1]}, from "
              f"{source}")
    splits = [(f"train (images 0-{len(labels[:n_train]) - 1})", labels[:n_train]),
              (f"test (images {n_train}-{n_train + len(labels[n_train:n_train + n_test]) - 1})",
               labels[n_train : n_train + n_test]), ("official test set", images.arrays["test_labels"])]
    width = max(5, *(len(name) for name in spec.class_names))
    print(f"{'split':28s} " + " ".join(f"{name:>{width}s}" for name in spec.class_names) + "  total")
    for name, split_labels in splits:
        counts = np.bincount(split_labels, minlength=len(spec.class_names))
        print(f"{name:28s} " + " ".join(f"{c:{width}d}" for c in counts) + f"  {counts.sum():5d}")
    return images


def _check_settings(run_dir, settings, mode):
    """Bad settings are refused before anything is written; a conflict with a checkpoint is said
    under the run's lock, after a run that is busy has said so."""
    try:
        rundir.resolve(run_dir, settings, mode)
    except rundir.CheckpointError:
        if not Path(run_dir).is_dir():
            raise


def _hold(stack, members, mode, command):
    """Refuses bad settings before anything is written (_check_settings), then takes every run's
    writer lock for the stack's block."""
    for one_dir, one_settings in members:
        _check_settings(one_dir, one_settings, mode)
    for one_dir, _ in members:
        stack.enter_context(writer.writing(one_dir, command, wait=False))


def _members(settings, run_dir, seeds):
    """[(run directory, settings)]: run_dir itself, or with seeds one run directory GROUP/seed-S each."""
    if seeds is None:
        return [(Path(run_dir), settings)]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds has a seed twice: {','.join(map(str, seeds))}")
    return [(Path(run_dir) / f"seed-{seed}", dataclasses.replace(settings, seed=seed)
             if isinstance(settings, Config) else {**settings, "seed": seed}) for seed in seeds]


def train(settings, run_dir, mode="new", data_dir=None, progress=True, seeds=None, devices=parallel.ONE):
    """Trains into run_dir; returns training's result dict (status "done" or "interrupted").

    settings: a Config, or a dict of the settings given; mode: "new", "resume", "auto" or
    "overwrite" (see aevb.rundir.resolve). seeds: several seeds trained together in one compiled
    program, each into run_dir/seed-S, with run_dir/group.json holding their mean and spread;
    the result is then a list, one dict per seed. devices: see aevb.parallel; with several
    processes every process calls this alike and process 0 decides, reads and writes.
    """
    group, members = seeds is not None, _members(settings, run_dir, seeds)
    run_dirs = [one_dir for one_dir, _ in members]
    with contextlib.ExitStack() as stack:
        def decide():
            _hold(stack, members, mode, "aevb train")
            # Decided while no one else can write the runs.
            return [[config.to_json(), again] for config, again in
                    (rundir.resolve(one_dir, one_settings, mode) for one_dir, one_settings in members)]

        decided = devices.agree(decide, ERRORS)
        configs, resume = [Config.from_json(text) for text, _ in decided], [again for _, again in decided]
        split = data.load(configs[0], data_dir)  # the data first: nothing is touched for a run that can't start
        if mode == "overwrite" and devices.writer:
            for one_dir in run_dirs:
                stack.enter_context(writer.replacing(one_dir))
        results = [{**result, "split": split}
                   for result in training.train_group(configs, run_dirs, split, resume, progress, devices)]
    for result in results if devices.writer else ():  # process 0 speaks for the job
        name = result["run_dir"]
        if result["status"] == "done" and result["trained_now"] == 0:
            print(f"{name} is already trained ({result['epoch']} epochs)")
        elif result["status"] == "done":
            print(f"trained {name}: train ELBO {result['train_elbo_last_epoch']:.2f} nats/image in the last epoch, "
                  f"{result['seconds_per_epoch']:.3f} s/epoch" + " (all seeds together)" * group)
    if group and devices.writer:
        summarize_group(run_dir, run_dirs)
    return results if group else results[0]


def summarize_group(group_dir, run_dirs):
    """group.json: every number the seeds' summaries share, with its mean and standard deviation
    across the seeds; returns it and prints the main ones."""
    summary = rundir.write_group_summary(group_dir, run_dirs)
    for key in ("test_elbo", "test_iwae", "test_log_px", "seconds_per_epoch"):
        if key in summary["mean"]:
            print(f"{Path(group_dir).name}: {key} {summary['mean'][key]:.2f} ± {summary['std'][key]:.2f} "
                  f"(mean ± sd over seeds {','.join(map(str, summary['seeds']))})")
    return summary


def evaluate(run, samples=None, k=None, progress=True, data_dir=None, exact=False, exact_extras=True,
             devices=parallel.ONE):
    """The ELBO (S samples per image) and the IWAE bound (K samples) into summary.json; with exact,
    also the exact log p(x) by quadrature (Dz = 2) and, with exact_extras, the bounds against it
    for several K and where the gap comes from. devices: images split over them (aevb.parallel)."""
    with _writing(run, "aevb evaluate", data_dir, devices) as run:
        if exact and run.config.latent_dim != 2:
            raise ConfigError(f"--exact integrates over a 2-D latent space on a grid; this run has Dz = "
                              f"{run.config.latent_dim} (its IWAE bound is the estimate to use)")
        split, k = run.split, k or run.config.iwae_k
        # Where no grid exists, the defensive bound is the estimate to trust; with Dz = 2 the exact value is.
        results, per_image = evaluation.evaluate(run.net, run.params, split.x_train, split.x_test,
                                                 samples or run.config.eval_samples, k, progress,
                                                 defensive=run.config.latent_dim != 2, devices=devices)
        results["evaluated_epoch"] = run.epoch
        # Printed before they are saved: a failed write can't take the numbers with it.
        print(evaluation.describe(results, len(split.x_test)), flush=True)
        if exact:
            more, arrays = exactly.evaluate(run.net, run.params, split.x_train, split.x_test, per_image, k, EXACT_KEY,
                                            progress, exact_extras, devices)
            results.update(more)
            per_image.update(arrays)
            print(exactly.describe(results), flush=True)
        if devices.writer:
            rundir.update_summary(run.path, results)
            rundir.update_per_image(run.path, per_image)
    return results


EXACT_KEY = np.array([0, 3], np.uint32)  # jax.random.PRNGKey(3), fixed: the SVI fits and the gap decomposition's ELBOs


def figures(run, kinds=None, pairs=None, seed=0, data_dir=None):
    """Draws the figures named in kinds (default: all of plots.KINDS), PNG and SVG; returns {kind: PNG path}."""
    kinds = kinds or plots.KINDS
    unknown = [kind for kind in kinds if kind not in plots.KINDS]
    if unknown:
        raise ConfigError(f"unknown figure {unknown[0]!r}; choose from {', '.join(plots.KINDS)} or all")
    with _writing(run, "aevb plot", data_dir) as run:
        if pairs and max(max(pair) for pair in pairs) >= len(run.split.x_train):
            raise ConfigError(f"--pairs: the training set has {len(run.split.x_train)} images")
        metrics = rundir.read_metrics(run.path)
        written = {kind: rundir.save_figure(run.path, kind, drawing.figure(kind, run, metrics, pairs, seed))
                   for kind in kinds}
    for kind, path in written.items():
        print(f"{kind:16s} {path}")
    return written


# ---- partial observation and the true/false answers ---------------------------------------


def _infer(run, mask="top", index=None, seed=0):
    split = run.split
    if index is None:
        elbos = evaluation.elbo_per_image(run.net, run.params, split.x_train, run.config.eval_samples)
        # The best-fitted class is the simplest (MNIST: 1, a plain stroke): its hidden half says little.
        best_class = max(np.unique(split.y_train), key=lambda label: elbos[split.y_train == label].mean())
        index = partial.choose_image(elbos, split.y_train, excluded=(best_class,))
        criterion = (f"highest ELBO among training images outside class {split.dataset.class_names[best_class]}, "
                     "the best-fitted class")
    elif not 0 <= index < len(split.x_train):
        raise ConfigError(f"--index must be from 0 to {len(split.x_train) - 1}")
    else:
        criterion = "chosen with --index"
    observed = partial.make_mask(mask, split.image_shape, jax.random.PRNGKey(seed))
    completion = partial.complete(jax.random.PRNGKey(seed), run.net, run.params, split.x_train[index], observed,
                                  run.config.latent_dim)
    return dataclasses.replace(completion, mask_name=mask, index=index, label=int(split.y_train[index]),
                               criterion=criterion)


def complete(run, mask="top", index=None, seed=0, data_dir=None):
    """Infers p(z | the mask's pixels of training image index) by SVI and predicts the rest;
    draws its figures and stores its numbers. index None: chosen by a stated criterion."""
    with _writing(run, "aevb complete", data_dir) as run:
        c = _infer(run, mask, index, seed)
        print(f"image #{c.index} ({run.split.dataset.class_names[c.label]}; {c.criterion}); observed: {mask}")
        print(f"log p(true hidden pixels) under the SVI predictive {c.log_p_hidden_under_q_predictive:.2f} nats, "
              f"under the prior predictive {c.log_p_hidden_under_prior_predictive:.2f} nats ({c.hidden_pixels} "
              "pixels)", flush=True)
        name = f"complete_{mask}"
        title = (f"Training image #{c.index} ({run.split.dataset.noun} {run.split.dataset.class_names[c.label]}; "
                 f"{c.criterion}), observed: {mask}")
        figures = {name: plots.completion_figure(drawing.images(run, c.image), drawing.images(run, c.completions),
                                                 drawing.images(run, c.mask), title),
                   name + "_trace": plots.trace_figure(c.elbo_trace)}
        if c.grid is not None:
            figures[name + "_posterior"] = plots.posterior_figure(
                c.grid, c.q_mean, c.q_log_std, c.encoder_mean, c.encoder_log_std,
                f"Posterior given the {mask} of image #{c.index}")
        written = [rundir.save_figure(run.path, figure_name, figure) for figure_name, figure in figures.items()]
        summary = rundir.read_summary(run.path)
        rundir.update_summary(run.path, {"completion": {**summary.get("completion", {}), mask: c.summary()}})
    print("\n".join(str(path) for path in written))
    return c


def answers(run, completion=None, data_dir=None):
    """The true/false questions with reasons; (b) and (e) with computed demonstrations."""
    try:
        with _writing(run, "aevb answers", data_dir) as run:
            c = completion if completion is not None and completion.mask_name == "top" else _infer(run)
            i, j, correlation, ess = c.correlation
            demo = {"index": c.index, "pixel_i": i, "pixel_j": j, "correlation": correlation,
                    "effective_sample_size": ess, "normal_density_at_0": questions.normal_density_at_mean(0.1),
                    "kl_rise": questions.kl_rise(rundir.read_metrics(run.path))}
            rundir.update_summary(run.path, {"answers_demo": demo})
            texts = questions.answer_texts(demo, run.split.image_shape[1])
    except rundir.CheckpointError as error:
        texts = questions.answer_texts(None, 1, f"(The computed demonstration needs a trained run: {error})")
    for question, answer, reason in texts:
        print(f"{question}\n  {'True' if answer else 'False'}. {reason}")
    return texts


def report(run, data_dir=None):
    """Writes the run's self-contained HTML report; returns its path."""
    with _writing(run, "aevb report", data_dir) as run:
        split, config = run.split, run.config
        summary = rundir.read_summary(run.path)
        payload, note = None, ""
        if config.latent_dim == 2 and config.architecture in pages.EXPLORER_ARCHITECTURES:
            payload = pages.explorer_payload(run.params["decoder"], drawing.encode_means(run, split.x_train),
                                             split.y_train, split.image_shape, split.dataset.class_names)
        else:
            note = (f"The live explorer needs a 2-D latent space and the {' or '.join(pages.EXPLORER_ARCHITECTURES)}"
                    f" decoder; this model has Dz = {config.latent_dim} and the {config.architecture} networks.")
        answer_texts = questions.answer_texts(summary.get("answers_demo"), split.image_shape[1],
                                            "(Run aevb answers to compute it.)")
        html = pages.render(run.name, config, summary, split, lambda name: rundir.figure_path(run.path, name),
                            answer_texts, payload, note)
        path = rundir.write_report(run.path, html)
    print(f"report: {path.resolve()}")
    return path


# ---- everything ---------------------------------------------------------------------------


def train_and_evaluate(settings, run_dir, data_dir=None, progress=True, seeds=None, exact_extras=True,
                       devices=parallel.ONE):
    """Trains (or resumes, or finds trained) and evaluates (unless evaluated at its last epoch);
    returns the Run, or None if interrupted. seeds: trains them together (see train) and returns a
    list of Runs, one per seed. exact_extras: see evaluate. devices: see aevb.parallel."""
    results = train(settings, run_dir, "auto", data_dir, progress, seeds, devices)
    results = results if seeds is not None else [results]
    if any(result["status"] != "done" for result in results):
        return None
    runs = [Run(Path(r["run_dir"]), r["config"], r["params"], r["epoch"], r["split"]) for r in results]
    for run in runs:
        def evaluated(run=run):
            summary = rundir.read_summary(run.path)
            return summary.get("evaluated_epoch") == run.epoch and (run.config.latent_dim != 2
                                                                    or "test_log_px" in summary)

        if not devices.agree(evaluated, ERRORS):
            evaluate(run, progress=progress, exact=run.config.latent_dim == 2, exact_extras=exact_extras,
                     devices=devices)
    if seeds is not None:
        if devices.writer:
            summarize_group(run_dir, [run.path for run in runs])
        return runs
    return runs[0]


def run_all(settings, run_dir, data_dir=None, progress=True, seeds=None, devices=parallel.ONE):
    """What `aevb run` does: train or resume, evaluate, every figure, the completion, the answers,
    the report. Returns the report's path (a list with seeds), or None if training was interrupted.
    devices: training and evaluation run on them; the rest runs in process 0 alone (the other
    processes return [])."""
    members = _members(settings, run_dir, seeds)
    with contextlib.ExitStack() as stack:
        devices.agree(lambda: _hold(stack, members, "auto", "aevb run"), ERRORS)
        runs = train_and_evaluate(settings, run_dir, data_dir, progress, seeds, devices=devices)
        if runs is None:
            return None
        if not devices.writer:
            return []
        reports = []
        for run in runs if seeds is not None else [runs]:
            figures(run)
            answers(run, complete(run))
            reports.append(report(run))
        return reports if seeds is not None else reports[0]


# ---- sweeps -------------------------------------------------------------------------------


def point_name(point, varied):
    """A sweep point's folder name from the settings it varies: latent_dim=5_objective=iwae."""
    def short(value):  # npz:/data/mine.npz -> npz-mine
        text = str(value)
        return f"npz-{Path(text[len(datasets.NPZ):]).stem}" if text.startswith(datasets.NPZ) else text.replace("/", "-")

    return "_".join(f"{name}={short(point[name])}" for name in varied) or "run"


def sweep(grid, sweep_dir, seeds=None, data_dir=None, progress=True, devices=parallel.ONE):
    """Trains and evaluates every combination of grid's values ({setting: (values...)}), each an
    ordinary run directory (with seeds, a group of them) under sweep_dir named by the settings it
    varies. Resumable: a finished point is skipped, a cut-short one resumed. Returns the points'
    directories, or None if training was interrupted."""
    sweep_dir = Path(sweep_dir)
    varied = [name for name, values in grid.items() if len(values) > 1]
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    for point in points:  # every bad combination is refused before anything trains
        Config(**point)
    if devices.writer:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        rundir.atomic_write_text(sweep_dir / rundir.SWEEP, json.dumps(
            {"grid": {name: list(values) for name, values in grid.items()}, "varied": varied,
             "seeds": None if seeds is None else list(seeds),
             "points": [point_name(point, varied) for point in points]}, indent=2) + "\n")
    directories = []
    bar = tqdm(points, desc=f"sweep {sweep_dir.name}", unit="run", disable=not progress, dynamic_ncols=True)
    for point in bar:
        directory = sweep_dir / point_name(point, varied)
        bar.set_postfix_str(directory.name)
        if train_and_evaluate(point, directory, data_dir, progress, seeds, False, devices) is None:
            return None
        directories.append(directory)
    print(f"sweep {sweep_dir}: {len(points)} settings x {len(seeds or [None])} seeds; compare them with: "
          f"aevb compare {sweep_dir}")
    return directories


def compare(paths, out_dir=None):
    """One HTML page comparing the runs at or under paths (runs, groups, sweeps); returns its path.
    out_dir: default the one directory given, else runs/comparison."""
    out_dir = out_dir or (paths[0] if len(paths) == 1 else Path("runs") / "comparison")
    return comparison.compare(list(paths), out_dir)

