"""The command line's parser: one subcommand per verb of aevb.pipeline, and one flag per Config
field (its help and bounds come from the field: aevb.config.setting), so a new setting is one
line in aevb.config and appears here by itself."""

import argparse
import dataclasses

from .config import MAX_SAMPLES, Config, choices_of, shown
from .config_file import check_seeds


def _number(kind, minimum=None, maximum=None):
    """An argparse type: text -> kind, from minimum to maximum. Config checks its own settings' bounds."""
    def parse(text):
        try:
            # ASCII only: int() takes other scripts' digits, which no file or page of aevb shows back
            value = kind(text) if text.strip().isascii() else kind("x")
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{shown(text)} is not a{' whole' if kind is int else ''} number"
                                             ) from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, not {value}")
        return value

    return parse


def _pair(text):
    if text.count(",") != 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pair I,J of image indices")
    return tuple(_number(int, 0)(part) for part in text.split(","))


def _seeds(text):
    """--seeds 0,1,2 -> (0, 1, 2), checked as a file's seeds are (aevb.config_file.check_seeds)."""
    try:
        return check_seeds([_number(int, 0, 2**32 - 1)(part) for part in text.split(",")])
    except ValueError as error:  # aevb.errors.ConfigError
        raise argparse.ArgumentTypeError(str(error)) from None


def _device_count(text):
    """--devices N or all."""
    return "all" if text == "all" else _number(int, 1)(text)


def _add_devices(p):
    """Where a command computes: several devices, several processes (aevb.parallel)."""
    g = p.add_argument_group("devices and processes (see the README's 'Several devices')")
    g.add_argument("--devices", type=_device_count, metavar="N|all",
                   help="devices to split each batch and the evaluated images over: a number or all "
                   "(default 1; with several processes, all). On CPU, N devices are simulated")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address, for several processes "
                   "(or JAX_COORDINATOR_ADDRESS)")
    g.add_argument("--num-processes", type=_number(int, 1), metavar="P",
                   help="processes in the job, one per machine or GPU (or JAX_NUM_PROCESSES)")
    g.add_argument("--process-id", type=_number(int, 0), metavar="I",
                   help="this process's number, 0 to P-1; 0 writes the run (or JAX_PROCESS_ID)")


def _values(kind):
    """An argparse type for a sweep: "2,5,10" -> (2, 5, 10), each parsed as kind."""
    def parse(text):
        return tuple(part if kind is str else _number(kind)(part) for part in text.split(","))

    return parse


def _add_settings(group, lists=False):
    """One flag per Config field, with its help and bounds from the field (aevb.config.setting).
    lists: each flag takes comma-separated values (a sweep's grid)."""
    for field in dataclasses.fields(Config):
        flags = ["--" + field.name.replace("_", "-"), *field.metadata["aliases"]]
        low, high = field.metadata["minimum"], field.metadata["maximum"]
        bounds = ("" if low is None and high is None else f"; above {low}" if high is None and field.type is float
                  else f"; at least {low}" if high is None else f"; {low} to {high}")
        help_text = f"{field.metadata['help']} (default {field.default}{bounds})"
        if lists and field.type is not bool:
            choices = f"{', '.join(choices_of(field))}: " if field.metadata["choices"] else ""
            group.add_argument(*flags, dest=field.name, type=_values(field.type), metavar="V1,V2,...",
                               help=choices + help_text)
        elif field.type is bool:
            group.add_argument(*flags, dest=field.name, action="store_true", default=None, help=help_text)
        elif field.name == "dataset":  # a table name or npz:PATH; Config checks it
            group.add_argument(*flags, dest=field.name, metavar="DATASET",
                               help=f"{', '.join(choices_of(field))}, or npz:PATH: {help_text}")
        elif field.metadata["choices"] is not None:
            group.add_argument(*flags, dest=field.name, choices=choices_of(field), help=help_text)
        else:
            group.add_argument(*flags, dest=field.name, type=_number(field.type), metavar=field.name.upper(),
                               help=help_text)


def build_parser():
    """The argparse parser of every aevb command and its flags (the settings' flags from Config's fields)."""
    parser = argparse.ArgumentParser(prog="aevb", description="A hand-written VAE (Kingma & Welling 2013) on "
                                     "binarized images. Numbers are in nats per image.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help, run=True, progress=False, settings=False, devices=False):
        """A subcommand; with settings, the training flags and --seeds; with devices, --devices and
        the flags of several processes."""
        p = commands.add_parser(name, help=help)
        if devices:
            _add_devices(p)
        if run:
            p.add_argument("--name", default="default",
                           help="run name, one folder name: outputs go to RUNS_DIR/NAME (default default)")
            p.add_argument("--runs-dir", default="runs", help="folder of run directories (default runs)")
        p.add_argument("--data-dir", help="a folder holding the dataset's IDX files (tried before any download)")
        if progress:
            p.add_argument("--no-progress", action="store_true", help="no progress bars")
        if settings:
            p.add_argument("--config", metavar="FILE", help="read the settings from FILE (a run's config.json, or a "
                           "file of settings); the flags given override it")
            _add_settings(p.add_argument_group("settings (defaults reproduce the assignment)"))
            p.add_argument("--seeds", type=_seeds, metavar="S1,S2,...",
                           help="train these seeds together in one compiled program, each into RUNS_DIR/NAME/seed-S, "
                           "with RUNS_DIR/NAME/group.json holding the mean and spread across seeds")
        return p

    p = command("data", "fetch and verify a dataset; print where it is and the class counts", run=False)
    p.add_argument("--dataset", default="mnist", metavar="DATASET",
                   help=f"{', '.join(choices_of(Config.__dataclass_fields__['dataset']))}, or npz:PATH")
    mode = command("train", "train a VAE into RUNS_DIR/NAME", True, True, True, True).add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    mode.add_argument("--overwrite", action="store_true", help="start again even if the run has a checkpoint")
    commands.choices["train"].add_argument("--allow-changed-data", action="store_true",
                                           help="resume although the run's npz file has changed since it trained")
    p = command("evaluate", "test ELBO with standard error and the IWAE bound on log p(x)", progress=True,
                devices=True)
    p.add_argument("--samples", type=_number(int, 1, MAX_SAMPLES),
                   help="S, z samples per image for the ELBO (default: config)")
    p.add_argument("-k", "--k", type=_number(int, 1, MAX_SAMPLES),
                   help="K, importance samples per image (default: config)")
    p.add_argument("--exact", action="store_true", help="also the exact log p(x) by quadrature (Dz = 2 only), "
                   "the bounds against it and the gap decomposition")
    p.add_argument("--quick", action="store_true", help="with --exact: the exact log p(x) only, without its accuracy "
                   "check, the bounds against K and the gap decomposition (seconds instead of minutes)")
    p.add_argument("--ais", action="store_true", help="also log p(x) by annealed importance sampling with HMC (any "
                   "Dz), with BDMC's bounds on data simulated from the model")
    ais = p.add_argument_group("AIS settings (with --ais; default: the run's config, set by aevb train's flags of "
                               "the same names)")
    for field in dataclasses.fields(Config):
        if field.name.startswith("ais_") or field.name == "bdmc":
            ais.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=_number(int, field.metadata[
                "minimum"], field.metadata["maximum"]), metavar=field.name.upper(), help=field.metadata["help"])
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
    p.add_argument("--seed", type=int, default=0, help="seed of the SVI fit (and of the random mask)")
    command("answers", "the true/false questions, answered, with computed demonstrations")
    command("report", "write RUNS_DIR/NAME/report.html: one self-contained page")
    command("run", "everything: train (or resume), evaluate, figures, completion, answers, report", progress=True,
            settings=True, devices=True).add_argument(
        "--quick", action="store_true", help="a first look: the evaluation without the exact grid's accuracy check, "
        "the bounds against K and the gap decomposition (a later aevb run without --quick adds them)")
    p = command("sweep", "train and evaluate a grid of settings, each an ordinary run in RUNS_DIR/NAME/POINT; "
                "a finished run is skipped", run=False, progress=True, devices=True)
    p.add_argument("name", metavar="NAME", help="the sweep's folder name")
    p.add_argument("--runs-dir", default="runs", help="folder of run directories (default runs)")
    p.add_argument("--seeds", type=_seeds, metavar="S1,S2,...", help="seeds trained together at each point")
    p.add_argument("--config", metavar="FILE", help="a sweep file: {\"settings\": {...}, \"vary\": {setting: [values]} "
                   "or a list of such grids, \"seeds\": [...]} (or a run's config.json); the flags given override it")
    _add_settings(p.add_argument_group("settings: comma-separated values make the grid"), lists=True)
    p = command("reproduce", "run a protocol of the literature as a sweep in RUNS_DIR/reproduce-NAME-BUDGET and write "
                "a page with the paper's numbers beside ours", run=False, progress=True, devices=True)
    p.add_argument("protocol", metavar="NAME", nargs="?", help="a protocol's name, such as burda2016 "
                   "(--list lists them all: the files in aevb/protocols)")
    p.add_argument("--list", action="store_true", help="list the protocols and their budgets; run nothing")
    p.add_argument("--dry-run", action="store_true", help="print the protocol's points, settings, budget (epochs and "
                   "an estimate of hours here, from a few timed steps), published numbers with their sources and "
                   "what differs from the paper; train nothing")
    p.add_argument("--budget", choices=("short", "full"), default="short",
                   help="short: a stated fraction of the paper's epochs that fits a CPU session; full: the paper's")
    p.add_argument("--runs-dir", default="runs", help="folder of run directories (default runs)")
    p.add_argument("--seeds", type=_seeds, metavar="S1,S2,...", help="seeds trained together at each point")
    p = command("release", "the student's copy of an assignment notebook: each ### BEGIN SOLUTION ... ### END SOLUTION "
                "becomes raise NotImplementedError() (nbgrader's markers)", run=False)
    p.add_argument("notebook", metavar="NOTEBOOK", help="the solution notebook (e.g. notebooks/assignment.ipynb)")
    p.add_argument("--out", help="where the student's copy goes (default release/NOTEBOOK's name); never the "
                   "notebook itself, and a file there only if it is an earlier student copy (or with --replace)")
    p.add_argument("--replace", action="store_true", help="write over a file at --out that is not a student copy")
    p = command("compare", "one HTML page comparing runs, groups of seeds and sweeps", run=False)
    p.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP", help="run, group or sweep directories")
    p.add_argument("--out", help="folder for compare.html and its figures (default: the one directory given, "
                   "else runs/comparison)")
    return parser
