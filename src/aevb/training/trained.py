"""A trained run, loaded: where it lives, its config, its parameters at an epoch, its data; a run
opened under its writer lock, for the commands that read a run and add to it; and the training
state restored from a checkpoint."""

import contextlib
import dataclasses
from pathlib import Path

import jax

from .. import parallel
from ..config import Config
from ..data import splits
from ..errors import DECIDING, CheckpointError
from ..runs import checkpoint, lock
from .compiled import init_state


def state_template(config):
    """The shapes and dtypes of init_state(config), computed without computing it."""
    return jax.eval_shape(lambda: init_state(config))


def restore(run_dir):
    """(config, params, opt_state, epoch) from run_dir's checkpoint."""
    return checkpoint.load_checkpoint(run_dir, state_template)


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """A trained run, loaded: where it lives, its config, its parameters at epoch, its data; interrupted:
    training was stopped before its last epoch (what it holds is the last checkpoint's, not evaluated)."""

    path: Path
    config: Config
    params: dict
    epoch: int
    split: splits.Split
    interrupted: bool = False

    @property
    def net(self):
        return self.config.network

    @property
    def name(self):
        return self.path.name


def load(run_dir, data_dir=None):
    """The Run stored in run_dir: its checkpoint and the data its config names."""
    config, params, _, at = restore(run_dir)
    return Run(Path(run_dir), config, params, at, splits.load(config, data_dir))


@contextlib.contextmanager
def opened(run, command, data_dir=None, devices=parallel.ONE):
    """The loaded run, with its writer lock held for the block: if another process is writing the
    run (training it), this waits for it to end, then reads the run as that process left it.
    With several processes, process 0 holds the lock and reads the run; the others get its
    config, epoch and parameters.
    command: written in the lock for another process's message."""
    path = run.path if isinstance(run, Run) else Path(run)
    with contextlib.ExitStack() as stack:
        loaded = []

        def hold():
            if not path.is_dir():
                raise CheckpointError(f"run directory {path} does not exist")
            stack.enter_context(lock.writing(path, command, wait=True))
            if not isinstance(run, Run):
                loaded.append(load(path, data_dir))
                return [loaded[0].config.to_json(), loaded[0].epoch]

        shared = devices.agree(hold, DECIDING)
        if isinstance(run, Run):
            yield run
        elif devices.processes == 1:
            yield loaded[0]
        else:
            config = Config.from_json(shared[0])
            params = loaded[0].params if loaded else init_state(config)[0]  # a template for the others
            split = loaded[0].split if loaded else splits.load(config, data_dir)
            yield Run(path, config, devices.local(devices.broadcast(params)), shared[1], split)
