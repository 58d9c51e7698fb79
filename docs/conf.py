"""Sphinx settings of aevb's documentation site (`make docs` builds it into docs/_build/html).

Why this toolchain: Sphinx with MyST (myst-nb, which brings myst-parser) and autodoc is what the JAX
ecosystem's own sites use (jax, optax, flax, numpyro, blackjax), so our readers know its look and its
search; it renders the API reference from the code's docstrings and executes the course notebook at build
time. Sphinx is released every few months; MkDocs 1.6 has had no release since 2024. The theme is furo
(maintained, system fonts, nothing fetched). Formulas are MathML written at build time by latex2mathml
(docs/_ext/mathml.py): browsers draw MathML themselves, so no MathJax and no CDN. Search is Sphinx's own
index. The built site fetches nothing from the network when it is opened.
"""

import os
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT / "src"))

project = "aevb"
author = "aevb's developers"
copyright = "2026, aevb's developers"
extensions = ["myst_nb", "sphinx.ext.autodoc", "mathml", "public_docstrings"]
exclude_patterns = ["_build", "README.md", "Thumbs.db", ".DS_Store"]
html_theme = "furo"
html_title = "aevb"
html_static_path = ["_static"]
html_show_sourcelink = False
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]
autodoc_member_order = "bysource"
# undoc-members: a public function without a docstring reaches the check (_ext/public_docstrings.py), not skipped
autodoc_default_options = {"members": True, "undoc-members": True}
nitpicky = False

# The course notebook is a page, executed by the build in its smoke mode (1 epoch on 300 images, the quick
# evaluation): its outputs are made here, never committed. Its run goes under _build, not into runs/, made
# afresh by each build (a run left by an older build would resume with other settings and be refused).
NOTEBOOK = DOCS / "_generated" / "assignment.ipynb"
NOTEBOOK.parent.mkdir(exist_ok=True)
shutil.copyfile(ROOT / "notebooks" / "assignment.ipynb", NOTEBOOK)
os.environ["AEVB_SMOKE"] = "1"
if "AEVB_RUNS_DIR" not in os.environ:
    shutil.rmtree(DOCS / "_build" / "notebook-runs", ignore_errors=True)
    os.environ["AEVB_RUNS_DIR"] = str(DOCS / "_build" / "notebook-runs")
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
html_favicon = "_static/favicon.png"
