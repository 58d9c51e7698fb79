"""The report page, in a real browser: Playwright driving Debian's Chromium headless."""

import json
import re
import shutil

import numpy as np
import pytest
from conftest import tiny_flags
from scipy import special

from aevb import cli, pipeline
from aevb.runs import files
from aevb.views import drawing, plots

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="module")
def run(reported_run):
    return reported_run


def _decoded(params, z):
    """Bernoulli means in float64 numpy from the decoder's weights: an independent reference."""
    t = {name: {k: np.asarray(v, np.float64) for k, v in layer.items()} for name, layer in params["decoder"].items()}
    hidden = np.tanh(np.asarray(z, np.float64) @ t["hidden"]["weight"] + t["hidden"]["bias"])
    return special.expit(hidden @ t["out"]["weight"] + t["out"]["bias"])


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_report_is_one_self_contained_file(run):
    text = (run / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert text.count('src="data:image/png;base64,') >= 9  # six figures of issue 3, three of the completion
    for needle in ["Test ELBO", "nats/image", "K = 10", "True or false", "(e) Can a normal density be &gt; 1?",
                   "training images 200-299", "latent-canvas", "summed over 144 pixels",  # REPORTED: 200 + 100
                   "bottom pixels (row", "3.9894"]:
        assert needle in text
    payload = json.loads(re.search(r'<script id="explorer-data" type="application/json">(.*?)</script>', text).group(1))
    assert payload["classNames"] == ["0°", "90°", "180°", "270°"] and (payload["rows"], payload["cols"]) == (12, 12)


@pytest.mark.browser
def test_explorer_decodes_like_python_with_no_errors_and_no_network(run, browser, tmp_path):
    loaded = pipeline.load(run)
    params = loaded.params
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors, requests = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto((run / "report.html").resolve().as_uri())
    canvas = page.locator("#latent-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    size = page.evaluate("aevbExplorer.size")
    z_per_pixel = page.evaluate("aevbExplorer.canvasToZ(1, 0)[0] - aevbExplorer.canvasToZ(0, 0)[0]")
    z_per_pixel *= size / box["width"]

    def hover(z):
        x, y = page.evaluate(f"aevbExplorer.zToCanvas([{z[0]}, {z[1]}])")
        page.mouse.move(box["x"] + x * box["width"] / size, box["y"] + y * box["height"] / size)
        return np.array(page.evaluate("aevbExplorer.state.lastZ")), np.array(
            page.evaluate("Array.from(aevbExplorer.state.lastDecoded)"))

    # Known latent points: the encodings of three training images, and a point off the data.
    targets = list(drawing.encode_means(loaded, loaded.split.x_train[[3, 17, 42]])) + [
        page.evaluate("aevbExplorer.canvasToZ(0.9 * aevbExplorer.size, 0.1 * aevbExplorer.size)")]
    for target in targets:
        z, decoded = hover(target)
        assert np.all(np.abs(z - np.array(target)) <= 1.5 * abs(z_per_pixel))  # the pointer landed at the target
        expected = _decoded(params, z)
        assert decoded.shape == (144,)
        assert np.max(np.abs(decoded - expected)) < 1e-4
        # The 12x12 canvas shows these pixels (as 0-255 greys).
        shown = np.array(page.evaluate(
            "Array.from(document.getElementById('decoded-canvas').getContext('2d').getImageData(0,0,12,12).data)"))
        np.testing.assert_allclose(shown[0::4], np.round(255 * decoded), atol=1)

    # Two clicks: the interpolation strip from z_a to z_b.
    page.mouse.click(box["x"] + 0.3 * box["width"], box["y"] + 0.3 * box["height"])
    z_a = np.array(page.evaluate("aevbExplorer.state.clicks[0]"))
    page.mouse.click(box["x"] + 0.7 * box["width"], box["y"] + 0.6 * box["height"])
    z_b = np.array(page.evaluate("aevbExplorer.state.clicks[1]"))
    strip = np.array(page.evaluate("aevbExplorer.state.strip.map(p => Array.from(p))"))
    assert strip.shape == (10, 144)
    path = np.stack([plots.interpolate(z_a, z_b, alpha) for alpha in np.linspace(1, 0, 10)])
    np.testing.assert_allclose(strip, _decoded(params, path), atol=1e-4)
    legend = page.inner_text("#legend")
    assert all(name in legend for name in loaded.split.dataset.class_names)
    assert "Interpolation from" in page.inner_text("#strip-note")

    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 50000
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    page.close()


@pytest.mark.browser
def test_phone_width_has_no_horizontal_scroll(run, browser):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto((run / "report.html").resolve().as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("#latent-canvas").bounding_box()["width"] <= 390
    page.close()


def test_other_latent_dimensions_get_a_note_not_an_explorer(tmp_path, capsys):
    argv = ["--runs-dir", str(tmp_path), "--name", "r3"]
    assert cli.main(["train", *tiny_flags(epochs=1, latent_dim=3), "--no-progress", *argv]) == 0
    assert cli.main(["report", *argv]) == 0
    text = files.report_path(tmp_path / "r3").read_text()
    assert "cannot run the decoder of this model" in text and "Dz = 3" in text and "<canvas" not in text
    assert "aevbExplorer" not in text and "Not evaluated yet" in text and "not drawn yet" in text


def test_the_exact_sections_conclusions_follow_the_runs_numbers():
    """The report words what the bounds against K show from the run's numbers, not a fixed sentence."""
    from aevb.views import report

    base = {"images": 300, "k": [1, 10, 100, 1000, 5000], "iwae_gap_se": [0.1] * 5, "defensive_gap_se": [0.01] * 5}
    stuck = report._bounds_conclusion({**base, "iwae_gap": [20, 12, 9, 7.5, 7.4], "defensive_gap": [9, 3, 1, .3, .1]})
    assert "barely help" in stuck and "falls by 0.10 nats only" in stuck and "finds the missing mass" in stuck
    assert "came within 0.10 nats" in stuck
    helped = report._bounds_conclusion({**base, "iwae_gap": [20, 12, 9, 6.0, 3.0], "defensive_gap": [9, 6, 5, 4, 3]})
    assert "more samples from q help" in helped and "barely" not in helped
    assert "does not find the missing mass either" in helped and "no bound here can stand in for it" in helped


def test_the_report_shows_the_runs_numbers(run):
    """The numbers the page shows are the run's: each mean ± standard error recomputed here from the
    per-image values (numpy, float64) appears in the page's text, formatted as the page formats them."""
    from aevb.runs import records

    text = re.sub(r"<[^>]+>", "", (run / "report.html").read_text())
    per_image, summary = records.read_per_image(run), records.read_summary(run)

    def shown(values):
        values = np.asarray(values, np.float64)
        return f"{values.mean():.2f} ± {values.std(ddof=1) / np.sqrt(len(values)):.2f}"

    for key in ("test_elbo", "train_elbo", "test_iwae", "test_log_px", "train_log_px"):
        assert shown(per_image[key]) in text, key
        assert summary[key] == pytest.approx(per_image[key].mean(), abs=1e-4), key
    assert shown(per_image["test_log_px"] - per_image["test_elbo"]) in text
    assert shown(per_image["train_log_px"] - per_image["train_elbo"]) in text
    rows = records.read_metrics(run)
    assert f"{len(rows)} epochs in" in text and f"{sum(r['seconds'] for r in rows):.1f} s" in text


HOSTILE = ["</script><script>alert('xss')</script>", '"><img src=x onerror=alert(1)>', "$\\frac{$ & <b>bold</b>",
           "plain"]


@pytest.mark.browser
def test_names_a_user_supplied_reach_the_pages_as_text(browser, tmp_path, capsys):
    """Class names from an npz and a run name that are HTML and script: the report and the comparison
    page show them as text, no dialog fires, no script error, and the explorer's legend lists them."""
    from conftest import run_cli

    rng = np.random.default_rng(0)
    images = (rng.uniform(size=(300, 12, 12)) * 256).astype(np.uint8)
    data = tmp_path / "hostile.npz"
    np.savez(data, images=images, labels=np.arange(300) % 4, class_names=np.array(HOSTILE))
    name = "<img src=x onerror=alert(2)>"
    argv = ["--runs-dir", str(tmp_path / "runs"), "--name", name]
    code, _, err = run_cli(capsys, "run", "--dataset", f"npz:{data}", "--n-train", "60", "--n-test", "20",
                           "--batch-size", "20", "--epochs", "1", "--hidden-dim", "16", "--eval-samples", "2",
                           "--iwae-k", "10", "--log-px-every", "0", "--no-progress", "--quick", *argv)
    assert code == 0, err
    code, _, err = run_cli(capsys, "compare", str(tmp_path / "runs" / name), "--out", str(tmp_path / "page"))
    assert code == 0, err
    for page_path in (tmp_path / "runs" / name / "report.html", tmp_path / "page" / "compare.html"):
        dialogs, errors = [], []
        page = browser.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(page_path.resolve().as_uri())
        page.wait_for_timeout(300)
        assert dialogs == [] and errors == [], (page_path.name, dialogs, errors)
        assert page.locator("img[src='x']").count() == 0 and page.locator("b", has_text="bold").count() == 0
        assert name in page.inner_text("body")
        if page_path.name == "report.html":
            legend = page.inner_text("#legend")
            assert all(class_name in legend for class_name in HOSTILE), legend
        page.close()
