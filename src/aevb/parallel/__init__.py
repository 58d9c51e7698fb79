"""Where a job computes: one device, several devices of one process, or several processes.

mesh       Devices: a 1-D mesh over the batch axis; placing, gathering and broadcasting arrays;
           process 0's decisions for all (`agree`). ONE, the default: no mesh, a plain jit.
processes  start: simulated CPU devices, jax.distributed's join, --devices N|all
waiting    wait, compile_heard: a computation or a compilation waited for so that a signal is handled at once

Below evaluation and training, which take a Devices. Imports: aevb.errors only.
"""

from .mesh import ONE, Devices, available, describe_text, devices
from .processes import start
from .waiting import compile_heard, wait

__all__ = ["ONE", "Devices", "available", "describe_text", "devices", "start", "wait", "compile_heard"]
