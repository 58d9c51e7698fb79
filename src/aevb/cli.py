"""The aevb command: parses arguments, calls aevb.pipeline, maps errors to exit codes.

Exit codes: 0 done; 1 a run, a checkpoint or the data is missing, damaged or does not fit
(one line on stderr); 2 bad arguments (the usage and one line); 130 interrupted.
"""

import argparse
import dataclasses
import sys
from pathlib import Path

from .config import Config, ConfigError, choices_of


def _number(kind, minimum=None):
    """An argparse type: text -> kind, at least minimum. Config checks its own settings' bounds."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            expected = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {expected}") from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def _pair(text):
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pair I,J of image indices")
    return tuple(_number(int, 0)(part) for part in parts)


def _add_settings(parser):
    """One flag per Config field, with its help and bounds from the field (aevb.config.setting)."""
    group = parser.add_argument_group("settings (defaults reproduce the assignment)")
    for field in dataclasses.fields(Config):
        flags = ["--" + field.name.replace("_", "-"), *field.metadata["aliases"]]
        help_text = f"{field.metadata['help']} (default {field.default})"
        if field.type is bool:
            group.add_argument(*flags, dest=field.name, action="store_true", default=None, help=help_text)
        elif field.metadata["choices"] is not None:
            group.add_argument(*flags, dest=field.name, choices=choices_of(field), help=help_text)
        else:
            group.add_argument(*flags, dest=field.name, type=_number(field.type), metavar=field.name.upper(),
                               help=help_text)


def build_parser():
    parser = argparse.ArgumentParser(prog="aevb", description="A hand-written VAE (Kingma & Welling 2013) on "
                                     "binarized images. Numbers are in nats per image.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help, run=True, progress=False):
        p = commands.add_parser(name, help=help)
        if run:
            p.add_argument("--name", default="default", help="run name: outputs go to RUNS_DIR/NAME (default default)")
            p.add_argument("--runs-dir", default="runs", help="folder of run directories (default runs)")
        p.add_argument("--data-dir", help="a folder holding the dataset's IDX files (tried before any download)")
        if progress:
            p.add_argument("--no-progress", action="store_true", help="no progress bars")
        return p

    p = command("data", "fetch and verify a dataset; print where it is and the class counts", run=False)
    p.add_argument("--dataset", default="mnist", choices=choices_of(Config.__dataclass_fields__["dataset"]))
    p = command("train", "train a VAE into RUNS_DIR/NAME", progress=True)
    _add_settings(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    mode.add_argument("--overwrite", action="store_true", help="start again even if the run has a checkpoint")
    p = command("evaluate", "test ELBO with standard error and the IWAE bound on log p(x)", progress=True)
    p.add_argument("--samples", type=_number(int, 1), help="S, z samples per image for the ELBO (default: config)")
    p.add_argument("-k", "--k", type=_number(int, 1), help="K, importance samples per image (default: config)")
    p = command("plot", "draw figures of a trained run into RUNS_DIR/NAME/figures")
    p.add_argument("kinds", nargs="*", metavar="KIND", default=["all"],
                   help="samples, latent, interpolate, manifold, curves, reconstructions, or all (default)")
    p.add_argument("--pairs", nargs="+", type=_pair, metavar="I,J",
                   help="training-image index pairs to interpolate between (default: 3 pairs chosen by --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed for prior samples and the chosen pairs")
    p = command("complete", "infer p(z | part of an image) by SVI and predict the rest")
    p.add_argument("--index", type=int, help="training image to complete (default: chosen by a stated criterion)")
    p.add_argument("--mask", choices=["top", "bottom", "left", "right", "random"], default="top",
                   help="the observed part (default top: the upper half of the rows)")
    p.add_argument("--seed", type=int, default=0)
    command("answers", "the true/false questions, answered, with computed demonstrations")
    command("report", "write RUNS_DIR/NAME/report.html: one self-contained page")
    _add_settings(command("run", "everything: train (or resume), evaluate, figures, completion, answers, report",
                          progress=True))
    return parser


def _settings(args):
    """The settings given on the command line; the rest come from the defaults or the checkpoint."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if getattr(args, f.name) is not None}


def _call(args, pipeline, run_dir):
    """Runs the command; returns its exit code."""
    progress = not getattr(args, "no_progress", False)
    if args.command == "data":
        pipeline.data_info(args.dataset, args.data_dir)
    elif args.command == "train":
        mode = "resume" if args.resume else "overwrite" if args.overwrite else "new"
        result = pipeline.train(_settings(args), run_dir, mode, args.data_dir, progress)
        if result["status"] == "interrupted":
            print(f"interrupted after epoch {result['epoch']}; checkpoint saved in {run_dir}. "
                  f"Continue with: aevb train --name {args.name} --resume")
            return 130
    elif args.command == "evaluate":
        pipeline.evaluate(run_dir, args.samples, args.k, progress, args.data_dir)
    elif args.command == "plot":
        kinds = None if "all" in args.kinds else args.kinds
        pipeline.figures(run_dir, kinds, args.pairs, args.seed, args.data_dir)
    elif args.command == "complete":
        pipeline.complete(run_dir, args.mask, args.index, args.seed, args.data_dir)
    elif args.command == "answers":
        pipeline.answers(run_dir, data_dir=args.data_dir)
    elif args.command == "report":
        pipeline.report(run_dir, args.data_dir)
    elif args.command == "run" and pipeline.run_all(_settings(args), run_dir, args.data_dir, progress) is None:
        print(f"interrupted; checkpoint saved in {run_dir}. Continue with: aevb run --name {args.name}")
        return 130
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from . import datasets, pipeline, rundir, train

    run_dir = Path(args.runs_dir) / args.name if hasattr(args, "name") else None
    try:
        return _call(args, pipeline, run_dir)
    except ConfigError as error:
        parser.error(str(error))
    except (datasets.DataError, rundir.CheckpointError, train.TrainingDiverged) as error:
        print(f"aevb: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aevb: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
