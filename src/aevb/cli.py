"""The aevb command: parses arguments, calls aevb.pipeline, maps errors to exit codes: 0 done;
1 one line on stderr saying what failed and what to do (aevb.errors); 2 bad arguments (the usage
and one line); 130 stopped by Ctrl-C or SIGTERM."""

import dataclasses
import os
import shlex
import signal
import sys
from pathlib import Path

from .arguments import build_parser
from .config import AIS, Config
from .config_file import check_run_name, read_file
from .errors import ConfigError


def _file(args):  # the --config file's settings, vary and seeds, or None
    return read_file(args.config) if getattr(args, "config", None) else None


def _flags(args):  # the settings given as flags
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if getattr(args, f.name) is not None}


def _settings(args):  # the settings given: the file's, then the flags'; the rest from the defaults or the checkpoint
    flags, file = _flags(args), _file(args)
    if file and file["vary"] and args.command != "sweep":
        raise ConfigError(f"{file['file']} varies settings (a sweep): run it with aevb sweep NAME --config FILE")
    return {**(file["settings"] if file else {}), **flags}


def _grid(args):  # a sweep's grid (or list of grids): the file's settings and vary, the flags' values over both
    file = _file(args) or {"settings": {}, "vary": {}}
    flags = {name: value if isinstance(value, tuple) else (value,) for name, value in _flags(args).items()}  # --debug
    fixed = {name: (value,) for name, value in file["settings"].items()}
    several = isinstance(file["vary"], list)
    grids = [{**fixed, **grid, **flags} for grid in (file["vary"] if several else [file["vary"]])]
    return grids if several else grids[0]


def _ais(args):  # the AIS settings given with --ais (the rest from the run's config), or None; none without it
    given = {name: getattr(args, "bdmc" if name == "bdmc" else f"ais_{name}") for name in AIS}
    ignored = [f"--{'bdmc' if n == 'bdmc' else 'ais-' + n}" for n, value in given.items() if value is not None]
    if ignored and not args.ais or args.quick and not args.exact:
        raise ConfigError(f"{', '.join(ignored)} set AIS: add --ais" if ignored and not args.ais else
                          "--quick leaves parts of --exact out: add --exact")
    return {name: value for name, value in given.items() if value is not None} if args.ais else None


def _start(args):
    """The Devices the command runs on; a process other than process 0 prints nothing."""
    from . import parallel

    if not hasattr(args, "devices"):
        return parallel.ONE
    devices = parallel.start(args.devices, args.coordinator, args.num_processes, args.process_id)
    if not devices.writer:
        args.no_progress = True
        sys.stdout.flush()  # process 0 speaks for the job (gloo's C++ too); errors still reach stderr
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    # Each machine may have its own data folder (and only process 0 shows progress); the rest must agree.
    devices.same_everywhere({k: v for k, v in vars(args).items() if k not in ("process_id", "data_dir", "no_progress")})
    return devices


def _call(args, pipeline, argv):  # runs the command; returns its exit code
    devices = _start(args)
    progress, data_dir = not getattr(args, "no_progress", False), args.data_dir
    run_dir = Path(args.runs_dir) / check_run_name(args.name) if hasattr(args, "name") else None
    seeds = getattr(args, "seeds", None) or (_file(args) or {}).get("seeds")  # --seeds, else a settings file's
    if seeds is not None and getattr(args, "seed", None) is not None:  # only train, run and sweep have --seed
        raise ConfigError("give --seed or --seeds, not both")
    if args.command == "sweep":
        if pipeline.sweep(_grid(args), run_dir, seeds, data_dir, progress, devices) is None:
            return print(f"stopped after the epoch in flight; the sweep continues with: aevb {shlex.join(argv)}") or 130
        return 0
    if args.command == "release":
        from .course import release

        return release.command(args.notebook, args.out, args.replace)
    if args.command == "reproduce":
        from .protocols import reproduce

        if args.list or args.dry_run or args.protocol is None:  # nothing trained: what a protocol would do
            if not args.list and args.protocol is None:
                raise ConfigError("name a protocol (aevb reproduce --list shows them)")
            return print(reproduce.listing() if args.list else reproduce.describe(args.protocol, args.budget)) or 0
        if reproduce.reproduce(args.protocol, args.budget, args.runs_dir, data_dir, progress, seeds, devices) is None:
            print(f"stopped after the epoch in flight; it continues with the same command: aevb {shlex.join(argv)}")
            return 130
        return 0
    if args.command == "train":
        mode = "resume" if args.resume else "overwrite" if args.overwrite else "new"
        results = pipeline.train(_settings(args), run_dir, mode, data_dir, progress, seeds, devices,
                                 args.allow_changed_data)
        stopped = any(r["status"] == "interrupted" for r in (results if seeds is not None else [results]))
    else:
        stopped = args.command == "run" and pipeline.run_all(_settings(args), run_dir, data_dir, progress,
                                                             seeds, devices, args.quick) is None
    calls = {"data": lambda: pipeline.data_info(args.dataset, data_dir),
             "evaluate": lambda: pipeline.evaluate(run_dir, args.samples, args.k, progress, data_dir, args.exact,
                                                   not args.quick, devices, _ais(args)),
             "plot": lambda: pipeline.figures(run_dir, None if "all" in args.kinds else args.kinds, args.pairs,
                                              args.seed, data_dir),
             "complete": lambda: pipeline.complete(run_dir, args.mask, args.index, args.seed, data_dir),
             "answers": lambda: pipeline.answers(run_dir, data_dir=data_dir),
             "report": lambda: pipeline.report(run_dir, data_dir),
             "compare": lambda: pipeline.compare(args.paths, args.out)}
    if args.command in calls:
        calls[args.command]()
    if stopped:
        again = shlex.join(["aevb", args.command, "--runs-dir", args.runs_dir, "--name", args.name]
                           + (["--seeds", ",".join(map(str, seeds))] if seeds is not None else []))
        print(f"stopped after the epoch in flight, saved in {run_dir}. Continue with: {again}"
              + " --resume" * (args.command == "train"))
    return 130 if stopped else 0


def _interrupt(signum, frame):  # SIGTERM stops a command like Ctrl-C: temp files go, the lock is released
    raise KeyboardInterrupt


def main(argv=None):
    """Runs the aevb command argv (default: sys.argv's); returns its exit code, 0 for success."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from . import errors, pipeline  # after parsing: --help starts no JAX

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = _call(args, pipeline, sys.argv[1:] if argv is None else list(argv))
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
        return code
    except ConfigError as error:
        parser.error(str(error))
    except (Exception, KeyboardInterrupt) as error:
        message, code = errors.one_line(error)
        if message is None:
            raise
        if isinstance(error, BrokenPipeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more can be shown there
        print(f"aevb: error: {message}", file=sys.stderr)
        # JAX's exit would wait: minutes for a lost process, or for the epoch in flight to end.
        if errors.peers_lost(error) or isinstance(error, (errors.Interrupted, KeyboardInterrupt)):
            sys.stdout.flush(), sys.stderr.flush()
            os._exit(code)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)
