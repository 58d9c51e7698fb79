"""The student's copy of a solution notebook, made with nbgrader's markers (no nbgrader needed).

In code cells the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` become
``raise NotImplementedError()`` (at the marker's indentation), and those between ``### BEGIN HIDDEN
TESTS`` and ``### END HIDDEN TESTS`` are removed; in markdown cells a solution becomes "YOUR ANSWER
HERE". Outputs and execution counts are cleared. The markers and the cells' nbgrader metadata are
nbgrader's own, so ``nbgrader generate_assignment`` makes the same copy from the same notebook.
A notebook is JSON (nbformat 4); it is read and written as such.
"""

import json
import re

from ..errors import ConfigError
from ..runs import files

MARKERS = {"SOLUTION": ("### BEGIN SOLUTION", "### END SOLUTION"),
           "HIDDEN TESTS": ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")}
BEGIN = re.compile(r"^(\s*)### BEGIN (SOLUTION|HIDDEN TESTS)\s*$")
END = re.compile(r"^\s*### END (SOLUTION|HIDDEN TESTS)\s*$")


def _source(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def strip_cell(text, cell_type, where):
    """One cell's source with its solutions replaced and hidden tests removed; where: for errors."""
    out, open_block = [], None
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        begin, end = BEGIN.match(line.rstrip("\n")), END.match(line.rstrip("\n"))
        if begin:
            if open_block:
                raise ConfigError(f"{where}, line {number}: {begin.group(0).strip()} inside an open "
                                  f"### BEGIN {open_block[0]}")
            open_block = (begin.group(2), number)
            if begin.group(2) == "SOLUTION":
                out.append(f"{begin.group(1)}raise NotImplementedError()\n" if cell_type == "code"
                           else "YOUR ANSWER HERE\n")
        elif end:
            if not open_block or open_block[0] != end.group(1):
                raise ConfigError(f"{where}, line {number}: {end.group(0).strip()} without its ### BEGIN")
            open_block = None
        elif not open_block:
            out.append(line)
    if open_block:
        raise ConfigError(f"{where}, line {open_block[1]}: ### BEGIN {open_block[0]} without its ### END")
    return "".join(out)


def student_copy(notebook):
    """The student's notebook (a dict) from the solution notebook's dict."""
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ConfigError("not a Jupyter notebook (nbformat 4 JSON with a list of cells)")
    cells = []
    for index, cell in enumerate(notebook["cells"], 1):
        text = strip_cell(_source(cell), cell.get("cell_type"), f"cell {index}")
        cell = {**cell, "source": text.splitlines(keepends=True)}
        if cell.get("cell_type") == "code":
            cell.update(outputs=[], execution_count=None)
        cells.append(cell)
    return {**notebook, "cells": cells}


def solution_count(notebook):
    """How many solution blocks the notebook holds."""
    return sum(_source(cell).count(MARKERS["SOLUTION"][0]) for cell in notebook["cells"])


def release(source, destination):
    """Writes the student copy of the notebook at source to destination (atomically); returns the number of
    solutions replaced."""
    try:
        notebook = json.loads(open(source, encoding="utf-8").read())
    except OSError as error:
        raise ConfigError(f"cannot read the notebook {source}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{source} is not a notebook: its JSON breaks at line {error.lineno}") from None
    copy = student_copy(notebook)
    files.atomic_write_text(destination, json.dumps(copy, indent=1, ensure_ascii=False) + "\n")
    return solution_count(notebook)
