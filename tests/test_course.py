"""The course's notebook, its student copy and the autograder: the notebook runs top to bottom (smoke
mode), the autograder passes aevb's own functions and names what is wrong in typical wrong answers, and
the student copy has every solution replaced and stops at the first check with the right message."""

import json
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

import jax
import jax.numpy as jnp
import nbclient
import nbformat
import numpy as np
import pytest
from conftest import run_cli

from aevb.course import grading, release
from aevb.errors import ConfigError
from aevb.model import densities, probability

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "assignment.ipynb"
NET = grading.NET


def _cells(notebook):
    return [(c["cell_type"], "".join(c["source"])) for c in notebook["cells"]]


# ---- right answers written as a student writes them (jax.numpy only): the autograder must pass them ----


def log_prior(z):
    return jnp.sum(-0.5 * jnp.log(2 * jnp.pi) - 0.5 * z**2, axis=-1)


def _affine(h, layer):  # h @ weight + bias, the bias broadcast explicitly (the tests raise on rank promotion)
    return h @ layer["weight"] + jnp.broadcast_to(layer["bias"], h.shape[:-1] + layer["bias"].shape)


def decoder(theta, z):
    return _affine(jnp.tanh(_affine(z, theta["hidden"])), theta["out"])


def _per_pixel(theta, x, z):  # log Bernoulli(x; sigmoid(logits)) per pixel, (B, D)
    return -jnp.logaddexp(0.0, -(2 * x - 1) * decoder(theta, z))


def log_likelihood(theta, x, z):
    return jnp.sum(_per_pixel(theta, x, z), axis=-1)


def joint_log_density(theta, x, z):
    return log_prior(z) + log_likelihood(theta, x, z)


def encoder(phi, x):
    out = _affine(jnp.tanh(_affine(x, phi["hidden"])), phi["out"])
    return out[..., : out.shape[-1] // 2], out[..., out.shape[-1] // 2:]


def log_q(mean, log_std, z):
    return jnp.sum(-0.5 * jnp.log(2 * jnp.pi) - log_std - 0.5 * ((z - mean) * jnp.exp(-log_std)) ** 2, axis=-1)


def _elbo_per_image(key, params, x, draw=lambda key, shape: jax.random.normal(key, shape), stop=lambda z: z):
    mean, log_std = encoder(params["encoder"], x)
    z = stop(mean + jnp.exp(log_std) * draw(key, mean.shape))  # eps = normal(key, mean.shape), as the assignment says
    return joint_log_density(params["decoder"], x, z) - log_q(mean, log_std, z)


def elbo(key, params, x):
    return jnp.mean(_elbo_per_image(key, params, x))


def loss(key, params, x):
    return -elbo(key, params, x)


def top_half_log_likelihood(theta, x, z):
    return jnp.sum(_per_pixel(theta, x, z)[..., : 14 * 28], axis=-1)


def _draw(key, mean, log_std, num_samples):  # (S, Dz), eps = normal(key, (S, Dz)), as the assignment says
    return jnp.broadcast_to(mean, (num_samples,) + mean.shape) + jnp.broadcast_to(
        jnp.exp(log_std), (num_samples,) + mean.shape) * jax.random.normal(key, (num_samples, mean.shape[-1]))


def _svi_terms(key, theta, x, mean, log_std, num_samples, likelihood=top_half_log_likelihood):
    z = _draw(key, mean, log_std, num_samples)
    xs, means, log_stds = (jnp.broadcast_to(a, z.shape[:1] + a.shape) for a in (x, mean, log_std))
    return log_prior(z) + likelihood(theta, xs, z), log_q(means, log_stds, z)


def svi_elbo(key, theta, x, mean, log_std, num_samples):
    joint, q = _svi_terms(key, theta, x, mean, log_std, num_samples)
    return jnp.mean(joint - q)


RIGHT = {"log_prior": log_prior, "decoder": decoder, "log_likelihood": log_likelihood,
         "joint_log_density": joint_log_density, "encoder": encoder, "log_q": log_q, "elbo": elbo, "loss": loss,
         "top_half_log_likelihood": top_half_log_likelihood, "svi_elbo": svi_elbo}


def test_the_autograder_passes_right_answers(capsys):
    assert set(RIGHT) == set(grading.CHECKS)
    for name, function in RIGHT.items():
        grading.check(name, function)
    assert capsys.readouterr().out.count("correct") == len(RIGHT)


# ---- typical wrong answers, each with the words it must get -------------------------------------


def _loop_log_prior(z):
    return jnp.stack([jnp.sum(-0.5 * jnp.log(2 * jnp.pi) - 0.5 * z[i] ** 2) for i in range(z.shape[0])])


def _framework_log_prior(z):
    return jnp.sum(jax.scipy.stats.norm.logpdf(z), axis=-1)


def _means_log_likelihood(theta, x, z):
    means = jax.nn.sigmoid(decoder(theta, z))
    return jnp.sum(x * jnp.log(means) + (1 - x) * jnp.log(means), axis=-1)  # a typo-level error: no 1 - means


def _elbo_draws_differently(key, params, x):
    return jnp.mean(_elbo_per_image(jax.random.fold_in(key, 1), params, x))


def _elbo_no_gradient_through_z(key, params, x):
    return jnp.mean(_elbo_per_image(key, params, x, stop=jax.lax.stop_gradient))


def _not_written(*args):
    raise NotImplementedError()


WRONG = [
    ("log_prior", lambda z: -0.5 * jnp.log(2 * jnp.pi) - 0.5 * z**2, "missing the sum"),
    ("log_prior", lambda z: -log_prior(z), "wrong sign"),
    ("log_prior", lambda z: jnp.sum(-0.5 * z**2, axis=-1), "normalizing constant"),
    ("log_prior", lambda z: jnp.sum(log_prior(z)), "sums over the batch"),
    ("log_prior", _loop_log_prior, "loops over the batch"),
    ("log_prior", _framework_log_prior, "uses jax.scipy.stats.norm.logpdf"),
    ("log_prior", _not_written, "not written yet"),
    ("log_prior", lambda z: np.sum(-0.5 * np.log(2 * np.pi) - 0.5 * np.asarray(z) ** 2, axis=-1),
     "cannot be traced by JAX"),
    ("decoder", lambda theta, z: jax.nn.sigmoid(decoder(theta, z)), "Bernoulli means"),
    ("decoder", lambda theta, z: jnp.tanh(decoder(theta, z)), "tanh to the output layer"),
    ("decoder", lambda theta, z: decoder(theta, z)[:, :10], "returned shape"),
    ("log_likelihood", lambda theta, x, z: _per_pixel(theta, x, z), "missing the sum"),
    ("log_likelihood", lambda theta, x, z: -log_likelihood(theta, x, z), "wrong sign"),
    ("log_likelihood", lambda theta, x, z: jnp.sum(x * jnp.log(decoder(theta, z)) + (1 - x)
                                                   * jnp.log1p(-decoder(theta, z)), axis=-1),
     "logits as Bernoulli means"),
    ("log_likelihood", lambda theta, x, z: jnp.sum(-jnp.logaddexp(0.0, -(2 * x - 1) * jax.nn.sigmoid(
        decoder(theta, z))), axis=-1), "sigmoid twice"),
    ("log_likelihood", _means_log_likelihood, "differs from aevb's"),
    ("joint_log_density", lambda theta, x, z: log_likelihood(theta, x, z), "missing log p(z)"),
    ("joint_log_density", lambda theta, x, z: log_likelihood(theta, x, z) - log_prior(z), "subtracts log p(z)"),
    ("encoder", lambda phi, x: encoder(phi, x)[::-1], "returns (log_std, mean)"),
    ("encoder", lambda phi, x: (encoder(phi, x)[0], jnp.exp(encoder(phi, x)[1])), "the std, not log_std"),
    ("encoder", lambda phi, x: jnp.concatenate(encoder(phi, x), -1), "must return a pair"),
    ("log_q", lambda m, s, z: log_q(m, jnp.log(jnp.abs(s)), z), "treats log_std as the std"),
    ("log_q", lambda m, s, z: log_q(m, s, z) + jnp.sum(s, -1), "-log std"),
    ("log_q", lambda m, s, z: log_prior(z), "standard normal's"),
    ("log_q", lambda m, s, z: jnp.sum(log_q(m, s, z)), "sums over the batch"),
    ("elbo", lambda key, params, x: jnp.sum(elbo(key, params, x)) * x.shape[0], "sums over the batch"),
    ("elbo", lambda key, params, x: -elbo(key, params, x), "wrong sign"),
    ("elbo", _elbo_draws_differently, "draws z differently"),
    ("elbo", _elbo_no_gradient_through_z, "gradient with respect to the encoder's"),
    ("loss", elbo, "returns the ELBO itself"),
    ("top_half_log_likelihood", log_likelihood, "sums over every pixel"),
    ("top_half_log_likelihood", lambda theta, x, z: jnp.sum(_per_pixel(theta, x, z)[..., 14 * 28:], axis=-1),
     "bottom half"),
    ("svi_elbo", lambda key, theta, x, m, s, n: jnp.mean(jnp.subtract(*_svi_terms(key, theta, x, m, s, n,
                                                                                  log_likelihood))),
     "scores every pixel"),
    ("svi_elbo", lambda key, theta, x, m, s, n: jnp.mean(_svi_terms(key, theta, x, m, s, n)[0]), "missing -log q(z)"),
]


@pytest.mark.parametrize("name, function, words", WRONG, ids=[f"{n}-{w}" for n, _, w in WRONG])
def test_the_autograder_says_what_is_wrong(name, function, words):
    with pytest.raises(grading.Wrong) as failure:
        grading.check(name, function)
    assert words in str(failure.value), str(failure.value)
    assert isinstance(failure.value, AssertionError)  # nbgrader and pytest count it as a failed test


def test_the_elbo_of_each_image_is_not_the_mean_over_the_batch():
    with pytest.raises(grading.Wrong, match="one value per image"):
        grading.check("elbo", _elbo_per_image)


# ---- a verdict for every student function, whatever it does --------------------------------------

STUDENT = """
import jax
import jax.numpy as jnp


def log_prior(z):
    return jnp.sum(-0.5 * jnp.log(2 * jnp.pi) - 0.5 * z**2, axis=-1)


def decoder(theta, z):
    hidden = jnp.tanh(z @ theta["hidden"]["weight"] + theta["hidden"]["bias"])
    return hidden @ theta["out"]["weight"] + theta["out"]["bias"]


def log_likelihood(theta, x, z):
    return jnp.sum(-jnp.logaddexp(0.0, -(2 * x - 1) * decoder(theta, z)), axis=-1)


def encoder(phi, x):
    out = jnp.tanh(x @ phi["hidden"]["weight"] + phi["hidden"]["bias"]) @ phi["out"]["weight"] + phi["out"]["bias"]
    return out[..., : out.shape[-1] // 2], out[..., out.shape[-1] // 2:]


def log_q(mean, log_std, z):
    return jnp.sum(-0.5 * jnp.log(2 * jnp.pi) - log_std - 0.5 * ((z - mean) * jnp.exp(-log_std)) ** 2, axis=-1)


def joint_log_density(theta, x, z):
    return log_prior(z) + log_likelihood(theta, x, z)


def elbo(key, params, x):
    mean, log_std = encoder(params["encoder"], x)
    z = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    return jnp.mean(joint_log_density(params["decoder"], x, z) - log_q(mean, log_std, z))
"""


def _student(*cells):
    """The namespace of a notebook (module __main__) that ran STUDENT and then cells, as a student writes them
    (implicit broadcasting allowed, as in a notebook)."""
    namespace = {"__name__": "__main__"}
    with jax.numpy_rank_promotion("allow"):
        exec(compile("\n".join((STUDENT,) + cells), "<notebook>", "exec"), namespace)
    return namespace


def _verdict(name, function):
    """grading.check's message, checked to come with no traceback into the reference's code."""
    with jax.numpy_rank_promotion("allow"), pytest.raises(grading.Wrong) as failure:
        grading.check(name, function)
    frames = [frame.filename for frame in traceback.extract_tb(failure.value.__traceback__)]
    assert not [f for f in frames if "aevb/course" in f.replace(os.sep, "/") and not f.endswith("grading.py")], frames
    return str(failure.value)


@pytest.mark.parametrize("cell, words", [
    ('def log_prior(z):\n    return "the log prior"', "returned a str"),
    ("def log_prior(z):\n    return {'value': z}", "returned a dict"),
    ("def log_prior(z):\n    return [[1.0, 2.0], [3.0]]", "returned a list"),
    ("def log_prior(z):\n    pass", "returned None"),
    ("calls = []\ndef log_prior(z):\n    calls.append(1)\n    if len(calls) > 1:\n        raise KeyError('again')\n"
     "    return jnp.sum(-0.5 * jnp.log(2 * jnp.pi) - 0.5 * z**2, axis=-1)", "raised KeyError"),
    ("log_prior = 3.0", "is not a function"),
])
def test_every_student_function_gets_a_verdict_whatever_it_returns(cell, words):
    assert words in _verdict("log_prior", _student(cell)["log_prior"])


def test_an_unknown_check_name_gets_a_verdict_that_lists_the_checks():
    message = _verdict("log_priors", _student()["log_prior"])
    assert "no check named 'log_priors'" in message and "log_prior, decoder" in message


@pytest.mark.parametrize("cell, words", [
    ("from jax.scipy.stats.norm import logpdf\ndef log_prior(z):\n    return jnp.sum(logpdf(z), axis=-1)",
     "uses logpdf (jax.scipy.stats.norm.logpdf)"),
    ("def log_prior(z):\n    import scipy.stats\n    return jnp.sum(jnp.asarray(scipy.stats.norm.logpdf(z)), -1)",
     "uses scipy.stats"),
    ("from aevb.model import probability\ndef log_prior(z):\n    return probability.log_prior(z)",
     "uses probability.log_prior (aevb.model.probability.log_prior)"),
    ("import aevb.model.densities as d\ndef _helper(z):\n    return d.LOG_2PI\n"
     "def log_prior(z):\n    return jnp.sum(-0.5 * _helper(z) - 0.5 * z**2, axis=-1)", "uses d (aevb.model.densities)"),
    ("def log_prior(z):\n    noise = jax.random.bernoulli(jax.random.PRNGKey(0), 0.5, z.shape)\n"
     "    return jnp.sum(-0.5 * jnp.log(2 * jnp.pi) - 0.5 * z**2 + 0 * noise, axis=-1)", "jax.random.bernoulli"),
])
def test_framework_and_aevb_densities_are_refused_however_imported(cell, words):
    assert words in _verdict("log_prior", _student(cell)["log_prior"])


def test_comments_and_strings_that_name_a_framework_are_not_a_use_of_it(capsys):
    namespace = _student('def log_prior(z):\n    """Not scipy.stats.norm.logpdf, nor jax.scipy.stats."""\n'
                         "    # written by hand, not with scipy.stats or aevb.model.probability\n"
                         "    return jnp.sum(-0.5 * jnp.log(2 * jnp.pi) - 0.5 * z**2, axis=-1)")
    with jax.numpy_rank_promotion("allow"):
        grading.check("log_prior", namespace["log_prior"])
    assert "log_prior: correct" in capsys.readouterr().out


def test_each_check_grades_one_function(capsys):
    """One sign error in log_q costs log_q's check only: elbo, which calls it, is graded with aevb's log_q
    in its place; so is joint_log_density with a wrong log_likelihood. The student's functions are theirs
    again after each check."""
    namespace = _student("def log_q(mean, log_std, z):\n    return -jnp.sum(-0.5 * jnp.log(2 * jnp.pi) - log_std - "
                         "0.5 * ((z - mean) * jnp.exp(-log_std)) ** 2, axis=-1)",
                         "def log_likelihood(theta, x, z):\n    return -jnp.sum(-jnp.logaddexp(0.0, -(2 * x - 1) * "
                         "decoder(theta, z)), axis=-1)")
    wrong_log_q = namespace["log_q"]
    assert "wrong sign" in _verdict("log_q", wrong_log_q)
    assert "wrong sign" in _verdict("log_likelihood", namespace["log_likelihood"])
    with jax.numpy_rank_promotion("allow"):
        grading.check("elbo", namespace["elbo"])
        grading.check("joint_log_density", namespace["joint_log_density"])
    assert capsys.readouterr().out.count("correct") == 2
    assert namespace["log_q"] is wrong_log_q


def test_a_student_function_that_never_returns_gets_a_verdict_within_the_time_limit(tmp_path):
    """A real process: the check of a function that loops forever ends with a verdict at the limit."""
    script = ("import time\nfrom aevb.course import diagnoses, grading\ndiagnoses.SECONDS_PER_CHECK = 3\n"
              "def log_prior(z):\n    while True:\n        time.sleep(0.01)\n"
              "try:\n    grading.check('log_prior', log_prior)\n"
              "except grading.Wrong as wrong:\n    print('VERDICT', wrong)\n")
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "VERDICT log_prior did not finish within 3 s" in done.stdout, done.stderr[-2000:]
    assert time.monotonic() - began < 120


# ---- the notebook and its student copy ---------------------------------------------------------


def test_the_committed_notebook_has_no_outputs_and_a_check_for_every_solution():
    notebook = json.loads(NOTEBOOK.read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    text = "\n".join(source for _, source in _cells(notebook))
    for name in grading.CHECKS:
        assert f"def {name}(" in text and f'grading.check("{name}", {name})' in text
    # nbgrader's metadata on every solution and every autograder cell
    solutions = [c for c in code if "### BEGIN SOLUTION" in "".join(c["source"])]
    checks = [c for c in code if "grading.check(" in "".join(c["source"])]
    assert all(c["metadata"]["nbgrader"]["solution"] for c in solutions)
    assert all(c["metadata"]["nbgrader"]["grade"] and c["metadata"]["nbgrader"]["locked"] for c in checks)
    assert len({c["metadata"]["nbgrader"]["grade_id"] for c in solutions + checks}) == len(solutions + checks)


def test_the_student_copy_replaces_every_solution(tmp_path, capsys):
    out = tmp_path / "student" / "assignment.ipynb"
    code, printed, _ = run_cli(capsys, "release", str(NOTEBOOK), "--out", str(out))
    assert code == 0, printed
    solution, student = json.loads(NOTEBOOK.read_text()), json.loads(out.read_text())
    assert f"{release.solution_count(solution)} solutions" in printed and release.solution_count(solution) == 10
    assert len(student["cells"]) == len(solution["cells"])
    for (kind, mine), (_, theirs) in zip(_cells(solution), _cells(student), strict=True):
        if "### BEGIN SOLUTION" not in mine:
            assert theirs == mine
            continue
        assert "SOLUTION" not in theirs and "raise NotImplementedError()" in theirs
        answer = mine.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
        for line in answer.strip().splitlines():
            assert line.strip() not in theirs  # no line of the answer is left
        before = mine.split("### BEGIN SOLUTION")[0]  # nbgrader's stub, at the marker's indentation
        indent = before[len(before.rstrip(" ")):]
        assert theirs.split("# YOUR CODE HERE")[0] + "# YOUR CODE HERE\n" + indent == before + "# YOUR CODE HERE\n" + \
            indent and f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()" in theirs


@pytest.mark.parametrize("source, words", [
    ("x = 1\n### BEGIN SOLUTION\ny = 2\n", "line 2: ### BEGIN SOLUTION without its ### END"),
    ("### END SOLUTION\n", "line 1: ### END SOLUTION without its ### BEGIN"),
    ("### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n", "inside an open ### BEGIN SOLUTION"),
])
def test_broken_markers_are_refused_in_one_line(tmp_path, capsys, source, words):
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# title"]},
                          {"cell_type": "code", "metadata": {}, "source": [source], "outputs": [],
                           "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 4}
    path = tmp_path / "broken.ipynb"
    path.write_text(json.dumps(notebook))
    code, _, err = run_cli(capsys, "release", str(path), "--out", str(tmp_path / "out.ipynb"))
    assert code == 2 and "cell 2, line" in err and words in err and len(err.strip().splitlines()) == 2  # usage + error
    assert not (tmp_path / "out.ipynb").exists()


def test_hidden_tests_are_removed_and_markdown_answers_blanked():
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "Q: why?\n### BEGIN SOLUTION\n"
                           "Because.\n### END SOLUTION\n"},
                          {"cell_type": "code", "metadata": {}, "outputs": [{"output_type": "stream"}],
                           "execution_count": 3, "source": "check(f)\n### BEGIN HIDDEN TESTS\nsecret(f)\n"
                           "### END HIDDEN TESTS\n"}]}
    student = release.student_copy(notebook)
    assert "".join(student["cells"][0]["source"]) == "Q: why?\nYOUR ANSWER HERE\n"
    assert "".join(student["cells"][1]["source"]) == "check(f)\n"
    assert student["cells"][1]["outputs"] == [] and student["cells"][1]["execution_count"] is None


def _execute(path, tmp_path, allow_errors=False):
    notebook = nbformat.read(path, as_version=4)
    os.environ.update(AEVB_SMOKE="1", AEVB_RUNS_DIR=str(tmp_path / "runs"))  # the kernel inherits them
    try:
        client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=allow_errors,
                                         resources={"metadata": {"path": str(tmp_path)}})
        try:
            client.execute()
        except nbclient.exceptions.CellExecutionError as error:
            return notebook, error
        return notebook, None
    finally:
        del os.environ["AEVB_SMOKE"], os.environ["AEVB_RUNS_DIR"]


# The notebook run top to bottom in smoke mode: tests/test_nbgrader.py, the correct submission.


@pytest.mark.slow
def test_the_student_copy_stops_at_the_first_check_with_its_message(tmp_path):
    student = tmp_path / "assignment.ipynb"
    release.release(NOTEBOOK, student)
    notebook, error = _execute(student, tmp_path)
    assert error is not None and "log_prior is not written yet (it raises NotImplementedError)" in str(error)
    assert "Wrong" in str(error)


def test_release_refuses_what_is_not_a_notebook(tmp_path):
    (tmp_path / "x.ipynb").write_text("{not json")
    with pytest.raises(ConfigError, match="is not a notebook: its JSON breaks at line 1"):
        release.release(tmp_path / "x.ipynb", tmp_path / "y.ipynb")
    with pytest.raises(ConfigError, match="cannot read the notebook"):
        release.release(tmp_path / "missing.ipynb", tmp_path / "y.ipynb")
    (tmp_path / "list.ipynb").write_text("[]")
    with pytest.raises(ConfigError, match="not a Jupyter notebook"):
        release.release(tmp_path / "list.ipynb", tmp_path / "y.ipynb")


def test_a_log_likelihood_that_underflows_at_a_trained_decoders_logits_is_named():
    """log(sigmoid(l)) written as it reads agrees with aevb's at small logits but is -inf or nan at the tens a
    trained decoder gives its background pixels (training then diverges): the check gives it its own verdict,
    while the stable forms (logaddexp, jax.nn.log_sigmoid) pass."""
    naive = _student("def log_likelihood(theta, x, z):\n    p = jax.nn.sigmoid(decoder(theta, z))\n"
                     "    return jnp.sum(x * jnp.log(p) + (1 - x) * jnp.log(1 - p), axis=-1)")["log_likelihood"]
    verdict = _verdict("log_likelihood", naive)
    assert "for logits as large as a trained decoder's" in verdict and "jnp.logaddexp" in verdict
    stable = _student("def log_likelihood(theta, x, z):\n    l = decoder(theta, z)\n"
                      "    return jnp.sum(x * jax.nn.log_sigmoid(l) + (1 - x) * jax.nn.log_sigmoid(-l), axis=-1)")
    with jax.numpy_rank_promotion("allow"):
        grading.check("log_likelihood", stable["log_likelihood"])


def test_every_page_that_states_the_smoke_setting_states_the_notebooks():
    """The smoke setting is the notebook's SETTINGS line; the notebook's own introduction, the students' page and
    the nbgrader config each say it in words (two of them once said 2 epochs on 500 images while the notebook ran
    1 on 300): the words are made here from the line the notebook runs."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    smoke = re.search(r"SETTINGS = Config\(([^)]*)\) if SMOKE", code).group(1)
    values = {name: int(value) for name, value in re.findall(r"(\w+)=(\d+)", smoke)}
    words = (f"{values['epochs']} epoch{'s' if values['epochs'] != 1 else ''} on {values['n_train']} training and "
             f"{values['n_test']} test images")
    root = NOTEBOOK.parent.parent
    texts = {"the notebook": " ".join(c.source for c in notebook.cells if c.cell_type == "markdown"),
             "docs/students.md": (root / "docs" / "students.md").read_text(),
             "course/nbgrader_config.py": (root / "course" / "nbgrader_config.py").read_text()}
    for name, text in texts.items():
        flat = " ".join(text.replace("#", " ").split())  # a comment's words across its lines
        assert words in flat, (name, words)
        assert f"{values['hidden_dim']} hidden units" in flat, name
