"""What a notebook or the command line calls: train, evaluate, draw, complete, answer, report.

    from aevb import pipeline
    from aevb.config import Config

    pipeline.run_all(Config(epochs=20), "runs/quick")  # what aevb run does; returns the report's path
    run = pipeline.load("runs/quick")  # a Run: its config, parameters, epoch and data

Every function that takes a run accepts a loaded Run or a run directory; results are returned and printed,
in nats per image. The work lives in the layers below; this module holds the runs' locks while they work.
"""

import contextlib
import dataclasses
from pathlib import Path

from tqdm.auto import tqdm

from . import evaluation, parallel, views
from .config import Config
from .data import datasets, splits
from .errors import DECIDING, CheckpointError, ConfigError, Interrupted
from .runs import checkpoint, files, lock, records, sweeps, tensorboard
from .training import loop
from .training.trained import Run, load, opened  # noqa: F401 (Run and load are pipeline's too)


def data_info(dataset="mnist", data_dir=None):
    """Fetches and verifies a dataset; prints where it is and how many images of each class."""
    print(f"devices: {parallel.available()}; aevb uses one unless told --devices N or all")
    images, source = datasets.load(dataset, data_dir)
    n_train, n_test = (f.default for f in dataclasses.fields(Config) if f.name in ("n_train", "n_test"))
    print("\n".join(splits.describe(images, source, n_train, n_test)))
    return images


def train(settings, run_dir, mode="new", data_dir=None, progress=True, seeds=None, devices=parallel.ONE,
          allow_changed_data=False):
    """Trains into run_dir; returns training's result dict (status "done" or "interrupted").

    settings: a Config or a dict of the settings given; mode: "new", "resume", "auto" or "overwrite"
    (aevb.runs.checkpoint.resolve). seeds: several seeds trained together in one compiled program, each
    into run_dir/seed-S, run_dir/group.json their mean and spread; the result is then a list. devices: see
    aevb.parallel (process 0 decides, reads and writes). allow_changed_data: resume on a changed npz file.
    """
    group, members = seeds is not None, files.members(settings, run_dir, seeds)
    run_dirs = [one_dir for one_dir, _ in members]
    with files.removed_if_refused(run_dirs if devices.writer else []), contextlib.ExitStack() as stack:
        def decide():
            lock.hold(stack, members, mode, "aevb train")
            # Decided while no one else can write the runs.
            return [[config.to_json(), again] for config, again in
                    (checkpoint.resolve(one_dir, one_settings, mode) for one_dir, one_settings in members)]

        decided = devices.agree(decide, DECIDING)
        configs, resume = [Config.from_json(text) for text, _ in decided], [again for _, again in decided]
        split = splits.load(configs[0], data_dir)  # the data first: nothing is touched for a run that can't start
        for one_dir, again in zip(run_dirs, resume, strict=True) if devices.writer else ():
            records.check_data(one_dir, configs[0].dataset, again, allow_changed_data)
        if mode == "overwrite" and devices.writer:
            for one_dir in run_dirs:
                stack.enter_context(lock.replacing(one_dir))
        measure = evaluation.curves.monitor(configs[0], split.x_test, devices)
        results = [{**result, "split": split}
                   for result in loop.train_group(configs, run_dirs, split, measure, resume, progress, devices)]
    for result in results if devices.writer else ():  # process 0 speaks for the job
        if result["status"] == "done":
            print(loop.describe(result, group))
    if group and devices.writer:
        summarize_group(run_dir, run_dirs)
    return results if group else results[0]


def summarize_group(group_dir, run_dirs):
    """Writes group.json (aevb.runs.records.write_group_summary) and prints its main numbers."""
    print("\n".join(records.describe_group(Path(group_dir).name, records.write_group_summary(group_dir, run_dirs))))


def evaluate(run, samples=None, k=None, progress=True, data_dir=None, exact=False, exact_extras=True,
             devices=parallel.ONE, ais=None):
    """The ELBO (S samples per image) and the IWAE bound (K samples) into summary.json; with exact, also the exact
    log p(x) by quadrature (Dz = 2) and, with exact_extras, the bounds against it for several K and where the gap
    comes from. ais: also log p(x) by AIS with BDMC, with the run's config's AIS settings, those of
    aevb.evaluation.ais.Settings in this dict instead ({}: none instead). Images are split over devices."""
    with opened(run, "aevb evaluate", data_dir, devices) as run, records.stage(run.path, "evaluate", devices.writer):
        if exact:
            evaluation.gaps.check(run.config.latent_dim)
        ais = None if ais is None else evaluation.likelihood.settings_of(run.config, run.split.x_test.shape[1], **ais)
        split, k, others = run.split, k or run.config.iwae_k, run.config.gap_families
        # Without a grid the defensive bound is usually the tighter one (AIS the estimate to trust); Dz = 2 has one.
        results, per_image = evaluation.bounds.evaluate(run.net, run.params, split.x_train, split.x_test,
                                                        samples or run.config.eval_samples, k, progress,
                                                        defensive=run.config.latent_dim != 2, devices=devices)
        results.update(evaluated_epoch=run.epoch, binarization=split.binarization)
        kept = lambda *stage: records.kept(run.path, devices.writer, *stage)  # noqa: E731
        kept(results, per_image, evaluation.bounds.describe(results, len(split.x_test)))
        if exact:
            more, arrays = evaluation.gaps.evaluate(run.net, run.params, split.x_train, split.x_test, per_image, k,
                                                    evaluation.gaps.KEY, progress, exact_extras, devices, others)
            results.update(more)
            kept(more, arrays, lambda: evaluation.gaps.describe(results))
        if ais is not None:  # log p(x) by AIS, with BDMC
            print(evaluation.likelihood.plan(ais))
            more, arrays = evaluation.likelihood.evaluate(run.net, run.params, split.x_test, run.config.latent_dim,
                                                          ais, progress, devices, others=others, x_train=split.x_train)
            results.update(more)
            kept(more, arrays, lambda: evaluation.likelihood.describe(more["ais"]))
    return results


def figures(run, kinds=None, pairs=None, seed=0, data_dir=None):
    """Draws the figures named in kinds (default: all of views.plots.KINDS), PNG and SVG; returns {kind: PNG path}.
    pairs: the interpolation's training images (default: a stated rule; ConfigError past them); seed: the samples'."""
    kinds = views.plots.check_kinds(kinds or views.plots.KINDS)
    with opened(run, "aevb plot", data_dir) as run:
        if pairs and max(max(pair) for pair in pairs) >= len(run.split.x_train):
            raise ConfigError(f"--pairs: the training set has {len(run.split.x_train)} images")
        metrics = records.read_metrics(run.path)
        written = {kind: files.save_figure(run.path, kind, views.drawing.figure(kind, run, metrics, pairs, seed))
                   for kind in kinds}
    for kind, path in written.items():
        print(f"{kind:16s} {path}")
    return written


def _infer(run, mask="top", index=None, seed=0):
    return evaluation.partial.infer(run.net, run.params, run.split, run.config.latent_dim, run.config.eval_samples,
                                    mask, index, seed)


def complete(run, mask="top", index=None, seed=0, data_dir=None):
    """Infers p(z | the mask's pixels of training image index) by SVI and predicts the rest;
    draws its figures and stores its numbers. index None: chosen by a stated criterion."""
    with opened(run, "aevb complete", data_dir) as run:
        c = _infer(run, mask, index, seed)
        print(f"image #{c.index} ({run.split.dataset.class_names[c.label]}; {c.criterion}); observed: {mask}")
        print(f"log p(true hidden pixels) under the SVI predictive {c.log_p_hidden_under_q_predictive:.2f} nats, "
              f"under the prior predictive {c.log_p_hidden_under_prior_predictive:.2f} nats ({c.hidden_pixels} "
              "pixels)", flush=True)
        written = [files.save_figure(run.path, name, figure)
                   for name, figure in views.drawing.completion_figures(run, c).items()]
        summary = records.read_summary(run.path)
        records.update_summary(run.path, {"completion": {**summary.get("completion", {}), mask: c.summary()}})
    print("\n".join(str(path) for path in written))
    return c


def answers(run, completion=None, data_dir=None):
    """The true/false questions with reasons; (b) and (e) computed, from completion (complete's) if given."""
    try:
        with opened(run, "aevb answers", data_dir) as run:
            c = completion if completion is not None and completion.mask_name == "top" else _infer(run)
            demo = evaluation.answers.demonstration(c, records.read_metrics(run.path))
            records.update_summary(run.path, {"answers_demo": demo})
            texts = evaluation.answers.answer_texts(demo, run.split.image_shape[1])
    except CheckpointError as error:
        texts = evaluation.answers.answer_texts(None, 1, f"(The computed demonstration needs a trained run: {error})")
    for question, answer, reason in texts:
        print(f"{question}\n  {'True' if answer else 'False'}. {reason}")
    return texts


def report(run, data_dir=None):
    """Writes the run's self-contained HTML report; returns its path."""
    with opened(run, "aevb report", data_dir) as run:
        if stale := views.drawing.stale(run.path):  # the report never shows a figure older than its inputs
            figures(run, stale)
        path = files.write_report(run.path, views.report.page(run, records.read_summary(run.path)))
    print(f"report: {path.resolve()}")
    return path


def train_and_evaluate(settings, run_dir, data_dir=None, progress=True, seeds=None, exact_extras=True,
                       devices=parallel.ONE, quick=False):
    """Trains (or resumes, or finds trained) and evaluates (unless done at its last epoch): the Run (with seeds
    a list, see train); if interrupted, as far as it got with .interrupted True, not evaluated (the same call
    continues it). quick (or not exact_extras): no grid accuracy check, bounds against K or gap decomposition."""
    results = train(settings, run_dir, "auto", data_dir, progress, seeds, devices)
    results = results if seeds is not None else [results]
    stopped = any(result["status"] != "done" for result in results)
    runs = [Run(Path(r["run_dir"]), r["config"], r["params"], r["epoch"], r["split"], stopped) for r in results]
    extras = exact_extras and not quick
    for run in runs if not stopped else ():  # Dz = 2: the exact log p(x) and the bounds; else AIS (ais_images > 0)
        exact, ais = run.config.latent_dim == 2, {} if run.config.latent_dim != 2 and run.config.ais_images else None
        if not devices.agree(lambda run=run: records.evaluated(run.path, run.epoch, exact, ais is not None,
                                                               exact and extras), DECIDING):
            evaluate(run, progress=progress, exact=exact, exact_extras=extras, devices=devices, ais=ais)
    if seeds is not None:
        if devices.writer and not stopped:
            summarize_group(run_dir, [run.path for run in runs])
        return runs
    return runs[0]


def run_all(settings, run_dir, data_dir=None, progress=True, seeds=None, devices=parallel.ONE, quick=False):
    """What `aevb run` does: train or resume, evaluate, every figure, the completion, the answers,
    the report. Returns the report's path (a list with seeds), or None if training was interrupted.
    devices: training and evaluation run on them; the rest runs in process 0 alone (the other
    processes return []). quick: see train_and_evaluate."""
    members = files.members(settings, run_dir, seeds)
    with files.removed_if_refused([d for d, _ in members] if devices.writer else []), contextlib.ExitStack() as stack:
        devices.agree(lambda: lock.hold(stack, members, "auto", "aevb run"), DECIDING)
        runs = train_and_evaluate(settings, run_dir, data_dir, progress, seeds, devices=devices, quick=quick)
        if (runs if seeds is not None else [runs])[0].interrupted:
            return None
        if not devices.writer:
            return []
        reports = []
        for run in runs if seeds is not None else [runs]:
            drawn = records.timed(run.path, "figures", figures, run)  # each stage's seconds in summary.json
            records.timed(run.path, "answers", answers, run, records.timed(run.path, "completion", complete, run))
            reports.append(records.timed(run.path, "report", report, run))  # the report shows the stages before it
            tensorboard.add_summary(run.path, records.read_summary(run.path), drawn)
        return reports if seeds is not None else reports[0]


def sweep(grid, sweep_dir, seeds=None, data_dir=None, progress=True, devices=parallel.ONE, extras=False):
    """Trains and evaluates (extras: the exact evaluation's too) each combination of grid's values ({setting: values}),
    a run (with seeds, a group) under sweep_dir named by the settings it varies; a finished point skipped, a cut-short
    one resumed. Returns the points' directories, or None if stopped between epochs (Interrupted names the point)."""
    sweep_dir = Path(sweep_dir)
    points, names, varied = sweeps.sweep_points(grid)  # every bad combination refused before anything trains
    members = [member for point, name in zip(points, names, strict=True)
               for member in files.members(point, sweep_dir / name, seeds)]
    print(f"sweep {sweep_dir}: {len(points)} points x {len(seeds or [None])} seeds = {len(members)} runs", flush=True)
    devices.agree(lambda: lock.check_each(members, "auto", "aevb sweep"), DECIDING)
    if devices.writer:
        sweeps.write_sweep(sweep_dir, grid, varied, seeds, points)
    bar = tqdm([sweep_dir / name for name in names], desc=f"sweep {sweep_dir.name}", unit="run",
               disable=not progress, dynamic_ncols=True)
    done = 0  # points finished
    try:
        for point, directory in zip(points, bar, strict=True):
            bar.set_postfix_str(directory.name)
            trained = train_and_evaluate(point, directory, data_dir, progress, seeds, extras, devices)
            if (trained if seeds is not None else [trained])[0].interrupted:
                return None
            done += 1
    except (KeyboardInterrupt, Interrupted) as error:  # a signal in any stage, or between two: where the sweep stood
        raise Interrupted(f"{str(error) or 'stopped'}; in point {done + 1} of {len(points)} ({names[done]}), the "
                          f"{done} before it kept: the same command goes on from there") from None
    print(f"sweep {sweep_dir}: all {len(members)} runs done; compare them with: aevb compare {sweep_dir}")
    return [sweep_dir / name for name in names]


def compare(paths, out_dir=None):
    """One HTML page comparing the runs at or under paths (runs, groups, sweeps); returns its path. out_dir: default
    the one directory given, else runs/comparison."""
    out_dir = out_dir or (paths[0] if len(paths) == 1 else Path("runs") / "comparison")
    return views.compare.compare(list(paths), out_dir)
