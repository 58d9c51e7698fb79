"""Several processes (machines): join them with jax.distributed before JAX touches a device.

`start` is the command line's entry: it simulates CPU devices where asked (`prepare`), joins the
job's processes (`initialize`; gloo collectives on CPU) and returns the Devices of --devices.
The process flags not given come from the environment, as cluster launchers set them.
"""

import errno
import os
import socket

import jax

from ..errors import ConfigError, ProcessesError, first_line
from .mesh import devices

ENVIRONMENT = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")  # what launchers can set


def prepare(count):
    """Before JAX starts its backends: on a machine whose CPU is the device, let --devices N
    simulate N devices (one per process's share). Harmless on a GPU machine (it shapes only
    the CPU backend) and where a backend has started already (tests set their own).
    count: --devices' number, or None."""
    if count > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        try:
            jax.config.update("jax_num_cpu_devices", count)
        except RuntimeError:  # the backend is up: its devices are what they are
            pass


def start(count=None, coordinator=None, num_processes=None, process_id=None):
    """The Devices of the command line's --devices (a whole number, "all", or None: 1 in one
    process, all with several), after joining the job's processes if asked (initialize). The
    process flags not given come from the environment (JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES, JAX_PROCESS_ID), as cluster launchers set them.
    count: --devices; coordinator, num_processes, process_id: as initialize takes them."""
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None:
        num_processes = _whole(os.environ.get("JAX_NUM_PROCESSES"), "JAX_NUM_PROCESSES")
    if process_id is None:
        process_id = _whole(os.environ.get("JAX_PROCESS_ID"), "JAX_PROCESS_ID")
    if isinstance(count, int):
        prepare(count // (num_processes or 1))
    processes = initialize(coordinator, num_processes, process_id)
    return devices(count if count is not None else 1 if processes == 1 else "all")


def initialize(coordinator, num_processes, process_id):
    """Joins the processes of one job (jax.distributed.initialize) when a coordinator or a
    process count is given; returns the process count (1: nothing was done).
    coordinator: the coordinator's HOST:PORT; num_processes: the processes of the job; process_id: this one's (0 to
    num_processes - 1).
    Raises ConfigError for incomplete or wrong flags, ProcessesError where the processes cannot join."""
    if coordinator is None and num_processes is None:
        return 1
    if None in (coordinator, num_processes, process_id):
        raise ConfigError("several processes need all three: --coordinator HOST:PORT, --num-processes P and "
                          "--process-id I (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID)")
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--coordinator {coordinator!r} is not HOST:PORT (process 0's address, e.g. 10.0.0.1:12345)")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ConfigError(f"--process-id must be from 0 to {num_processes - 1}, not {process_id}")
    if num_processes == 1:
        return 1
    if process_id == 0 and not _port_free(int(port)):  # JAX's coordinator would crash the process on it
        raise ProcessesError(f"process 0 cannot serve the coordinator on port {port}: another program uses it; "
                             "choose a free port for --coordinator")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes talk through gloo
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    except Exception as error:  # the runtime's message is long: its first line says what happened
        raise ProcessesError(f"process {process_id} could not join the {num_processes} processes at {coordinator} "
                             f"({first_line(error)}); start every process with process 0's address as --coordinator "
                             "and the same --num-processes") from None
    return num_processes


def _port_free(port):
    """Whether this machine's port can be bound on every address (where the coordinator listens)."""
    for family, address in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        try:
            with socket.socket(family) as probe:
                probe.bind((address, port))
        except OSError as error:  # a machine without IPv6 says so here, which is fine
            if error.errno == errno.EADDRINUSE:
                return False
    return True


def _whole(text, name):
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number") from None

