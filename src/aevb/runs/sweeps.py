"""A sweep's points: their settings, their folder names, and the sweep's record sweep.json."""

import dataclasses
import itertools
import json
import math
from pathlib import Path

from ..config import MAX_POINTS, Config
from ..data import npz
from ..errors import ConfigError
from . import files
from .files import SWEEP


def point_name(point, varied):
    """A sweep point's folder name from the settings it varies: latent_dim=5_objective=iwae.
    point: the point's settings {name: value}; varied: the names the sweep varies."""
    def short(value):  # npz:/data/mine.npz -> npz-mine
        text = str(value)
        return f"npz-{Path(text[len(npz.NPZ):]).stem}" if text.startswith(npz.NPZ) else text.replace("/", "-")

    return "_".join(f"{name}={short(point[name])}" for name in varied) or "run"


def sweep_points(grid):
    """(points, their folder names, the varied settings) of a sweep over grid ({setting: values}), or over
    a list of grids, whose points follow one another (a protocol's runs that are not one product). A
    value given twice, two points that would share a folder (two npz files of one stem) or a bad
    combination of settings is a ConfigError before anything is written."""
    grids = grid if isinstance(grid, list) else [grid]
    for one in grids:
        for name, values in one.items():
            if len({str(v) for v in values}) != len(values):
                raise ConfigError(f"--{name.replace('_', '-')} gives a value twice: {','.join(map(str, values))[:200]}")
    count = sum(math.prod(len(values) for values in one.values()) for one in grids)
    if count > MAX_POINTS:  # refused before a point is made: 10^6 of them would take minutes to list
        raise ConfigError(f"the sweep has {count} points; at most {MAX_POINTS}: vary fewer settings or fewer values")
    points = [dict(zip(one, values, strict=True)) for one in grids for values in itertools.product(*one.values())]
    defaults = {field.name: field.default for field in dataclasses.fields(Config)}
    named = list(dict.fromkeys(name for one in grids for name in one))  # every setting named, in order
    varied = [name for name in named if len({str(point.get(name, defaults.get(name))) for point in points}) > 1]
    names = [point_name({**defaults, **point}, varied) for point in points]
    shared = sorted({name for name in names if names.count(name) > 1})
    if shared:  # the second point would train into the first one's folder
        raise ConfigError(f"two points of the sweep would share the folder {shared[0]}; give the files other names")
    first = {}  # each point's settings once parsed (1 and 1.0, "20,20" and "20, 20" are one setting)
    for point, name in zip(points, names, strict=True):
        parsed = Config(**point).to_json()
        if parsed in first:
            raise ConfigError(f"two points of the sweep, {first[parsed]} and {name}, are the same settings")
        first[parsed] = name
    return points, names, varied


def write_sweep(sweep_dir, grid, varied, seeds, points):
    """SWEEP/sweep.json: the grid ({setting: values}, or a list of them), the settings it varies, the seeds and
    the points' names.
    varied: the names the sweep varies."""
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    grids = [{name: list(values) for name, values in one.items()} for one in (grid if isinstance(grid, list)
                                                                              else [grid])]
    defaults = {field.name: field.default for field in dataclasses.fields(Config)}
    files.atomic_write_text(Path(sweep_dir) / SWEEP, json.dumps(
        {"grid": grids if isinstance(grid, list) else grids[0], "varied": varied,
         "seeds": None if seeds is None else list(seeds),
         "points": [point_name({**defaults, **point}, varied) for point in points]}, indent=2) + "\n")
