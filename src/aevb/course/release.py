"""The student's copy of a solution notebook, made as nbgrader 0.9's ClearSolutions and ClearHiddenTests make it
(no nbgrader needed; tests/test_course.py checks the copy against nbgrader's own preprocessors).

As nbgrader does: in a cell, a line containing ``BEGIN SOLUTION`` (``### BEGIN SOLUTION``, or with any number
of hashes) starts a solution, replaced with ``# YOUR CODE HERE`` and ``raise NotImplementedError()`` at that
line's indentation in code cells, "YOUR ANSWER HERE" in markdown, up to the line containing ``END SOLUTION``; a
cell marked a solution in its nbgrader metadata (``solution: true``) with no such lines is replaced whole; the
lines from ``BEGIN HIDDEN TESTS`` to ``END HIDDEN TESTS`` are removed. Outputs and execution counts are cleared.
The copy's metadata says it is a student copy, so a later release may replace it and nothing else.
A notebook is JSON (nbformat 4); it is read and written as such.
"""

import json
import os
import re
from pathlib import Path

from ..errors import ConfigError
from ..runs import files

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()\n"  # nbgrader's ClearSolutions.code_stub["python"]
TEXT_STUB = "YOUR ANSWER HERE\n"  # its text_stub
BEGIN = re.compile(r"BEGIN (SOLUTION|HIDDEN TESTS)")  # anywhere in a line, as nbgrader looks for them
END = re.compile(r"END (SOLUTION|HIDDEN TESTS)")
MARK = "student_copy_of"  # in the copy's metadata["aevb"]: what it was made from
MAX_BYTES = 64 << 20  # a notebook larger than this is not an assignment


def _source(cell, where):
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return "".join(source)
    if not isinstance(source, str):
        raise ConfigError(f"{where}: its source must be text or a list of lines, not {type(source).__name__}")
    return source


def is_solution(cell):
    """Whether nbgrader's metadata marks the cell a solution cell."""
    metadata = cell.get("metadata")
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return isinstance(nbgrader, dict) and nbgrader.get("solution") is True


def strip_cell(text, cell_type, where):
    """(one cell's source with its solutions replaced and hidden tests removed, solutions replaced); where: for
    errors.
    text: the cell's source; cell_type: code or markdown. Raises ConfigError for a marker without its pair."""
    out, open_block, replaced = [], None, 0
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        begin, end = BEGIN.search(line), END.search(line)
        if begin:
            if open_block:
                raise ConfigError(f"{where}, line {number}: {line.strip()} inside an open "
                                  f"### BEGIN {open_block[0]}")
            open_block = (begin.group(1), number)
            if begin.group(1) == "SOLUTION":
                indent = re.match(r"\s*", line).group(0)
                stub = CODE_STUB if cell_type == "code" else TEXT_STUB
                out += [indent + stub_line for stub_line in stub.splitlines(keepends=True)]
                replaced += 1
        elif end:
            if not open_block or open_block[0] != end.group(1):
                raise ConfigError(f"{where}, line {number}: {line.strip()} without its ### BEGIN")
            open_block = None
        elif not open_block:
            out.append(line)
    if open_block:
        raise ConfigError(f"{where}, line {open_block[1]}: ### BEGIN {open_block[0]} without its ### END")
    return "".join(out), replaced


def copy_and_count(notebook):
    """(the student's notebook, solutions replaced) from the solution notebook's dict.
    Raises ConfigError for what is not a notebook."""
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ConfigError("not a Jupyter notebook (nbformat 4 JSON with a list of cells)")
    cells, count = [], 0
    for index, cell in enumerate(notebook["cells"], 1):
        if not isinstance(cell, dict):
            raise ConfigError(f"cell {index} is not a cell (a JSON object), but {type(cell).__name__}")
        text, replaced = strip_cell(_source(cell, f"cell {index}"), cell.get("cell_type"), f"cell {index}")
        if not replaced and is_solution(cell):  # nbgrader replaces an unmarked solution cell whole
            text, replaced = (CODE_STUB if cell.get("cell_type") == "code" else TEXT_STUB), 1
        count += replaced
        cell = {**cell, "source": text.splitlines(keepends=True)}
        if cell.get("cell_type") == "code":
            cell.update(outputs=[], execution_count=None)
        cells.append(cell)
    return {**notebook, "cells": cells}, count


def student_copy(notebook):
    """The student's notebook (a dict) from the solution notebook's dict."""
    return copy_and_count(notebook)[0]


def solution_count(notebook):
    """How many solutions the notebook holds (marked regions, and solution cells without any)."""
    return copy_and_count(notebook)[1]


def _read(path, what):
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the {what} {path}: {getattr(error, 'strerror', None) or error}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path} is over {MAX_BYTES >> 20} MiB: not an assignment notebook")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a notebook: it is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not a notebook: its JSON breaks at line {error.lineno}") from None
    except (ValueError, RecursionError) as error:
        raise ConfigError(f"{path} is not a notebook ({str(error)[:60]})") from None


def release(source, destination, replace=False):
    """Writes the student copy of the notebook at source to destination (atomically); returns the number of
    solutions replaced. Never writes over the source (compared as resolved paths), and replaces an existing
    destination only if it is a student copy made here, or with replace.
    Raises ConfigError where it would write over either."""
    if os.path.realpath(source) == os.path.realpath(destination):
        raise ConfigError(f"{destination} is the solution notebook itself: give another --out")
    copy, count = copy_and_count(_read(source, "notebook"))
    metadata = copy.get("metadata") if isinstance(copy.get("metadata"), dict) else {}
    copy["metadata"] = {**metadata, "aevb": {MARK: os.path.basename(source)}}
    if os.path.lexists(destination) and not replace:
        try:
            existing = _read(destination, "file at --out") if os.path.isfile(destination) else None
        except ConfigError:  # not JSON: not a copy made here either
            existing = None
        made_here = isinstance(existing, dict) and isinstance(existing.get("metadata"), dict) and isinstance(
            existing["metadata"].get("aevb"), dict) and MARK in existing["metadata"]["aevb"]
        if not made_here:
            raise ConfigError(f"{destination} exists and is not a student copy made by aevb release: give another "
                              "--out, or --replace to write over it")
    files.atomic_write_text(destination, json.dumps(copy, indent=1, ensure_ascii=False) + "\n")
    return count


def command(notebook, out=None, replace=False):
    """aevb release: the student copy of notebook at out (default release/NAME); exit code 0.
    replace: overwrite out when it is not a previous student copy."""
    out = Path(out) if out else Path("release") / Path(notebook).name
    count = release(notebook, out, replace)
    print(f"student copy: {out} ({count} solutions replaced by raise NotImplementedError())")
    return 0
