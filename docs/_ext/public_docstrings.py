"""The API reference is made from the docstrings, so each public function, class and method of aevb must say
something, and each public function must name its parameters: a warning (so an error under -W) for one without
a docstring, and for a parameter named neither in its docstring nor in the names used throughout (the table of
docs/api/conventions.md, read from that page so that the page and the check are one list)."""

import inspect
import re
from pathlib import Path

from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
CONVENTIONS = Path(__file__).parents[1] / "api" / "conventions.md"


def conventional_names():
    """The names of the conventions page's table: its rows' first cells, such as | `x_train`, `x_test` |."""
    names = set()
    for line in CONVENTIONS.read_text().splitlines():
        cells = line.split("|")
        if len(cells) > 2 and "`" in cells[1]:
            names.update(re.findall(r"`([A-Za-z_][A-Za-z_0-9]*)`", cells[1]))
    return names


def unnamed_parameters(obj, docstring, conventional):
    """The parameters of obj that its docstring does not name and that are not conventional."""
    try:
        parameters = inspect.signature(inspect.unwrap(obj)).parameters.values()
    except (TypeError, ValueError):  # a builtin or a class without a signature of its own
        return []
    return [p.name for p in parameters if p.name not in ("self", "cls") and p.name not in conventional
            and not re.search(rf"(?<![A-Za-z_0-9]){re.escape(p.name)}(?![A-Za-z_0-9])", docstring)]


def check(app, what, name, obj, options, lines):
    if any(part.startswith("_") for part in name.split(".")):
        return
    if what in ("function", "class", "method") and not any(line.strip() for line in lines):
        LOGGER.warning("%s %s has no docstring: the API reference would say nothing of it", what, name)
    elif what in ("function", "method") and name.startswith(getattr(inspect.unwrap(obj), "__module__", "") + "."):
        # (at the function's home: not again where a module imports it, nor for Python's own)
        unnamed = unnamed_parameters(obj, "\n".join(lines), app.env.aevb_conventions)
        if unnamed:
            LOGGER.warning("%s %s: its docstring does not name %s (and docs/api/conventions.md does not list it)",
                           what, name, ", ".join(unnamed))


def read_conventions(app, env, docnames):
    env.aevb_conventions = conventional_names()


def setup(app):
    app.connect("env-before-read-docs", read_conventions)
    app.connect("autodoc-process-docstring", check)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
