"""Protocols: the literature's training setups, shipped as sweep files that cite their source and hold
the published numbers, and `aevb reproduce`, which runs one as an ordinary sweep and puts the paper's
numbers beside ours.

burda2016.json            Burda, Grosse & Salakhutdinov (2016), Table 1, one stochastic layer
burda2016-two-layers.json the same table's two stochastic layers (its own file: burda2016's runs keep their names)
cremer2018.json           Cremer, Li & Duvenaud (2018): each posterior family's approximation and amortization gaps
tomczak2018.json          Tomczak & Welling (2018): the standard prior against the VampPrior, one stochastic layer
kingma2013-figure2.json   Kingma & Welling (2013), Figure 2: the bound against training samples, Dz = 3-200
reproduce                 the sweep of a protocol at a budget, and its page

A protocol file is a sweep file (aevb.config_file.read_file: "settings", "vary") with "title", "source"
(paper, where, setup), "measure" (the summary.json key compared), "published" (the paper's numbers and
the points they belong to), "budgets" ({"full", "short"}: settings over the protocol's, and a note) and
"differences" (from the paper's setup, in words); optionally "label" (the settings that name a point on its page,
else its folder's name), "gaps" (the page gives each point's gap decomposition) and "companions" (protocols
whose points the page also shows, as far as they have run at its budget beside it, such as burda2016's two layers).

Imports: the layers below and aevb.pipeline (reproduce runs its sweep).
"""

import json
from pathlib import Path

from ..errors import ConfigError

FOLDER = Path(__file__).resolve().parent


def names():
    """The protocols' names, from the JSON files beside this module."""
    return sorted(path.stem for path in FOLDER.glob("*.json"))


def path_of(name):
    """The JSON file of the protocol name; raises ConfigError for an unknown name."""
    if name not in names():
        raise ConfigError(f"unknown protocol {name!r}; choose from {', '.join(names())}")
    return FOLDER / f"{name}.json"


def load(name):
    """The protocol file's contents.
    name: a protocol's name (its file protocols/NAME.json)."""
    return json.loads(path_of(name).read_text())
