"""`python tests/synthetic_aevb.py ARGS...`: the aevb command with the tests' synthetic dataset
registered, so that tests can run aevb in a real process (signals, exit codes) with no download."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import conftest  # noqa: E402,F401  (registers the synthetic dataset)
from aevb import cli  # noqa: E402

sys.exit(cli.main(sys.argv[1:]))
