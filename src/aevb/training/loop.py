"""The training loop: epochs of one seed or of several trained together, checkpoints, metrics, divergence, a
fall of the training objective (aevb.training.stability), signals and lost processes. What the loop measures after
each epoch (the test ELBO, the tracked log p(x)) is given to it as `measure` (aevb.evaluation.curves.monitor, passed
in by aevb.pipeline): training does not import evaluation."""

import math
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from .. import parallel
from ..errors import ConfigError, Interrupted, ProcessesError, TrainingDiverged, first_line, peers_lost
from ..runs import checkpoint, files, records, tensorboard
from .compiled import check_memory, compile_notice, init_state, keep_where, make_epoch, member, stack
from ..parallel import wait
from .signals import StopRequest
from .stability import fall
from .trained import restore


def _kept(run_dir, last_saved):
    if last_saved is None:
        return f"no checkpoint had been saved in {run_dir} yet"
    return f"the checkpoint of epoch {last_saved} in {run_dir} is kept"


def _kept_all(seeds):
    """What is kept of every seed of a group, in one clause where they stand alike (hundreds of seeds)."""
    last = {s.last_saved for s in seeds}
    if len(seeds) <= 3 or len(last) > 1:
        return "; ".join(_kept(s.run_dir, s.last_saved) for s in seeds)
    where, last = f"the {len(seeds)} seed folders of {Path(seeds[0].run_dir).parent}", last.pop()
    return f"no checkpoint had been saved in {where} yet" if last is None else \
        f"the checkpoints of epoch {last} in {where} are kept"


class _Seed:
    """One run of a group being trained: where it goes and how far it is."""

    def __init__(self, config, run_dir, resume, devices):
        self.config, self.run_dir = config, run_dir
        if resume and devices.writer:
            _, self.params, self.opt_state, self.start = restore(run_dir)
        else:
            (self.params, self.opt_state), self.start = init_state(config), 0
        if devices.processes > 1:  # every process starts from process 0's state: it alone reads the run
            self.params, self.opt_state, start = devices.broadcast((self.params, self.opt_state, np.int64(self.start)))
            self.start = int(start)
        self.epoch, self.last_saved, self.diverged = self.start, self.start if resume else None, None

    @property
    def active(self):
        return self.diverged is None and self.epoch < self.config.epochs


def train(config, run_dir, split, measure, resume=False, progress=True, devices=parallel.ONE):
    """Trains config on split in run_dir; returns a dict with 'status' ("done" or "interrupted").

    resume: continue from run_dir's checkpoint (aevb.runs.checkpoint.resolve has checked that it fits).
    measure(epoch, params) -> the metrics row's measured fields, with "test_elbo" (see
    aevb.evaluation.curves.monitor); a test ELBO that is not finite counts as divergence.
    A checkpoint is written only when the parameters, Adam's state and the epoch's objectives are
    finite: otherwise TrainingDiverged names the epoch and the last good checkpoint. A second Ctrl-C
    or SIGTERM raises Interrupted, naming what was kept. devices: see make_epoch; with several
    processes each calls this alike, and process 0 alone reads and writes run_dir.
    """
    return train_group([config], [run_dir], split, measure, [resume], progress, devices)[0]


def train_group(configs, run_dirs, split, measure, resume, progress=True, devices=parallel.ONE):
    """Trains configs that differ only in their seed together, each into its run directory, in
    one compiled epoch (the seeds' steps side by side); returns train's result dict for each.

    Each seed gets the draws and, bit for bit, the parameters it gets trained alone.
    Seeds may resume from different epochs: one that has finished keeps its state. A seed that
    diverges stops (its last good checkpoint is kept) while the others go on; TrainingDiverged
    then names it at the end; ConfigError for a batch the data or devices cannot make, Interrupted on a signal,
    ProcessesError where a process is lost. split: an aevb.data.splits.Split; measure: evaluation.curves.monitor's
    (what each epoch's row measures); resume: each run's checkpoint.resolve result."""
    config = configs[0]
    if len(split.x_train) < config.batch_size:
        raise ConfigError(f"batch size {config.batch_size} exceeds the {len(split.x_train)} training images")
    if config.batch_size % devices.count:
        raise ConfigError(f"batch size {config.batch_size} is not a multiple of the {devices.count} devices: each "
                          "takes an equal share of every batch (choose --batch-size or --devices to fit)")
    check_memory(config, len(configs))  # before any state is made
    compiling = compile_notice(config, len(configs)) if len(configs) > 1 else ""  # said before anything is written
    seeds = [_Seed(c, d, r, devices) for c, d, r in zip(configs, run_dirs, resume, strict=True)]
    grouped = len(seeds) > 1
    x_train = devices.replicate(jnp.asarray(split.train_input))  # grey levels with dynamic binarization
    for seed in (s for s in seeds if s.active and devices.writer):  # a finished run is left as it is
        records.write_config(seed.run_dir, seed.config)
        records.write_metrics(seed.run_dir, records.read_metrics(seed.run_dir, seed.start))  # drop epochs after it
    if grouped:
        epoch_fn = make_epoch(config, tuple(c.seed for c in configs), devices)
        params, opt_state = stack([s.params for s in seeds]), stack([s.opt_state for s in seeds])
    else:
        epoch_fn, params, opt_state = make_epoch(config, devices=devices), seeds[0].params, seeds[0].opt_state
    params, opt_state = devices.replicate((params, opt_state))

    def of(tree, i):  # seed i's part of the state: stacked when grouped, the state itself when not
        return member(tree, i) if grouped else tree

    images_per_epoch = (x_train.shape[0] // config.batch_size) * config.batch_size
    first, last = min(s.epoch for s in seeds), max(c.epochs for c in configs)
    bar = tqdm(range(first + 1, last + 1), initial=first, total=last, unit="epoch", dynamic_ncols=True,
               desc=f"train seeds {files.seeds_text([c.seed for c in configs])}" if grouped else "train",
               disable=not progress)
    status = "done"
    finished = [s.epoch for s in seeds]  # the epochs (params, opt_state) hold: every process finished them
    try:
        with StopRequest() as stop:
            if not _compiled(epoch_fn, seeds, grouped, (params, opt_state, x_train), stop, bar, devices, compiling):
                raise Interrupted(f"stopped while compiling, before epoch {first + 1} began; {_kept_all(seeds)}")
            for _ in bar:
                running = [s for s in seeds if s.active]
                if not running:
                    break
                began = time.perf_counter()
                if grouped:
                    active = np.array([s.active for s in seeds])
                    new_params, new_opt_state, metrics = epoch_fn(params, opt_state, x_train,
                                                                  np.array([s.epoch + 1 for s in seeds]), active)
                else:
                    new_params, new_opt_state, metrics = epoch_fn(params, opt_state, x_train, seeds[0].epoch + 1)
                metrics = wait(metrics)  # the epoch in flight, a second Ctrl-C heard while it runs
                train_objectives = [float(v) for v in jnp.atleast_1d(metrics["train_objective"])]
                finite = [bool(v) for v in jnp.atleast_1d(metrics["finite"])]
                elapsed = time.perf_counter() - began
                for i, seed in enumerate(seeds):
                    if seed in running:
                        _record(seed, of(new_params, i), train_objectives[i], finite[i], elapsed, measure, devices)
                        bar.set_postfix(train_elbo=f"{train_objectives[i]:.2f}",
                                        images_per_s=f"{len(running) * images_per_epoch / elapsed:.0f}")
                if not grouped and seeds[0].diverged:
                    raise TrainingDiverged(seeds[0].diverged)
                # The new state where a seed trained and stayed finite; the old one where it diverged.
                kept = np.array([s.diverged is None for s in seeds])
                params, opt_state = keep_where(kept, (new_params, new_opt_state), (params, opt_state)) if grouped \
                    else (new_params, new_opt_state)
                finished = [s.epoch for s in seeds]
                stopping = devices.any(stop.requested)  # a signal to one process stops them all, at the same epoch
                for i, seed in enumerate(seeds):
                    epoch_done = seed in running and seed.diverged is None
                    if epoch_done and (seed.epoch % seed.config.checkpoint_every == 0 or not seed.active
                                       or stopping):
                        if devices.writer:
                            checkpoint.save_checkpoint(seed.run_dir, seed.config, *of((params, opt_state), i),
                                                       seed.epoch)
                        seed.last_saved = seed.epoch
                if stopping:
                    status = "interrupted"
                    break
    except KeyboardInterrupt:
        raise Interrupted(f"stopped at once in epoch {max(s.epoch for s in seeds) + 1}; {_kept_all(seeds)}") from None
    except (RuntimeError, ValueError) as error:
        if devices.processes == 1 or not peers_lost(error):
            raise
        raise ProcessesError(_peer_lost(error, seeds, (params, opt_state), finished, grouped,
                                                 devices)) from None
    finally:
        bar.close()
    results = [_finish(seed, devices.local(of(params, i)), status, images_per_epoch,
                       [c.seed for c in configs] if grouped else None, devices) for i, seed in enumerate(seeds)]
    diverged = [s.diverged for s in seeds if s.diverged]
    if diverged:
        raise TrainingDiverged("; ".join(diverged))
    return results


def _compiled(epoch_fn, seeds, grouped, state_and_data, stop, bar, devices, said=""):
    """The epoch program compiled before the first epoch, a signal heard meanwhile (a program of hundreds
    of seeds compiles for minutes): False if one came, nothing having been trained. With several
    processes the program compiles in the first call, as each must reach the same collectives."""
    if devices.processes > 1 or not any(s.active for s in seeds):
        return True
    epochs = np.array([s.epoch + 1 for s in seeds]) if grouped else seeds[0].epoch + 1
    extra = (np.array([s.active for s in seeds]),) if grouped else ()
    bar.set_postfix_str(f"compiling the epoch{' of ' + str(len(seeds)) + ' seeds' if grouped else ''}{said}")
    stop.compiling = True
    compiled = parallel.compile_heard(epoch_fn, (*state_and_data, epochs, *extra), lambda: stop.requested)
    stop.compiling = False
    return compiled


def describe(result, grouped=False):
    """The line that says what train() did for a run that is done (result: its dict; grouped: a group's seed)."""
    if result["trained_now"] == 0:
        return f"{result['run_dir']} is already trained ({result['epoch']} epochs)"
    return (f"trained {result['run_dir']}: train ELBO {result['train_elbo_last_epoch']:.2f} nats/image in the last "
            f"epoch, {result['seconds_per_epoch']:.3f} s/epoch" + " (all seeds together)" * grouped)


def _peer_lost(error, seeds, state, epochs, grouped, devices):
    """Another process died in the middle of training (its collectives fail here): process 0 saves
    the last epoch that every process finished, from its own copy of the state; the message."""
    saved = []
    if devices.writer:
        host = devices.local(state)  # replicated: this process's copy, no collective needed
        for i, (seed, epoch) in enumerate(zip(seeds, epochs, strict=True)):
            if epoch > seed.start and epoch != seed.last_saved:
                checkpoint.save_checkpoint(seed.run_dir, seed.config, *(member(host, i) if grouped else host), epoch)
                seed.last_saved = epoch
            saved.append(_kept(seed.run_dir, seed.last_saved))
    return (f"another process of the job stopped during training ({first_line(error)}); "
            + ("; ".join(saved) if saved else "process 0 keeps the last epoch all finished")
            + ". Start every process again with --resume")


def _record(seed, params, train_objective, finite, elapsed, measure, devices):
    """The epoch a seed has just trained: its metrics row, or the reason it diverged."""
    epoch, began = seed.epoch + 1, time.perf_counter()
    measured = measure(epoch, params) if finite else {"test_elbo": math.nan}
    measuring = time.perf_counter() - began  # the test ELBO and what else the curves record, after the epoch
    if not math.isfinite(measured["test_elbo"]):
        seed.diverged = (f"training diverged at epoch {epoch}: the objective, the parameters or the test ELBO "
                         f"became NaN or inf; {_kept(seed.run_dir, seed.last_saved)}. A smaller --learning-rate "
                         "may help")
        return
    seed.epoch = epoch
    row = {"epoch": epoch, "train_elbo": train_objective, "test_elbo": measured["test_elbo"], "seconds": elapsed,
           "recording_seconds": measuring, **{key: value for key, value in measured.items() if key != "test_elbo"}}
    if devices.writer:
        records.append_metrics(seed.run_dir, row)


def _finish(seed, params, status, images_per_epoch, group_seeds, devices):
    """The seed's training summary into its summary.json (process 0); train's result dict."""
    result = {"status": status, "epoch": seed.epoch, "config": seed.config, "params": params,
              "trained_now": seed.epoch - seed.start, "run_dir": seed.run_dir}
    if not devices.writer:
        return result
    tensorboard.close(seed.run_dir)
    history = records.read_metrics(seed.run_dir, seed.epoch)
    summary = records.training_summary(history, seed.epoch, images_per_epoch) if history else {}
    if len(history) < seed.epoch:
        files.warn(f"{seed.run_dir}: metrics.jsonl holds {len(history)} of the {seed.epoch} epochs; the curves "
                    "and the training time cover those")
    if seed.epoch > seed.start and (fell := fall(history, seed.config.kl_warmup)):
        files.warn(f"{seed.run_dir}: {fell}")
    if group_seeds is not None and seed.epoch > seed.start:
        summary["trained_with_seeds"] = group_seeds  # its seconds are those of the group's epochs
    if summary and seed.epoch > seed.start:
        summary["trained_on"] = devices.describe()
    if summary and not seed.diverged and seed.epoch > seed.start:  # a finished run is left as it is
        records.update_summary(seed.run_dir, summary)
    return {**result, **summary}
