"""Several devices and several processes, through JAX's own engine (jax.sharding, jax.distributed).

Data parallelism over a 1-D mesh whose one axis is the batch: a minibatch is split over the
devices, the parameters and Adam's state are replicated, and the one jit-compiled epoch stays
one program; XLA inserts the all-reduce of the gradients. Every array keeps its global shape
and every random draw its global index (JAX's threefry is partitionable), so the noise of image
i never depends on the device count and the training is the one-device training, up to the
order of floating-point sums.

Several processes (machines): aevb.parallel.processes joins them (jax.distributed; gloo on CPU)
before JAX touches a device, then every process runs the same program on the same data (SPMD). Process 0
decides (`agree`), reads and writes the run directory; the others receive what it decided and
its state (`broadcast`) and write nothing.

The default, one device in one process, is `ONE`: no mesh, no sharding, no collective; the
code path and the compiled programs of a plain jit.
"""

import dataclasses
import json

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..errors import ConfigError, ProcessesError

AXIS = "batch"  # the mesh's one axis


@dataclasses.dataclass(frozen=True, eq=False)
class Devices:
    """The devices a job runs on: a 1-D mesh over the batch axis, or mesh None for one device."""

    mesh: Mesh | None = None

    @property
    def count(self):
        return 1 if self.mesh is None else self.mesh.size

    @property
    def processes(self):
        """How many processes the devices belong to (ONE: this process alone)."""
        return 1 if self.mesh is None else len({d.process_index for d in self.mesh.devices.flat})

    @property
    def writer(self):
        """Whether this process reads and writes run directories and prints: process 0 (ONE: this one)."""
        return self.mesh is None or jax.process_index() == 0

    def _sharding(self, axis=None, ndim=1):
        spec = PartitionSpec() if axis is None else PartitionSpec(*(None,) * axis, AXIS, *(None,) * (ndim - axis - 1))
        return NamedSharding(self.mesh, spec)

    def replicate(self, tree):
        """tree's arrays, a full copy on every device of the mesh (global arrays)."""
        if self.mesh is None:
            return tree
        target = self._sharding()

        def place(leaf):
            if isinstance(leaf, jax.Array) and leaf.sharding == target:
                return leaf
            return _from_host(np.asarray(leaf), target)

        return jax.tree_util.tree_map(place, tree)

    def split(self, array, axis=0):
        """A host array (every process holds all of it) split along axis over the devices; the
        axis's length must be a multiple of count (see pad)."""
        if self.mesh is None:
            return array
        array = np.asarray(array)
        return _from_host(array, self._sharding(axis, array.ndim))

    def constrain(self, array, axis):
        """Inside a compiled function: array split along axis over the devices."""
        if self.mesh is None:
            return array
        return jax.lax.with_sharding_constraint(array, self._sharding(axis, array.ndim))

    def constrain_replicated(self, tree):
        """Inside a compiled function: every array of tree whole on every device."""
        if self.mesh is None:
            return tree
        return jax.lax.with_sharding_constraint(tree, self._sharding())

    def pad(self, array):
        """array with its leading axis filled up to a multiple of count with copies of its first
        entry (whole units, such as chunks of images with their own keys, so nothing else moves)."""
        missing = -len(array) % self.count
        if missing == 0:
            return array
        return np.concatenate([array, np.repeat(np.asarray(array)[:1], missing, axis=0)])

    def gather(self, array):
        """A result as a numpy array on every process."""
        if not isinstance(array, jax.Array) or array.is_fully_addressable or array.is_fully_replicated:
            return np.asarray(array)
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(array, tiled=True))

    def local(self, tree):
        """tree's arrays as numpy arrays of this process (replicated arrays: the local copy), for
        work that runs in one process (figures, the report) or on one device."""
        return tree if self.mesh is None else jax.tree_util.tree_map(self.gather, tree)

    def broadcast(self, tree):
        """Process 0's values of tree's arrays, on every process."""
        if self.processes == 1:
            return tree
        from jax.experimental import multihost_utils

        return jax.tree_util.tree_map(np.asarray, multihost_utils.broadcast_one_to_all(tree))

    def any(self, flag):
        """Whether flag is True in any process (every process calls it alike)."""
        if self.processes == 1:
            return flag
        from jax.experimental import multihost_utils

        return bool(np.any(multihost_utils.process_allgather(np.array(flag))))

    def same_everywhere(self, given):
        """Refuses, in every process, a job whose processes were given different settings: given is
        this process's (a JSON-able dict); every process calls it alike. Otherwise process 0's would
        silently win. Raises ProcessesError where they differ."""
        if self.processes == 1:
            return
        from jax.experimental import multihost_utils

        payload = np.frombuffer(json.dumps(given, sort_keys=True).encode(), np.uint8)
        lengths = np.asarray(multihost_utils.process_allgather(np.array([len(payload)], np.int64))).ravel()
        padded = np.concatenate([payload, np.zeros(int(lengths.max()) - len(payload), np.uint8)])
        gathered = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(lengths), -1)
        everyone = [json.loads(bytes(row[:n]).decode()) for row, n in zip(gathered, lengths, strict=True)]
        for i, other in enumerate(everyone[1:], start=1):
            differ = sorted(k for k in set(other) | set(everyone[0]) if other.get(k) != everyone[0].get(k))
            if differ:
                raise ProcessesError(f"process {i} was given other settings than process 0: " + ", ".join(
                    f"{k} {other.get(k)} (process 0: {everyone[0].get(k)})" for k in differ)
                    + "; give every process the same command")

    def agree(self, decide, errors=()):
        """decide() on process 0, its JSON-able result on every process. An exception of one of the
        classes in errors on process 0 is raised on every process, with its message."""
        if self.processes == 1:
            return decide()
        if self.writer:
            try:
                result = decide()
            except BaseException as error:  # the others stop too, with its message, instead of waiting
                self._send({"error": [type(error).__name__, str(error) or type(error).__name__]})
                raise
            self._send({"result": result})
            return result
        message = self._send(None)
        if "error" in message:
            kind, text = message["error"]
            known = {cls.__name__: cls for cls in errors}
            raise known[kind](text) if kind in known else ProcessesError(f"process 0 stopped: {kind}: {text}")
        return message["result"]

    def _send(self, message):
        """Process 0's message (JSON) on every process; each process calls it once per message."""
        from jax.experimental import multihost_utils

        payload = np.frombuffer(json.dumps(message).encode(), np.uint8) if self.writer else np.zeros(0, np.uint8)
        length = int(multihost_utils.broadcast_one_to_all(np.array(len(payload), np.int64)))
        payload = np.concatenate([payload, np.zeros(length - len(payload), np.uint8)])
        return json.loads(bytes(np.asarray(multihost_utils.broadcast_one_to_all(payload))).decode())

    def describe(self):
        """Which devices run the job: {"platform", "kind", "count", "processes"}."""
        devices = list(self.mesh.devices.flat) if self.mesh is not None else jax.devices()[:1]
        return {"platform": devices[0].platform, "kind": devices[0].device_kind, "count": len(devices),
                "processes": self.processes}


ONE = Devices()


def devices(count=1):
    """The Devices of --devices count: a whole number or "all" (every device of every process).
    With several processes each brings count / processes of its own devices.
    Raises ConfigError where the processes cannot bring them."""
    available, processes = jax.devices(), jax.process_count()
    if count == "all":
        count = len(available)
    if count == 1 and processes == 1:
        return ONE
    if count % processes:
        raise ConfigError(f"--devices {count} is not a multiple of the {processes} processes (each brings the same "
                          "number of its devices)")
    per_process = count // processes
    chosen = []
    for index in range(processes):
        own = [d for d in available if d.process_index == index]
        if len(own) < per_process:
            raise ConfigError(f"--devices {count} needs {per_process} devices in each process; process {index} has "
                              f"{len(own)} ({own[0].platform if own else 'none'}: {', '.join(map(str, own))}). "
                              "On CPU, set XLA_FLAGS=--xla_force_host_platform_device_count=N to simulate N")
        chosen += own[:per_process]
    return Devices(Mesh(np.array(chosen), (AXIS,)))


def available():
    """What JAX sees here, in words: '2 CPU devices (JAX 0.10.2, process 1 of 2)'."""
    found = jax.devices()
    text = describe_text({"platform": found[0].platform, "kind": found[0].device_kind, "count": len(found),
                          "processes": 1})
    return f"{text} (JAX {jax.__version__}" + (f", process {jax.process_index()} of {jax.process_count()})"
                                               if jax.process_count() > 1 else ")")


def describe_text(description):
    """'2 CPU devices in 2 processes', '1 NVIDIA H200 device' from Devices.describe().
    description: the dict of Devices.describe()."""
    d = description
    kind = d["kind"] if d["kind"].lower() != d["platform"] else d["platform"].upper()
    text = f"{d['count']} {kind} device{'s' * (d['count'] > 1)}"
    return text + (f" in {d['processes']} processes" if d["processes"] > 1 else "")


def _from_host(array, sharding):
    """A global array from a host array that every process holds whole (the same data, the same
    program): each device takes its part. Not jax.device_put, which across processes first gathers
    the whole array from every process to check that it is the same, one collective per call."""
    return jax.make_array_from_callback(array.shape, sharding, lambda index: np.asarray(array[index]))
