"""Formulas as MathML, written when the site is built (latex2mathml): browsers draw MathML themselves,
so the pages need no MathJax, no script and no network to show a formula."""

from docutils import nodes
from latex2mathml.converter import convert


def visit_math(translator, node):
    translator.body.append(convert(node.astext(), display="inline"))
    raise nodes.SkipNode


def visit_displaymath(translator, node):
    translator.body.append(translator.starttag(node, "div", CLASS="math-block"))
    translator.body.append(convert(node.get("latex") or node.astext(), display="block"))
    translator.body.append("</div>\n")
    raise nodes.SkipNode


def setup(app):
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_displaymath, None))
    app.config.html_math_renderer = "mathml"
    return {"parallel_read_safe": True, "parallel_write_safe": True}
