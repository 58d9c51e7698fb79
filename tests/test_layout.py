"""The house's floors: each package imports only the layers below it, no import is renamed, no module
is long. Read from the source with ast, so a new import against the flow fails here."""

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src" / "aevb"

# What each part of aevb may import of aevb (the layers below it; aevb/__init__.py lists them).
MAY_IMPORT = {
    "errors": set(),
    "model": set(),
    "data": {"errors", "model"},
    "config": {"errors", "model", "data"},
    "parallel": {"errors"},
    "evaluation": {"errors", "model", "data", "config", "parallel"},
    "runs": {"errors", "model", "data", "config"},
    "training": {"errors", "model", "data", "config", "parallel", "runs"},
    "views": {"errors", "model", "data", "config", "parallel", "evaluation", "runs"},
    "pipeline": {"errors", "model", "data", "config", "parallel", "evaluation", "runs", "training", "views"},
    "protocols": {"errors", "model", "data", "config", "config_file", "parallel", "evaluation", "runs", "training",
                  "views", "pipeline"},
    "course": {"errors", "model", "runs"},
    "config_file": {"errors", "config"},
    "arguments": {"config", "config_file"},
    "cli": {"errors", "config", "config_file", "parallel", "pipeline", "protocols", "course", "arguments"},
    "__main__": {"cli"},
    "__init__": set(),
}


def _part(path):
    """The layer a source file belongs to: its package, or its module's name at the top."""
    relative = path.relative_to(SOURCE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imported(path):
    """The parts of aevb a file imports: ("data", line) for `from ..data import splits`, and so on."""
    tree, part = ast.parse(path.read_text()), _part(path)
    depth = len(path.relative_to(SOURCE).parts) - 1  # 0 at the top, 1 inside a package
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names = [node.module] if node.module and node.module.startswith("aevb") else []
                parts = [name.split(".")[1] for name in names if "." in name] + [
                    alias.name for name in names if name == "aevb" for alias in node.names]
            elif node.level > depth:  # from .. (the top): the module or package named
                parts = [node.module.split(".")[0]] if node.module else [alias.name for alias in node.names]
            else:  # from . inside a package: its own modules
                parts = [part]
            found += [(p, node.lineno) for p in parts]
        elif isinstance(node, ast.Import):
            found += [(alias.name.split(".")[1], node.lineno) for alias in node.names
                      if alias.name.startswith("aevb.")]
    return found


SOURCES = sorted(SOURCE.rglob("*.py"))


def test_the_layers_are_what_the_test_knows():
    assert {_part(path) for path in SOURCES} == set(MAY_IMPORT)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_each_module_imports_only_the_layers_below_it(path):
    part = _part(path)
    wrong = [f"line {line}: {part} imports {other}" for other, line in _imported(path)
             if other != part and other not in MAY_IMPORT[part]]
    assert not wrong, "; ".join(wrong)


def test_the_import_checker_sees_an_import_against_the_flow(tmp_path, monkeypatch):
    """The check itself can fail: training importing evaluation is found, in both spellings."""
    fake = tmp_path / "aevb"
    (fake / "training").mkdir(parents=True)
    module = fake / "training" / "bad.py"
    module.write_text("from ..evaluation import curves\nfrom aevb.views import plots\nfrom . import loop\n")
    monkeypatch.setattr("test_layout.SOURCE", fake)
    assert _imported(module) == [("evaluation", 1), ("views", 2), ("training", 3)]


def _renamed(tree):
    """Imports of aevb's own modules under another name ("x as y")."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("aevb")):
            found += [f"{alias.name} as {alias.asname}" for alias in node.names if alias.asname]
        elif isinstance(node, ast.Import):
            found += [f"{alias.name} as {alias.asname}" for alias in node.names
                      if alias.asname and alias.name.startswith("aevb")]
    return found


def test_the_rename_checker_sees_a_renamed_import():
    assert _renamed(ast.parse("from . import evaluate as evaluation\nimport numpy as np\n")) == [
        "evaluate as evaluation"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_no_import_is_renamed_and_no_module_is_long(path):
    assert not _renamed(ast.parse(path.read_text()))
    lines = len(path.read_text().splitlines())
    assert lines <= (150 if path.name == "cli.py" else 250), f"{path.name} has {lines} lines"


@pytest.mark.parametrize("package", sorted(p.parent for p in SOURCE.glob("*/__init__.py")), ids=lambda p: p.name)
def test_each_package_says_what_it_owns_and_may_import(package):
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
    assert doc and "Imports" in doc
    modules = {p.stem for p in package.glob("*.py")} - {"__init__"}
    assert all(name in doc for name in modules), f"{package.name}/__init__.py names {sorted(modules)}"
