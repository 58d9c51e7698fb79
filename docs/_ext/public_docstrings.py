"""The API reference is made from the docstrings, so each public function, class and method of aevb must say
something, and each public function must name its parameters: a warning (so an error under -W) for one without
a docstring, and for a parameter named neither in its docstring nor in the names used throughout (the table of
docs/api/conventions.md, read from that page so that the page and the check are one list), and for an
exception a public function raises itself (a raise statement in its own body) that its docstring does not name."""

import ast
import inspect
import textwrap
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


def unnamed_raises(obj, docstring):
    """The exceptions obj raises in its own body (not in a function defined inside it, not a bare re-raise) that its
    docstring does not name, such as ConfigError for `raise ConfigError(...)`."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(obj))))
    except (OSError, TypeError, SyntaxError):
        return []
    names, stack = set(), list(ast.iter_child_nodes(tree.body[0]))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, (ast.Name, ast.Attribute)):
                names.add(exc.id if isinstance(exc, ast.Name) else exc.attr)
        stack.extend(ast.iter_child_nodes(node))
    return sorted(n for n in names if n[:1].isupper() and n not in docstring)


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
        raised = unnamed_raises(obj, "\n".join(lines))
        if raised:
            LOGGER.warning("%s %s raises %s, which its docstring does not say", what, name, ", ".join(raised))


def read_conventions(app, env, docnames):
    env.aevb_conventions = conventional_names()


def setup(app):
    app.connect("env-before-read-docs", read_conventions)
    app.connect("autodoc-process-docstring", check)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
