"""The aevb command: parses arguments and calls the modules. Kept thin on purpose."""

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from .config import Config

DEFAULTS = Config()


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _pair(text):
    try:
        i, j = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pair I,J of image indices") from None
    if not (0 <= i < 60000 and 0 <= j < 60000):
        raise argparse.ArgumentTypeError(f"{text!r}: indices must be image numbers of the training set")
    return i, j


def _add_run(parser):
    parser.add_argument("--name", default="default", help="run name: outputs go to RUNS_DIR/NAME (default: default)")
    parser.add_argument("--runs-dir", default="runs", help="folder of run directories (default: runs)")


def _add_data(parser):
    parser.add_argument("--data-dir", help="a folder holding the MNIST IDX files (tried before any download)")


def _add_training(parser):
    group = parser.add_argument_group("training settings (defaults reproduce the assignment)")
    group.add_argument("--epochs", type=_positive_int, help=f"default {DEFAULTS.epochs}")
    group.add_argument("--batch-size", type=_positive_int, help=f"default {DEFAULTS.batch_size}")
    group.add_argument("--learning-rate", "--lr", type=_positive_float, help=f"default {DEFAULTS.learning_rate}")
    group.add_argument("--latent-dim", type=_positive_int, help=f"Dz, default {DEFAULTS.latent_dim}")
    group.add_argument("--hidden-dim", type=_positive_int, help=f"default {DEFAULTS.hidden_dim}")
    group.add_argument("--num-samples", type=_positive_int, help="z samples per image in the training ELBO (default 1)")
    group.add_argument("--kl", choices=["mc", "analytic"], help="ELBO estimator (default mc)")
    group.add_argument("--seed", type=int, help=f"default {DEFAULTS.seed}")
    group.add_argument("--checkpoint-every", type=_positive_int, help=f"epochs, default {DEFAULTS.checkpoint_every}")
    group.add_argument("--n-train", type=_positive_int, help=f"default {DEFAULTS.n_train}")
    group.add_argument("--n-test", type=_positive_int, help=f"default {DEFAULTS.n_test}")
    group.add_argument("--test-split", choices=["assignment", "official"],
                       help="assignment: training images 10000-19999 (default); official: the MNIST test set")
    group.add_argument("--debug", action="store_true", default=None, help="train and test on 100 images each")
    group.add_argument("--eval-samples", type=_positive_int, help=f"S for the ELBO, default {DEFAULTS.eval_samples}")
    group.add_argument("--iwae-k", type=_positive_int, help=f"K for the IWAE bound, default {DEFAULTS.iwae_k}")


def _config_overrides(args):
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
            if getattr(args, f.name, None) is not None}


def build_parser():
    parser = argparse.ArgumentParser(prog="aevb", description="A hand-written VAE (Kingma & Welling 2013) on "
                                     "binarized MNIST. Numbers are in nats per image.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("data", help="fetch and verify MNIST; print where it is and the class counts")
    _add_data(p)

    p = commands.add_parser("train", help="train a VAE into runs/NAME")
    _add_run(p), _add_data(p), _add_training(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    mode.add_argument("--overwrite", action="store_true", help="start again even if the run has a checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = commands.add_parser("evaluate", help="test ELBO with standard error and the IWAE bound on log p(x)")
    _add_run(p), _add_data(p)
    p.add_argument("--samples", type=_positive_int, help="S, z samples per image for the ELBO (default: config)")
    p.add_argument("-k", "--k", type=_positive_int, help="K, importance samples per image (default: config, 1000)")
    p.add_argument("--no-progress", action="store_true")

    p = commands.add_parser("plot", help="draw figures of a trained run into runs/NAME/figures")
    _add_run(p), _add_data(p)
    p.add_argument("kinds", nargs="*", metavar="KIND", default=["all"],
                   help="samples, latent, interpolate, manifold, curves, reconstructions, or all (default)")
    p.add_argument("--pairs", nargs="+", type=_pair, metavar="I,J",
                   help="training-image index pairs to interpolate between (default: 3 pairs chosen by --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed for prior samples and the chosen pairs")

    p = commands.add_parser("complete", help="infer p(z | part of an image) by SVI and predict the rest")
    _add_run(p), _add_data(p)
    p.add_argument("--index", type=int, help="training image to complete (default: the best-fitted non-1 digit)")
    p.add_argument("--mask", choices=["top", "bottom", "left", "right", "random"], default="top",
                   help="the observed part (default top: rows 0-13)")
    p.add_argument("--seed", type=int, default=0)

    p = commands.add_parser("answers", help="the true/false questions, answered, with computed demonstrations")
    _add_run(p), _add_data(p)

    p = commands.add_parser("report", help="write runs/NAME/report.html: one self-contained page")
    _add_run(p), _add_data(p)

    p = commands.add_parser("run", help="everything: train (or resume), evaluate, figures, report")
    _add_run(p), _add_data(p), _add_training(p)
    p.add_argument("--no-progress", action="store_true")
    return parser


def cmd_data(args):
    from . import data

    arrays, source = data.fetch_mnist(args.data_dir)
    print(f"MNIST verified (SHA-256 of the standard IDX files), from {source}")
    print(f"cached at {data.cache_dir() / data.CACHE_FILE}")
    splits = [("train (images 0-9999)", arrays["train_labels"][:10000]),
              ("test (images 10000-19999)", arrays["train_labels"][10000:20000]),
              ("official test set", arrays["test_labels"])]
    print(f"{'split':28s} " + " ".join(f"{d:>5d}" for d in range(10)) + "  total")
    for name, labels in splits:
        counts = np.bincount(labels, minlength=10)
        print(f"{name:28s} " + " ".join(f"{c:5d}" for c in counts) + f"  {counts.sum():5d}")
    return 0


def _run_dir(args):
    return Path(args.runs_dir) / args.name


def _train(args, parser, allow_resume_if_present=False):
    from . import train

    run_dir = _run_dir(args)
    overrides = _config_overrides(args)
    resume = getattr(args, "resume", False)
    if allow_resume_if_present and (run_dir / train.CHECKPOINT).exists():
        # train.train refuses a different config when resuming; --epochs may extend the run.
        stored, epoch = train.read_checkpoint_config(run_dir)
        if epoch >= stored.epochs and _make_config(parser, {**dataclasses.asdict(stored), **overrides}) == stored:
            print(f"{run_dir} is already trained ({epoch} epochs)")
            return {"status": "done", "config": stored}
        resume = True
    if resume:
        stored, _ = train.read_checkpoint_config(run_dir)
        config = _make_config(parser, {**dataclasses.asdict(stored), **overrides})
        result = train.train(config, run_dir, resume=True, data_dir=args.data_dir, progress=not args.no_progress)
    else:
        config = _make_config(parser, overrides)
        if getattr(args, "overwrite", False):
            # Starting again: the old checkpoint and its numbers would only mislead.
            for stale in (train.CHECKPOINT, "summary.json"):
                (run_dir / stale).unlink(missing_ok=True)
        result = train.train(config, run_dir, data_dir=args.data_dir, progress=not args.no_progress)
    if result["status"] == "interrupted":
        print(f"interrupted after epoch {result['epoch']}; checkpoint saved in {run_dir}. "
              f"Continue with: aevb train --name {args.name} --resume")
    else:
        print(f"trained {run_dir}: train ELBO {result['train_elbo_last_epoch']:.2f} nats/image in the last epoch, "
              f"{result['seconds_per_epoch']:.3f} s/epoch")
    return result


def _make_config(parser, values):
    try:
        return Config(**values)
    except (TypeError, ValueError) as error:
        parser.error(str(error))


def cmd_evaluate(args):
    from . import data, evaluate, train

    run_dir = _run_dir(args)
    config, params, _, _ = train.load_checkpoint(run_dir)
    x_train, _, x_test, _ = data.load_for_config(config, args.data_dir)
    results = evaluate.evaluate(params, x_train, x_test, args.samples or config.eval_samples, args.k or config.iwae_k,
                                progress=not args.no_progress)
    train.update_summary(run_dir, results)
    print(f"test ELBO  {results['test_elbo']:.2f} ± {results['test_elbo_se']:.2f} nats/image "
          f"(S={results['elbo_samples']}, ± one standard error over {x_test.shape[0]} images)")
    print(f"test IWAE  {results['test_iwae']:.2f} ± {results['test_iwae_se']:.2f} nats/image "
          f"(K={results['iwae_k']}; a lower bound on log p(x))")
    print(f"train ELBO {results['train_elbo']:.2f} ± {results['train_elbo_se']:.2f} nats/image")
    print(f"summary: {run_dir / 'summary.json'}")
    return 0


def _load_run(args):
    from . import data, train

    run_dir = _run_dir(args)
    config, params, _, _ = train.load_checkpoint(run_dir)
    return run_dir, config, params, data.load_for_config(config, args.data_dir)


def cmd_plot(args, parser):
    from . import plots, train

    kinds = list(plots.KINDS) if "all" in args.kinds else args.kinds
    unknown = [kind for kind in kinds if kind not in plots.KINDS]
    if unknown:
        parser.error(f"unknown figure {unknown[0]!r}; choose from {', '.join(plots.KINDS)} or all")
    run_dir, config, params, datasets = _load_run(args)
    if args.pairs and max(max(pair) for pair in args.pairs) >= len(datasets[0]):
        parser.error(f"--pairs: the training set has {len(datasets[0])} images")
    metrics = train.read_metrics(run_dir)
    for kind, path in plots.draw_figures(run_dir / "figures", config, params, datasets, metrics, kinds,
                                         args.pairs, args.seed).items():
        print(f"{kind:16s} {path}")
    return 0


_COMPLETIONS = {}  # `aevb run` asks for the same completion twice (complete, then answers): compute it once


def _completion(args, parser, mask_kind="top", index=None, seed=0):
    key = (str(_run_dir(args).resolve()), mask_kind, index, seed)
    if key not in _COMPLETIONS:
        _COMPLETIONS[key] = _compute_completion(args, parser, mask_kind, index, seed)
    return _COMPLETIONS[key]


def _compute_completion(args, parser, mask_kind, index, seed):
    import jax

    from . import evaluate, partial

    run_dir, config, params, datasets = _load_run(args)
    x_train, y_train = datasets[0], datasets[1]
    if index is None:
        elbos = evaluate.elbo_per_image(params, x_train, config.eval_samples)
        index = partial.choose_digit(elbos, y_train)
        criterion = "highest ELBO among training images of classes other than 1"
    elif not 0 <= index < len(x_train):
        parser.error(f"--index must be from 0 to {len(x_train) - 1}")
    else:
        criterion = "chosen with --index"
    mask = partial.make_mask(mask_kind, jax.random.PRNGKey(seed))
    result = partial.complete(jax.random.PRNGKey(seed), params, x_train[index], mask)
    return run_dir, x_train[index], int(y_train[index]), index, criterion, mask, result


def cmd_complete(args, parser):
    from . import plots, train

    run_dir, x, label, index, criterion, mask, result = _completion(args, parser, args.mask, args.index, args.seed)
    folder = run_dir / "figures"
    name = f"complete_{args.mask}"
    title = f"Training image #{index} (a {label}; {criterion}), observed: {args.mask}"
    written = [plots.save(plots.completion_figure(x, result["completions"], mask, title), folder, name)]
    if "grid" in result:
        figure = plots.posterior_figure(result["grid"], result["q_mean"], result["q_log_std"], result["encoder_mean"],
                                        result["encoder_log_std"], f"Posterior given the {args.mask} of image #{index}")
        written.append(plots.save(figure, folder, name + "_posterior"))
    written.append(plots.save(plots.trace_figure(result["elbo_trace"]), folder, name + "_trace"))
    numbers = {
        "index": index, "label": label, "criterion": criterion, "mask": args.mask,
        "hidden_pixels": result["hidden_pixels"], "q_mean": result["q_mean"].tolist(),
        "q_std": np.exp(result["q_log_std"]).tolist(), "svi_final_elbo": float(np.mean(result["elbo_trace"][-15:])),
        "log_p_hidden_under_q_predictive": result["log_p_hidden_under_q_predictive"],
        "log_p_hidden_under_prior_predictive": result["log_p_hidden_under_prior_predictive"],
        "log_p_hidden_under_encoder_of_whole_image": result["log_p_hidden_under_encoder_predictive"],
        "units": "nats per image",
    }
    completion = {**train.read_summary(run_dir).get("completion", {}), args.mask: numbers}
    train.update_summary(run_dir, {"completion": completion})
    print(f"image #{index} (a {label}; {criterion}); observed: {args.mask}")
    print(f"log p(true hidden pixels) under the SVI predictive {numbers['log_p_hidden_under_q_predictive']:.2f} nats, "
          f"under the prior predictive {numbers['log_p_hidden_under_prior_predictive']:.2f} nats "
          f"({numbers['hidden_pixels']} pixels)")
    for path in written:
        print(path)
    return 0


def cmd_answers(args, parser):
    from . import partial, train

    density = partial.normal_density_at_mean(0.1)
    demos = {"(e)": f"computed: N(0, 0.1^2) at 0 has density {density:.4f} > 1."}
    try:
        run_dir, _, _, index, _, _, result = _completion(args, parser)
        i, j, corr, ess = result["correlation"]
        demos["(b)"] = (f"computed: given the top of training image #{index}, bottom pixels ({i // 28},{i % 28}) and "
                        f"({j // 28},{j % 28}) have correlation {corr:+.3f} under p(bottom | top) (self-normalized "
                        f"importance sampling, effective sample size {ess:.0f}); given z it is exactly 0.")
        train.update_summary(run_dir, {"answers_demo": {"pixel_i": i, "pixel_j": j, "correlation": corr,
                                                         "effective_sample_size": ess, "normal_density_at_0": density}})
    except train.CheckpointError as error:
        demos["(b)"] = f"(the computed demonstration needs a trained run: {error})"
    for question, answer, reason in partial.ANSWERS:
        print(question)
        print(f"  {'True' if answer else 'False'}. {reason}")
        tag = question.split()[0]
        if tag in demos:
            print(f"  {demos[tag]}")
    return 0


def cmd_report(args, parser):
    from . import plots, report, train

    run_dir, config, params, datasets = _load_run(args)
    summary = train.read_summary(run_dir)
    z_means = plots.encode_means(params, datasets[0])
    path = report.write(run_dir, report.render(run_dir, config, params, summary, z_means, datasets[1]))
    print(f"report: {path.resolve()}")
    return 0


def cmd_train(args, parser):
    result = _train(args, parser)
    return 130 if result["status"] == "interrupted" else 0


def cmd_run(args, parser):
    result = _train(args, parser, allow_resume_if_present=True)
    if result["status"] == "interrupted":
        return 130
    args.samples, args.k = None, None
    cmd_evaluate(args)
    args.kinds, args.pairs, args.seed = ["all"], None, 0
    cmd_plot(args, parser)
    args.index, args.mask = None, "top"
    cmd_complete(args, parser)
    cmd_answers(args, parser)
    cmd_report(args, parser)
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from . import data, train

    try:
        if args.command == "data":
            return cmd_data(args)
        if args.command == "train":
            return cmd_train(args, parser)
        if args.command == "evaluate":
            return cmd_evaluate(args)
        if args.command == "plot":
            return cmd_plot(args, parser)
        if args.command == "complete":
            return cmd_complete(args, parser)
        if args.command == "answers":
            return cmd_answers(args, parser)
        if args.command == "report":
            return cmd_report(args, parser)
        if args.command == "run":
            return cmd_run(args, parser)
    except (data.DataError, train.CheckpointError, train.TrainingDiverged) as error:
        print(f"aevb: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aevb: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
