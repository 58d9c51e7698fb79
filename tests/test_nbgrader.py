"""The course with nbgrader 0.9.6 itself: its ClearSolutions against aevb release on notebooks with every kind of
marker, and the whole path a teacher takes with course/nbgrader_config.py and the "aevb" kernel (make kernel):
generate_assignment, then autograde of a correct, a partly wrong and an empty submission; the correct one is
also the test that the notebook runs top to bottom in smoke mode (one execution serves both)."""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from aevb.course import grading, release

ROOT = Path(__file__).parent.parent
NOTEBOOK = ROOT / "notebooks" / "assignment.ipynb"


def _cell(source, cell_type="code", solution=None):
    """A cell; solution True: a solution cell, False: an autograder cell (1 point), None: no nbgrader metadata."""
    cell = nbformat.v4.new_code_cell(source) if cell_type == "code" else nbformat.v4.new_markdown_cell(source)
    if solution is not None:
        cell.metadata["nbgrader"] = {"solution": solution, "grade": not solution, "locked": not solution,
                                     "grade_id": f"c{id(cell)}", "schema_version": 3, **({} if solution else {
                                         "points": 1})}
    return cell


MARKED = [  # cells as teachers write them, each kind of marker nbgrader knows
    _cell("def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n", solution=True),
    _cell("def g(x):\n    #### BEGIN SOLUTION\n    return 2 * x\n    #### END SOLUTION\n\nprint(g)", solution=True),
    _cell("# BEGIN SOLUTION\ny = 3\n# END SOLUTION\nz = 4", solution=True),
    _cell("def h(x):\n        # BEGIN SOLUTION\n        return x\n        # END SOLUTION\n", solution=True),
    _cell("answer = 42  # the whole cell is the solution", solution=True),  # metadata, no markers: replaced whole
    _cell("The answer is **yes**, because ...", "markdown", solution=True),
    _cell("Before.\n=== BEGIN SOLUTION ===\nA proof.\n=== END SOLUTION ===\nAfter.", "markdown", solution=True),
    _cell("assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 3\n### END HIDDEN TESTS\n", solution=False),
    _cell("print('no solution here')"),
]


def _nbgrader(notebook):
    """nbgrader's own student copy: ClearSolutions then ClearHiddenTests, as generate_assignment runs them."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions  # here: 1.6 s to import, in one worker

    notebook = copy.deepcopy(notebook)
    for preprocessor in (ClearSolutions(), ClearHiddenTests()):
        notebook, _ = preprocessor.preprocess(notebook, {})
    return notebook


@pytest.mark.parametrize("notebook", [
    nbformat.read(NOTEBOOK, as_version=4), nbformat.v4.new_notebook(cells=MARKED, metadata={
        "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})],
    ids=["the assignment", "every marker"])
def test_the_student_copy_is_nbgraders(notebook):
    """Cell by cell, aevb release's copy holds what nbgrader's ClearSolutions and ClearHiddenTests make of the
    same notebook (up to a final newline: nbgrader drops it where its stub ends a cell)."""
    ours = release.student_copy(json.loads(nbformat.writes(notebook)))["cells"]
    theirs = _nbgrader(notebook).cells
    assert len(ours) == len(theirs)
    for index, (mine, nbgraders) in enumerate(zip(ours, theirs, strict=True)):
        assert "".join(mine["source"]).rstrip("\n") == nbgraders.source.rstrip("\n"), index


def _solutions(notebook):
    return {cell.metadata["nbgrader"]["grade_id"]: cell.source for cell in notebook.cells
            if cell.metadata.get("nbgrader", {}).get("solution")}


WRONG_LOG_Q = ("def log_q(mean, log_std, z):\n    standardized = (z - mean) * jnp.exp(-log_std)\n"
               "    return -jnp.sum(-0.5 * jnp.log(2 * jnp.pi) - log_std - 0.5 * standardized**2, axis=-1)\n")
WRONG_SVI = ("def svi_elbo(key, theta, x, mean, log_std, num_samples):\n    return jnp.float32(0.0)\n")


def test_nbgrader_grades_a_correct_a_partly_wrong_and_an_empty_submission(tmp_path):
    """A teacher's course folder with course/nbgrader_config.py and the aevb kernel: generate_assignment, then
    autograde: the solutions 11/11; log_q with the wrong sign and svi_elbo wrong 8/11 (log_q's point and
    svi_elbo's two: elbo, which calls log_q, is graded with aevb's log_q in its place); the copy as released 0.
    The two last keep only the cells their scores need; the correct one runs the whole notebook."""
    kernels, course = tmp_path / "kernels", tmp_path / "course"
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(kernels), "--name", "aevb"],
                   check=True, capture_output=True)
    (course / "source" / "vae").mkdir(parents=True)
    shutil.copy(ROOT / "course" / "nbgrader_config.py", course)
    shutil.copy(NOTEBOOK, course / "source" / "vae" / "assignment.ipynb")
    env = {**os.environ, "JUPYTER_PATH": str(kernels / "share" / "jupyter"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # nbgrader runs alembic

    def nbgrader(*args):
        done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]

    nbgrader("generate_assignment", "vae")
    released = nbformat.read(course / "release" / "vae" / "assignment.ipynb", as_version=4)
    solutions = _solutions(nbformat.read(NOTEBOOK, as_version=4))
    partly = {**solutions, "log_q": WRONG_LOG_Q, "svi_elbo": WRONG_SVI}
    for student, sources in (("correct", solutions), ("partly", partly), ("empty", {})):
        notebook = copy.deepcopy(released)
        for cell in notebook.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in sources:
                cell.source = sources[grade_id]
        if student != "correct":  # a student may delete any cell nbgrader does not track: these two kept the first
            # code cell (imports, data, SETTINGS) and nbgrader's, all their scores need; the run's cells took 12 s of
            # each of their executions' 19 (measured 12-08)
            set_up = next(cell for cell in notebook.cells if cell.cell_type == "code")
            notebook.cells = [cell for cell in notebook.cells if cell is set_up or "nbgrader" in cell.metadata]
        (course / "submitted" / student / "vae").mkdir(parents=True)
        nbformat.write(notebook, course / "submitted" / student / "vae" / "assignment.ipynb")
    nbgrader("autograde", "vae")
    from nbgrader.api import Gradebook  # here: 1.7 s to import, in one worker

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {student: gradebook.find_submission("vae", student).score
                  for student in ("correct", "partly", "empty")}
        assert gradebook.find_assignment("vae").max_score == 11
    assert scores == {"correct": 11, "partly": 8, "empty": 0}, scores
    # The correct submission is the notebook run top to bottom in smoke mode: every check correct, the run
    # trained and evaluated in its own runs/ (beside the graded copy), the figures shown, the report written.
    graded = course / "autograded" / "correct" / "vae"
    notebook = nbformat.read(graded / "assignment.ipynb", as_version=4)
    printed = "".join("".join(o.get("text", "")) for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert all(f"{name}: correct" in printed for name in grading.CHECKS), printed[-3000:]
    assert "Traceback" not in printed and not any(o.get("output_type") == "error" for c in notebook.cells
                                                  if c.cell_type == "code" for o in c.outputs)
    summary = json.loads((graded / "runs" / "notebook-smoke" / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["test_elbo"] <= summary["test_iwae"] <= summary["test_log_px"]
    assert f"exact log p(x){' ' * 9}{summary['test_log_px']:8.2f} ± {summary['test_log_px_se']:.2f}" in printed
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 7  # samples, latent, interpolate, manifold, curves, the posterior, the completion
    assert (graded / "runs" / "notebook-smoke" / "report.html").exists()
