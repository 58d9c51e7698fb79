"""A public function, class or method of aevb without a docstring is a warning (so an error under -W): the
API reference is made from the docstrings, and an entry with none would say nothing."""

from sphinx.util import logging

LOGGER = logging.getLogger(__name__)


def check(app, what, name, obj, options, lines):
    if what in ("function", "class", "method") and not any(line.strip() for line in lines):
        if not any(part.startswith("_") for part in name.split(".")):
            LOGGER.warning("%s %s has no docstring: the API reference would say nothing of it", what, name)


def setup(app):
    app.connect("autodoc-process-docstring", check)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
