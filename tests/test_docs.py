"""The documentation site (docs/, `make docs`): built by Sphinx with warnings as errors, its Python blocks run
as a reader would paste them, and the built site opened in Debian's Chromium over HTTP on 127.0.0.1: every
navigation link, search, figures and formulas, no script error, nothing fetched from anywhere else."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest
from conftest import serving
from test_report import CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).with_suffix("").as_posix() for p in DOCS.rglob("*.md")
               if not p.relative_to(DOCS).parts[0].startswith("_"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site as `make docs` builds it (sphinx-build -W), into a folder of this test, but with the notebook's
    page left unexecuted (nb_execution_mode=off): the notebook's execution in smoke mode is test_nbgrader's
    correct submission, and a fourth execution would cost make test a minute. make docs executes it."""
    out = tmp_path_factory.mktemp("docs")
    env = {**os.environ, "AEVB_RUNS_DIR": str(out / "notebook-runs")}
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-D", "nb_execution_mode=off",
                           "-b", "html", str(DOCS), str(out / "html")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    return out / "html"


def test_every_page_is_built_with_the_api_reference_from_the_docstrings(site):
    for page in [*PAGES, "_generated/assignment", "genindex", "search"]:
        assert (site / f"{page}.html").is_file(), page
    notebook = re.sub(r"<[^>]+>", "", (site / "_generated" / "assignment.html").read_text())
    assert "def log_prior(z):" in notebook and 'grading.check("log_prior", log_prior)' in notebook.replace("&quot;", '"')
    api = (site / "api" / "evaluation.html").read_text()
    assert 'id="aevb.evaluation.exact.log_px"' in api and "(B, D)" in (site / "api" / "model.html").read_text()


def test_a_public_function_must_name_its_parameters_or_use_the_conventions():
    """The reference's check (docs/_ext/public_docstrings.py) on functions it was not written for: a parameter
    named in the docstring passes, a conventional one (the conventions page's table) passes, another is named."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import public_docstrings
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    conventional = public_docstrings.conventional_names()
    assert {"key", "x_train", "x_test", "run_dir", "run_dirs", "devices"} <= conventional and "temperature" not in conventional

    def tempered(key, x_train, temperature, *, floor_=0.0):
        """The first names floor_ only."""

    assert public_docstrings.unnamed_parameters(tempered, tempered.__doc__, conventional) == ["temperature"]
    assert public_docstrings.unnamed_parameters(tempered, "temperature > 0 and floor_", conventional) == []
    assert public_docstrings.unnamed_parameters(tempered, "temperatures and floor_", conventional) == ["temperature"]


def test_every_code_fence_of_every_page_is_closed():
    """A fence left open turns the rest of a page into one code block (training.md's did, from its settings on)."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        if "_build" in page.parts or "_generated" in page.parts:
            continue
        fences = [line for line in page.read_text().splitlines() if line.lstrip().startswith("```")]
        assert len(fences) % 2 == 0, f"{page}: {len(fences)} fence lines"
        assert all(line.strip() == "```" for line in fences[1::2]), f"{page}: a closing fence with a language"


def test_the_readme_is_a_landing_page_that_links_every_guide():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    linked = set(re.findall(r"\]\(docs/([\w/-]+)\.md\)", readme))
    assert linked == {p for p in PAGES if not p.startswith("api/")}, linked ^ set(PAGES)
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme):
        assert (ROOT / image).is_file(), image


def _python_blocks(path):
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)


def test_the_python_blocks_of_the_docs_run(tmp_path, mnist):
    """Each page's ```python blocks in order, in one namespace per page, in a fresh process whose working folder
    is empty (their runs/ go there): the start page's tour, then the README's (which finds that run trained)."""
    pages = {str(path.relative_to(ROOT)): _python_blocks(path) for path in [*sorted(DOCS.rglob("*.md")),
                                                                             ROOT / "README.md"]}
    pages = {name: blocks for name, blocks in pages.items() if blocks}
    assert "docs/index.md" in pages and "README.md" in pages
    (tmp_path / "blocks.json").write_text(json.dumps(pages))
    script = ("import json, sys\nfor name, blocks in json.load(open('blocks.json')).items():\n"
              "    namespace = {}\n    for i, block in enumerate(blocks):\n"
              "        print(f'== {name} block {i}', flush=True)\n"
              "        exec(compile(block, f'{name}, block {i}', 'exec'), namespace)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "nats/image" in done.stdout and (tmp_path / "runs" / "tour" / "report.html").is_file()


@pytest.fixture(scope="module")
def served(site):
    """The site over HTTP on 127.0.0.1 (a free port), as a reader's browser would fetch it."""
    with serving(site) as url:
        yield url


@pytest.mark.browser
def test_the_site_in_chromium_follows_every_link_and_fetches_nothing_from_outside(served):
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        outside, errors = [], []
        page.on("request", lambda r: None if r.url.startswith((served, "data:", "blob:")) else outside.append(r.url))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(served)
        navigation = page.eval_on_selector_all(".sidebar-tree a.reference.internal", "as => as.map(a => a.href)")
        pages = sorted({urlparse(url)._replace(fragment="").geturl() for url in navigation} | {served})
        assert len(pages) >= len(PAGES)  # every page of the contents is in the navigation
        for url in pages:
            response = page.goto(url)
            assert response.status == 200, url
            broken = page.eval_on_selector_all("img", "is => is.filter(i => !i.complete || i.naturalWidth === 0)"
                                               ".map(i => i.src)")
            assert broken == [], (url, broken)
            links = page.eval_on_selector_all("article a.reference.internal", "as => as.map(a => a.href)")
            for link in links:  # every link inside a page goes to a page that exists
                target = urlparse(urljoin(url, link))._replace(fragment="").geturl()
                assert target.startswith(served), link
        # Formulas are MathML the browser lays out; search finds pages with Sphinx's own offline index.
        page.goto(served + "evaluation.html")
        boxes = page.eval_on_selector_all("math", "ms => ms.map(m => m.getBoundingClientRect().width)")
        assert boxes and all(width > 0 for width in boxes)
        page.goto(served + "search.html?q=amortization")
        page.wait_for_selector("#search-results ul.search li", timeout=20000)
        found = page.eval_on_selector_all("#search-results ul.search li a", "as => as.map(a => a.href)")
        assert any(url.endswith("evaluation.html") or "evaluation.html#" in url for url in found), found
        browser.close()
    assert outside == [] and errors == [], (outside, errors)
