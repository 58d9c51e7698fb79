"""Settings files: a run's config.json or a sweep file, read and checked before any Config is made of them, and the
seeds a file or a flag gives (aevb.config bounds every setting itself)."""

import dataclasses
import json

from .config import MAX_FILE, MAX_SEEDS, Config, shown
from .errors import ConfigError


NAME_MAX = 255  # bytes in a file name on the usual file systems


def check_run_name(name):
    """A run name (--name) is one folder name: letters, digits, spaces, punctuation and unicode are fine.
    Raises ConfigError otherwise."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise ConfigError(f"run name {name!r} must be one folder name: not empty, not . or .., without /")
    if len(name.encode()) > NAME_MAX:
        raise ConfigError(f"run name is {len(name.encode())} bytes long; file systems allow {NAME_MAX}")
    return name


def check_seeds(seeds, where="--seeds"):
    """Seeds trained together, from a flag or a file: a non-empty list of distinct whole numbers 0 to 2^32 - 1,
    at most MAX_SEEDS of them. Returns them as a tuple.
    where: the flag or file the seeds came from, for the message. Raises ConfigError for anything else."""
    if not isinstance(seeds, (list, tuple)) or not seeds:
        raise ConfigError(f"{where} must be a non-empty list of seeds, such as [0, 1, 2], not {shown(seeds)}")
    if len(seeds) > MAX_SEEDS:
        raise ConfigError(f"{where} lists {len(seeds)} seeds; at most {MAX_SEEDS} train together")
    for seed in seeds:
        if type(seed) is not int or not 0 <= seed <= 2**32 - 1:
            raise ConfigError(f"{where}: a seed is a whole number from 0 to {2**32 - 1}, not {shown(seed)}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where} lists a seed twice: {shown(list(seeds))}")
    return tuple(seeds)


def read_file(path):
    """A settings file: a run's config.json (an object of settings) or a sweep file {"settings": {...},
    "vary": {setting: [values]} or a list of such grids, "seeds": [...]} (a protocol is a sweep file
    with its source and published numbers beside). Returns {"settings", "vary", "seeds", "file"}: the
    settings by name, unchecked until a Config is made of them with the command line's on top. At most
    MAX_FILE bytes of UTF-8 JSON are read; anything else is one ConfigError naming the file.
    path: the file's path (str or Path)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the path
        raise ConfigError(f"cannot read the config file {shown(str(path))}: {getattr(error, 'strerror', None) or error}"
                          ) from None
    if len(data) > MAX_FILE:
        raise ConfigError(f"{path} is over {MAX_FILE} bytes: not a settings file")
    try:
        values = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not text (UTF-8 JSON): a settings file is JSON") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not JSON ({error.msg} at line {error.lineno} column {error.colno})") from None
    except (ValueError, RecursionError) as error:  # e.g. an integer of over 4300 digits, or nesting too deep
        raise ConfigError(f"{path} holds a value this reader refuses ({shown(str(error))})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a JSON object of settings")
    known = {f.name for f in dataclasses.fields(Config)}
    sweep = "settings" in values
    settings = values.get("settings", {}) if sweep else values
    vary = values.get("vary", {}) if sweep else {}
    grids = vary if isinstance(vary, list) else [vary]
    if not isinstance(settings, dict) or not all(isinstance(grid, dict) for grid in grids) or not grids:
        raise ConfigError(f"{path}: settings must be an object, vary an object or a non-empty list of objects")
    unknown = sorted((set(settings) | {name for grid in grids for name in grid}) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown settings {', '.join(unknown)[:200]}")
    for grid in grids:
        for name, given in grid.items():
            if not isinstance(given, list) or not given:
                raise ConfigError(f"{path}: vary's {name} must be a non-empty list of values")
    grids = [{name: tuple(given) for name, given in grid.items()} for grid in grids]
    seeds = values.get("seeds") if sweep else None
    return {"settings": settings, "vary": grids if isinstance(vary, list) else grids[0],
            "seeds": None if seeds is None else check_seeds(seeds, f"{path}: seeds"), "file": str(path)}
