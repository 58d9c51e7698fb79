"""`python tests/synthetic_aevb.py ARGS...`: the aevb command with the tests' synthetic dataset
registered, so that tests can run aevb in a real process (signals, exit codes) with no download."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import conftest  # noqa: E402,F401  (registers the synthetic dataset)
import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", -1)  # one CPU device, as a user's process has (conftest sets two)
from aevb import cli  # noqa: E402

sys.exit(cli.main(sys.argv[1:]))
